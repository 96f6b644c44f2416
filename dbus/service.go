package dbus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	godbus "github.com/godbus/dbus/v5"

	"gnomon.dev/gnomon/polkit"
	"gnomon.dev/gnomon/service/sysclock"
	"gnomon.dev/gnomon/service/sysfiles"
)

// Bus names gnomond owns.
const (
	NameTimedate = "org.freedesktop.timedate1"
	NameTimesync = "org.freedesktop.timesync1"
	NameGnomon   = "org.gnomon.Gnomon1"
)

// Object paths.
const (
	PathTimedate godbus.ObjectPath = "/org/freedesktop/timedate1"
	PathTimesync godbus.ObjectPath = "/org/freedesktop/timesync1"
	PathGnomon   godbus.ObjectPath = "/org/gnomon/Gnomon1"
	pathSources                    = "/org/gnomon/Gnomon1/source"
)

// DefaultSystemBus is the system bus address when neither the option nor
// DBUS_SYSTEM_BUS_ADDRESS gives one.
const DefaultSystemBus = "unix:path=/run/dbus/system_bus_socket"

// Authorizer decides whether a caller may perform a polkit action; nil
// means allowed, otherwise the D-Bus error to reply with.
// *polkit.Authorizer is the real one.
type Authorizer interface {
	Authorize(ctx context.Context, c polkit.Caller, sender, action string, interactive bool) *godbus.Error
}

// Options configure the D-Bus service.
type Options struct {
	// Paths locates /etc/localtime, /etc/adjtime, the zoneinfo directory
	// and /dev/rtc (under a root directory in tests).
	Paths Paths
	// Files makes timedate1's changes to /etc/localtime, /etc/adjtime and
	// the RTC; nil writes them directly (sysfiles.Direct on Paths), which
	// needs root. gnomond running as the gnomon user passes a
	// tdhelper.Client for gnomon-timedate-helper.
	Files SystemFiles
	// Address is the bus to connect to; "" means $DBUS_SYSTEM_BUS_ADDRESS,
	// else DefaultSystemBus.
	Address string
	Logger  *slog.Logger
	Version string
	// Authorizer asks polkit; nil uses polkit.Authorizer with the
	// process's euid.
	Authorizer Authorizer
	// KernelSynced is timedate1's NTPSynchronized; nil reads the kernel
	// (sysclock.ReadKernelStatus().Synced, maxerror < 16 s).
	KernelSynced func() (bool, error)
	// timesync1's constants: the configured poll interval limits and the
	// largest root distance accepted. Zero gives timesyncd's defaults
	// (32 s, 2048 s, 5 s).
	PollIntervalMin, PollIntervalMax, RootDistanceMax time.Duration
	// RetryInterval is the first wait before reconnecting to a lost bus
	// (doubling up to 30 s); zero means 1 s.
	RetryInterval time.Duration
	// CallTimeout bounds each Backend call made for a D-Bus method;
	// zero means 30 s.
	CallTimeout time.Duration
	// LogLevel is the daemon logger's level, which LogControl1's LogLevel
	// changes at run time; nil makes LogLevel read-only in effect.
	LogLevel *slog.LevelVar
	// SetLogTarget sends the daemon's log to one of systemd's log targets
	// (LogControl1's LogTarget; sd.Targets.SetTarget); nil only records
	// the name.
	SetLogTarget func(target string) error
	// Link reads systemd-networkd's per-link NTP servers for timesync1's
	// LinkNTPServers; nil asks org.freedesktop.network1 on the bus.
	Link LinkServers
}

// Service is gnomond's D-Bus face: timedate1, timesync1 and Gnomon1, each
// on its own connection to the bus (re-made whenever the bus comes back).
type Service struct {
	b    Backend
	opts Options
	log  *slog.Logger
	auth Authorizer

	td *timedate
	ts *timesync
	gm *gnomonManager
	lc *logControl

	// One connection per systemd name (each serves only its own objects,
	// like systemd-timedated and systemd-timesyncd); Gnomon1 on conn.
	tdr, tsr *router
	selfUID  uint32
	links    links

	mu   sync.Mutex
	conn *godbus.Conn
	// exported source objects on conn, by ID
	exported map[uint64]bool
	// ctx is Serve's context, the parent of every backend call.
	ctx context.Context
}

// New prepares the objects; nothing touches the bus until Serve or Attach.
func New(b Backend, opts Options) (*Service, error) {
	if b == nil {
		return nil, errors.New("dbus: nil Backend")
	}
	s := &Service{b: b, opts: opts, log: opts.Logger, auth: opts.Authorizer, exported: map[uint64]bool{},
		ctx: context.Background(), selfUID: uint32(os.Geteuid())}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.auth == nil {
		s.auth = &polkit.Authorizer{SelfUID: uint32(os.Geteuid()), Log: s.log}
	}
	if s.opts.Files == nil {
		s.opts.Files = sysfiles.Direct{Paths: s.opts.Paths}
	}
	if s.opts.KernelSynced == nil {
		s.opts.KernelSynced = func() (bool, error) {
			k, err := sysclock.ReadKernelStatus()
			if err != nil {
				return false, nil // systemd: false when adjtimex fails
			}
			return k.Synced, nil
		}
	}
	if s.opts.PollIntervalMin <= 0 {
		s.opts.PollIntervalMin = 32 * time.Second
	}
	if s.opts.PollIntervalMax <= 0 {
		s.opts.PollIntervalMax = 2048 * time.Second
	}
	if s.opts.RootDistanceMax <= 0 {
		s.opts.RootDistanceMax = 5 * time.Second
	}
	if s.opts.RetryInterval <= 0 {
		s.opts.RetryInterval = time.Second
	}
	if s.opts.CallTimeout <= 0 {
		s.opts.CallTimeout = 30 * time.Second
	}
	s.links.s = s
	s.td = newTimedate(s)
	s.ts = newTimesync(s)
	s.gm = newGnomonManager(s)
	s.lc = newLogControl(s)
	s.tdr = newRouter(s, NameTimedate, s.td.object(), s.lc.object("systemd-timedated"))
	s.tsr = newRouter(s, NameTimesync, s.ts.object(), s.lc.object("systemd-timesyncd"))
	return s, nil
}

// address is the bus address Serve dials.
func (s *Service) address() string {
	if s.opts.Address != "" {
		return s.opts.Address
	}
	if a := os.Getenv("DBUS_SYSTEM_BUS_ADDRESS"); a != "" {
		return a
	}
	return DefaultSystemBus
}

// current is the connection in use, nil while the bus is away.
func (s *Service) current() *godbus.Conn {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn
}

// Serve connects to the bus, exports the objects, requests the three names
// and keeps doing so whenever the bus goes away and comes back, until ctx
// ends. The daemon does not depend on it: time keeping goes on while the
// bus is away.
func (s *Service) Serve(ctx context.Context) error {
	s.ctx = ctx
	watchDone := make(chan struct{})
	linksDone := make(chan struct{})
	go func() {
		defer close(watchDone)
		s.watch(ctx)
	}()
	go func() {
		defer close(linksDone)
		s.links.watch(ctx, 5*time.Second)
	}()
	defer func() { <-watchDone; <-linksDone }()
	wait := s.opts.RetryInterval
	lastErr := ""
	for {
		conns, err := s.connectAll(ctx)
		if err == nil {
			wait = s.opts.RetryInterval
			lastErr = ""
			s.log.Info("D-Bus: serving", "address", s.address(), "names", []string{NameTimedate, NameTimesync, NameGnomon})
			cases := []<-chan struct{}{ctx.Done()}
			for _, c := range conns {
				cases = append(cases, c.Context().Done())
			}
			waitAny(cases)
			s.detach(conns[0])
			s.tdr.detach(conns[1])
			s.tsr.detach(conns[2])
			for _, c := range conns {
				c.Close()
			}
			if ctx.Err() != nil {
				return nil
			}
			s.log.Warn("D-Bus: lost the bus connection; time keeping goes on, reconnecting")
		} else if ctx.Err() == nil && err.Error() != lastErr {
			lastErr = err.Error()
			s.log.Warn("D-Bus: cannot serve on the bus; retrying", "address", s.address(), "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
		// The bus is local: a retry costs little, and a name refused
		// until dbus-daemon reads a new policy should not wait long.
		wait = min(wait*2, 5*time.Second)
	}
}

// waitAny returns when one of the channels is closed.
func waitAny(chs []<-chan struct{}) {
	done := make(chan struct{}, len(chs))
	stop := make(chan struct{})
	defer close(stop)
	for _, c := range chs {
		go func() {
			select {
			case <-c:
				done <- struct{}{}
			case <-stop:
			}
		}()
	}
	<-done
}

// connectAll opens the three connections: Gnomon1 (objects exported
// through godbus), then timedate1 and timesync1 (each served by its
// router), and requests each name once its objects are in place.
func (s *Service) connectAll(ctx context.Context) ([]*godbus.Conn, error) {
	gn, err := godbus.Connect(s.address(), godbus.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	if err := s.Attach(gn); err != nil {
		gn.Close()
		return nil, err
	}
	td, err := s.tdr.connect(ctx, s.address())
	if err != nil {
		s.detach(gn)
		gn.Close()
		return nil, err
	}
	ts, err := s.tsr.connect(ctx, s.address())
	if err != nil {
		s.detach(gn)
		gn.Close()
		s.tdr.detach(td)
		td.Close()
		return nil, err
	}
	return []*godbus.Conn{gn, td, ts}, nil
}

// Attach exports org.gnomon.Gnomon1's objects on conn, then requests its
// name (objects before names, so the first caller finds them). Serve calls
// it; tests may too. timedate1 and timesync1 have connections of their
// own (router.go).
func (s *Service) Attach(conn *godbus.Conn) error {
	s.mu.Lock()
	s.exported = map[uint64]bool{}
	s.mu.Unlock()
	if err := s.lc.export(conn); err != nil {
		return err
	}
	if err := s.gm.export(conn); err != nil {
		return err
	}
	s.mu.Lock()
	s.conn = conn
	s.mu.Unlock()
	s.syncSources(conn)
	for _, name := range []string{NameGnomon} {
		reply, err := conn.RequestName(name, godbus.NameFlagDoNotQueue)
		if err != nil {
			s.detach(conn)
			return fmt.Errorf("request name %s: %w", name, err)
		}
		if reply != godbus.RequestNameReplyPrimaryOwner && reply != godbus.RequestNameReplyAlreadyOwner {
			s.detach(conn)
			return fmt.Errorf("request name %s: already owned by another process", name)
		}
	}
	return nil
}

func (s *Service) detach(conn *godbus.Conn) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn == conn {
		s.conn = nil
		s.exported = map[uint64]bool{}
	}
}

// emit sends PropertiesChanged with values on the current connection.
func (s *Service) emit(path godbus.ObjectPath, iface string, changed map[string]godbus.Variant) {
	if len(changed) == 0 {
		return
	}
	conn := s.current()
	if conn == nil {
		return
	}
	if err := conn.Emit(path, signalPropsChanged, iface, changed, []string{}); err != nil {
		s.log.Debug("D-Bus: emit PropertiesChanged", "path", path, "err", err)
	}
}

// call is the context for one backend call made for a D-Bus method.
func (s *Service) call() (context.Context, context.CancelFunc) {
	return context.WithTimeout(s.ctx, s.opts.CallTimeout)
}

// authorize runs the polkit check for msg's sender.
func (s *Service) authorize(msg *godbus.Message, action string, interactive bool) *godbus.Error {
	var caller polkit.Caller
	if conn := s.current(); conn != nil {
		caller = conn
	}
	if msg.Flags&flagAllowInteractiveAuthorization != 0 {
		interactive = true
	}
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	return s.auth.Authorize(ctx, caller, sender(msg), action, interactive)
}

// flagAllowInteractiveAuthorization is the D-Bus header flag 0x4.
const flagAllowInteractiveAuthorization godbus.Flags = 0x4

func sender(msg *godbus.Message) string {
	if v, ok := msg.Headers[godbus.FieldSender]; ok {
		if s, ok := v.Value().(string); ok {
			return s
		}
	}
	return ""
}

// watch follows the backend's snapshots and emits the PropertiesChanged
// signals the three services promise, and exports/unexports source
// objects. It never sends more than one round per 100 ms.
func (s *Service) watch(ctx context.Context) {
	for {
		ch := s.b.Changed()
		s.refresh()
		select {
		case <-ctx.Done():
			return
		case <-ch:
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (s *Service) refresh() {
	sn := s.b.Snapshot()
	if sn == nil {
		return
	}
	if conn := s.current(); conn != nil {
		s.syncSources(conn)
	}
	s.ts.refresh(sn)
	s.gm.refresh(sn)
}
