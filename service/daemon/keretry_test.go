package daemon

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestKeRetry: an unreachable or silent NTS-KE server is retried at the
// pace of the source's polls; a certificate problem backs off to an hour.
func TestKeRetry(t *testing.T) {
	refused := fmt.Errorf("ntsio: connecting to x: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED})
	eof := fmt.Errorf("ntsio: TLS handshake with x: %w", io.EOF)
	badCert := fmt.Errorf("ntsio: TLS handshake with x: %w", &tls.CertificateVerificationError{Err: x509.UnknownAuthorityError{}})
	for _, tc := range []struct {
		err     error
		maxPoll int
		prevs   []time.Duration
		want    []time.Duration
	}{
		{refused, 2, []time.Duration{0, 2 * time.Second, 4 * time.Second}, []time.Duration{2 * time.Second, 4 * time.Second, 4 * time.Second}},
		{eof, 10, []time.Duration{0, 32 * time.Second, 64 * time.Second}, []time.Duration{2 * time.Second, 64 * time.Second, 64 * time.Second}},
		{refused, -2, []time.Duration{8 * time.Second}, []time.Duration{4 * time.Second}},
		{badCert, 2, []time.Duration{0, 16 * time.Second, time.Hour}, []time.Duration{16 * time.Second, 32 * time.Second, time.Hour}},
		{nil, 2, []time.Duration{0}, []time.Duration{16 * time.Second}}, // the NTP server did not resolve
	} {
		for i, prev := range tc.prevs {
			if got := keRetry(prev, tc.err, tc.maxPoll); got != tc.want[i] {
				t.Errorf("keRetry(%v, %v, %d) = %v, want %v", prev, tc.err, tc.maxPoll, got, tc.want[i])
			}
		}
	}
	for range 100 {
		if j := jitter(10 * time.Second); j < 9*time.Second || j > 11*time.Second {
			t.Fatalf("jitter(10s) = %v", j)
		}
	}
}
