package dbus

import (
	"encoding/xml"
	"fmt"
	"sort"
	"strings"

	godbus "github.com/godbus/dbus/v5"
)

// Change-signal behaviour of a property (the
// org.freedesktop.DBus.Property.EmitsChangedSignal annotation).
const (
	EmitsTrue  = "true" // PropertiesChanged with the value (no annotation)
	EmitsFalse = "false"
	EmitsConst = "const"
)

// PropSpec describes one read-only property.
type PropSpec struct {
	Name, Type, Emits string
}

// ArgSpec is one method argument.
type ArgSpec struct {
	Name, Type, Direction string // Direction "in" or "out"
}

// MethodSpec is one method.
type MethodSpec struct {
	Name string
	Args []ArgSpec
}

// InSignature is the concatenated types of the in arguments.
func (m MethodSpec) InSignature() string { return m.sig("in") }

// OutSignature is the concatenated types of the out arguments.
func (m MethodSpec) OutSignature() string { return m.sig("out") }

func (m MethodSpec) sig(dir string) string {
	var b strings.Builder
	for _, a := range m.Args {
		if a.Direction == dir {
			b.WriteString(a.Type)
		}
	}
	return b.String()
}

// InterfaceSpec is one interface: the single source of truth for both the
// introspection XML and the property tables (checked against docs/dbus.md
// by a test).
type InterfaceSpec struct {
	Name    string
	Props   []PropSpec
	Methods []MethodSpec
}

// Prop finds a property by name.
func (s *InterfaceSpec) Prop(name string) (PropSpec, bool) {
	for _, p := range s.Props {
		if p.Name == name {
			return p, true
		}
	}
	return PropSpec{}, false
}

func in(name, typ string) ArgSpec  { return ArgSpec{name, typ, "in"} }
func out(name, typ string) ArgSpec { return ArgSpec{name, typ, "out"} }

const (
	ifaceProperties    = "org.freedesktop.DBus.Properties"
	ifaceIntrospect    = "org.freedesktop.DBus.Introspectable"
	ifacePeer          = "org.freedesktop.DBus.Peer"
	signalPropsChanged = ifaceProperties + ".PropertiesChanged"
)

const standardInterfacesXML = ` <interface name="org.freedesktop.DBus.Peer">
  <method name="Ping"/>
  <method name="GetMachineId">
   <arg type="s" name="machine_uuid" direction="out"/>
  </method>
 </interface>
 <interface name="org.freedesktop.DBus.Introspectable">
  <method name="Introspect">
   <arg name="xml_data" type="s" direction="out"/>
  </method>
 </interface>
 <interface name="org.freedesktop.DBus.Properties">
  <method name="Get">
   <arg name="interface_name" direction="in" type="s"/>
   <arg name="property_name" direction="in" type="s"/>
   <arg name="value" direction="out" type="v"/>
  </method>
  <method name="GetAll">
   <arg name="interface_name" direction="in" type="s"/>
   <arg name="props" direction="out" type="a{sv}"/>
  </method>
  <method name="Set">
   <arg name="interface_name" direction="in" type="s"/>
   <arg name="property_name" direction="in" type="s"/>
   <arg name="value" direction="in" type="v"/>
  </method>
  <signal name="PropertiesChanged">
   <arg type="s" name="interface_name"/>
   <arg type="a{sv}" name="changed_properties"/>
   <arg type="as" name="invalidated_properties"/>
  </signal>
 </interface>
`

func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// IntrospectXML renders the interfaces (plus the three standard ones) and
// the child node names in sd-bus's layout.
func IntrospectXML(ifaces []*InterfaceSpec, children []string) string {
	var b strings.Builder
	b.WriteString(`<!DOCTYPE node PUBLIC "-//freedesktop//DTD D-BUS Object Introspection 1.0//EN"` + "\n")
	b.WriteString(`"http://www.freedesktop.org/standards/dbus/1.0/introspect.dtd">` + "\n<node>\n")
	b.WriteString(standardInterfacesXML)
	for _, it := range ifaces {
		fmt.Fprintf(&b, " <interface name=%q>\n", it.Name)
		for _, p := range it.Props {
			fmt.Fprintf(&b, "  <property name=%q type=%q access=\"read\">\n", p.Name, xmlEscape(p.Type))
			if p.Emits != EmitsTrue {
				fmt.Fprintf(&b, "   <annotation name=\"org.freedesktop.DBus.Property.EmitsChangedSignal\" value=%q/>\n", p.Emits)
			}
			b.WriteString("  </property>\n")
		}
		for _, m := range it.Methods {
			fmt.Fprintf(&b, "  <method name=%q>\n", m.Name)
			for _, a := range m.Args {
				fmt.Fprintf(&b, "   <arg type=%q name=%q direction=%q/>\n", xmlEscape(a.Type), a.Name, a.Direction)
			}
			b.WriteString("  </method>\n")
		}
		b.WriteString(" </interface>\n")
	}
	sort.Strings(children)
	for _, c := range children {
		fmt.Fprintf(&b, " <node name=%q/>\n", c)
	}
	b.WriteString("</node>\n")
	return b.String()
}

// getter produces a property's current value with its exact D-Bus type.
type getter func() (any, error)

// propIface is one interface's getters on one object.
type propIface struct {
	spec *InterfaceSpec
	get  map[string]getter
}

// propsObject implements org.freedesktop.DBus.Properties (and, through
// introspectObject, Introspectable) for one object path. GetAll("")
// answers for every interface on the object, as sd-bus does.
type propsObject struct {
	ifaces []propIface
}

func errUnknownProperty() *godbus.Error {
	return &godbus.Error{Name: "org.freedesktop.DBus.Error.UnknownProperty", Body: []any{"Unknown property or interface."}}
}

func errUnknownInterface(name string) *godbus.Error {
	return &godbus.Error{Name: "org.freedesktop.DBus.Error.UnknownInterface", Body: []any{fmt.Sprintf("Unknown interface '%s'.", name)}}
}

// value reads one property as a variant of its declared type.
func (pi *propIface) value(p PropSpec) (godbus.Variant, *godbus.Error) {
	v, err := pi.get[p.Name]()
	if err != nil {
		return godbus.Variant{}, toDBusError(err)
	}
	sig, serr := godbus.ParseSignature(p.Type)
	if serr != nil {
		return godbus.Variant{}, failed(serr)
	}
	if got := godbus.SignatureOf(v); got != sig {
		return godbus.Variant{}, failed(fmt.Errorf("internal error: property %s is %s, declared %s", p.Name, got.String(), p.Type))
	}
	return godbus.MakeVariantWithSignature(v, sig), nil
}

// Get is org.freedesktop.DBus.Properties.Get.
func (o *propsObject) Get(iface, name string) (godbus.Variant, *godbus.Error) {
	for i := range o.ifaces {
		pi := &o.ifaces[i]
		if iface != "" && pi.spec.Name != iface {
			continue
		}
		if p, ok := pi.spec.Prop(name); ok {
			return pi.value(p)
		}
	}
	return godbus.Variant{}, errUnknownProperty()
}

// GetAll is org.freedesktop.DBus.Properties.GetAll; "" means every
// interface of the object.
func (o *propsObject) GetAll(iface string) (map[string]godbus.Variant, *godbus.Error) {
	out := map[string]godbus.Variant{}
	found := iface == ""
	for i := range o.ifaces {
		pi := &o.ifaces[i]
		if iface != "" && pi.spec.Name != iface {
			continue
		}
		found = true
		for _, p := range pi.spec.Props {
			v, err := pi.value(p)
			if err != nil {
				return nil, err
			}
			out[p.Name] = v
		}
	}
	if !found {
		switch iface {
		case ifacePeer, ifaceIntrospect, ifaceProperties:
			return out, nil
		}
		return nil, errUnknownInterface(iface)
	}
	return out, nil
}

// Set is org.freedesktop.DBus.Properties.Set: every property is read-only.
func (o *propsObject) Set(iface, name string, _ godbus.Variant) *godbus.Error {
	for i := range o.ifaces {
		pi := &o.ifaces[i]
		if iface != "" && pi.spec.Name != iface {
			continue
		}
		if _, ok := pi.spec.Prop(name); ok {
			return &godbus.Error{Name: "org.freedesktop.DBus.Error.PropertyReadOnly",
				Body: []any{fmt.Sprintf("Property '%s' is not writable.", name)}}
		}
	}
	return errUnknownProperty()
}

// introspectObject answers Introspect for one path.
type introspectObject struct {
	ifaces   []*InterfaceSpec
	children func() []string
}

// Introspect is org.freedesktop.DBus.Introspectable.Introspect.
func (o *introspectObject) Introspect() (string, *godbus.Error) {
	var ch []string
	if o.children != nil {
		ch = o.children()
	}
	return IntrospectXML(o.ifaces, ch), nil
}
