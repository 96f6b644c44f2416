package dbus

import (
	"errors"
	"io/fs"
	"os"
	"sync"
	"syscall"
	"time"

	godbus "github.com/godbus/dbus/v5"

	"gnomon.dev/gnomon/polkit"
)

// TimedateSpec is org.freedesktop.timedate1 exactly as systemd 252 (and
// 262) introspects it.
var TimedateSpec = &InterfaceSpec{
	Name: "org.freedesktop.timedate1",
	Props: []PropSpec{
		{"Timezone", "s", EmitsTrue},
		{"LocalRTC", "b", EmitsTrue},
		{"CanNTP", "b", EmitsFalse},
		{"NTP", "b", EmitsTrue},
		{"NTPSynchronized", "b", EmitsFalse},
		{"TimeUSec", "t", EmitsFalse},
		{"RTCTimeUSec", "t", EmitsFalse},
	},
	Methods: []MethodSpec{
		{"SetTime", []ArgSpec{in("usec_utc", "x"), in("relative", "b"), in("interactive", "b")}},
		{"SetTimezone", []ArgSpec{in("timezone", "s"), in("interactive", "b")}},
		{"SetLocalRTC", []ArgSpec{in("local_rtc", "b"), in("fix_system", "b"), in("interactive", "b")}},
		{"SetNTP", []ArgSpec{in("use_ntp", "b"), in("interactive", "b")}},
		{"ListTimezones", []ArgSpec{out("timezones", "as")}},
	},
}

// timedate is the org.freedesktop.timedate1 object. Timezone and LocalRTC
// are read once at start and then only changed by its own methods, like
// systemd-timedated's cache.
type timedate struct {
	s *Service

	mu       sync.Mutex // serializes the mutating methods and guards the cache
	tz       string
	localRTC bool

	props *propsObject
}

func newTimedate(s *Service) *timedate {
	t := &timedate{s: s, tz: s.opts.Paths.ReadTimezone()}
	if data, err := os.ReadFile(s.opts.Paths.Adjtime()); err == nil {
		t.localRTC = AdjtimeLocal(data)
	}
	t.props = &propsObject{ifaces: []propIface{{spec: TimedateSpec, get: map[string]getter{
		"Timezone": func() (any, error) { t.mu.Lock(); defer t.mu.Unlock(); return t.tz, nil },
		"LocalRTC": func() (any, error) { t.mu.Lock(); defer t.mu.Unlock(); return t.localRTC, nil },
		"CanNTP":   func() (any, error) { return true, nil },
		"NTP":      func() (any, error) { return s.b.NTP(), nil },
		"NTPSynchronized": func() (any, error) {
			ok, err := s.opts.KernelSynced()
			return ok && err == nil, nil
		},
		"TimeUSec":    func() (any, error) { return uint64(time.Now().UnixMicro()), nil },
		"RTCTimeUSec": t.rtcTimeUSec,
	}}}}
	return t
}

// object is timedate1's object for its router.
func (t *timedate) object() *busObject {
	return &busObject{path: PathTimedate, ifaces: []*objIface{{spec: TimedateSpec, get: t.props.ifaces[0].get,
		methods: map[string]methodFunc{
			"SetTime": func(c *call) ([]any, *godbus.Error) {
				return nil, t.SetTime(*c.msg, c.body[0].(int64), c.body[1].(bool), c.body[2].(bool))
			},
			"SetTimezone": func(c *call) ([]any, *godbus.Error) {
				return nil, t.SetTimezone(*c.msg, c.body[0].(string), c.body[1].(bool))
			},
			"SetLocalRTC": func(c *call) ([]any, *godbus.Error) {
				return nil, t.SetLocalRTC(*c.msg, c.body[0].(bool), c.body[1].(bool), c.body[2].(bool))
			},
			"SetNTP": func(c *call) ([]any, *godbus.Error) {
				return nil, t.SetNTP(*c.msg, c.body[0].(bool), c.body[1].(bool))
			},
			"ListTimezones": func(c *call) ([]any, *godbus.Error) {
				l, err := t.ListTimezones()
				if err != nil {
					return nil, err
				}
				return []any{l}, nil
			},
		}}}}
}

// emit sends PropertiesChanged for one property with its new value (the
// caller may hold t.mu, so no getter runs here).
func (t *timedate) emit(name string, v any) {
	t.s.tdr.emitValues(PathTimedate, TimedateSpec.Name, []dictEntry{{name, godbus.MakeVariant(v)}})
}

// timeSettodSecMax is the kernel's TIME_SETTOD_SEC_MAX: KTIME_SEC_MAX
// less 30 years of uptime.
const timeSettodSecMax = 9223372036 - 30*365*24*3600

// addUsec adds a relative µs value to now as timedated 252 does, in
// unsigned 64-bit arithmetic: ok is false when the sum wraps.
func addUsec(now, rel int64) (uint64, bool) {
	n := uint64(now)
	x := n + uint64(rel)
	if (rel > 0 && x < n) || (rel < 0 && x > n) {
		return 0, false
	}
	return x, true
}

// SetTime steps the clock (through the Backend) to usec_utc µs since the
// epoch, or by usec_utc µs when relative. Refused while NTP is on.
func (t *timedate) SetTime(msg godbus.Message, usec int64, relative, interactive bool) *godbus.Error {
	start := time.Now()
	if t.s.b.NTP() {
		return newError(ErrAutomaticTimeSyncEnabled, "Automatic time synchronization is enabled")
	}
	if !relative && usec <= 0 {
		return newError(ErrInvalidArgs, "Invalid absolute time")
	}
	if relative && usec == 0 {
		return nil
	}
	if relative {
		if _, ok := addUsec(start.UnixMicro(), usec); !ok {
			return newError(ErrInvalidArgs, "Time value overflow")
		}
	}
	if err := t.s.authorize(&msg, polkit.ActionSetTime, interactive); err != nil {
		return err
	}
	// Relative times are against now at this point (after polkit), an
	// absolute time gets the handling latency added, as timedated does.
	var targetUsec uint64
	if relative {
		x, ok := addUsec(time.Now().UnixMicro(), usec)
		if !ok {
			return newError(ErrInvalidArgs, "Time value overflow")
		}
		targetUsec = x
	} else {
		targetUsec = uint64(usec) + uint64(time.Since(start)/time.Microsecond)
	}
	// The kernel refuses times past TIME_SETTOD_SEC_MAX (year 2232) with
	// EINVAL; timedated passes that on.
	if targetUsec/1e6 >= timeSettodSecMax {
		return newError(ErrInvalidArgs, "Failed to set local time: %s", strerror(syscall.EINVAL))
	}
	target := time.UnixMicro(int64(targetUsec))
	if t.s.b.ClockMode() == "observe" {
		return newError(ErrNotSupported, "Failed to set local time: gnomond runs in observe mode and never sets the clock")
	}
	ctx, cancel := t.s.call()
	defer cancel()
	if err := t.s.b.SetTime(ctx, target); err != nil {
		if t.s.b.NTP() {
			return newError(ErrAutomaticTimeSyncEnabled, "Automatic time synchronization is enabled")
		}
		return errnoError("Failed to set local time", err)
	}
	t.mu.Lock()
	local := t.localRTC
	t.mu.Unlock()
	t.writeRTC(local)
	t.s.log.Info("clock set through timedate1", "realtime_usec", target.UnixMicro())
	return nil
}

// SetTimezone points /etc/localtime at zone.
func (t *timedate) SetTimezone(msg godbus.Message, zone string, interactive bool) *godbus.Error {
	if !t.s.opts.Paths.ValidTimezone(zone) {
		return newError(ErrInvalidArgs, "Invalid or not installed time zone '%s'", zone)
	}
	t.mu.Lock()
	same := zone == t.tz
	t.mu.Unlock()
	if same {
		return nil
	}
	if err := t.s.authorize(&msg, polkit.ActionSetTimezone, interactive); err != nil {
		return err
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if zone == t.tz {
		return nil
	}
	ctx, cancel := t.s.call()
	err := t.s.opts.Files.SetTimezone(ctx, zone)
	cancel()
	if err != nil {
		t.s.log.Warn("cannot set the time zone", "timezone", zone, "err", err)
		return errnoError("Failed to set time zone", err)
	}
	t.tz = zone
	if t.localRTC {
		t.writeRTC(true)
	}
	t.s.log.Info("time zone changed", "timezone", zone)
	t.emit("Timezone", zone)
	return nil
}

// SetLocalRTC records in /etc/adjtime whether the RTC keeps local time,
// and brings RTC and system clock together.
func (t *timedate) SetLocalRTC(msg godbus.Message, local, fixSystem, interactive bool) *godbus.Error {
	t.mu.Lock()
	same := local == t.localRTC
	t.mu.Unlock()
	if same && !fixSystem {
		return nil
	}
	if err := t.s.authorize(&msg, polkit.ActionSetLocalRTC, interactive); err != nil {
		return err
	}
	rtcPath := t.s.opts.Paths.RTC()
	t.mu.Lock()
	defer t.mu.Unlock()
	if local != t.localRTC {
		if err := t.writeAdjtime(local); err != nil {
			how := "UTC"
			if local {
				how = "local"
			}
			t.s.log.Warn("cannot write /etc/adjtime", "local", local, "err", err)
			return errnoError("Failed to set RTC to "+how, err)
		}
		t.localRTC = local
	}
	if fixSystem {
		// Set the system clock from the RTC, read through the seam (the
		// helper under User=gnomon) as if UTC, then in the new
		// representation. As in timedated, a failure (no RTC: every VM
		// and container) is logged and ignored: /etc/adjtime is written.
		rt, _, err := t.s.readRTC()
		switch {
		case err != nil:
		case t.s.b.ClockMode() == "observe":
			err = errors.New("gnomond runs in observe mode and never sets the clock")
		default:
			rt = t.s.opts.Paths.InterpretRTC(rt, local)
			target := rt.Add(time.Duration(time.Now().Nanosecond()))
			ctx, cancel := t.s.call()
			err = t.s.b.SetTime(ctx, target)
			cancel()
		}
		if errors.Is(err, fs.ErrNotExist) {
			t.s.log.Info("no RTC: the system clock was not set from it, only /etc/adjtime was updated", "rtc", rtcPath)
		} else if err != nil {
			t.s.log.Warn("cannot set the system clock from the RTC", "err", err)
		}
	} else {
		ctx, cancel := t.s.call()
		err := t.s.opts.Files.SetRTC(ctx, time.Now(), local)
		cancel()
		if errors.Is(err, fs.ErrNotExist) {
			t.s.log.Info("no RTC: only /etc/adjtime was updated", "rtc", rtcPath)
		} else if err != nil {
			t.s.log.Warn("cannot write the RTC", "err", err)
		}
	}
	t.s.log.Info("RTC mode changed", "local", local)
	t.emit("LocalRTC", local)
	return nil
}

func (t *timedate) writeAdjtime(local bool) error {
	ctx, cancel := t.s.call()
	defer cancel()
	return t.s.opts.Files.SetLocalRTC(ctx, local)
}

// writeRTC sets the RTC from the system clock, quietly when there is none.
func (t *timedate) writeRTC(local bool) {
	ctx, cancel := t.s.call()
	defer cancel()
	if err := t.s.opts.Files.SetRTC(ctx, time.Now(), local); err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.s.log.Warn("cannot write the RTC", "err", err)
	}
}

// SetNTP turns gnomon's synchronization on or off (persisted by the
// daemon) and emits NTP before replying.
func (t *timedate) SetNTP(msg godbus.Message, use, interactive bool) *godbus.Error {
	if err := t.s.authorize(&msg, polkit.ActionSetNTP, interactive); err != nil {
		return err
	}
	ctx, cancel := t.s.call()
	defer cancel()
	if err := t.s.b.SetNTP(ctx, use); err != nil {
		return errnoError("Failed to set NTP", err)
	}
	t.emit("NTP", t.s.b.NTP())
	t.s.gm.ntpChanged()
	return nil
}

// ListTimezones lists the installed zones.
func (t *timedate) ListTimezones() ([]string, *godbus.Error) {
	l, err := t.s.opts.Paths.ListTimezones()
	if err != nil {
		return nil, errnoError("Failed to read list of time zones", err)
	}
	if l == nil {
		l = []string{}
	}
	return l, nil
}
