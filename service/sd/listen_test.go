//go:build linux

package sd

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const childEnv = "GNOMON_SD_CHILD"

// childFile is what the child reports about one descriptor it got.
type childFile struct {
	Type    int    // SO_TYPE
	Local   string // local address
	Payload string `json:",omitempty"` // a datagram waiting on it, if asked to read
}

type childReport struct {
	Files     map[string][]childFile
	Err       string
	SameMap   bool // a second Listeners call returned the same map
	EnvLeft   []string
	Remaining int // descriptors a third call found
}

// TestListenersChild is the child of the tests below: it takes its
// listeners and prints a report as JSON.
func TestListenersChild(t *testing.T) {
	mode := os.Getenv(childEnv)
	if mode == "" {
		t.Skip("runs only as a child of the Listeners tests")
	}
	files, err := Listeners()
	rep := childReport{Files: map[string][]childFile{}}
	if err != nil {
		rep.Err = err.Error()
	}
	for name, fs := range files {
		for _, f := range fs {
			var cf childFile
			fd := int(f.Fd())
			cf.Type, _ = unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TYPE)
			if sa, err := unix.Getsockname(fd); err == nil {
				cf.Local = sockaddrString(sa)
			}
			if mode == "read" && cf.Type == unix.SOCK_DGRAM {
				buf := make([]byte, 512)
				n, _, err := unix.Recvfrom(fd, buf, 0)
				if err == nil {
					cf.Payload = string(buf[:n])
				}
			}
			rep.Files[name] = append(rep.Files[name], cf)
		}
	}
	again, _ := Listeners()
	rep.SameMap = fmt.Sprint(again) == fmt.Sprint(files)
	for _, k := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		if _, ok := os.LookupEnv(k); ok {
			rep.EnvLeft = append(rep.EnvLeft, k)
		}
	}
	rest, _ := takeListeners()
	rep.Remaining = len(rest)
	json.NewEncoder(os.Stdout).Encode(rep)
}

func sockaddrString(sa unix.Sockaddr) string {
	switch a := sa.(type) {
	case *unix.SockaddrInet4:
		return fmt.Sprintf("%s:%d", net.IP(a.Addr[:]), a.Port)
	case *unix.SockaddrInet6:
		return fmt.Sprintf("[%s]:%d", net.IP(a.Addr[:]), a.Port)
	case *unix.SockaddrUnix:
		return a.Name
	}
	return fmt.Sprintf("%T", sa)
}

func parseReport(t *testing.T, out []byte) childReport {
	t.Helper()
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(line, "{") {
			var rep childReport
			if err := json.Unmarshal([]byte(line), &rep); err != nil {
				t.Fatal(err)
			}
			return rep
		}
	}
	t.Fatalf("no report in child output:\n%s", out)
	return childReport{}
}

func childArgs() []string {
	return []string{os.Args[0], "-test.run=^TestListenersChild$", "-test.count=1"}
}

// TestListenersSplitsByName passes four descriptors the way systemd does
// (fds 3..6, LISTEN_PID being the child's own pid) and checks the split.
func TestListenersSplitsByName(t *testing.T) {
	var extra []*os.File
	var want []string
	addUDP := func() {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		f, err := c.File()
		if err != nil {
			t.Fatal(err)
		}
		extra = append(extra, f)
		want = append(want, c.LocalAddr().String())
	}
	addUDP()
	addUDP()
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	lf, err := l.File()
	if err != nil {
		t.Fatal(err)
	}
	extra = append(extra, lf)
	want = append(want, l.Addr().String())
	u, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: t.TempDir() + "/s", Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	uf, err := u.File()
	if err != nil {
		t.Fatal(err)
	}
	extra = append(extra, uf)
	want = append(want, u.LocalAddr().String())
	defer func() {
		for _, f := range extra {
			f.Close()
		}
	}()

	// sh sets LISTEN_PID to its own pid, which exec keeps.
	cmd := exec.Command("/bin/sh", append([]string{"-c", `LISTEN_PID=$$ exec "$@"`, "sh"}, childArgs()...)...)
	cmd.ExtraFiles = extra
	cmd.Env = append(os.Environ(), childEnv+"=names", "LISTEN_FDS=4", "LISTEN_FDNAMES=ntp:ntp:nts-ke:")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child: %v\n%s", err, out)
	}
	rep := parseReport(t, out)
	if rep.Err != "" {
		t.Errorf("Listeners error: %s", rep.Err)
	}
	check := func(name string, typ int, addrs ...string) {
		t.Helper()
		got := rep.Files[name]
		var gotAddrs []string
		for _, f := range got {
			if f.Type != typ {
				t.Errorf("%s: socket type %d, want %d", name, f.Type, typ)
			}
			gotAddrs = append(gotAddrs, f.Local)
		}
		if !slices.Equal(gotAddrs, addrs) {
			t.Errorf("%s: %v, want %v", name, gotAddrs, addrs)
		}
	}
	check("ntp", unix.SOCK_DGRAM, want[0], want[1])
	check("nts-ke", unix.SOCK_STREAM, want[2])
	check(UnnamedListener, unix.SOCK_DGRAM, want[3])
	if len(rep.Files) != 3 {
		t.Errorf("names %v", rep.Files)
	}
	if !rep.SameMap || len(rep.EnvLeft) != 0 || rep.Remaining != 0 {
		t.Errorf("second call same %t, env left %v, a fresh take found %d", rep.SameMap, rep.EnvLeft, rep.Remaining)
	}
}

func TestListenersEnv(t *testing.T) {
	tests := []struct {
		name  string
		env   []string
		files map[string]int
		bad   bool
	}{
		{"no activation", nil, map[string]int{}, false},
		{"other pid", []string{"LISTEN_PID=1", "LISTEN_FDS=1"}, map[string]int{}, false},
		{"unnamed", []string{"LISTEN_FDS=1"}, map[string]int{UnnamedListener: 1}, false},
		{"too few names", []string{"LISTEN_FDS=1", "LISTEN_FDNAMES=a:b"}, map[string]int{"a": 1}, true},
		{"bad count", []string{"LISTEN_FDS=x"}, map[string]int{}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := os.Open(os.DevNull)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			script := `LISTEN_PID=$$ exec "$@"`
			if slices.ContainsFunc(tc.env, func(s string) bool { return strings.HasPrefix(s, "LISTEN_PID=") }) || tc.env == nil {
				script = `exec "$@"`
			}
			cmd := exec.Command("/bin/sh", append([]string{"-c", script, "sh"}, childArgs()...)...)
			cmd.ExtraFiles = []*os.File{f}
			cmd.Env = append(append(os.Environ(), childEnv+"=env"), tc.env...)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("child: %v\n%s", err, out)
			}
			rep := parseReport(t, out)
			if (rep.Err != "") != tc.bad {
				t.Errorf("error %q, want error %t", rep.Err, tc.bad)
			}
			got := map[string]int{}
			for k, v := range rep.Files {
				got[k] = len(v)
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.files) {
				t.Errorf("files %v, want %v", got, tc.files)
			}
		})
	}
}

// TestListenersSystemdSocketActivate takes a socket from systemd's own
// systemd-socket-activate, which opens it and execs the child on the
// first datagram; the child reads that datagram from the "ntp" socket.
func TestListenersSystemdSocketActivate(t *testing.T) {
	tool, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("systemd-socket-activate not found")
		}
		t.Skip("systemd-socket-activate not found")
	}
	port := freeUDPPort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	// systemd-socket-activate passes on only the environment it is told to.
	cmd := exec.Command(tool, append([]string{"-l", addr, "--datagram", "--fdname=ntp", "-E", childEnv + "=read"}, childArgs()...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stdout strings.Builder
	cmd.Stdout = &stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	defer func() {
		select {
		case <-done:
		default:
			cmd.Process.Kill()
			<-done
		}
	}()
	sc := bufio.NewScanner(stderr)
	listening := false
	var log []string
	for !listening && sc.Scan() {
		log = append(log, sc.Text())
		listening = strings.HasPrefix(sc.Text(), "Listening on "+addr)
	}
	if !listening {
		t.Fatalf("systemd-socket-activate did not listen:\n%s", strings.Join(log, "\n"))
	}
	go func() {
		io.Copy(io.Discard, stderr)
		done <- cmd.Wait()
	}()
	c, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("hello gnomon")); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		done <- err // for the deferred cleanup
		if err != nil {
			t.Fatalf("child: %v\n%s", err, stdout.String())
		}
	case <-time.After(60 * time.Second): // a hang guard, not a timing assertion
		t.Fatal("child did not finish")
	}
	rep := parseReport(t, []byte(stdout.String()))
	ntp := rep.Files["ntp"]
	if len(rep.Files) != 1 || len(ntp) != 1 || ntp[0].Type != unix.SOCK_DGRAM || ntp[0].Local != addr || ntp[0].Payload != "hello gnomon" {
		t.Errorf("child got %+v", rep.Files)
	}
}

// freeUDPPort picks a random high port that is free on 127.0.0.1 now.
func freeUDPPort(t *testing.T) int {
	t.Helper()
	for range 100 {
		port := 20000 + rand.IntN(40000)
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
		if err == nil {
			c.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}
