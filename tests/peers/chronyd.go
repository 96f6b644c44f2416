package peers

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gnomon.dev/gnomon/engine/sample"
)

// Chronyd is a chronyd -x started by StartChronyd or StartChronydNTS,
// serving `local stratum 1` on 127.0.0.1, or by StartChronydAt on another
// loopback address.
type Chronyd struct {
	*Proc
	Port int // NTP, on 127.0.0.1 (on Addr when that is set)

	// Addr is the one address a chronyd from StartChronydAt serves on;
	// the zero Addr (StartChronyd, StartChronydNTS) means 127.0.0.1.
	Addr netip.Addr

	// NTS only (StartChronydNTS): the NTS-KE port on 127.0.0.1, and the
	// self-signed certificate and key it serves; clients trust CertFile.
	KEPort            int
	CertFile, KeyFile string

	// Extra are configuration lines added as they are (StartChronydWith).
	Extra []string
}

// chronydStartTimeout bounds how long a new chronyd may take to serve.
const chronydStartTimeout = 15 * time.Second

// StartChronyd starts chronyd -x (through Safe, so without CAP_SYS_TIME)
// as a stratum-1 NTP server on 127.0.0.1:port, in network namespace ns
// unless ns is "". Its configuration, PID file and log go to dir, which
// chronyd (user _chrony) must be able to write: see TempDir. Outside a
// namespace it returns once chronyd answers as a synchronized stratum-1
// server, and fails the test if it exits or does not within 15 s.
func StartChronyd(t testing.TB, dir string, port int, ns string) *Chronyd {
	t.Helper()
	return startChronyd(t, dir, &Chronyd{Port: port}, ns)
}

// StartChronydWith is StartChronyd (not in a namespace) with extra
// configuration lines (a keyfile, xleave settings...).
func StartChronydWith(t testing.TB, dir string, port int, extra ...string) *Chronyd {
	t.Helper()
	return startChronyd(t, dir, &Chronyd{Port: port, Extra: extra}, "")
}

// StartChronydAt starts chronyd -x like StartChronyd (not in a
// namespace), serving only on addr, a loopback address of either family
// (127.0.0.11, ::1), with only that family's sockets (-4 or -6) and
// answering clients from 127.0.0.0/8 or ::1. Several can share one port
// on different addresses, as the members of a pool. It returns once
// chronyd answers on addr as a synchronized stratum-1 server.
func StartChronydAt(t testing.TB, dir string, addr netip.Addr, port int) *Chronyd {
	t.Helper()
	if !addr.IsLoopback() {
		t.Fatalf("StartChronydAt: %v is not a loopback address", addr)
	}
	return startChronyd(t, dir, &Chronyd{Port: port, Addr: addr.Unmap()}, "")
}

// AddrPort is where the chronyd serves NTP: Addr (127.0.0.1 when unset)
// and Port.
func (c *Chronyd) AddrPort() netip.AddrPort {
	if c.Addr.IsValid() {
		return netip.AddrPortFrom(c.Addr, uint16(c.Port))
	}
	return Loop4(c.Port)
}

// StartChronydNTS starts chronyd -x like StartChronyd on 127.0.0.1 (not in
// a namespace), on two free ports: NTP, and NTS-KE with a fresh
// certificate from WriteCert in dir. It returns once the NTS-KE port
// accepts connections and NTP answers as a synchronized stratum-1 server.
func StartChronydNTS(t testing.TB, dir string) *Chronyd {
	t.Helper()
	c := &Chronyd{Port: FreePort(t), KEPort: FreePort(t)}
	c.CertFile, c.KeyFile, _ = WriteCert(t, dir, "chronyd-"+strconv.Itoa(c.Port), 0o644)
	return startChronyd(t, dir, c, "")
}

func startChronyd(t testing.TB, dir string, c *Chronyd, ns string) *Chronyd {
	t.Helper()
	NeedRoot(t, "chronyd drops privileges; setpriv")
	bin := NeedTool(t, "chronyd")
	tag := "chronyd-" + strconv.Itoa(c.Port)
	// bindaddress for both families keeps NTP and NTS-KE on loopback (an
	// NTS-KE socket is opened on [::] otherwise); cmdport 0 and
	// bindcmdaddress / close both command sockets, so that any number of
	// instances can run side by side.
	bind := []string{"bindaddress 127.0.0.1", "bindaddress ::1", "allow 127.0.0.1"}
	var family []string
	if c.Addr.IsValid() {
		// One address of one family: -4 or -6 keeps chronyd from opening
		// the other family's wildcard socket, which a second instance on
		// the same port could not bind.
		tag = "chronyd-" + strings.ReplaceAll(c.Addr.String(), ":", "_") + "-" + strconv.Itoa(c.Port)
		bind = []string{"bindaddress " + c.Addr.String(), "allow 127.0.0.0/8"}
		family = []string{"-4"}
		if c.Addr.Is6() {
			bind[1], family[0] = "allow ::1", "-6"
		}
	}
	lines := append([]string{"port " + strconv.Itoa(c.Port)}, bind...)
	lines = append(lines,
		"local stratum 1",
		"cmdport 0",
		"bindcmdaddress /",
		"pidfile "+filepath.Join(dir, tag+".pid"),
	)
	if c.KEPort != 0 {
		lines = append(lines,
			"ntsport "+strconv.Itoa(c.KEPort),
			"ntsserverkey "+c.KeyFile,
			"ntsservercert "+c.CertFile,
			"ntsdumpdir "+dir)
	}
	lines = append(lines, c.Extra...)
	conf := filepath.Join(dir, tag+".conf")
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := append(append([]string{bin}, family...), "-x", "-d", "-f", conf)
	c.Proc = Start(t, dir, tag, nil, InNetns(t, ns, Safe(t, args...))...)
	if ns != "" {
		return c
	}
	deadline := time.Now().Add(chronydStartTimeout)
	if c.KEPort != 0 {
		ke := net.JoinHostPort("127.0.0.1", strconv.Itoa(c.KEPort))
		c.waitUntil(t, deadline, func() error {
			conn, err := net.DialTimeout("tcp", ke, time.Second)
			if err != nil {
				return fmt.Errorf("NTS-KE port %d: %w", c.KEPort, err)
			}
			conn.Close()
			return nil
		})
	}
	from := "127.0.0.1"
	if c.Addr.Is6() {
		from = "::1"
	}
	cl := NewNTPClient(t, from)
	c.waitUntil(t, deadline, func() error {
		h, _, err := cl.Query(c.AddrPort(), 500*time.Millisecond)
		if err == nil && (h.Stratum != 1 || h.Leap == sample.LeapUnsync) {
			err = fmt.Errorf("not yet a synchronized stratum-1 server: %+v", h)
		}
		return err
	})
	return c
}

// waitUntil retries ready until it returns nil, failing the test if
// chronyd exits or deadline passes first.
func (c *Chronyd) waitUntil(t testing.TB, deadline time.Time, ready func() error) {
	t.Helper()
	for {
		err := ready()
		if err == nil {
			return
		}
		if !c.Alive() {
			t.Fatalf("chronyd on %v exited: %v\n%s", c.AddrPort(), c.Err(), c.Tail(4096))
		}
		if time.Now().After(deadline) {
			t.Fatalf("chronyd on %v did not serve within %v: %v", c.AddrPort(), chronydStartTimeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
