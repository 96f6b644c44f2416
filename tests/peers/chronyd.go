package peers

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"gnomon.dev/gnomon/engine/sample"
)

// Chronyd is a chronyd -x started by StartChronyd or StartChronydNTS,
// serving `local stratum 1` on 127.0.0.1.
type Chronyd struct {
	*Proc
	Port int // NTP, on 127.0.0.1

	// NTS only (StartChronydNTS): the NTS-KE port on 127.0.0.1, and the
	// self-signed certificate and key it serves; clients trust CertFile.
	KEPort            int
	CertFile, KeyFile string
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
	lines := []string{
		"port " + strconv.Itoa(c.Port),
		"bindaddress 127.0.0.1",
		"bindaddress ::1",
		"allow 127.0.0.1",
		"local stratum 1",
		"cmdport 0",
		"bindcmdaddress /",
		"pidfile " + filepath.Join(dir, tag+".pid"),
	}
	if c.KEPort != 0 {
		lines = append(lines,
			"ntsport "+strconv.Itoa(c.KEPort),
			"ntsserverkey "+c.KeyFile,
			"ntsservercert "+c.CertFile,
			"ntsdumpdir "+dir)
	}
	conf := filepath.Join(dir, tag+".conf")
	if err := os.WriteFile(conf, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.Proc = Start(t, dir, tag, nil, InNetns(t, ns, Safe(t, bin, "-x", "-d", "-f", conf))...)
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
	cl := NewNTPClient(t, "127.0.0.1")
	c.waitUntil(t, deadline, func() error {
		h, _, err := cl.Query(Loop4(c.Port), 500*time.Millisecond)
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
			t.Fatalf("chronyd on port %d exited: %v\n%s", c.Port, c.Err(), c.Tail(4096))
		}
		if time.Now().After(deadline) {
			t.Fatalf("chronyd on port %d did not serve within %v: %v", c.Port, chronydStartTimeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
