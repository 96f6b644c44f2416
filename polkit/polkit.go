// Package polkit asks org.freedesktop.PolicyKit1 whether a D-Bus caller may
// do something, the way systemd's services do (src/shared/bus-polkit.c):
// root callers and callers running as the daemon's own user are allowed
// without asking; everyone else is checked with CheckAuthorization for the
// subject system-bus-name; when polkit cannot be reached, only uid 0 is
// allowed (fail closed).
//
// The action files gnomond ships (org.gnomon.timedate1.policy,
// org.gnomon.Gnomon1.policy) live beside this file.
package polkit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	godbus "github.com/godbus/dbus/v5"
)

// The action ids gnomond checks.
const (
	ActionSetTime           = "org.freedesktop.timedate1.set-time"
	ActionSetTimezone       = "org.freedesktop.timedate1.set-timezone"
	ActionSetLocalRTC       = "org.freedesktop.timedate1.set-local-rtc"
	ActionSetNTP            = "org.freedesktop.timedate1.set-ntp"
	ActionSetRuntimeServers = "org.freedesktop.timesync1.set-runtime-servers"
	ActionManageSources     = "org.gnomon.manage-sources"
)

// D-Bus names of polkit's authority.
const (
	busName   = "org.freedesktop.PolicyKit1"
	objPath   = "/org/freedesktop/PolicyKit1/Authority"
	authority = "org.freedesktop.PolicyKit1.Authority"
)

// CheckAuthorization flags.
const (
	FlagNone                 uint32 = 0
	FlagAllowUserInteraction uint32 = 1
)

// Error names returned to D-Bus callers.
const (
	ErrNameAccessDenied        = "org.freedesktop.DBus.Error.AccessDenied"
	ErrNameInteractiveRequired = "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"
)

// Subject is polkit's (sa{sv}) subject.
type Subject struct {
	Kind    string
	Details map[string]godbus.Variant
}

// BusNameSubject is the subject for a D-Bus caller: its unique name.
func BusNameSubject(uniqueName string) Subject {
	return Subject{Kind: "system-bus-name", Details: map[string]godbus.Variant{"name": godbus.MakeVariant(uniqueName)}}
}

// Result is CheckAuthorization's (bba{ss}) answer.
type Result struct {
	Authorized bool
	Challenge  bool
	Details    map[string]string
}

// Caller is the part of a D-Bus connection the client needs (a
// *godbus.Conn).
type Caller interface {
	Object(dest string, path godbus.ObjectPath) godbus.BusObject
}

// CheckAuthorization asks polkit once. A D-Bus error from polkit (or from the
// bus, such as ServiceUnknown when polkit is not running) is returned as a
// godbus.Error.
func CheckAuthorization(ctx context.Context, c Caller, subject Subject, actionID string, details map[string]string, flags uint32) (Result, error) {
	if details == nil {
		details = map[string]string{}
	}
	call := c.Object(busName, objPath).CallWithContext(ctx, authority+".CheckAuthorization", 0,
		subject, actionID, details, flags, "")
	if call.Err != nil {
		return Result{}, call.Err
	}
	var out struct {
		Authorized bool
		Challenge  bool
		Details    map[string]string
	}
	if err := call.Store(&out); err != nil {
		return Result{}, fmt.Errorf("polkit: CheckAuthorization reply: %w", err)
	}
	return Result(out), nil
}

// Authorizer decides whether a D-Bus caller may perform an action.
type Authorizer struct {
	// SelfUID is the daemon's effective uid: callers with it are allowed
	// without polkit, as systemd's services allow their own user.
	SelfUID uint32
	// Log receives one line per decision that is not an allow-by-uid.
	Log *slog.Logger
	// InteractiveTimeout bounds a check that may show an authentication
	// dialog; Timeout bounds the others. Zero means 5 min and 25 s.
	InteractiveTimeout, Timeout time.Duration
}

// UnixUser asks the bus for the uid behind a unique name.
func UnixUser(ctx context.Context, c Caller, sender string) (uint32, error) {
	var uid uint32
	err := c.Object("org.freedesktop.DBus", "/org/freedesktop/DBus").
		CallWithContext(ctx, "org.freedesktop.DBus.GetConnectionUnixUser", 0, sender).Store(&uid)
	return uid, err
}

// noPolkit reports whether err says polkit is not on the bus.
func noPolkit(err error) bool {
	var de godbus.Error
	if errors.As(err, &de) {
		switch de.Name {
		case "org.freedesktop.DBus.Error.ServiceUnknown", "org.freedesktop.DBus.Error.NameHasNoOwner",
			"org.freedesktop.systemd1.NoSuchUnit", "org.freedesktop.DBus.Error.NoReply",
			"org.freedesktop.DBus.Error.Disconnected", "org.freedesktop.DBus.Error.Timeout",
			"org.freedesktop.DBus.Error.TimedOut":
			return true
		}
		return false
	}
	var pe *godbus.Error
	if errors.As(err, &pe) {
		return noPolkit(*pe)
	}
	// Not a D-Bus error reply at all: the connection failed.
	return true
}

// Authorize returns nil when sender may perform action, and otherwise the
// D-Bus error to reply with: AccessDenied, InteractiveAuthorizationRequired,
// or polkit's own error copied (systemd 252 behaviour, e.g.
// org.freedesktop.PolicyKit1.Error.Cancelled).
func (a *Authorizer) Authorize(ctx context.Context, c Caller, sender, action string, interactive bool) *godbus.Error {
	log := a.Log
	if log == nil {
		log = slog.Default()
	}
	if c == nil {
		// No bus connection: nobody can be identified.
		return accessDenied()
	}
	uid, uidErr := UnixUser(ctx, c, sender)
	if uidErr == nil && (uid == 0 || uid == a.SelfUID) {
		return nil
	}
	timeout := a.Timeout
	flags := FlagNone
	if interactive {
		flags = FlagAllowUserInteraction
		timeout = a.InteractiveTimeout
		if timeout == 0 {
			timeout = 5 * time.Minute
		}
	} else if timeout == 0 {
		timeout = 25 * time.Second
	}
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	res, err := CheckAuthorization(cctx, c, BusNameSubject(sender), action, nil, flags)
	if err != nil {
		if noPolkit(err) {
			// Fail closed: without polkit only root may change things,
			// and root was let through above.
			log.Warn("polkit unreachable: refusing", "action", action, "sender", sender, "uid", uid, "uid_err", uidErr, "err", err)
			return accessDenied()
		}
		var de godbus.Error
		if errors.As(err, &de) {
			log.Info("polkit refused", "action", action, "sender", sender, "error", de.Name)
			return &de
		}
		log.Warn("polkit check failed: refusing", "action", action, "sender", sender, "err", err)
		return accessDenied()
	}
	switch {
	case res.Authorized:
		log.Debug("polkit authorized", "action", action, "sender", sender, "uid", uid)
		return nil
	case res.Challenge:
		// systemd 252 answers every challenge this way, interactive or
		// not: polkit agents and timedatectl react to this name.
		log.Info("polkit wants interactive authentication", "action", action, "sender", sender, "uid", uid)
		return &godbus.Error{Name: ErrNameInteractiveRequired, Body: []any{"Interactive authentication required."}}
	default:
		log.Info("polkit not authorized", "action", action, "sender", sender, "uid", uid)
		return accessDenied()
	}
}

// accessDenied is sd-bus's answer for -EACCES: the errno's name and text.
func accessDenied() *godbus.Error {
	return &godbus.Error{Name: ErrNameAccessDenied, Body: []any{"Permission denied"}}
}
