package daemon

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sort"
	"strings"
	"testing"

	"gnomon.dev/gnomon/service/config"
)

// The four timesync1 lists are used with timesyncd's precedence: runtime
// servers alone; else the system sources with the link servers; link
// servers replace the fallback (packaged) sources.
func TestServerPrecedence(t *testing.T) {
	cfg, err := config.Embedded(config.Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Clock.Mode = config.ClockObserve
	cfg.Clock.DriftFile = ""
	// Plain servers with the packaged host names: no key exchange, and a
	// resolver that never leaves the process.
	for i := range cfg.Sources {
		cfg.Sources[i].Mode = config.SourceServer
	}
	noDNS := &net.Resolver{PreferGo: true, Dial: func(context.Context, string, string) (net.Conn, error) {
		return nil, errors.New("no DNS in this test")
	}}
	d, err := New(Options{Config: cfg, Resolver: noDNS, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer func() { cancel(); d.wg.Wait() }()
	d.ctx = ctx
	for _, src := range cfg.Sources {
		d.addSpec(ctx, src, originConfig)
	}
	origins := func() string {
		seen := map[string]bool{}
		for _, sp := range d.specs {
			seen[sp.origin+" "+sp.src.Host()] = true
		}
		var out []string
		for o := range seen {
			out = append(out, o)
		}
		sort.Strings(out)
		return strings.Join(out, ", ")
	}
	packaged := origins()
	if len(d.FallbackServers()) != len(cfg.Sources) || len(d.SystemServers()) != 0 {
		t.Fatalf("packaged sources: fallback %v, system %v", d.FallbackServers(), d.SystemServers())
	}
	setLink := func(l ...string) {
		for _, sp := range append([]*spec(nil), d.specs...) {
			if sp.origin == originLink {
				d.removeSpec(sp)
			}
		}
		d.ntpsrv.link = l
		d.applyPrecedence()
	}
	setRuntime := func(l ...string) {
		for _, sp := range append([]*spec(nil), d.specs...) {
			if sp.origin == originRuntime {
				d.removeSpec(sp)
			}
		}
		for _, src := range d.serverSources(l, "runtime") {
			d.addSpec(ctx, src, originRuntime)
		}
		d.runtime.Store(&l)
		d.applyPrecedence()
	}
	for _, tc := range []struct {
		what string
		do   func()
		want string
	}{
		{"link servers replace the fallback", func() { setLink("192.0.2.7") }, "link 192.0.2.7"},
		{"runtime servers replace everything", func() { setRuntime("192.0.2.9", "bad name!") }, "runtime 192.0.2.9"},
		{"runtime cleared: link again", func() { setRuntime() }, "link 192.0.2.7"},
		{"link cleared: the fallback again", func() { setLink() }, packaged},
		{"the administrator's sources go with link servers", func() {
			d.cfgServers.Store(&[]string{"ntp.example"}) // as if gnomon.toml listed its own
			setLink("192.0.2.7")
		}, packaged + ", link 192.0.2.7"},
	} {
		tc.do()
		if got := origins(); got != tc.want {
			t.Errorf("%s: sources %q, want %q", tc.what, got, tc.want)
		}
	}
	if got := d.SystemServers(); len(got) != 1 || len(d.FallbackServers()) != 0 {
		t.Errorf("the administrator's list: system %v, fallback %v", got, d.FallbackServers())
	}
}
