package daemon

import (
	"io"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"gnomon.dev/gnomon/engine/ntp"
	"gnomon.dev/gnomon/engine/system"
	"gnomon.dev/gnomon/service/config"
)

func TestWakeIn(t *testing.T) {
	now := time.Unix(1000, 0)
	for _, tc := range []struct {
		name     string
		engine   time.Duration
		ok       bool
		cap      time.Duration
		due      []time.Time
		want     time.Duration
		wantWake bool
	}{
		{name: "nothing due: no wake-up at all", due: []time.Time{{}, {}}},
		{name: "the engine's next poll, however far", engine: 1024 * time.Second, ok: true, want: 1024 * time.Second, wantWake: true},
		{name: "a cap only while a duty asks for it", engine: 1024 * time.Second, ok: true, cap: time.Minute, want: time.Minute, wantWake: true},
		{name: "a deadline before the poll", engine: time.Hour, ok: true, due: []time.Time{{}, now.Add(10 * time.Second)}, want: 10 * time.Second, wantWake: true},
		{name: "a deadline alone", due: []time.Time{now.Add(time.Hour)}, want: time.Hour, wantWake: true},
		{name: "a past deadline: at once", engine: time.Hour, ok: true, due: []time.Time{now.Add(-time.Second)}, want: time.Millisecond, wantWake: true},
		{name: "an overdue poll: at once", engine: -time.Second, ok: true, want: time.Millisecond, wantWake: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, wake := wakeIn(now, tc.engine, tc.ok, tc.cap, tc.due...)
			if got != tc.want || wake != tc.wantWake {
				t.Errorf("wakeIn = %v, %v; want %v, %v", got, wake, tc.want, tc.wantWake)
			}
		})
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// observingDaemon is a daemon in observe mode with no sources, no servers
// and no drift file: nothing is due until a test gives it a reason.
func observingDaemon(t *testing.T) *Daemon {
	t.Helper()
	cfg := config.Default(config.Options{})
	cfg.Clock.Mode = config.ClockObserve
	cfg.Clock.DriftFile = ""
	cfg.Sources = nil
	cfg.Servers = nil
	d, err := New(Options{Config: cfg, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// An observing client with nothing due sleeps until an event: no
// one-minute cap, no pool maintenance without a pool, no drift file in
// observe mode. Each duty appears when its reason does.
func TestOwnerSleepsOnlyUntilSomethingIsDue(t *testing.T) {
	d := observingDaemon(t)
	now := time.Now()
	var due dueTimes
	d.runDuties(t.Context(), now, &due)
	if w, ok := d.untilWakeup(now, &due); ok {
		t.Fatalf("observing client without sources: wakes in %v, want no wake-up (due %+v)", w, due)
	}

	// A pool: maintained every maintenanceEvery, and no longer once removed.
	pool := &spec{src: config.SourceConfig{Mode: config.SourcePool, Address: "pool.example.org"}}
	d.specs = append(d.specs, pool)
	d.runDuties(t.Context(), now, &due)
	if w, ok := d.untilWakeup(now, &due); !ok || w != d.maintenanceEvery() {
		t.Fatalf("with a pool: wakes in %v (%v), want %v", w, ok, d.maintenanceEvery())
	}
	d.removeSpec(pool)
	d.runDuties(t.Context(), now, &due)
	if w, ok := d.untilWakeup(now, &due); ok {
		t.Fatalf("pool removed: wakes in %v, want no wake-up", w)
	}

	// Our NTP server: its answers age with the snapshot, so once a minute.
	d.cfg.Servers = []config.ServerConfig{{}}
	if w, ok := d.untilWakeup(now, &due); !ok || w != dutyInterval {
		t.Fatalf("serving: wakes in %v (%v), want %v", w, ok, dutyInterval)
	}
}

// In system mode the kernel's status is refreshed between polls and the
// drift file is written hourly.
func TestOwnerDutiesInSystemMode(t *testing.T) {
	k := &simKernel{tx: unix.Timex{Tick: 10000}}
	cfg := config.Default(config.Options{CanSetClock: true})
	cfg.Clock.DriftFile = filepath.Join(t.TempDir(), "drift")
	cfg.Sources = nil
	cfg.Servers = nil
	d, err := New(Options{Config: cfg, Adjtimex: k.adjtimex, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	var due dueTimes
	d.runDuties(t.Context(), now, &due)
	if due.drift != now.Add(driftInterval) || !due.maint.IsZero() {
		t.Fatalf("due %+v: want the drift file in %v and no pool maintenance", due, driftInterval)
	}
	if w, ok := d.untilWakeup(now, &due); !ok || w != dutyInterval {
		t.Fatalf("system mode: wakes in %v (%v), want %v", w, ok, dutyInterval)
	}
	// The drift file's time comes: written (when synchronized) and due
	// again an hour later.
	later := due.drift
	d.runDuties(t.Context(), later, &due)
	if due.drift != later.Add(driftInterval) {
		t.Fatalf("after the hourly write the drift file is due at %v, want %v", due.drift, later.Add(driftInterval))
	}
}

// The timerfd fires once armed, and disarms when nothing is due.
func TestWakeTimer(t *testing.T) {
	w := newWakeTimer(quietLogger())
	defer w.Stop()
	if w.goT != nil {
		t.Skip("no timerfd here: the Go timer fallback is in use")
	}
	w.Reset(time.Hour, true)
	var cur unix.ItimerSpec
	if err := unix.TimerfdGettime(w.fd, &cur); err != nil {
		t.Fatal(err)
	}
	if cur.Value.Sec == 0 && cur.Value.Nsec == 0 {
		t.Fatal("armed for an hour, but the timerfd is disarmed")
	}
	w.Reset(0, false)
	if err := unix.TimerfdGettime(w.fd, &cur); err != nil {
		t.Fatal(err)
	}
	if cur.Value.Sec != 0 || cur.Value.Nsec != 0 {
		t.Fatalf("nothing due, but the timerfd is armed: %+v", cur.Value)
	}
	w.Reset(time.Millisecond, true)
	c, _ := w.C()
	select {
	case <-c:
	case <-time.After(30 * time.Second): // a hang, not a speed bound
		t.Fatal("the armed timerfd never fired")
	}
}

// A turn the timer woke that sent requests leaves its snapshot to the
// replies, for publishLag at most; every other turn publishes.
func TestDeferPublish(t *testing.T) {
	d := observingDaemon(t)
	now := time.Now()
	var due dueTimes
	if d.deferPublish(false, false, true, now, &due) || d.deferPublish(true, false, false, now, &due) {
		t.Fatal("an event's turn or a turn that sent nothing deferred its snapshot")
	}
	if !due.publish.IsZero() {
		t.Fatalf("due.publish %v set by a turn that publishes", due.publish)
	}
	if !d.deferPublish(true, false, true, now, &due) || !due.publish.Equal(now.Add(publishLag)) {
		t.Fatalf("a request turn: not deferred, or due.publish %v, want %v", due.publish, now.Add(publishLag))
	}
	if w, ok := d.untilWakeup(now, &due); !ok || w != publishLag {
		t.Fatalf("a deferred snapshot: wakes in %v (%v), want %v", w, ok, publishLag)
	}
	// A second request turn before the deadline keeps the first deadline;
	// one at or after it publishes.
	if !d.deferPublish(true, false, true, now.Add(publishLag/2), &due) || !due.publish.Equal(now.Add(publishLag)) {
		t.Fatalf("a second request turn: due.publish %v, want %v", due.publish, now.Add(publishLag))
	}
	if d.deferPublish(true, false, true, now.Add(publishLag), &due) {
		t.Fatal("a request turn at the deadline deferred the snapshot again")
	}
	d.ntpOff = true
	if d.deferPublish(true, false, true, now, &dueTimes{}) {
		t.Fatal("with NTP off (nothing sent) the snapshot was deferred")
	}
}

// A reply's turn leaves its snapshot to a turn that comes anyway before
// the deadline (another source's poll), and publishes when none does.
func TestDeferPublishReply(t *testing.T) {
	d := observingDaemon(t)
	now := time.Now()
	var due dueTimes
	if d.deferPublish(false, true, false, now, &due) {
		t.Fatal("a reply's turn deferred its snapshot with nothing else due")
	}
	d.eng.AddSource(system.SourceConfig{Name: "a", Address: "127.0.0.1:123", Kind: "server",
		NTP: ntp.SourceConfig{MinPoll: 4, MaxPoll: 4}}, d.now())
	next := d.eng.NextWakeup()
	if next.IsZero() || next.Sub(d.clk.Now()) >= publishLag {
		t.Fatalf("a new source's first poll is due in %v, want within %v", next.Sub(d.clk.Now()), publishLag)
	}
	if !d.deferPublish(false, true, false, now, &due) || !due.publish.Equal(now.Add(publishLag)) {
		t.Fatalf("a reply's turn with a poll due within %v: not deferred, or due.publish %v", publishLag, due.publish)
	}
	if d.deferPublish(false, false, false, now, &dueTimes{}) {
		t.Fatal("a turn for other events deferred its snapshot")
	}
	// At the deadline: published, whatever comes next.
	if d.deferPublish(false, true, false, now.Add(publishLag), &due) {
		t.Fatal("a reply's turn at the deadline deferred the snapshot again")
	}
}
