package migrate

import (
	"errors"
	"strconv"
	"strings"

	"gnomon.dev/gnomon/service/config"
)

// keyFileDirective takes chrony's keyfile: gnomond reads the same file
// (chrony's format) as [authentication] key-file.
func (m *migration) keyFileDirective(l *line) {
	args := l.args()
	if len(args) != 1 {
		m.warnAt(l, "want one file name; dropped")
		return
	}
	if m.keyFile.set {
		m.warnAt(l, "a second keyfile replaces %s (chronyd uses the last one)", m.keyFile.v)
	}
	m.keyFile.put(args[0], at(l))
}

// tzdataLeapFile is the leap-seconds file of Debian's tzdata.
const tzdataLeapFile = "/usr/share/zoneinfo/leap-seconds.list"

// leapDirective takes leapseclist FILE, and leapsectz (a right/ zone of
// tzdata) as tzdata's leap-seconds.list.
func (m *migration) leapDirective(l *line) {
	args := l.args()
	if len(args) != 1 {
		m.warnAt(l, "want one argument; dropped")
		return
	}
	if m.leapFile.set {
		m.warnAt(l, "replaces %s (%s:%d); gnomond reads one leap-seconds file", m.leapFile.v, m.leapFile.at.file, m.leapFile.at.num)
	}
	if l.name() == "leapsectz" {
		m.warnAt(l, "gnomond reads the leap seconds of the same tzdata from %s, not from a right/ zone", tzdataLeapFile)
		m.leapFile.put(tzdataLeapFile, at(l))
		return
	}
	m.leapFile.put(args[0], at(l))
}

// sourceKey checks a source's key option and returns the key ID, or 0
// (with a warning) when it cannot be carried over.
func (m *migration) sourceKey(l *line, val string, nts bool) uint32 {
	id, err := strconv.ParseUint(val, 10, 32)
	switch {
	case err != nil || id == 0:
		m.warnOpt(l, "key", "%q is not a key ID (1 to 4294967295); this source will be used WITHOUT authentication", val)
		return 0
	case nts:
		m.warnOpt(l, "key", "chronyd does not combine key with nts; NTS authenticates this source, key %d dropped", id)
		return 0
	}
	return uint32(id)
}

// emitAuth writes [authentication] and drops the key of every source when
// there is no key file to read it from.
func (m *migration) emitAuth(w *tomlWriter) {
	if !m.keyFile.set {
		for _, s := range m.sources {
			if s.key != 0 {
				m.warn(s.at.file, s.at.num, s.at.dir+" key", "no keyfile directive: chronyd has no key %d either, and neither will gnomond; this source will be used WITHOUT authentication", s.key)
			}
		}
		return
	}
	w.header("[authentication]")
	w.from(m.keyFile.at)
	w.comment("gnomond reads chrony's key file as it is, but refuses one readable by everyone (chmod o-rwx)")
	w.kv("key-file", quote(m.keyFile.v))
}

// Check parses a migration's output as gnomond would. Problems with the
// key file or leap-seconds file it names (unreadable by this user, readable by everyone, a
// source's key missing from it) are returned apart, as keyProblems: they
// are about the machine, not the migration, and gnomond reports them
// again when it starts; err holds any other problem.
func Check(name string, toml []byte) (keyProblems config.Errors, err error) {
	_, err = config.Parse(name, toml, config.Options{CanSetClock: true})
	var es config.Errors
	if err == nil || !errors.As(err, &es) {
		return nil, err
	}
	var rest config.Errors
	for _, e := range es {
		if e.Key == "authentication.key-file" || strings.HasSuffix(e.Key, ".key") || e.Key == "synchronization.leap-seconds-file" {
			keyProblems = append(keyProblems, e)
		} else {
			rest = append(rest, e)
		}
	}
	if len(rest) > 0 {
		return keyProblems, rest
	}
	return keyProblems, nil
}
