package tests

// gnomond-specific helpers for the integration tests: gnomond started
// without CAP_SYS_TIME and reporting to a NOTIFY_SOCKET the test reads, its
// STATUS lines parsed, and its configuration tables.
// The harness they stand on (peers, chronyd, processes, ports, netns) is
// gnomon.dev/gnomon/tests/peers.

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gnomon.dev/gnomon/tests/peers"
)

// gnomondBin is the daemon built once by TestMain.
var gnomondBin string

func TestMain(m *testing.M) {
	os.Exit(peers.BuildAndRun(m, map[string]*string{"./cmd/gnomond": &gnomondBin, "./cmd/gnomonctl": &gnomonctlBin, "./cmd/gnomon-exporter": &exporterBin}))
}

// rootFor is what needs root in this package's tests.
const rootFor = "setpriv, netns, chronyd"

// status is a parsed "synchronized to ..." STATUS line.
type status struct {
	peer     string
	stratum  int
	offset   time.Duration
	holdover bool
	// sysErr is, in observe mode, how far the untouched system clock is
	// from the time gnomond keeps (positive: ahead); ok in observeKnown.
	sysErr       time.Duration
	observeKnown bool
}

var statusRE = regexp.MustCompile(`^STATUS=synchronized to (\S+), stratum (\d+), offset ([+-])([0-9]+(?:\.[0-9]+)?) (µs|ms|s)( \(holdover\))?(?:; system clock ([0-9]+(?:\.[0-9]+)?) (µs|ms|s) (ahead|behind) \(observe mode\))?$`)

// parseStatus parses a STATUS line of a synchronized gnomond; ok is false
// for any other line.
func parseStatus(line string) (status, bool) {
	m := statusRE.FindStringSubmatch(line)
	if m == nil {
		return status{}, false
	}
	st, err := strconv.Atoi(m[2])
	if err != nil {
		return status{}, false
	}
	v, err := strconv.ParseFloat(m[4], 64)
	if err != nil {
		return status{}, false
	}
	unit := map[string]float64{"µs": 1e3, "ms": 1e6, "s": 1e9}[m[5]]
	off := time.Duration(v * unit)
	if m[3] == "-" {
		off = -off
	}
	out := status{peer: m[1], stratum: st, offset: off, holdover: m[6] != ""}
	if m[7] != "" {
		e, err := strconv.ParseFloat(m[7], 64)
		if err != nil {
			return status{}, false
		}
		out.sysErr = time.Duration(e * map[string]float64{"µs": 1e3, "ms": 1e6, "s": 1e9}[m[8]])
		if m[9] == "behind" {
			out.sysErr = -out.sysErr
		}
		out.observeKnown = true
	}
	return out, true
}

func abs(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// gnomond is a running daemon and the notify socket it reports to.
type gnomond struct {
	*peers.Proc
	notify *peers.Notifier
	config string
}

// gnomondOpts says how to start gnomond.
type gnomondOpts struct {
	netns string
	// wrap goes between setpriv and gnomond (systemd-socket-activate ...).
	wrap []string
	// env is added to gnomond's environment.
	env []string
}

// startGnomond writes cfg to a file and starts gnomond --config on it
// without CAP_SYS_TIME, with NOTIFY_SOCKET pointing at a socket the test reads.
func startGnomond(t *testing.T, dir, cfg string, o gnomondOpts) *gnomond {
	t.Helper()
	tag := "gnomond-" + peers.RandomHex(t, 3)
	path := filepath.Join(dir, tag+".toml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	n := peers.NewNotifier(t, dir)
	var argv []string
	env := append([]string{"NOTIFY_SOCKET=" + n.Path}, o.env...)
	if len(o.wrap) > 0 {
		// The wrapper (systemd-socket-activate -E ...) passes the
		// environment on itself.
		argv = append(argv, o.wrap...)
		env = nil
		for i, a := range argv {
			argv[i] = strings.ReplaceAll(a, "@NOTIFY@", n.Path)
		}
	}
	// As root on purpose: a test machine need not have the gnomon user
	// (gnomond refuses to start as root without --user "").
	argv = append(argv, gnomondBin, "--config", path, "--no-dbus", "--state-dir", "", "--user", "")
	argv = peers.InNetns(t, o.netns, peers.Safe(t, argv...))
	return &gnomond{Proc: peers.Start(t, dir, tag, env, argv...), notify: n, config: path}
}

// observeConfig is gnomond in observe mode with the given sources and
// servers (TOML tables appended as is).
func observeConfig(tables ...string) string {
	return "[clock]\nmode = \"observe\"\ndrift-file = \"\"\n\n" + strings.Join(tables, "\n")
}

func sourceTable(port int) string {
	return fmt.Sprintf("[[source]]\nmode = \"server\"\naddress = \"127.0.0.1:%d\"\npoll-interval-limits = { min = 0, max = 2 }\n", port)
}

func serverTable(listen string, extra ...string) string {
	return fmt.Sprintf("[[server]]\nlisten = %q\n%s\n", listen, strings.Join(extra, "\n"))
}

// listenUDP binds 127.0.0.1:port.
func listenUDP(port int) (*net.UDPConn, error) {
	return net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
}

var (
	plainOnce sync.Once
	plainBin  string
	plainErr  error
)

// plainGnomond is gnomond as shipped (CGO_ENABLED=0) even when the tests
// run a race-enabled one (GNOMON_TEST_GNOMOND): for the tests a cgo build
// cannot pass, the privilege drop on every thread and a run under a tight
// address-space limit (the race detector maps terabytes of shadow).
func plainGnomond(t *testing.T) string {
	t.Helper()
	if os.Getenv(peers.PrebuiltGnomond) == "" {
		return gnomondBin
	}
	plainOnce.Do(func() {
		dir, err := os.MkdirTemp("", "gnomon-test-plain-")
		if err == nil {
			err = os.Chmod(dir, 0o755)
		}
		if err != nil {
			plainErr = err
			return
		}
		plainBin = peers.Build(t, dir, "./cmd/gnomond")
	})
	if plainErr != nil {
		t.Fatal(plainErr)
	}
	return plainBin
}
