// Package conformance is the differential test of gnomond's
// org.freedesktop.timedate1 and org.freedesktop.timesync1 against systemd
// 252's own daemons: the real /lib/systemd/systemd-timedated and a
// systemd-timesyncd unpacked from Debian's package on one private bus,
// gnomond on another, the same battery of calls on both, replies, errors,
// signals and file effects compared call by call (battery_test.go).
package conformance

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"

	"gnomon.dev/gnomon/tests/peers"
)

var gnomondBin string

// clientEnv makes the test binary a D-Bus client for another user
// (runClient): it reads calls as JSON lines on stdin.
const clientEnv = "GNOMON_CONFORMANCE_CLIENT"

func TestMain(m *testing.M) {
	if addr := os.Getenv(clientEnv); addr != "" {
		os.Exit(runClient(addr))
	}
	os.Exit(peers.BuildAndRun(m, map[string]*string{"./cmd/gnomond": &gnomondBin}))
}

// timesyncdPath is systemd-timesyncd unpacked from Debian's package by
// scripts/install-peers.sh (never installed: chrony conflicts with it).
func timesyncdPath() string {
	if p := os.Getenv("GNOMON_TIMESYNCD"); p != "" {
		return p
	}
	return "/opt/gnomon-peers/timesyncd/lib/systemd/systemd-timesyncd"
}

const timedatedPath = "/lib/systemd/systemd-timedated"

// req is one raw method call.
type req struct {
	Dest   string   // "td" or "ts"
	Path   string   `json:",omitempty"`
	Iface  string   `json:",omitempty"` // "" sends no interface header
	Member string   `json:",omitempty"`
	Sig    string   `json:",omitempty"`
	Args   []string `json:",omitempty"` // GVariant text, one per complete type of Sig
	Flags  byte     `json:",omitempty"`
}

var busNames = map[string]string{"td": "org.freedesktop.timedate1", "ts": "org.freedesktop.timesync1"}

// splitSig splits a signature into its complete types.
func splitSig(sig string) ([]string, error) {
	var out []string
	for i := 0; i < len(sig); {
		j, err := sigEnd(sig, i)
		if err != nil {
			return nil, err
		}
		out = append(out, sig[i:j])
		i = j
	}
	return out, nil
}

func sigEnd(sig string, i int) (int, error) {
	if i >= len(sig) {
		return 0, fmt.Errorf("signature %q ends early", sig)
	}
	switch sig[i] {
	case 'a':
		return sigEnd(sig, i+1)
	case '(', '{':
		close := byte(')')
		if sig[i] == '{' {
			close = '}'
		}
		j := i + 1
		for j < len(sig) && sig[j] != close {
			k, err := sigEnd(sig, j)
			if err != nil {
				return 0, err
			}
			j = k
		}
		if j >= len(sig) {
			return 0, fmt.Errorf("signature %q: unclosed %c", sig, sig[i])
		}
		return j + 1, nil
	}
	return i + 1, nil
}

// doCall performs r on conn and returns the normalized outcome.
func doCall(conn *godbus.Conn, r req) string {
	types, err := splitSig(r.Sig)
	if err != nil || len(types) != len(r.Args) {
		return fmt.Sprintf("bad request: %v (%d types, %d args)", err, len(types), len(r.Args))
	}
	var body []any
	for i, ty := range types {
		v, err := godbus.ParseVariant(r.Args[i], godbus.ParseSignatureMust(ty))
		if err != nil {
			return fmt.Sprintf("bad argument %q as %s: %v", r.Args[i], ty, err)
		}
		body = append(body, v.Value())
	}
	msg := &godbus.Message{Type: godbus.TypeMethodCall, Flags: godbus.Flags(r.Flags), Headers: map[godbus.HeaderField]godbus.Variant{
		godbus.FieldDestination: godbus.MakeVariant(busNames[r.Dest]),
		godbus.FieldPath:        godbus.MakeVariant(godbus.ObjectPath(r.Path)),
		godbus.FieldMember:      godbus.MakeVariant(r.Member),
	}, Body: body}
	if r.Iface != "" {
		msg.Headers[godbus.FieldInterface] = godbus.MakeVariant(r.Iface)
	}
	if len(body) > 0 {
		msg.Headers[godbus.FieldSignature] = godbus.MakeVariant(godbus.SignatureOf(body...))
	}
	if msg.Flags&godbus.FlagNoReplyExpected != 0 {
		if c := conn.Send(msg, nil); c.Err != nil {
			return "send: " + c.Err.Error()
		}
		// No reply will come: a round trip to the same daemon orders
		// after it.
		doCall(conn, req{Dest: r.Dest, Path: "/", Iface: "org.freedesktop.DBus.Peer", Member: "Ping"})
		return "sent, no reply expected"
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c := conn.SendWithContext(ctx, msg, make(chan *godbus.Call, 1))
	select {
	case <-c.Done:
	case <-ctx.Done():
		return "timeout"
	}
	if c.Err != nil {
		if de, ok := c.Err.(godbus.Error); ok {
			text := ""
			if len(de.Body) > 0 {
				text = fmt.Sprint(de.Body[0])
			}
			return "error " + de.Name + ": " + text
		}
		return "error " + c.Err.Error()
	}
	var parts []string
	for _, v := range c.Body {
		parts = append(parts, format(v))
	}
	return "ok " + godbus.SignatureOf(c.Body...).String() + " " + strings.Join(parts, " ")
}

// format prints a decoded value, maps sorted by key.
func format(v any) string {
	switch x := v.(type) {
	case godbus.Variant:
		return "<" + x.Signature().String() + " " + format(x.Value()) + ">"
	case map[string]godbus.Variant:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var b strings.Builder
		b.WriteString("{")
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%q: %s", k, format(x[k]))
		}
		b.WriteString("}")
		return b.String()
	case []any:
		var parts []string
		for _, e := range x {
			parts = append(parts, format(e))
		}
		return "(" + strings.Join(parts, ", ") + ")"
	case string:
		return strconv.Quote(x)
	case []string:
		return fmt.Sprintf("%q", x)
	}
	return fmt.Sprintf("%v", v)
}

// runClient serves calls for the test from another user's process.
func runClient(addr string) int {
	conn, err := godbus.Connect(addr)
	if err != nil {
		fmt.Println(strconv.Quote("connect: " + err.Error()))
		return 1
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 1<<20), 1<<20)
	for in.Scan() {
		var r req
		if err := json.Unmarshal(in.Bytes(), &r); err != nil {
			fmt.Println(strconv.Quote("bad request: " + err.Error()))
			continue
		}
		out, _ := json.Marshal(doCall(conn, r))
		fmt.Println(string(out))
	}
	return 0
}

// client is a runClient process of one user.
type client struct {
	mu  sync.Mutex
	in  io.WriteCloser
	out *bufio.Scanner
}

func (c *client) call(r req) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, _ := json.Marshal(r)
	if _, err := c.in.Write(append(b, '\n')); err != nil {
		return "client: " + err.Error()
	}
	if !c.out.Scan() {
		return "client: no answer"
	}
	var s string
	_ = json.Unmarshal(c.out.Bytes(), &s)
	return s
}

// testUser is an unprivileged caller.
type testUser struct {
	name     string
	uid, gid string
}

func (u testUser) setpriv() []string {
	return []string{"setpriv", "--reuid=" + u.uid, "--regid=" + u.gid, "--clear-groups"}
}

func startClient(t *testing.T, exe, addr string, u testUser) *client {
	cmd := exec.Command(u.setpriv()[0], append(u.setpriv()[1:], exe, "-test.run=^$")...)
	cmd.Env = append(os.Environ(), clientEnv+"="+addr)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		in.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	return &client{in: in, out: sc}
}

// side is one implementation under test on its own bus.
type side struct {
	name    string
	bus     *peers.SystemBus
	root    *godbus.Conn
	upper   string // the overlay upper directory of timedate1's /etc
	clients map[string]*client
	sigs    chan *godbus.Signal
	polkitd *peers.Proc
	dir     string
	stopped bool
	// jobs counts the unit jobs timedated started (systemd side only):
	// each ends in a JobRemoved after which timedated signals NTP.
	jobs func() int
}

func (s *side) call(who string, r req) string {
	if who == "root" {
		return doCall(s.root, r)
	}
	return s.clients[who].call(r)
}

// effect is what the daemon did to /etc/name, seen in its overlay's upper
// directory: unchanged, deleted (a whiteout), a symlink or a file.
func effect(upper, name string) string {
	p := filepath.Join(upper, name)
	fi, err := os.Lstat(p)
	switch {
	case err != nil:
		return "unchanged"
	case fi.Mode()&os.ModeCharDevice != 0:
		return "deleted"
	case fi.Mode()&os.ModeSymlink != 0:
		target, _ := os.Readlink(p)
		return "link " + target
	}
	data, _ := os.ReadFile(p)
	return fmt.Sprintf("file %q mode %v", data, fi.Mode().Perm())
}

func (s *side) files() string {
	return "localtime: " + effect(s.upper, "localtime") + "; adjtime: " + effect(s.upper, "adjtime")
}

// drainSignals returns the PropertiesChanged signals seen so far; it
// first waits (up to 5 s) for atLeast signals, and with waitNTP for
// timedated's NTP signal, which follows the unit jobs rather than the
// reply.
func (s *side) drainSignals(waitNTP bool, atLeast int) []string {
	var out []string
	deadline := time.After(5 * time.Second)
	// A call sent without a reply expected has no end to wait for, and
	// the Ping after it is no barrier for gnomond (godbus runs each call
	// on its own goroutine, sd-bus one after the other): wait (bounded)
	// for as many signals as the reference sent.
	for len(out) < atLeast {
		select {
		case sig := <-s.sigs:
			if x := s.signalText(sig); x != "" {
				out = append(out, x)
			}
		case <-deadline:
			atLeast = 0
		}
	}
	for waitNTP {
		select {
		case sig := <-s.sigs:
			if x := s.signalText(sig); x != "" {
				out = append(out, x)
				waitNTP = !strings.Contains(x, `"NTP"`)
			}
		case <-deadline:
			waitNTP = false
		}
	}
	for {
		select {
		case sig := <-s.sigs:
			if x := s.signalText(sig); x != "" {
				out = append(out, x)
			}
		default:
			return out
		}
	}
}

// signalText is a PropertiesChanged signal of the systemd names' objects
// as text ("" for any other signal: Gnomon1's are gnomond's own).
func (s *side) signalText(sig *godbus.Signal) string {
	if sig.Name != "org.freedesktop.DBus.Properties.PropertiesChanged" || len(sig.Body) != 3 || !strings.HasPrefix(string(sig.Path), "/org/freedesktop/") {
		return ""
	}
	return fmt.Sprintf("%s %v %s %s", sig.Path, sig.Body[0], format(sig.Body[1]), format(sig.Body[2]))
}

// settle waits until both daemons have sent what they were going to
// send for the last step: a Ping round trip to each (their signals come
// before the reply), then a pause for signals sent on a later event.
func (s *side) settle(pause time.Duration) {
	for _, d := range []string{"td", "ts"} {
		doCall(s.root, req{Dest: d, Path: "/", Iface: "org.freedesktop.DBus.Peer", Member: "Ping"})
	}
	time.Sleep(pause)
}

var (
	reTime   = regexp.MustCompile(`(Mon|Tue|Wed|Thu|Fri|Sat|Sun) \d{4}-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)? [A-Z+\-0-9]+`)
	reUsec   = regexp.MustCompile(`\b1[6-9]\d{14}\b`)
	reUnique = regexp.MustCompile(`:1\.\d+`)
	reSpaces = regexp.MustCompile(` {2,}`)
)

// shorten replaces a long output (the zone list) by its size and hash.
func shorten(o string) string {
	if len(o) <= 4000 {
		return o
	}
	return fmt.Sprintf("%d lines, sha256 %x", strings.Count(o, "\n"), sha256.Sum256([]byte(o)))
}

// normalize removes what differs between any two runs: times, unique
// names, the bus's socket path.
func normalize(s string, sockDir string) string {
	s = strings.ReplaceAll(s, sockDir, "<dir>")
	s = reTime.ReplaceAllString(s, "<time>")
	s = reUsec.ReplaceAllString(s, "<usec>")
	s = reUnique.ReplaceAllString(s, ":1.N")
	s = reSpaces.ReplaceAllString(s, " ") // busctl's column widths follow the longest value
	return s
}

// lookupUser returns a user's ids.
func lookupUser(t *testing.T, name string) testUser {
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	return testUser{name: name, uid: u.Uid, gid: u.Gid}
}

// run runs argv with the side's bus address, as who.
func (s *side) run(u *testUser, argv []string) string {
	var full []string
	if argv[0] == "timedatectl-like" { // another systemd tool that needs /run/systemd/system
		argv = argv[1:]
		inner := `mount -t tmpfs tmpfs /run/systemd && mkdir /run/systemd/system && exec "$@"`
		full = append([]string{"unshare", "-m", "sh", "-c", inner, "sh"}, argv...)
	} else if argv[0] == "timedatectl" {
		inner := `mount -t tmpfs tmpfs /run/systemd && mkdir /run/systemd/system && exec "$@"`
		full = []string{"unshare", "-m", "sh", "-c", inner, "sh"}
		if u != nil {
			full = append(full, u.setpriv()...)
		}
		full = append(full, argv...)
	} else {
		if u != nil {
			full = append(full, u.setpriv()...)
		}
		full = append(full, argv...)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, full[0], full[1:]...)
	cmd.Env = append(os.Environ(), "DBUS_SYSTEM_BUS_ADDRESS="+s.bus.Addr, "SYSTEMD_PAGER=", "SYSTEMD_COLORS=0", "TERM=dumb", "LC_ALL=C")
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	rc := 0
	if ee, ok := err.(*exec.ExitError); ok {
		rc = ee.ExitCode()
	} else if err != nil {
		rc = -1
	}
	return fmt.Sprintf("rc=%d\nstdout:\n%s\nstderr:\n%s", rc, out.String(), errb.String())
}
