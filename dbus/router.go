package dbus

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"sync"

	godbus "github.com/godbus/dbus/v5"
)

// router serves one bus name on its own connection the way sd-bus
// (systemd's D-Bus library) dispatches a method call: it sees every call
// before godbus interprets it (a custom godbus.Handler whose methods decode
// nothing), so it checks the exact body signature, answers unknown paths
// with UnknownObject, serves only its own objects, introspects the
// intermediate nodes ("/", "/org", ...), answers Peer.GetMachineId from
// /etc/machine-id and sends GetAll and PropertiesChanged in the fixed
// (introspection) order. Each name has its own connection, like
// systemd-timedated and systemd-timesyncd, so no name serves another's
// objects.
type router struct {
	s    *Service
	name string
	objs []*busObject

	mu   sync.Mutex
	conn *godbus.Conn
}

// busObject is one object path and its interfaces in introspection order
// (after the three standard ones).
type busObject struct {
	path   godbus.ObjectPath
	ifaces []*objIface
}

// objIface is one interface of an object: properties (getters, and
// setters for the writable ones) and methods.
type objIface struct {
	spec    *InterfaceSpec
	get     map[string]getter
	set     map[string]setter
	methods map[string]methodFunc
}

// call is one incoming method call, its body already checked against the
// method's signature.
type call struct {
	msg  *godbus.Message
	body []any
}

// methodFunc runs a method; the values it returns must have exactly the
// method's out types.
type methodFunc func(c *call) ([]any, *godbus.Error)

// setter writes a property (Properties.Set), the variant already checked
// against the property's type.
type setter func(c *call, v godbus.Variant) *godbus.Error

// peerMarker replaces org.freedesktop.DBus.Peer in incoming calls' headers
// so that godbus, which answers Peer itself (with its connection GUID for
// GetMachineId), hands them to the router.
const peerMarker = "org.gnomon.internal.RoutedPeer"

func newRouter(s *Service, name string, objs ...*busObject) *router {
	return &router{s: s, name: name, objs: objs}
}

// current is the router's connection, nil while the bus is away.
func (r *router) current() *godbus.Conn {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.conn
}

// connect opens the router's connection and requests its name.
func (r *router) connect(ctx context.Context, address string) (*godbus.Conn, error) {
	conn, err := godbus.Connect(address, godbus.WithContext(ctx), godbus.WithHandler(r),
		godbus.WithIncomingInterceptor(intercept))
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.conn = conn
	r.mu.Unlock()
	reply, err := conn.RequestName(r.name, godbus.NameFlagDoNotQueue)
	if err == nil && reply != godbus.RequestNameReplyPrimaryOwner && reply != godbus.RequestNameReplyAlreadyOwner {
		err = errors.New("already owned by another process")
	}
	if err != nil {
		r.detach(conn)
		conn.Close()
		return nil, fmt.Errorf("request name %s: %w", r.name, err)
	}
	return conn, nil
}

func (r *router) detach(conn *godbus.Conn) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn == conn {
		r.conn = nil
	}
}

// intercept hands Peer calls to the router (see peerMarker).
func intercept(msg *godbus.Message) {
	if msg.Type != godbus.TypeMethodCall {
		return
	}
	if v, ok := msg.Headers[godbus.FieldInterface]; ok {
		if s, _ := v.Value().(string); s == ifacePeer {
			msg.Headers[godbus.FieldInterface] = godbus.MakeVariant(peerMarker)
		}
	}
}

// godbus.Handler: every path, interface and method "exists"; the router
// decides in dispatch.
type routed struct{ r *router }

func (r *router) LookupObject(godbus.ObjectPath) (godbus.ServerObject, bool) { return routed{r}, true }
func (o routed) LookupInterface(string) (godbus.Interface, bool)             { return o, true }
func (o routed) LookupMethod(string) (godbus.Method, bool)                   { return o, true }
func (o routed) NumArguments() int                                           { return 0 }
func (o routed) NumReturns() int                                             { return 0 }
func (o routed) ArgumentValue(int) any                                       { return nil }
func (o routed) ReturnValue(int) any                                         { return nil }

// DecodeArguments (godbus.ArgumentDecoder) passes the message on undecoded.
func (o routed) DecodeArguments(conn *godbus.Conn, _ string, msg *godbus.Message, _ []any) ([]any, error) {
	return []any{conn, msg}, nil
}

// Call dispatches and replies itself (so that it controls the reply's
// signature and order), then marks the call as needing no reply from
// godbus.
func (o routed) Call(args ...any) ([]any, error) {
	conn, msg := args[0].(*godbus.Conn), args[1].(*godbus.Message)
	out, outSig, derr := o.r.dispatch(msg)
	if msg.Flags&godbus.FlagNoReplyExpected == 0 {
		if derr != nil {
			sendError(conn, msg, derr)
		} else {
			sendReply(conn, msg, outSig, out)
		}
	}
	msg.Flags |= godbus.FlagNoReplyExpected
	return nil, nil
}

func header(msg *godbus.Message, f godbus.HeaderField) string {
	v, ok := msg.Headers[f]
	if !ok {
		return ""
	}
	switch x := v.Value().(type) {
	case string:
		return x
	case godbus.ObjectPath:
		return string(x)
	case godbus.Signature:
		return x.String()
	}
	return ""
}

func sendReply(conn *godbus.Conn, msg *godbus.Message, sig string, body []any) {
	reply := &godbus.Message{Type: godbus.TypeMethodReply, Headers: map[godbus.HeaderField]godbus.Variant{
		godbus.FieldReplySerial: godbus.MakeVariant(msg.Serial()),
	}, Body: body}
	if s := header(msg, godbus.FieldSender); s != "" {
		reply.Headers[godbus.FieldDestination] = godbus.MakeVariant(s)
	}
	if len(body) > 0 {
		reply.Headers[godbus.FieldSignature] = godbus.MakeVariant(godbus.ParseSignatureMust(sig))
	}
	conn.Send(reply, nil)
}

func sendError(conn *godbus.Conn, msg *godbus.Message, e *godbus.Error) {
	reply := &godbus.Message{Type: godbus.TypeError, Headers: map[godbus.HeaderField]godbus.Variant{
		godbus.FieldReplySerial: godbus.MakeVariant(msg.Serial()),
		godbus.FieldErrorName:   godbus.MakeVariant(e.Name),
	}, Body: e.Body}
	if s := header(msg, godbus.FieldSender); s != "" {
		reply.Headers[godbus.FieldDestination] = godbus.MakeVariant(s)
	}
	if len(e.Body) > 0 {
		reply.Headers[godbus.FieldSignature] = godbus.MakeVariant(godbus.SignatureOf(e.Body...))
	}
	conn.Send(reply, nil)
}

// dictEntry is one {sv} entry: a struct has a dict entry's wire layout,
// so a slice of them sent under the signature a{sv} keeps its order,
// which a Go map would not.
type dictEntry struct {
	Key   string
	Value godbus.Variant
}

// find returns the object at path.
func (r *router) find(path string) *busObject {
	for _, o := range r.objs {
		if string(o.path) == path {
			return o
		}
	}
	return nil
}

// children lists the next path elements below path (sd-bus's child nodes),
// sorted; ok reports whether path is an object or one of their ancestors.
func (r *router) children(path string) (names []string, ok bool) {
	prefix := path + "/"
	if path == "/" {
		prefix = "/"
	}
	seen := map[string]bool{}
	for _, o := range r.objs {
		p := string(o.path)
		if p == path {
			ok = true
			continue
		}
		if rest, found := strings.CutPrefix(p, prefix); found {
			ok = true
			name, _, _ := strings.Cut(rest, "/")
			if !seen[name] {
				seen[name] = true
				names = append(names, name)
			}
		}
	}
	sort.Strings(names)
	return names, ok
}

func unknownObject(path string) *godbus.Error {
	return newError("org.freedesktop.DBus.Error.UnknownObject", "Unknown object '%s'.", path)
}

func unknownMethod(member, iface string) *godbus.Error {
	return newError("org.freedesktop.DBus.Error.UnknownMethod", "Unknown method %s or interface %s.", member, iface)
}

// dispatch answers one call as sd-bus would: the reply body and its
// signature, or the error.
func (r *router) dispatch(msg *godbus.Message) ([]any, string, *godbus.Error) {
	path := header(msg, godbus.FieldPath)
	iface := header(msg, godbus.FieldInterface)
	member := header(msg, godbus.FieldMember)
	sig := header(msg, godbus.FieldSignature)
	if iface == peerMarker {
		// sd-bus answers Peer for every path, before looking at objects.
		switch member {
		case "Ping":
			return nil, "", nil
		case "GetMachineId":
			id, err := machineID()
			if err != nil {
				return nil, "", errnoError("Failed to read machine ID", err)
			}
			return []any{id}, "s", nil
		}
		return nil, "", newError("org.freedesktop.DBus.Error.UnknownMethod", "Unknown method '%s' on interface '%s'.", member, ifacePeer)
	}
	obj := r.find(path)
	children, exists := r.children(path)
	if !exists || iface == "" {
		return nil, "", unknownObject(path)
	}
	if obj == nil {
		// An intermediate node: it introspects (listing its children) and
		// has nothing else.
		if iface == ifaceIntrospect && member == "Introspect" {
			if sig != "" {
				return nil, "", newError(ErrInvalidArgs, "Expected no parameters")
			}
			return []any{sdIntrospect(nil, children)}, "s", nil
		}
		return nil, "", unknownObject(path)
	}
	c := &call{msg: msg, body: msg.Body}
	for _, it := range obj.ifaces {
		if it.spec.Name != iface {
			continue
		}
		for _, m := range it.spec.Methods {
			if m.Name != member {
				continue
			}
			if want := m.InSignature(); sig != want {
				return nil, "", newError(ErrInvalidArgs, "Invalid arguments '%s' to call %s.%s(), expecting '%s'.", sig, iface, member, want)
			}
			out, err := it.methods[member](c)
			return out, m.OutSignature(), err
		}
	}
	switch {
	case iface == ifaceProperties && (member == "Get" || member == "Set"):
		if len(c.body) < 2 {
			return nil, "", newError(ErrInvalidArgs, "Expected interface and member parameters")
		}
		ifn, ok1 := c.body[0].(string)
		prop, ok2 := c.body[1].(string)
		if !ok1 || !ok2 {
			return nil, "", newError(ErrInvalidArgs, "Expected interface and member parameters")
		}
		it, p, ok := obj.prop(ifn, prop)
		if !ok {
			return nil, "", newError("org.freedesktop.DBus.Error.UnknownProperty", "Unknown interface %s or property %s.", ifn, prop)
		}
		if member == "Get" {
			v, err := it.value(p)
			if err != nil {
				return nil, "", err
			}
			return []any{v}, "v", nil
		}
		set := it.set[prop]
		if set == nil {
			return nil, "", newError("org.freedesktop.DBus.Error.PropertyReadOnly", "Property '%s' is not writable.", prop)
		}
		if len(c.body) < 3 || sig[2] != 'v' {
			got := ""
			if len(sig) > 2 {
				got = sig[2:3]
			}
			return nil, "", newError("org.freedesktop.DBus.Error.InvalidSignature", "Incorrect signature when setting property '%s', expected 'v', got '%s'.", prop, got)
		}
		v := c.body[2].(godbus.Variant)
		if vs := v.Signature().String(); vs != p.Type {
			return nil, "", newError(ErrInvalidArgs, "Incorrect parameters for property '%s', expected '%s', got '%s'.", prop, p.Type, vs)
		}
		return nil, "", set(c, v)
	case iface == ifaceProperties && member == "GetAll":
		if len(c.body) < 1 {
			return nil, "", newError(ErrInvalidArgs, "Expected interface parameter")
		}
		ifn, ok := c.body[0].(string)
		if !ok {
			return nil, "", newError(ErrInvalidArgs, "Expected interface parameter")
		}
		entries, err := obj.getAll(ifn)
		if err != nil {
			return nil, "", err
		}
		return []any{entries}, "a{sv}", nil
	case iface == ifaceIntrospect && member == "Introspect":
		if sig != "" {
			return nil, "", newError(ErrInvalidArgs, "Expected no parameters")
		}
		return []any{sdIntrospect(obj.ifaces, children)}, "s", nil
	}
	return nil, "", unknownMethod(member, iface)
}

// prop finds a property by exact interface and name.
func (o *busObject) prop(iface, name string) (*objIface, PropSpec, bool) {
	for _, it := range o.ifaces {
		if it.spec.Name != iface {
			continue
		}
		if p, ok := it.spec.Prop(name); ok {
			return it, p, true
		}
	}
	return nil, PropSpec{}, false
}

// value reads one property as a variant of its declared type.
func (it *objIface) value(p PropSpec) (godbus.Variant, *godbus.Error) {
	pi := propIface{spec: it.spec, get: it.get}
	return pi.value(p)
}

// getAll is GetAll: "" means every interface of the object, a standard
// interface has none, in introspection order.
func (o *busObject) getAll(iface string) ([]dictEntry, *godbus.Error) {
	out := []dictEntry{}
	found := iface == "" || iface == ifaceProperties || iface == ifacePeer || iface == ifaceIntrospect
	for _, it := range o.ifaces {
		if iface != "" && it.spec.Name != iface {
			continue
		}
		found = true
		for _, p := range it.spec.Props {
			v, err := it.value(p)
			if err != nil {
				return nil, err
			}
			out = append(out, dictEntry{p.Name, v})
		}
	}
	if !found {
		return nil, newError("org.freedesktop.DBus.Error.UnknownInterface", "Unknown interface '%s'.", iface)
	}
	return out, nil
}

// emitValues sends PropertiesChanged with the given values.
func (r *router) emitValues(path godbus.ObjectPath, iface string, entries []dictEntry) {
	conn := r.current()
	if conn == nil || len(entries) == 0 {
		return
	}
	msg := &godbus.Message{Type: godbus.TypeSignal, Headers: map[godbus.HeaderField]godbus.Variant{
		godbus.FieldPath:      godbus.MakeVariant(path),
		godbus.FieldInterface: godbus.MakeVariant(ifaceProperties),
		godbus.FieldMember:    godbus.MakeVariant("PropertiesChanged"),
		godbus.FieldSignature: godbus.MakeVariant(godbus.ParseSignatureMust("sa{sv}as")),
	}, Body: []any{iface, entries, []string{}}}
	if c := conn.Send(msg, nil); c != nil && c.Err != nil {
		r.s.log.Debug("D-Bus: emit PropertiesChanged", "path", path, "err", c.Err)
	}
}

// machineID is /etc/machine-id's 32 hex digits, as sd_id128_get_machine
// reads it.
func machineID() (string, error) {
	data, err := os.ReadFile("/etc/machine-id")
	if err != nil {
		return "", err
	}
	id := strings.TrimSpace(string(data))
	if len(id) != 32 || strings.Trim(id, "0123456789abcdef") != "" {
		return "", fmt.Errorf("/etc/machine-id: not 32 hex digits")
	}
	return id, nil
}

// sdIntrospect renders introspection XML exactly as sd-bus 252 does.
func sdIntrospect(ifaces []*objIface, children []string) string {
	var b strings.Builder
	b.WriteString(`<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"` + "\n")
	b.WriteString(`"https://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">` + "\n<node>\n")
	b.WriteString(standardInterfacesXML)
	for _, it := range ifaces {
		fmt.Fprintf(&b, " <interface name=%q>\n", it.spec.Name)
		for _, p := range it.spec.Props {
			access := "read"
			if it.set[p.Name] != nil {
				access = "readwrite"
			}
			fmt.Fprintf(&b, "  <property name=%q type=%q access=%q>\n", p.Name, xmlEscape(p.Type), access)
			if p.Emits != EmitsTrue {
				fmt.Fprintf(&b, "   <annotation name=\"org.freedesktop.DBus.Property.EmitsChangedSignal\" value=%q/>\n", p.Emits)
			}
			if it.set[p.Name] != nil {
				b.WriteString("   <annotation name=\"org.freedesktop.systemd1.Privileged\" value=\"true\"/>\n")
			}
			b.WriteString("  </property>\n")
		}
		for _, m := range it.spec.Methods {
			if len(m.Args) == 0 {
				fmt.Fprintf(&b, "  <method name=%q>\n  </method>\n", m.Name)
				continue
			}
			fmt.Fprintf(&b, "  <method name=%q>\n", m.Name)
			for _, a := range m.Args {
				fmt.Fprintf(&b, "   <arg type=%q name=%q direction=%q/>\n", xmlEscape(a.Type), a.Name, a.Direction)
			}
			b.WriteString("  </method>\n")
		}
		b.WriteString(" </interface>\n")
	}
	for _, c := range children {
		fmt.Fprintf(&b, " <node name=%q/>\n", c)
	}
	b.WriteString("</node>\n")
	return b.String()
}
