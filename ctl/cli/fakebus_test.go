package cli

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	godbus "github.com/godbus/dbus/v5"

	"gnomon.dev/gnomon/ctl/client"
)

// startBus starts a private dbus-daemon (session type) for one test and
// returns its address.
func startBus(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("dbus-daemon")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("dbus-daemon: %v", err)
		}
		t.Skipf("dbus-daemon: %v", err)
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "bus.conf")
	err = os.WriteFile(conf, []byte(`<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:path=`+filepath.Join(dir, "bus")+`</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
`), 0o644)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config-file="+conf, "--nofork", "--print-address=1", "--nopidfile")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	cmd.Stderr = &logs // "Failed to set fd limit" and the like; shown if the test fails
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() && logs.Len() > 0 {
			t.Logf("dbus-daemon said:\n%s", logs.String())
		}
	})
	addr := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(out).ReadString('\n')
		addr <- strings.TrimSpace(line)
	}()
	select {
	case a := <-addr:
		if a == "" {
			t.Fatal("dbus-daemon printed no address")
		}
		return a
	case <-time.After(20 * time.Second):
		t.Fatal("dbus-daemon did not start")
	}
	return ""
}

// fakeSource is one source of the fake daemon.
type fakeSource struct {
	props map[string]any
}

// fakeGnomon is org.gnomon.Gnomon1 as docs/dbus.md describes it, with
// canned state, recording the calls it gets.
type fakeGnomon struct {
	conn *godbus.Conn

	mu      sync.Mutex
	manager map[string]any
	sources map[godbus.ObjectPath]*fakeSource
	order   []godbus.ObjectPath
	nextID  uint64
	calls   []string
	// refuse makes every method answer with this D-Bus error name.
	refuse string
}

func (f *fakeGnomon) record(format string, args ...any) {
	f.calls = append(f.calls, fmt.Sprintf(format, args...))
}

func (f *fakeGnomon) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

func (f *fakeGnomon) SetRefuse(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refuse = name
}

// startFake exports a fake gnomond on the bus at addr with three sources,
// the second selected.
func startFake(t *testing.T, addr string) *fakeGnomon {
	t.Helper()
	conn, err := godbus.Connect(addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	f := &fakeGnomon{conn: conn, sources: map[godbus.ObjectPath]*fakeSource{}}
	f.manager = map[string]any{
		"Version": "test-1.0", "Synchronized": true, "State": "synchronized", "ClockMode": "observe", "NTP": true,
		"Offset": int64(-12345), "Frequency": -3.25, "RootDelay": uint64(2_000_000), "RootDispersion": uint64(500_000),
		"Stratum": uint8(3), "ReferenceID": uint32(0x7f000001), "Leap": "none",
		"SelectedSource": godbus.ObjectPath("/"), "Sources": []godbus.ObjectPath{}, "Panic": "",
		"AccuracyStatus": "accuracy target 10µs out of reach; about 1.2ms reachable (polling backed off)",
	}
	f.addSource("server", "ntp1.example.net", "192.0.2.1:123", "config", "candidate", 0o377, 1500, 2_000_000)
	sel := f.addSource("server", "chrony-lo", "127.0.0.1:11123", "config", "selected", 0o377, -800, 150_000)
	bad := f.addSource("pool", "pool.example.net", "198.51.100.7:123", "config", "falseticker", 0o17, 250_000_000, 30_000_000)
	f.sources[bad].props["LastError"] = "reply from the wrong address"
	f.manager["SelectedSource"] = sel
	if err := conn.Export(&fakeManager{f}, client.ManagerPath, client.ManagerIface); err != nil {
		t.Fatal(err)
	}
	if err := conn.Export(&fakeProps{f, client.ManagerPath}, client.ManagerPath, "org.freedesktop.DBus.Properties"); err != nil {
		t.Fatal(err)
	}
	reply, err := conn.RequestName(client.BusName, godbus.NameFlagDoNotQueue)
	if err != nil || reply != godbus.RequestNameReplyPrimaryOwner {
		t.Fatalf("RequestName: %v %v", reply, err)
	}
	return f
}

// addSource adds a source (f.mu held or not yet shared) and exports it.
func (f *fakeGnomon) addSource(kind, name, address, origin, state string, reach uint8, offset int64, delay uint64) godbus.ObjectPath {
	f.nextID++
	p := godbus.ObjectPath(client.SourcePrefix + strconv.FormatUint(f.nextID, 10))
	f.sources[p] = &fakeSource{props: map[string]any{
		"ID": f.nextID, "Name": name, "Address": address, "Kind": kind, "Origin": origin, "Reachability": reach,
		"Offset": offset, "Delay": delay, "Jitter": delay / 10, "Stratum": uint8(2), "PollInterval": uint64(64_000_000),
		"State": state, "LastError": "",
	}}
	f.order = append(f.order, p)
	f.manager["Sources"] = append([]godbus.ObjectPath(nil), f.order...)
	if f.conn != nil {
		f.conn.Export(&fakeProps{f, p}, p, "org.freedesktop.DBus.Properties")
	}
	return p
}

func (f *fakeGnomon) removeSource(p godbus.ObjectPath) bool {
	if _, ok := f.sources[p]; !ok {
		return false
	}
	delete(f.sources, p)
	for i, q := range f.order {
		if q == p {
			f.order = append(f.order[:i], f.order[i+1:]...)
			break
		}
	}
	f.manager["Sources"] = append([]godbus.ObjectPath(nil), f.order...)
	f.conn.Export(nil, p, "org.freedesktop.DBus.Properties")
	return true
}

// emit sends PropertiesChanged for the manager's Sources.
func (f *fakeGnomon) emit() {
	f.mu.Lock()
	v := godbus.MakeVariant(append([]godbus.ObjectPath(nil), f.order...))
	f.mu.Unlock()
	f.conn.Emit(client.ManagerPath, "org.freedesktop.DBus.Properties.PropertiesChanged",
		client.ManagerIface, map[string]godbus.Variant{"Sources": v}, []string{})
}

type fakeManager struct{ f *fakeGnomon }

func (m *fakeManager) check() *godbus.Error {
	if m.f.refuse != "" {
		return &godbus.Error{Name: m.f.refuse, Body: []any{"Access denied (test)"}}
	}
	return nil
}

func (m *fakeManager) Reload(interactive bool) ([]string, *godbus.Error) {
	m.f.mu.Lock()
	defer m.f.mu.Unlock()
	m.f.record("Reload(%t)", interactive)
	if err := m.check(); err != nil {
		return nil, err
	}
	return []string{"server 127.0.0.1:11123: opened", "source server ntp.example: added"}, nil
}

func (m *fakeManager) AddSource(mode, address string, interactive bool) (godbus.ObjectPath, *godbus.Error) {
	m.f.mu.Lock()
	m.f.record("AddSource(%s, %s, %t)", mode, address, interactive)
	if err := m.check(); err != nil {
		m.f.mu.Unlock()
		return "", err
	}
	if mode != "server" && mode != "pool" && mode != "nts" {
		m.f.mu.Unlock()
		return "", &godbus.Error{Name: "org.freedesktop.DBus.Error.InvalidArgs", Body: []any{"unknown mode " + mode}}
	}
	p := m.f.addSource(mode, address, address, "dbus", "none", 0, 0, 0)
	m.f.mu.Unlock()
	m.f.emit()
	return p, nil
}

func (m *fakeManager) RemoveSource(p godbus.ObjectPath, interactive bool) *godbus.Error {
	m.f.mu.Lock()
	m.f.record("RemoveSource(%s, %t)", p, interactive)
	if err := m.check(); err != nil {
		m.f.mu.Unlock()
		return err
	}
	ok := m.f.removeSource(p)
	m.f.mu.Unlock()
	if !ok {
		return &godbus.Error{Name: "org.gnomon.Gnomon1.Error.NoSuchSource", Body: []any{"no source " + string(p)}}
	}
	m.f.emit()
	return nil
}

func (m *fakeManager) Burst(p godbus.ObjectPath, interactive bool) *godbus.Error {
	m.f.mu.Lock()
	defer m.f.mu.Unlock()
	m.f.record("Burst(%s, %t)", p, interactive)
	if err := m.check(); err != nil {
		return err
	}
	if _, ok := m.f.sources[p]; p != "/" && !ok {
		return &godbus.Error{Name: "org.gnomon.Gnomon1.Error.NoSuchSource", Body: []any{"no source " + string(p)}}
	}
	return nil
}

// fakeProps is org.freedesktop.DBus.Properties of one object.
type fakeProps struct {
	f    *fakeGnomon
	path godbus.ObjectPath
}

func (p *fakeProps) props() (map[string]any, string) {
	if p.path == client.ManagerPath {
		return p.f.manager, client.ManagerIface
	}
	if s, ok := p.f.sources[p.path]; ok {
		return s.props, client.SourceIface
	}
	return nil, ""
}

func (p *fakeProps) GetAll(iface string) (map[string]godbus.Variant, *godbus.Error) {
	p.f.mu.Lock()
	defer p.f.mu.Unlock()
	props, name := p.props()
	if props == nil {
		return nil, &godbus.Error{Name: "org.freedesktop.DBus.Error.UnknownObject", Body: []any{"gone"}}
	}
	if iface != name && iface != "" {
		return nil, &godbus.Error{Name: "org.freedesktop.DBus.Error.UnknownInterface", Body: []any{iface}}
	}
	out := map[string]godbus.Variant{}
	for k, v := range props {
		out[k] = godbus.MakeVariant(v)
	}
	return out, nil
}

func (p *fakeProps) Get(iface, name string) (godbus.Variant, *godbus.Error) {
	all, err := p.GetAll(iface)
	if err != nil {
		return godbus.Variant{}, err
	}
	v, ok := all[name]
	if !ok {
		return godbus.Variant{}, &godbus.Error{Name: "org.freedesktop.DBus.Error.UnknownProperty", Body: []any{name}}
	}
	return v, nil
}

func (p *fakeProps) Set(iface, name string, v godbus.Variant) *godbus.Error {
	return &godbus.Error{Name: "org.freedesktop.DBus.Error.PropertyReadOnly", Body: []any{name}}
}

// run runs gnomonctl with args and an environment, returning its exit
// code, standard output and standard error.
func run(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code := Run(args, &Env{
		Stdout: &stdout, Stderr: &stderr, Stdin: strings.NewReader(""),
		Getenv:  func(k string) string { return env[k] },
		Version: "test", Context: ctx,
	})
	return code, stdout.String(), stderr.String()
}
