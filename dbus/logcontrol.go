package dbus

import (
	"context"
	"log/slog"
	"strconv"
	"sync"

	godbus "github.com/godbus/dbus/v5"

	"gnomon.dev/gnomon/polkit"
)

// PathLogControl is org.freedesktop.LogControl1's object, on both
// systemd names (systemctl service-log-level/-log-target use it).
const PathLogControl godbus.ObjectPath = "/org/freedesktop/LogControl1"

// LogControlSpec is org.freedesktop.LogControl1 as systemd 252 serves it
// (LogLevel and LogTarget are writable; the router marks them so in the
// introspection data).
var LogControlSpec = &InterfaceSpec{
	Name: "org.freedesktop.LogControl1",
	Props: []PropSpec{
		{"LogLevel", "s", EmitsFalse},
		{"LogTarget", "s", EmitsFalse},
		{"SyslogIdentifier", "s", EmitsFalse},
	},
}

// syslog level names (systemd's log_level_from_string), most severe first.
var syslogLevels = []string{"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug"}

// logTargets are systemd's log target names.
var logTargets = []string{"console", "console-prefixed", "kmsg", "journal", "journal-or-kmsg", "syslog", "syslog-or-kmsg", "auto", "null"}

// slogLevel maps a syslog level to the slog level gnomond logs at: debug
// is Debug, info and notice Info, warning Warn, the rest Error.
func slogLevel(syslog int) slog.Level {
	switch {
	case syslog >= 7:
		return slog.LevelDebug
	case syslog >= 5:
		return slog.LevelInfo
	case syslog == 4:
		return slog.LevelWarn
	}
	return slog.LevelError
}

// syslogName is the syslog name of a slog level.
func syslogName(l slog.Level) string {
	switch {
	case l <= slog.LevelDebug:
		return "debug"
	case l <= slog.LevelInfo:
		return "info"
	case l <= slog.LevelWarn:
		return "warning"
	}
	return "err"
}

// parseSyslogLevel accepts a name or a number 0..7, as systemd does.
func parseSyslogLevel(s string) (int, bool) {
	for i, n := range syslogLevels {
		if n == s {
			return i, true
		}
	}
	if n, err := strconv.Atoi(s); err == nil && n >= 0 && n <= 7 && s == strconv.Itoa(n) {
		return n, true
	}
	return 0, false
}

// logControl is the shared state of the LogControl1 objects (one per
// name, one process, one logger).
type logControl struct {
	s      *Service
	mu     sync.Mutex
	level  string // the syslog name last set
	target string
}

func newLogControl(s *Service) *logControl {
	lc := &logControl{s: s, target: "auto", level: "info"}
	if s.opts.LogLevel != nil {
		lc.level = syslogName(s.opts.LogLevel.Level())
	}
	return lc
}

// object is the LogControl1 object for one bus name; ident is its
// SyslogIdentifier.
func (lc *logControl) object(ident string) *busObject {
	return &busObject{path: PathLogControl, ifaces: []*objIface{{
		spec: LogControlSpec,
		get: map[string]getter{
			"LogLevel":         func() (any, error) { lc.mu.Lock(); defer lc.mu.Unlock(); return lc.level, nil },
			"LogTarget":        func() (any, error) { lc.mu.Lock(); defer lc.mu.Unlock(); return lc.target, nil },
			"SyslogIdentifier": func() (any, error) { return ident, nil },
		},
		set: map[string]setter{
			"LogLevel":  lc.setLevel,
			"LogTarget": lc.setTarget,
		},
	}}}
}

// privileged is sd-bus's check for a writable property without
// SD_BUS_VTABLE_UNPRIVILEGED: the caller runs as root or as gnomond's user.
func (lc *logControl) privileged(c *call, prop string) *godbus.Error {
	conn := lc.s.current()
	if conn != nil {
		ctx, cancel := context.WithTimeout(lc.s.ctx, lc.s.opts.CallTimeout)
		uid, err := polkit.UnixUser(ctx, conn, sender(c.msg))
		cancel()
		if err == nil && (uid == 0 || uid == lc.s.selfUID) {
			return nil
		}
	}
	return newError(ErrAccessDenied, "Access to %s.%s() not permitted.", LogControlSpec.Name, prop)
}

// gnomonLogControl serves LogControl1 on org.gnomon.Gnomon1's connection
// (godbus exports), the name units/gnomond.service gives as BusName=, so
// that "systemctl service-log-level gnomond debug" reaches it.
type gnomonLogControl struct {
	lc  *logControl
	obj *busObject
}

func (g gnomonLogControl) call(msg godbus.Message) *call { return &call{msg: &msg, body: msg.Body} }

// Get is org.freedesktop.DBus.Properties.Get.
func (g gnomonLogControl) Get(iface, name string) (godbus.Variant, *godbus.Error) {
	it, p, ok := g.obj.prop(iface, name)
	if !ok {
		return godbus.Variant{}, newError("org.freedesktop.DBus.Error.UnknownProperty", "Unknown interface %s or property %s.", iface, name)
	}
	return it.value(p)
}

// GetAll is org.freedesktop.DBus.Properties.GetAll (a map: godbus's
// exports cannot keep the order).
func (g gnomonLogControl) GetAll(iface string) (map[string]godbus.Variant, *godbus.Error) {
	entries, err := g.obj.getAll(iface)
	if err != nil {
		return nil, err
	}
	out := map[string]godbus.Variant{}
	for _, e := range entries {
		out[e.Key] = e.Value
	}
	return out, nil
}

// Set is org.freedesktop.DBus.Properties.Set.
func (g gnomonLogControl) Set(msg godbus.Message, iface, name string, v godbus.Variant) *godbus.Error {
	it, p, ok := g.obj.prop(iface, name)
	if !ok {
		return newError("org.freedesktop.DBus.Error.UnknownProperty", "Unknown interface %s or property %s.", iface, name)
	}
	set := it.set[name]
	if set == nil {
		return newError("org.freedesktop.DBus.Error.PropertyReadOnly", "Property '%s' is not writable.", name)
	}
	if vs := v.Signature().String(); vs != p.Type {
		return newError(ErrInvalidArgs, "Incorrect parameters for property '%s', expected '%s', got '%s'.", name, p.Type, vs)
	}
	return set(g.call(msg), v)
}

// Introspect is org.freedesktop.DBus.Introspectable.Introspect.
func (g gnomonLogControl) Introspect() (string, *godbus.Error) {
	return sdIntrospect(g.obj.ifaces, nil), nil
}

// export puts LogControl1 on the Gnomon1 connection.
func (lc *logControl) export(conn *godbus.Conn) error {
	g := gnomonLogControl{lc: lc, obj: lc.object("gnomond")}
	if err := conn.Export(g, PathLogControl, ifaceProperties); err != nil {
		return err
	}
	return conn.ExportMethodTable(map[string]any{"Introspect": g.Introspect}, PathLogControl, ifaceIntrospect)
}

func (lc *logControl) setLevel(c *call, v godbus.Variant) *godbus.Error {
	if err := lc.privileged(c, "LogLevel"); err != nil {
		return err
	}
	s, _ := v.Value().(string)
	n, ok := parseSyslogLevel(s)
	if !ok {
		return newError(ErrInvalidArgs, "Invalid log level '%s'", s)
	}
	lc.mu.Lock()
	lc.level = syslogLevels[n]
	lc.mu.Unlock()
	if lv := lc.s.opts.LogLevel; lv != nil {
		lv.Set(slogLevel(n))
	}
	lc.s.log.Info("log level changed through LogControl1", "level", syslogLevels[n])
	return nil
}

func (lc *logControl) setTarget(c *call, v godbus.Variant) *godbus.Error {
	if err := lc.privileged(c, "LogTarget"); err != nil {
		return err
	}
	s, _ := v.Value().(string)
	ok := false
	for _, t := range logTargets {
		ok = ok || t == s
	}
	if !ok {
		return newError(ErrInvalidArgs, "Invalid log target '%s'", s)
	}
	if set := lc.s.opts.SetLogTarget; set != nil {
		if err := set(s); err != nil {
			return newError(ErrFailed, "Failed to set log target '%s': %v", s, err)
		}
	}
	lc.mu.Lock()
	lc.target = s
	lc.mu.Unlock()
	lc.s.log.Info("log target changed through LogControl1", "target", s)
	return nil
}
