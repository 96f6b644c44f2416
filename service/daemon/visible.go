package daemon

import (
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"syscall"

	"gnomon.dev/gnomon/engine/system"
	"gnomon.dev/gnomon/service/config"
)

// pendingBase is where the IDs of sources that have no engine source yet
// (a name that does not resolve, an NTS key exchange that fails) start:
// far above any engine ID, so an object path never names two sources.
const pendingBase system.ID = 1 << 40

// ErrSourceExists is AddSource's refusal of a source that is already
// there.
var ErrSourceExists = errors.New("source already exists")

// pendingID is the ID a spec shows while it has no engine source.
func pendingID(sp *spec) system.ID { return pendingBase + system.ID(sp.key) }

// addPending adds to sn every spec that has no engine source yet, with
// why (its last resolution or key exchange error), and puts the last
// socket error of a source whose replies stopped in its LastError: every
// configured source is visible, resolved or not, with its last error.
func (d *Daemon) addPending(sn *system.Snapshot) {
	for i := range sn.Sources {
		ls := d.sources[sn.Sources[i].ID]
		if ls == nil || sn.Sources[i].LastError != "" {
			continue
		}
		switch {
		case ls.lastErr != "":
			sn.Sources[i].LastError = ls.lastErr
		case ls.spec.lastErr != "":
			sn.Sources[i].LastError = ls.spec.lastErr
		}
	}
	for _, sp := range d.specs {
		if d.members(sp) > 0 {
			continue
		}
		state := "resolving"
		if sp.src.Mode == config.SourceNTS {
			state = "key-exchange"
		}
		sn.Sources = append(sn.Sources, system.SourceSnapshot{
			ID:        pendingID(sp),
			Name:      sp.src.Host(),
			Address:   sp.src.Address,
			Kind:      string(sp.src.Mode),
			Origin:    sp.origin,
			Protocol:  state,
			Selection: "unresolved",
			Stratum:   0,
			LastError: sp.lastErr,
		})
	}
}

// logSourceChanges logs every change of a source's protocol state
// (reachable, unreachable, ...), with its last error: state changes are
// never rate-limited.
func (d *Daemon) logSourceChanges(sn *system.Snapshot) {
	if d.srcState == nil {
		d.srcState = map[system.ID]string{}
	}
	for _, s := range sn.Sources {
		old, ok := d.srcState[s.ID]
		if old == s.Protocol {
			if !ok {
				d.srcState[s.ID] = s.Protocol
			}
			continue
		}
		d.srcState[s.ID] = s.Protocol
		if !ok && (s.Protocol == "init" || s.Protocol == "resolving" || s.Protocol == "key-exchange") {
			continue // a new source: "source added" said it
		}
		args := []any{"name", s.Name, "address", s.Address, "from", old, "to", s.Protocol}
		if s.LastError != "" {
			args = append(args, "last_error", s.LastError)
		}
		d.log.Info("source state changed", args...)
	}
	if len(d.srcState) > len(sn.Sources) {
		// Sources went away (IDs are never reused): forget them. Every
		// source in sn has an entry, so only then is there one too many;
		// no map of what was seen is built on every snapshot.
		for id := range d.srcState {
			if !slices.ContainsFunc(sn.Sources, func(s system.SourceSnapshot) bool { return s.ID == id }) {
				delete(d.srcState, id)
			}
		}
	}
}

// errText is how a source's error reads in LastError: the system's words
// ("connection refused") without Go's socket-call prefixes.
func errText(err error) string {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno.Error()
	}
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return "resolving: " + dns.Err
	}
	return err.Error()
}

// resolveErrText is LastError for a failed resolution or key exchange.
func resolveErrText(sp *spec, err error) string {
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return fmt.Sprintf("resolving %s: %s", dns.Name, dns.Err)
	}
	if sp.src.Mode == config.SourceNTS {
		return "NTS key exchange: " + strings.TrimPrefix(err.Error(), "ntsio: ")
	}
	return "resolving: " + err.Error()
}

// findSpec is the spec with the same mode and address as src, if any.
func (d *Daemon) findSpec(mode config.SourceMode, address string) *spec {
	for _, sp := range d.specs {
		if sp.src.Mode == mode && strings.EqualFold(sp.src.Address, address) {
			return sp
		}
	}
	return nil
}
