// Package config reads gnomond's configuration, /etc/gnomon/gnomon.toml.
//
// A configuration is built in three steps: Default gives every setting its
// default, the file is laid over it (strictly: an unknown key, a wrong type
// or an impossible value anywhere is an error), and Validate checks the
// result as a whole. Every problem found is reported, each with its file,
// line and key, as Errors; nothing half-configured is ever returned. Check
// then lists settings that are legal but risky, as Warnings.
//
// Durations are written in the file as seconds (TOML integers or floats, as
// in chrony and ntpd-rs) and held here as time.Duration. Key paths in
// messages use 0-based indices for arrays: source[0] is the first [[source]].
package config

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"

	"github.com/BurntSushi/toml"
)

// DefaultPath is where gnomond looks for its configuration.
const DefaultPath = "/etc/gnomon/gnomon.toml"

// EmbeddedName is the file name used in messages about the embedded default.
const EmbeddedName = "(embedded gnomon.toml)"

// maxFileSize bounds what Load reads: a configuration is a few kilobytes.
const maxFileSize = 1 << 20

// Config is gnomond's whole configuration.
type Config struct {
	Clock           ClockConfig
	Synchronization SyncConfig
	Sources         []SourceConfig
	SourceDefaults  SourceDefaults
	Servers         []ServerConfig
	NTSKEServers    []NTSKEServerConfig
	PTPPorts        []PTPPortConfig     // [[ptp-port]] (ptp.go)
	CSPTPServers    []CSPTPServerConfig // [[csptp-server]] (csptp.go)
	Log             LogConfig
	Security        SecurityConfig
	Authentication  AuthConfig // see auth.go
	DHCP            DHCPConfig // see dhcp.go

	// Path is the file the configuration came from; "" for the embedded
	// default and for one built by code.
	Path string
	// FileMode is the permission bits of Path when Load read it, 0 otherwise.
	// Check warns when the file is world-writable.
	FileMode fs.FileMode

	// lines maps key paths to the lines they are on in Path, for the
	// positions of errors and warnings. nil when not parsed from a file.
	lines map[string]int
}

// ClockConfig is [clock]: what gnomond may do to the system clock.
type ClockConfig struct {
	// Mode is "system" (discipline the system clock) or "observe" (never touch
	// a clock). Defaults to system when the daemon may set the clock
	// (Options.CanSetClock), else observe.
	Mode ClockMode
	// ModeSet says Mode was given in the file rather than defaulted, so
	// gnomond can tell an observe mode asked for from one it fell into.
	ModeSet bool
	// StepThreshold: offsets larger than this are corrected by a step (while
	// steps are allowed), smaller ones by slewing. Default 0.1 s.
	StepThreshold time.Duration
	// StepLimit is how many steps are allowed after start; -1 means always
	// (chrony's makestep limit). Default 3.
	StepLimit int
	// PanicThreshold: larger offsets are refused and reported, never applied.
	// 0 means no limit. Default 1000 s.
	PanicThreshold time.Duration
	// DriftFile keeps the frequency across restarts; "" means none.
	DriftFile string
	// MaxFrequencyPPM bounds the absolute estimated frequency error, 1..500.
	MaxFrequencyPPM float64
}

// SyncConfig is [synchronization]: how sources are combined.
type SyncConfig struct {
	// MinimumAgreeingSources is how many sources must agree before the clock
	// is adjusted (ntpd-rs minimum-agreeing-sources, chrony minsources). >= 1.
	MinimumAgreeingSources int
	// MaxDistance: sources with a larger root distance are not selected
	// (chrony maxdistance). Default 3 s.
	MaxDistance time.Duration
	// Accuracy is what the user needs; sources are polled as rarely as still
	// meets it. 1 µs .. 10 s, default 1 ms.
	Accuracy time.Duration
	// LocalStratum is the stratum served when no source is selected, 1..16
	// (16 says "unsynchronized"). Default 16.
	LocalStratum int
	// LeapSecondsFile is the IERS/NIST leap-seconds.list that checks the
	// sources' leap announcements and sets the kernel's TAI offset; ""
	// for none (leapfile.go).
	LeapSecondsFile string
}

// PollIntervalLimits bounds the poll interval, as log2 seconds (4 = 16 s).
type PollIntervalLimits struct {
	Min int
	Max int
}

// Poll interval limits allowed in the file, log2 seconds (1/64 s .. 36 h).
const (
	MinPollLimit = -6
	MaxPollLimit = 17
)

// SourceConfig is one [[source]].
type SourceConfig struct {
	Mode SourceMode
	// Address is "host:port" (IPv6 as "[addr]:port"), always with a port:
	// the file's port, else 123 (server, pool) or 4460 (nts).
	Address            string
	PollIntervalLimits PollIntervalLimits
	IBurst             bool // a quick burst of requests at start (default true)
	Prefer             bool
	NoSelect           bool // measured and shown, never used to adjust the clock
	// Trust: assumed correct in selection (chrony's trust): the others
	// cannot vote it out as a falseticker, they must agree with it.
	Trust bool
	// Count is how many members of a pool to use, 1..16 (default 4); 0 for
	// other modes.
	Count int
	// CertificateAuthority is an extra CA file trusted for this NTS source's
	// key exchange, besides the system's; "" for none and for other modes.
	CertificateAuthority string
	// Refclock is a reference clock's settings (modes gpsd, pps, shm,
	// sock; refclock.go), nil for NTP sources.
	Refclock *RefclockConfig
	// PTP is the settings of a mode = "ptp" source (ptp.go), nil otherwise.
	PTP *PTPCommon
	// Key is the symmetric key (ID in [authentication] key-file) that
	// signs every exchange; 0 for none. Server and pool modes only.
	Key uint32
	// XLeave asks the server for the interleaved mode (chrony's xleave).
	XLeave bool
	// CSPTP is the settings of a mode = "csptp" source (csptp.go).
	CSPTP *CSPTPSourceConfig
}

// Host is the host part of Address (a DNS name or an IP address).
func (s SourceConfig) Host() string {
	h, _, err := net.SplitHostPort(s.Address)
	if err != nil {
		return s.Address
	}
	return h
}

// Port is the port part of Address, 0 if it has none.
func (s SourceConfig) Port() uint16 {
	_, p, err := net.SplitHostPort(s.Address)
	if err != nil {
		return 0
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return 0
	}
	return uint16(n)
}

// SourceDefaults is [source-defaults]: settings for sources that do not set
// their own.
type SourceDefaults struct {
	PollIntervalLimits PollIntervalLimits
}

// ServerConfig is one [[server]]: an NTP server on one address.
type ServerConfig struct {
	Listen netip.AddrPort
	// Allowlist, when set, serves only clients inside it. nil = everyone.
	Allowlist *AddressFilter
	// Denylist, when set, refuses clients inside it (checked after Allowlist).
	Denylist  *AddressFilter
	RateLimit RateLimit
	// Workers is how many receive sockets/goroutines share the address
	// (SO_REUSEPORT); 0 = one per CPU.
	Workers int
	// Keys are the key IDs a signed request may use (answers are signed
	// with the request's key); nil = every key of the key file.
	Keys []uint32
	// RequireKey drops requests that are not signed with one of Keys.
	RequireKey bool
	// XLeave answers interleaved requests with the kernel's transmit
	// timestamp of the previous answer (chrony's server does by default).
	XLeave bool
	// LeapSmear spreads a leap second over this window in the time served
	// (0: off); see engine/ntp/smear.go.
	LeapSmear time.Duration
}

// AddressFilter is an allowlist or denylist.
type AddressFilter struct {
	Filter []netip.Prefix
	Action FilterAction // what to do with a refused client
}

// Contains reports whether addr is inside one of the filter's prefixes. An
// IPv4-mapped IPv6 address matches as the IPv4 address it carries.
func (f *AddressFilter) Contains(addr netip.Addr) bool {
	if f == nil {
		return false
	}
	addr = addr.Unmap().WithZone("")
	for _, p := range f.Filter {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// RateLimit limits how often each client is answered. Interval 0 = off.
type RateLimit struct {
	// Interval is the average minimum interval between a client's requests.
	Interval time.Duration
	// Burst is how many requests a client may send in a row.
	Burst int
	// KoD sends a Kiss-o'-Death RATE instead of silently dropping.
	KoD bool
	// TableSize is how many clients are tracked.
	TableSize int
}

// Enabled reports whether rate limiting is on.
func (r RateLimit) Enabled() bool { return r.Interval > 0 }

// NTSKEServerConfig is one [[nts-ke-server]]: an NTS key-exchange server.
type NTSKEServerConfig struct {
	Listen               netip.AddrPort
	CertificateChainPath string
	PrivateKeyPath       string
	// KeyExchangeTimeout bounds one key exchange. Default 1 s.
	KeyExchangeTimeout time.Duration
	// MaxConnectionsPerAddress is how many connections one client address
	// (IPv6: /64) may have open at once; 0 is no limit. Default 8.
	MaxConnectionsPerAddress int
	// ConnectionRatePerAddress is how many new connections a second one
	// address may open on average (bursts of 8 times that, at least 32);
	// 0 is no limit. Default 4.
	ConnectionRatePerAddress float64
}

// LogConfig is [log].
type LogConfig struct {
	Level  LogLevel
	Format LogFormat
}

// SecurityConfig is [security].
type SecurityConfig struct {
	// Seccomp confines the daemon to the system calls it needs. Default true.
	Seccomp bool
	// User is who gnomond becomes once its sockets are bound, when started
	// as root (DefaultUser); "" stays root. gnomond's --user overrides it.
	User string
}

// Options are facts about the running daemon that change defaults.
type Options struct {
	// CanSetClock: the daemon holds CAP_SYS_TIME (decided on capabilities,
	// not on the uid: the packaged unit runs as user gnomon with it as an
	// ambient capability), so the clock mode defaults to "system";
	// otherwise it defaults to "observe".
	CanSetClock bool
}

// Defaults used when the file does not say otherwise.
var (
	defaultPollLimits = PollIntervalLimits{Min: 6, Max: 10}
	defaultRateLimit  = RateLimit{Interval: 2 * time.Second, Burst: 16, KoD: true, TableSize: 65536}
)

// DefaultUser is the packaged service user gnomond switches to.
const DefaultUser = "gnomon"

const (
	defaultPoolCount          = 4
	defaultKeyExchangeTimeout = time.Second
)

// Default is the configuration with every setting at its default and no
// sources, servers or NTS-KE servers.
func Default(opts Options) *Config {
	mode := ClockObserve
	if opts.CanSetClock {
		mode = ClockSystem
	}
	return &Config{
		Clock: ClockConfig{
			Mode:            mode,
			StepThreshold:   100 * time.Millisecond,
			StepLimit:       3,
			PanicThreshold:  1000 * time.Second,
			DriftFile:       "/var/lib/gnomon/drift",
			MaxFrequencyPPM: 500,
		},
		Synchronization: SyncConfig{
			MinimumAgreeingSources: 1,
			MaxDistance:            3 * time.Second,
			Accuracy:               time.Millisecond,
			LocalStratum:           16,
		},
		SourceDefaults: SourceDefaults{PollIntervalLimits: defaultPollLimits},
		Log:            LogConfig{Level: LogInfo, Format: LogAuto},
		Security:       SecurityConfig{Seccomp: true, User: DefaultUser},
	}
}

// Parse reads a configuration from data, laid over Default(opts). name is
// the file name used in messages and kept as Config.Path. On any problem it
// returns nil and Errors listing every problem found.
func Parse(name string, data []byte, opts Options) (*Config, error) {
	// The line scanner goes first: it bounds the nesting and the work that
	// the TOML library and the decoder would otherwise spend (positions.go).
	lines, lim := scanKeys(data)
	if lim != nil {
		return nil, Errors{{File: name, Line: lim.line, Msg: lim.msg}}
	}
	var tree map[string]any
	if _, err := toml.NewDecoder(bytes.NewReader(data)).Decode(&tree); err != nil {
		return nil, Errors{syntaxError(name, err)}
	}
	c := Default(opts)
	c.Path = name
	c.lines = lines

	d := &decoder{file: name, lines: c.lines}
	d.decode(tree, c)

	// Validate what decoded; a key that already failed to decode is not
	// reported a second time (a bad mode is not also a missing mode).
	errs := d.errs
	for _, e := range c.validate() {
		if !d.reported(e.Key) {
			errs = append(errs, e)
		}
	}
	if len(errs) > 0 {
		sortErrors(errs)
		if n := len(errs) - MaxErrors + d.dropped; n > 0 {
			line := errs[len(errs)-1].Line
			if len(errs) > MaxErrors {
				line = errs[MaxErrors].Line
			}
			more := &Error{File: name, Line: line,
				Msg: fmt.Sprintf("and %d more errors (only the first %d are listed)", n, min(len(errs), MaxErrors))}
			errs = append(errs[:min(len(errs), MaxErrors):min(len(errs), MaxErrors)], more)
		}
		return nil, errs
	}
	return c, nil
}

// MaxErrors is how many errors Parse lists; one more says how many were
// left out.
const MaxErrors = 100

// syntaxError turns what the TOML library says into an *Error.
func syntaxError(name string, err error) *Error {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		return &Error{File: name, Line: pe.Position.Line, Column: pe.Position.Col,
			Msg: "invalid TOML: " + pe.Message, Err: err}
	}
	return &Error{File: name, Msg: "invalid TOML: " + err.Error(), Err: err}
}

// Load reads and parses the file at path. Problems are returned as Errors
// (I/O errors too: errors.Is(err, fs.ErrNotExist) works), with a nil Config.
func Load(path string, opts Options) (*Config, error) {
	fail := func(msg string, err error) (*Config, error) {
		return nil, Errors{{File: path, Msg: msg, Err: err}}
	}
	f, err := os.Open(path)
	if err != nil {
		return fail(describeIOError(err), err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return fail(describeIOError(err), err)
	}
	if !fi.Mode().IsRegular() {
		return fail(fmt.Sprintf("not a regular file (%s)", fi.Mode().Type()), nil)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return fail(describeIOError(err), err)
	}
	if len(data) > maxFileSize {
		return fail(fmt.Sprintf("larger than %d bytes; is this the right file?", maxFileSize), nil)
	}
	c, err := Parse(path, data, opts)
	if err != nil {
		return nil, err
	}
	c.FileMode = fi.Mode().Perm()
	return c, nil
}

func describeIOError(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return "cannot " + pe.Op + ": " + pe.Err.Error()
	}
	return err.Error()
}

//go:embed gnomon.toml
var embedded []byte

// Embedded parses the packaged default configuration (service/config/
// gnomon.toml, installed as configs/gnomon.toml). Its Path is "".
func Embedded(opts Options) (*Config, error) {
	c, err := Parse(EmbeddedName, embedded, opts)
	if err != nil {
		return nil, err
	}
	c.Path = ""
	return c, nil
}

// EmbeddedTOML returns a copy of the packaged default configuration file.
func EmbeddedTOML() []byte { return bytes.Clone(embedded) }
