package dbus

import (
	"context"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	godbus "github.com/godbus/dbus/v5"

	"gnomon.dev/gnomon/engine/ptp"
	"gnomon.dev/gnomon/engine/system"
	"gnomon.dev/gnomon/polkit"
)

// GnomonManagerSpec is org.gnomon.Gnomon1.Manager (docs/dbus.md).
var GnomonManagerSpec = &InterfaceSpec{
	Name: "org.gnomon.Gnomon1.Manager",
	Props: []PropSpec{
		{"Version", "s", EmitsConst},
		{"Synchronized", "b", EmitsTrue},
		{"State", "s", EmitsTrue},
		{"ClockMode", "s", EmitsTrue},
		{"ObserveReason", "s", EmitsConst},
		{"NTP", "b", EmitsTrue},
		{"Offset", "x", EmitsTrue},
		{"Frequency", "d", EmitsTrue},
		{"RootDelay", "t", EmitsTrue},
		{"RootDispersion", "t", EmitsTrue},
		{"Stratum", "y", EmitsTrue},
		{"ReferenceID", "u", EmitsTrue},
		{"Leap", "s", EmitsTrue},
		{"SelectedSource", "o", EmitsTrue},
		{"Sources", "ao", EmitsTrue},
		{"Panic", "s", EmitsTrue},
		{"AccuracyStatus", "s", EmitsTrue},
	},
	Methods: []MethodSpec{
		{"Reload", []ArgSpec{in("interactive", "b"), out("changes", "as")}},
		{"AddSource", []ArgSpec{in("mode", "s"), in("address", "s"), in("interactive", "b"), out("source", "o")}},
		{"RemoveSource", []ArgSpec{in("source", "o"), in("interactive", "b")}},
		{"Burst", []ArgSpec{in("source", "o"), in("interactive", "b")}},
		{"GetServers", []ArgSpec{out("servers", "aa{sv}")}},
	},
}

// GnomonSourceSpec is org.gnomon.Gnomon1.Source (docs/dbus.md).
var GnomonSourceSpec = &InterfaceSpec{
	Name: "org.gnomon.Gnomon1.Source",
	Props: []PropSpec{
		{"ID", "t", EmitsConst},
		{"Name", "s", EmitsConst},
		{"Address", "s", EmitsConst},
		{"Kind", "s", EmitsConst},
		{"Origin", "s", EmitsConst},
		{"Reachability", "y", EmitsTrue},
		{"Offset", "x", EmitsFalse},
		{"Delay", "t", EmitsFalse},
		{"Jitter", "t", EmitsFalse},
		{"Stratum", "y", EmitsTrue},
		{"PollInterval", "t", EmitsFalse},
		{"State", "s", EmitsTrue},
		{"LastError", "s", EmitsFalse},
		{"Refclock", "a{sv}", EmitsFalse},
		{"PTPPortState", "s", EmitsFalse},
		{"PTPGrandmaster", "s", EmitsFalse},
		{"PTPParent", "s", EmitsFalse},
		{"PTPDecision", "s", EmitsFalse},
		{"PTPPHC", "a{sv}", EmitsFalse},
		{"PTPLink", "a{sv}", EmitsFalse},
		{"Counters", "a{sv}", EmitsFalse},
	},
}

// SourcePath is a source's object path.
func SourcePath(id system.ID) godbus.ObjectPath {
	return godbus.ObjectPath(pathSources + "/" + strconv.FormatUint(uint64(id), 10))
}

// sourceID parses a source object path; ok is false for anything else.
func sourceID(p godbus.ObjectPath) (system.ID, bool) {
	rest, ok := strings.CutPrefix(string(p), pathSources+"/")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(rest, 10, 64)
	if err != nil || n == 0 {
		return 0, false
	}
	return system.ID(n), true
}

// managerView is the Manager's properties computed from one snapshot.
type managerView struct {
	Synchronized   bool
	State          string
	ClockMode      string
	NTP            bool
	Offset         int64
	Frequency      float64
	RootDelay      uint64
	RootDispersion uint64
	Stratum        byte
	ReferenceID    uint32
	Leap           string
	SelectedSource godbus.ObjectPath
	Sources        []godbus.ObjectPath
	Panic          string
	AccuracyStatus string
}

func (s *Service) managerView(sn *system.Snapshot) managerView {
	v := managerView{
		ClockMode:      s.b.ClockMode(),
		NTP:            s.b.NTP(),
		SelectedSource: "/",
		Sources:        []godbus.ObjectPath{},
		State:          string(system.StateUnsynchronized),
		Stratum:        16,
		Leap:           "unsynchronized",
	}
	if sn == nil {
		return v
	}
	v.Synchronized = sn.Synchronized
	v.State = string(sn.State)
	v.Offset = int64(sn.LastOffset)
	v.Frequency = sn.FreqPPM
	v.RootDelay = uint64(max(sn.RootDelay, 0))
	v.RootDispersion = uint64(max(sn.RootDispersion, 0))
	v.Stratum = sn.Stratum
	v.ReferenceID = sn.RefID
	v.Leap = sn.Leap.String()
	if !sn.Synchronized {
		v.Leap = "unsynchronized"
	}
	v.Panic = sn.Panic
	if sn.TargetOutOfReach {
		r, p := sn.Reachable, time.Duration(1) // two significant digits: no signal at every update
		for r/p >= 100 {
			p *= 10
		}
		v.AccuracyStatus = fmt.Sprintf("accuracy target %v out of reach; about %v reachable (polling backed off)", sn.Accuracy, r.Round(p))
	}
	if sn.SystemPeer != 0 {
		v.SelectedSource = SourcePath(sn.SystemPeer)
	}
	ids := make([]uint64, 0, len(sn.Sources))
	for _, src := range sn.Sources {
		ids = append(ids, uint64(src.ID))
	}
	slices.Sort(ids)
	for _, id := range ids {
		v.Sources = append(v.Sources, SourcePath(system.ID(id)))
	}
	return v
}

// significant reports whether a measurement moved enough to signal: by
// more than a tenth of its own magnitude, or across zero.
func significant(old, cur float64) bool {
	if old == cur {
		return false
	}
	if (old < 0) != (cur < 0) || old == 0 || cur == 0 {
		return true
	}
	return math.Abs(cur-old) > math.Abs(old)/10
}

// changes lists the Manager properties to signal going from a to b.
func (a managerView) changes(b managerView) map[string]godbus.Variant {
	c := map[string]godbus.Variant{}
	add := func(name string, differ bool, v any) {
		if differ {
			c[name] = godbus.MakeVariant(v)
		}
	}
	add("Synchronized", a.Synchronized != b.Synchronized, b.Synchronized)
	add("State", a.State != b.State, b.State)
	add("ClockMode", a.ClockMode != b.ClockMode, b.ClockMode)
	add("NTP", a.NTP != b.NTP, b.NTP)
	add("Offset", significant(float64(a.Offset), float64(b.Offset)), b.Offset)
	add("Frequency", significant(a.Frequency, b.Frequency), b.Frequency)
	add("RootDelay", significant(float64(a.RootDelay), float64(b.RootDelay)), b.RootDelay)
	add("RootDispersion", significant(float64(a.RootDispersion), float64(b.RootDispersion)), b.RootDispersion)
	add("Stratum", a.Stratum != b.Stratum, b.Stratum)
	add("ReferenceID", a.ReferenceID != b.ReferenceID, b.ReferenceID)
	add("Leap", a.Leap != b.Leap, b.Leap)
	add("SelectedSource", a.SelectedSource != b.SelectedSource, b.SelectedSource)
	add("Sources", !slices.Equal(a.Sources, b.Sources), b.Sources)
	add("Panic", a.Panic != b.Panic, b.Panic)
	add("AccuracyStatus", a.AccuracyStatus != b.AccuracyStatus, b.AccuracyStatus)
	return c
}

// merge keeps, for the measurement properties, the value last signalled
// (so slow drifts add up to a signal) and takes everything else from cur.
func (a managerView) merge(cur managerView, sent map[string]godbus.Variant) managerView {
	out := cur
	if _, ok := sent["Offset"]; !ok {
		out.Offset = a.Offset
	}
	if _, ok := sent["Frequency"]; !ok {
		out.Frequency = a.Frequency
	}
	if _, ok := sent["RootDelay"]; !ok {
		out.RootDelay = a.RootDelay
	}
	if _, ok := sent["RootDispersion"]; !ok {
		out.RootDispersion = a.RootDispersion
	}
	return out
}

// sourceView is what a Source signals on.
type sourceView struct {
	State     string
	Reachable bool
	Reach     byte
	Stratum   byte
}

type gnomonManager struct {
	s     *Service
	props *propsObject

	mu      sync.Mutex
	last    managerView
	started bool
	sources map[system.ID]sourceView
}

func newGnomonManager(s *Service) *gnomonManager {
	g := &gnomonManager{s: s, sources: map[system.ID]sourceView{}}
	view := func() managerView { return s.managerView(s.b.Snapshot()) }
	g.props = &propsObject{ifaces: []propIface{{spec: GnomonManagerSpec, get: map[string]getter{
		"Version":        func() (any, error) { return s.opts.Version, nil },
		"Synchronized":   func() (any, error) { return view().Synchronized, nil },
		"State":          func() (any, error) { return view().State, nil },
		"ClockMode":      func() (any, error) { return s.b.ClockMode(), nil },
		"ObserveReason":  func() (any, error) { return observeReason(s.b), nil },
		"NTP":            func() (any, error) { return s.b.NTP(), nil },
		"Offset":         func() (any, error) { return view().Offset, nil },
		"Frequency":      func() (any, error) { return view().Frequency, nil },
		"RootDelay":      func() (any, error) { return view().RootDelay, nil },
		"RootDispersion": func() (any, error) { return view().RootDispersion, nil },
		"Stratum":        func() (any, error) { return view().Stratum, nil },
		"ReferenceID":    func() (any, error) { return view().ReferenceID, nil },
		"Leap":           func() (any, error) { return view().Leap, nil },
		"SelectedSource": func() (any, error) { return view().SelectedSource, nil },
		"Sources":        func() (any, error) { return view().Sources, nil },
		"Panic":          func() (any, error) { return view().Panic, nil },
		"AccuracyStatus": func() (any, error) { return view().AccuracyStatus, nil },
	}}}}
	return g
}

// observeReason is why the clock mode is observe, "" in system mode, for
// a Backend that can say (ObserveReason is optional: the property reads ""
// when the backend does not implement it).
func observeReason(b Backend) string {
	if r, ok := b.(interface{ ObserveReason() string }); ok {
		return r.ObserveReason()
	}
	return ""
}

func (g *gnomonManager) export(conn *godbus.Conn) error {
	if err := conn.Export(g, PathGnomon, GnomonManagerSpec.Name); err != nil {
		return err
	}
	if err := conn.Export(g.props, PathGnomon, ifaceProperties); err != nil {
		return err
	}
	return conn.Export(&introspectObject{ifaces: []*InterfaceSpec{GnomonManagerSpec}, children: func() []string {
		if len(g.s.b.Snapshot().Sources) > 0 {
			return []string{"source"}
		}
		return nil
	}}, PathGnomon, ifaceIntrospect)
}

// refresh emits the Manager's and the sources' meaningful changes.
func (g *gnomonManager) refresh(sn *system.Snapshot) {
	cur := g.s.managerView(sn)
	g.mu.Lock()
	var changed map[string]godbus.Variant
	if g.started {
		changed = g.last.changes(cur)
		g.last = g.last.merge(cur, changed)
	} else {
		g.last, g.started = cur, true
	}
	type srcSignal struct {
		id system.ID
		c  map[string]godbus.Variant
	}
	var srcSignals []srcSignal
	seen := map[system.ID]bool{}
	for _, src := range sn.Sources {
		seen[src.ID] = true
		v := sourceView{State: sourceState(src), Reachable: src.Reach != 0, Reach: src.Reach, Stratum: src.Stratum}
		old, ok := g.sources[src.ID]
		g.sources[src.ID] = v
		if !ok {
			continue
		}
		c := map[string]godbus.Variant{}
		if old.State != v.State {
			c["State"] = godbus.MakeVariant(v.State)
		}
		if old.Reachable != v.Reachable {
			c["Reachability"] = godbus.MakeVariant(v.Reach)
		}
		if old.Stratum != v.Stratum {
			c["Stratum"] = godbus.MakeVariant(v.Stratum)
		}
		if len(c) > 0 {
			srcSignals = append(srcSignals, srcSignal{src.ID, c})
		}
	}
	for id := range g.sources {
		if !seen[id] {
			delete(g.sources, id)
		}
	}
	g.mu.Unlock()
	g.s.emit(PathGnomon, GnomonManagerSpec.Name, changed)
	for _, ss := range srcSignals {
		g.s.emit(SourcePath(ss.id), GnomonSourceSpec.Name, ss.c)
	}
}

// ntpChanged signals NTP at once after SetNTP.
func (g *gnomonManager) ntpChanged() {
	ntp := g.s.b.NTP()
	g.mu.Lock()
	differ := g.last.NTP != ntp
	g.last.NTP = ntp
	g.mu.Unlock()
	if differ {
		g.s.emit(PathGnomon, GnomonManagerSpec.Name, map[string]godbus.Variant{"NTP": godbus.MakeVariant(ntp)})
	}
}

// sourceState is the Source's State: the selection state, with
// "unreachable" for a source that no longer answers.
func sourceState(src system.SourceSnapshot) string {
	if src.Selection == "" {
		return "none"
	}
	return src.Selection
}

// syncSources exports an object per current source and unexports the
// objects of sources that are gone.
func (s *Service) syncSources(conn *godbus.Conn) {
	sn := s.b.Snapshot()
	if sn == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != conn {
		return
	}
	cur := map[uint64]bool{}
	for _, src := range sn.Sources {
		id := uint64(src.ID)
		cur[id] = true
		if s.exported[id] {
			continue
		}
		if err := s.exportSource(conn, src.ID); err != nil {
			s.log.Warn("D-Bus: cannot export source object", "id", id, "err", err)
			continue
		}
		s.exported[id] = true
	}
	for id := range s.exported {
		if !cur[id] {
			p := SourcePath(system.ID(id))
			_ = conn.Export(nil, p, ifaceProperties)
			_ = conn.Export(nil, p, ifaceIntrospect)
			delete(s.exported, id)
		}
	}
}

func (s *Service) exportSource(conn *godbus.Conn, id system.ID) error {
	find := func() (system.SourceSnapshot, error) {
		sn := s.b.Snapshot()
		for _, src := range sn.Sources {
			if src.ID == id {
				return src, nil
			}
		}
		return system.SourceSnapshot{}, newError("org.freedesktop.DBus.Error.UnknownObject", "source %d is gone", id)
	}
	field := func(f func(system.SourceSnapshot) any) getter {
		return func() (any, error) {
			src, err := find()
			if err != nil {
				return nil, err
			}
			return f(src), nil
		}
	}
	props := &propsObject{ifaces: []propIface{{spec: GnomonSourceSpec, get: map[string]getter{
		"ID":           field(func(x system.SourceSnapshot) any { return uint64(x.ID) }),
		"Name":         field(func(x system.SourceSnapshot) any { return x.Name }),
		"Address":      field(func(x system.SourceSnapshot) any { return x.Address }),
		"Kind":         field(func(x system.SourceSnapshot) any { return x.Kind }),
		"Origin":       field(func(x system.SourceSnapshot) any { return x.Origin }),
		"Reachability": field(func(x system.SourceSnapshot) any { return x.Reach }),
		"Offset":       field(func(x system.SourceSnapshot) any { return int64(x.Offset) }),
		"Delay":        field(func(x system.SourceSnapshot) any { return uint64(max(x.Delay, 0)) }),
		"Jitter":       field(func(x system.SourceSnapshot) any { return uint64(max(x.Jitter, 0)) }),
		"Stratum":      field(func(x system.SourceSnapshot) any { return x.Stratum }),
		"PollInterval": field(func(x system.SourceSnapshot) any { return pollUSec(x.Poll) }),
		"State":        field(func(x system.SourceSnapshot) any { return sourceState(x) }),
		"LastError":    field(func(x system.SourceSnapshot) any { return x.LastError }),
		"Refclock":     field(func(x system.SourceSnapshot) any { return refclockProps(x.Refclock) }),
		"PTPPortState": field(func(x system.SourceSnapshot) any {
			return ptpField(x, func(v *ptp.View) string { return v.State.String() })
		}),
		"PTPGrandmaster": field(func(x system.SourceSnapshot) any {
			return ptpField(x, func(v *ptp.View) string { return v.Grandmaster.String() })
		}),
		"PTPParent": field(func(x system.SourceSnapshot) any {
			return ptpField(x, func(v *ptp.View) string { return v.Parent.String() })
		}),
		"PTPDecision": field(func(x system.SourceSnapshot) any {
			return ptpField(x, func(v *ptp.View) string { return v.Decision.String() })
		}),
		"PTPPHC":   field(func(x system.SourceSnapshot) any { return ptpPHCProps(x) }),
		"PTPLink":  field(func(x system.SourceSnapshot) any { return ptpLinkProps(x) }), // ptplink.go
		"Counters": func() (any, error) { return s.sourceCounters(id) },
	}}}}
	p := SourcePath(id)
	if err := conn.Export(props, p, ifaceProperties); err != nil {
		return err
	}
	return conn.Export(&introspectObject{ifaces: []*InterfaceSpec{GnomonSourceSpec}}, p, ifaceIntrospect)
}

// The Manager's methods, each behind org.gnomon.manage-sources.

func (g *gnomonManager) sourceArg(p godbus.ObjectPath, allowRoot bool) (system.ID, *godbus.Error) {
	if allowRoot && p == "/" {
		return 0, nil
	}
	id, ok := sourceID(p)
	if !ok {
		return 0, newError(ErrInvalidArgs, "Not a source object: %s", p)
	}
	for _, src := range g.s.b.Snapshot().Sources {
		if src.ID == id {
			return id, nil
		}
	}
	return 0, newError(ErrNoSuchSource, "No such source: %s", p)
}

func (g *gnomonManager) backendError(err error) *godbus.Error {
	return newError(ErrGnomonFailed, "%v", err)
}

func (g *gnomonManager) run(f func(ctx context.Context) error) *godbus.Error {
	ctx, cancel := g.s.call()
	defer cancel()
	if err := f(ctx); err != nil {
		return g.backendError(err)
	}
	return nil
}

// Reload re-reads the configuration file and returns what changed, one
// line each.
func (g *gnomonManager) Reload(msg godbus.Message, interactive bool) ([]string, *godbus.Error) {
	if err := g.s.authorize(&msg, polkit.ActionManageSources, interactive); err != nil {
		return nil, err
	}
	var changes []string
	if err := g.run(func(ctx context.Context) error {
		var err error
		changes, err = g.s.b.Reload(ctx)
		return err
	}); err != nil {
		return nil, err
	}
	if changes == nil {
		changes = []string{}
	}
	return changes, nil
}

// AddSource adds a source and returns its object.
func (g *gnomonManager) AddSource(msg godbus.Message, mode, address string, interactive bool) (godbus.ObjectPath, *godbus.Error) {
	switch mode {
	case "server", "pool", "nts":
	default:
		return "/", newError(ErrInvalidArgs, "Invalid source mode %q (server, pool or nts)", mode)
	}
	if strings.TrimSpace(address) == "" || strings.ContainsAny(address, " \t\n/") {
		return "/", newError(ErrInvalidArgs, "Invalid source address %q", address)
	}
	if err := g.s.authorize(&msg, polkit.ActionManageSources, interactive); err != nil {
		return "/", err
	}
	var id system.ID
	if err := g.run(func(ctx context.Context) error {
		var err error
		id, err = g.s.b.AddSource(ctx, mode, address)
		return err
	}); err != nil {
		return "/", err
	}
	if conn := g.s.current(); conn != nil {
		g.s.syncSources(conn)
	}
	return SourcePath(id), nil
}

// RemoveSource removes a source.
func (g *gnomonManager) RemoveSource(msg godbus.Message, source godbus.ObjectPath, interactive bool) *godbus.Error {
	id, derr := g.sourceArg(source, false)
	if derr != nil {
		return derr
	}
	if err := g.s.authorize(&msg, polkit.ActionManageSources, interactive); err != nil {
		return err
	}
	return g.run(func(ctx context.Context) error { return g.s.b.RemoveSource(ctx, id) })
}

// Burst polls a source, or every source for "/", quickly now.
func (g *gnomonManager) Burst(msg godbus.Message, source godbus.ObjectPath, interactive bool) *godbus.Error {
	id, derr := g.sourceArg(source, true)
	if derr != nil {
		return derr
	}
	if err := g.s.authorize(&msg, polkit.ActionManageSources, interactive); err != nil {
		return err
	}
	return g.run(func(ctx context.Context) error { return g.s.b.Burst(ctx, id) })
}

// ptpField is a PTP port's property, "" for other sources.
func ptpField(x system.SourceSnapshot, f func(*ptp.View) string) string {
	if x.PTP == nil {
		return ""
	}
	return f(x.PTP)
}
