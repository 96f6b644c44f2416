// Package client talks to gnomond over D-Bus, through its own interface
// org.gnomon.Gnomon1 (docs/dbus.md): it reads the manager's and the sources'
// properties, calls the Manager's methods, and sorts what goes wrong into
// the few cases a user can act on (daemon not running, bus unreachable,
// polkit refused, no such source).
package client

import (
	"context"
	"errors"
	"fmt"
	"strings"

	godbus "github.com/godbus/dbus/v5"
)

// Names from docs/dbus.md.
const (
	BusName       = "org.gnomon.Gnomon1"
	ManagerPath   = godbus.ObjectPath("/org/gnomon/Gnomon1")
	ManagerIface  = "org.gnomon.Gnomon1.Manager"
	SourceIface   = "org.gnomon.Gnomon1.Source"
	SourcePrefix  = "/org/gnomon/Gnomon1/source/"
	propsIface    = "org.freedesktop.DBus.Properties"
	DefaultSystem = "unix:path=/run/dbus/system_bus_socket"
)

// D-Bus error names the client sorts.
const (
	errServiceUnknown   = "org.freedesktop.DBus.Error.ServiceUnknown"
	errNameHasNoOwner   = "org.freedesktop.DBus.Error.NameHasNoOwner"
	errNoReply          = "org.freedesktop.DBus.Error.NoReply"
	errTimeout          = "org.freedesktop.DBus.Error.Timeout"
	errDisconnected     = "org.freedesktop.DBus.Error.Disconnected"
	errUnknownObject    = "org.freedesktop.DBus.Error.UnknownObject"
	errUnknownMethod    = "org.freedesktop.DBus.Error.UnknownMethod"
	errUnknownInterface = "org.freedesktop.DBus.Error.UnknownInterface"
	errAccessDenied     = "org.freedesktop.DBus.Error.AccessDenied"
	errInteractiveAuth  = "org.freedesktop.DBus.Error.InteractiveAuthorizationRequired"
	errAuthFailed       = "org.freedesktop.DBus.Error.AuthFailed"
	errInvalidArgs      = "org.freedesktop.DBus.Error.InvalidArgs"
	errNoSuchSource     = "org.gnomon.Gnomon1.Error.NoSuchSource"
	errPolkitCancelled  = "org.freedesktop.PolicyKit1.Error.Cancelled"
)

// Kind sorts an error into what the user can do about it.
type Kind int

const (
	// Failed: the daemon answered with an error (see the message).
	Failed Kind = iota
	// Unreachable: the bus cannot be reached.
	Unreachable
	// NotRunning: the bus is there but gnomond is not on it.
	NotRunning
	// Refused: polkit (or the bus policy) did not allow the call.
	Refused
	// NoSuchSource: the source named does not exist (any more).
	NoSuchSource
	// InvalidArgs: the daemon refused the arguments.
	InvalidArgs
)

// Error is a failed call, sorted by Kind.
type Error struct {
	Kind Kind
	// Name is the D-Bus error name, when the error came from the bus.
	Name string
	Msg  string
	Err  error
}

func (e *Error) Error() string { return e.Msg }
func (e *Error) Unwrap() error { return e.Err }

// KindOf returns err's Kind; Failed for errors that are not *Error.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Failed
}

// sort wraps an error from godbus.
func sort(what string, err error) error {
	if err == nil {
		return nil
	}
	var de godbus.Error
	var dep *godbus.Error
	switch {
	case errors.As(err, &dep):
		de = *dep
	case errors.As(err, &de):
	default:
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return &Error{Kind: Unreachable, Msg: fmt.Sprintf("%s: no answer from gnomond: %v", what, err), Err: err}
		}
		return &Error{Kind: Unreachable, Msg: fmt.Sprintf("%s: %v", what, err), Err: err}
	}
	msg := de.Error()
	if len(de.Body) == 0 {
		msg = de.Name
	}
	e := &Error{Name: de.Name, Msg: what + ": " + msg, Err: err}
	switch de.Name {
	case errServiceUnknown, errNameHasNoOwner:
		e.Kind, e.Msg = NotRunning, what+": gnomond is not running (no "+BusName+" on the bus)"
	case errUnknownObject, errUnknownMethod, errUnknownInterface:
		e.Kind = NotRunning
		e.Msg = what + ": " + BusName + " does not offer this (" + msg + "); is it gnomond, and the same version as gnomonctl?"
	case errNoReply, errTimeout, errDisconnected:
		e.Kind = Unreachable
	case errAccessDenied, errInteractiveAuth, errAuthFailed, errPolkitCancelled:
		e.Kind = Refused
	case errNoSuchSource:
		e.Kind = NoSuchSource
	case errInvalidArgs:
		e.Kind = InvalidArgs
	}
	return e
}

// Client is a connection to gnomond.
type Client struct {
	conn    *godbus.Conn
	manager godbus.BusObject
	// Bus is the address connected to, for messages.
	Bus string
}

// Address turns the --bus flag into a D-Bus address: "system" is
// $DBUS_SYSTEM_BUS_ADDRESS or the standard socket, "session" is
// $DBUS_SESSION_BUS_ADDRESS, anything else is taken as an address.
func Address(bus string, getenv func(string) string) (string, error) {
	switch bus {
	case "", "system":
		if a := getenv("DBUS_SYSTEM_BUS_ADDRESS"); a != "" {
			return a, nil
		}
		return DefaultSystem, nil
	case "session":
		if a := getenv("DBUS_SESSION_BUS_ADDRESS"); a != "" {
			return a, nil
		}
		if d := getenv("XDG_RUNTIME_DIR"); d != "" {
			return "unix:path=" + d + "/bus", nil
		}
		return "", &Error{Kind: Unreachable, Msg: "no session bus: DBUS_SESSION_BUS_ADDRESS and XDG_RUNTIME_DIR are not set"}
	}
	if !strings.Contains(bus, ":") {
		return "", &Error{Kind: InvalidArgs, Msg: fmt.Sprintf("--bus %q: want system, session or a D-Bus address like unix:path=/run/dbus/system_bus_socket", bus)}
	}
	return bus, nil
}

// Connect connects to the bus named by bus (see Address).
func Connect(ctx context.Context, bus string, getenv func(string) string) (*Client, error) {
	addr, err := Address(bus, getenv)
	if err != nil {
		return nil, err
	}
	conn, err := godbus.Connect(addr, godbus.WithContext(ctx))
	if err != nil {
		return nil, &Error{Kind: Unreachable, Msg: fmt.Sprintf("cannot connect to the bus at %s: %v", addr, err), Err: err}
	}
	return &Client{conn: conn, manager: conn.Object(BusName, ManagerPath), Bus: addr}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// Conn is the underlying connection (for tests and watchers).
func (c *Client) Conn() *godbus.Conn { return c.conn }

func (c *Client) getAll(ctx context.Context, path godbus.ObjectPath, iface string) (map[string]godbus.Variant, error) {
	var props map[string]godbus.Variant
	err := c.conn.Object(BusName, path).CallWithContext(ctx, propsIface+".GetAll", 0, iface).Store(&props)
	return props, err
}

// Manager reads every property of the manager.
func (c *Client) Manager(ctx context.Context) (*Manager, error) {
	props, err := c.getAll(ctx, ManagerPath, ManagerIface)
	if err != nil {
		return nil, sort("reading gnomond's state", err)
	}
	m := &Manager{}
	m.fill(props)
	return m, nil
}

// Source reads every property of one source.
func (c *Client) Source(ctx context.Context, path godbus.ObjectPath) (*Source, error) {
	props, err := c.getAll(ctx, path, SourceIface)
	if err != nil {
		return nil, sort("reading source "+string(path), err)
	}
	s := &Source{Path: string(path)}
	s.fill(props)
	return s, nil
}

// Status reads the manager and every source. A source that disappears
// while it is being read is left out.
func (c *Client) Status(ctx context.Context) (*Status, error) {
	m, err := c.Manager(ctx)
	if err != nil {
		return nil, err
	}
	st := &Status{Manager: *m, Sources: []Source{}}
	for _, p := range m.sourcePaths {
		s, err := c.Source(ctx, p)
		if err != nil {
			if k := KindOf(err); k == NotRunning || k == NoSuchSource {
				continue // removed since Sources was read
			}
			return nil, err
		}
		s.Selected = s.Path == m.SelectedPath
		st.Sources = append(st.Sources, *s)
		if s.Selected {
			st.Selected = s.Name
		}
	}
	if st.Servers, err = c.Servers(ctx); err != nil {
		return nil, err
	}
	return st, nil
}

// call calls a Manager method. interactive asks polkit to let the user
// authenticate, and sets the message flag too.
func (c *Client) call(ctx context.Context, method string, interactive bool, args ...any) (*godbus.Call, error) {
	var flags godbus.Flags
	if interactive {
		flags |= godbus.FlagAllowInteractiveAuthorization
	}
	call := c.manager.CallWithContext(ctx, ManagerIface+"."+method, flags, args...)
	return call, call.Err
}

// AddSource adds a source (mode "server", "pool" or "nts") and returns its object.
func (c *Client) AddSource(ctx context.Context, mode, address string, interactive bool) (godbus.ObjectPath, error) {
	call, err := c.call(ctx, "AddSource", interactive, mode, address, interactive)
	if err != nil {
		return "", sort("adding "+mode+" "+address, err)
	}
	var p godbus.ObjectPath
	if err := call.Store(&p); err != nil {
		return "", sort("adding "+mode+" "+address, err)
	}
	return p, nil
}

// RemoveSource removes a source.
func (c *Client) RemoveSource(ctx context.Context, path godbus.ObjectPath, interactive bool) error {
	_, err := c.call(ctx, "RemoveSource", interactive, path, interactive)
	return sort("removing "+string(path), err)
}

// Burst makes a source, or with path "/" every source, poll quickly now.
func (c *Client) Burst(ctx context.Context, path godbus.ObjectPath, interactive bool) error {
	_, err := c.call(ctx, "Burst", interactive, path, interactive)
	return sort("burst", err)
}

// Reload makes gnomond re-read its configuration file and returns what
// changed, one line each (nothing from a gnomond older than the reply).
func (c *Client) Reload(ctx context.Context, interactive bool) ([]string, error) {
	call, err := c.call(ctx, "Reload", interactive, interactive)
	if err != nil {
		return nil, sort("reload", err)
	}
	var changes []string
	if len(call.Body) > 0 {
		if err := call.Store(&changes); err != nil {
			return nil, sort("reload", err)
		}
	}
	return changes, nil
}

// Watch returns a channel that receives a value whenever gnomond signals a
// change of its own properties (or of a source's), or its name changes
// owner; it is closed when ctx ends or the connection closes.
func (c *Client) Watch(ctx context.Context) (<-chan struct{}, error) {
	opts := [][]godbus.MatchOption{
		{godbus.WithMatchInterface(propsIface), godbus.WithMatchMember("PropertiesChanged"), godbus.WithMatchPathNamespace(ManagerPath)},
		{godbus.WithMatchInterface("org.freedesktop.DBus"), godbus.WithMatchMember("NameOwnerChanged"), godbus.WithMatchArg(0, BusName)},
	}
	for _, o := range opts {
		if err := c.conn.AddMatchSignalContext(ctx, o...); err != nil {
			return nil, sort("watching gnomond", err)
		}
	}
	sig := make(chan *godbus.Signal, 16)
	c.conn.Signal(sig)
	out := make(chan struct{}, 1)
	go func() {
		defer close(out)
		defer c.conn.RemoveSignal(sig)
		for {
			select {
			case <-ctx.Done():
				return
			case s, ok := <-sig:
				if !ok {
					return
				}
				if s.Name == propsIface+".PropertiesChanged" && !strings.HasPrefix(string(s.Path), string(ManagerPath)) {
					continue
				}
				select {
				case out <- struct{}{}:
				default: // one pending redraw is enough
				}
			}
		}
	}()
	return out, nil
}
