package refclock

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// gpsd speaks JSON lines over TCP (port 2947) or a unix socket: the client
// sends ?WATCH, gpsd answers VERSION, DEVICES and WATCH, then streams one
// report per line: TPV (the fix), SKY (satellites), TOFF (the time of the
// serial message that gave the second, with gpsd's receive timestamp) and
// PPS (a pulse edge with the second it belongs to).

// DefaultMaxLine bounds one gpsd report. gpsd's largest (SKY with many
// satellites) stays well below it.
const DefaultMaxLine = 32 << 10

// Why a gpsd report was ignored.
var (
	ErrLineTooLong = errors.New("gpsd: report longer than the line limit")
	ErrBadJSON     = errors.New("gpsd: report is not valid JSON")
	ErrNoFix       = errors.New("gpsd: no time fix (TPV mode below 2)")
	ErrNoTime      = errors.New("gpsd: fix without time")
	ErrBadReport   = errors.New("gpsd: report with missing or out-of-range fields")
)

// Receiver is what gpsd says about the receiver, for the views.
type Receiver struct {
	// Connected says whether the daemon is connected to gpsd (or has the
	// segment, socket or device open, for the other kinds).
	Connected bool
	Release   string // gpsd's version
	Device    string // the receiver used (gpsd's device path)
	Driver    string
	// Mode is TPV's fix mode: 0 unknown, 1 no fix, 2 2D, 3 3D.
	Mode int
	// Satellites used in the fix and seen, as the newest SKY report
	// said (both 0 before one).
	Satellites, SatellitesSeen int
	// LastFix is the reference time of the newest usable report,
	// LastPPS the second of the newest PPS edge (zero before one).
	LastFix, LastPPS time.Time
	// Ignored counts reports not used; LastIgnored says why the newest
	// one was not.
	Ignored     uint64
	LastIgnored string
}

// GPSD decodes gpsd's report stream into samples. It is a value to feed
// bytes to, as they arrive; Reset it when the connection is new.
type GPSD struct {
	// Device, when set, takes reports from that receiver only; otherwise
	// the first one that reports time is used.
	Device string
	// MaxLine bounds a report (DefaultMaxLine when 0).
	MaxLine int

	State Receiver

	buf        []byte
	discarding bool
	fixOK      bool      // newest TPV of the device had mode >= 2 and time
	lastTOFF   time.Time // local time of the newest TOFF
	lastPPS    time.Time // local time of the newest PPS report
}

// Watch is the command that starts the stream.
func (g *GPSD) Watch() []byte {
	dev := ""
	if g.Device != "" {
		b, _ := json.Marshal(g.Device)
		dev = `,"device":` + string(b)
	}
	return []byte(`?WATCH={"enable":true,"json":true,"pps":true` + dev + "};\n")
}

// Reset forgets a partial line and the fix state (a new connection).
func (g *GPSD) Reset() {
	g.buf = g.buf[:0]
	g.discarding = false
	g.fixOK = false
	g.lastTOFF, g.lastPPS = time.Time{}, time.Time{}
}

func (g *GPSD) maxLine() int {
	if g.MaxLine <= 0 {
		return DefaultMaxLine
	}
	return g.MaxLine
}

// Feed takes bytes read from gpsd at local time rx and appends the samples
// the complete reports among them carry to out. Reports it ignores are
// counted in State and their reasons returned (one error per report).
func (g *GPSD) Feed(data []byte, rx time.Time, out []Sample) ([]Sample, []error) {
	var errs []error
	for len(data) > 0 {
		i := bytes.IndexByte(data, '\n')
		chunk := data
		if i >= 0 {
			chunk = data[:i]
		}
		switch {
		case g.discarding:
		case len(g.buf)+len(chunk) > g.maxLine():
			g.discarding = true
			g.buf = g.buf[:0]
			errs = append(errs, g.ignore(ErrLineTooLong))
		default:
			g.buf = append(g.buf, chunk...)
		}
		if i < 0 {
			break
		}
		data = data[i+1:]
		if g.discarding {
			g.discarding = false
			continue
		}
		line := bytes.TrimSpace(g.buf)
		g.buf = g.buf[:0]
		if len(line) == 0 {
			continue
		}
		var err error
		out, err = g.Line(line, rx, out)
		if err != nil {
			errs = append(errs, g.ignore(err))
		}
	}
	return out, errs
}

func (g *GPSD) ignore(err error) error {
	g.State.Ignored++
	g.State.LastIgnored = err.Error()
	return err
}

type gpsdDevice struct {
	Path   string `json:"path"`
	Driver string `json:"driver"`
}

type gpsdReport struct {
	Class   string       `json:"class"`
	Device  string       `json:"device"`
	Release string       `json:"release"`
	Devices []gpsdDevice `json:"devices"`
	Path    string       `json:"path"`
	Driver  string       `json:"driver"`
	Message string       `json:"message"`
	// TPV
	Mode *int    `json:"mode"`
	Time *string `json:"time"`
	// TOFF, PPS
	RealSec   *int64 `json:"real_sec"`
	RealNsec  *int64 `json:"real_nsec"`
	ClockSec  *int64 `json:"clock_sec"`
	ClockNsec *int64 `json:"clock_nsec"`
	Precision *int   `json:"precision"`
	// SKY
	Satellites []struct {
		Used bool `json:"used"`
	} `json:"satellites"`
	USat *int `json:"uSat"`
	NSat *int `json:"nSat"`
}

// ppsPreferred is how long after a PPS report TOFF and TPV samples are
// left out: the edge is far more exact than the serial message.
const ppsPreferred = 3 * time.Second

// Line decodes one complete report read at local time rx, appending its
// sample (if it carries one) to out.
func (g *GPSD) Line(line []byte, rx time.Time, out []Sample) ([]Sample, error) {
	var r gpsdReport
	if err := json.Unmarshal(line, &r); err != nil {
		return out, fmt.Errorf("%w: %v", ErrBadJSON, err)
	}
	switch r.Class {
	case "VERSION":
		g.State.Release = r.Release
		return out, nil
	case "DEVICES":
		for _, d := range r.Devices {
			g.device(d.Path, d.Driver)
		}
		return out, nil
	case "DEVICE":
		g.device(r.Path, r.Driver)
		return out, nil
	case "TPV", "TOFF", "PPS", "SKY":
	case "":
		return out, fmt.Errorf("%w: no class", ErrBadReport)
	default: // WATCH, ERROR and the rest carry no time
		return out, nil
	}
	if !g.mine(r.Device) {
		return out, nil
	}
	switch r.Class {
	case "SKY":
		used, seen := 0, len(r.Satellites)
		for _, s := range r.Satellites {
			if s.Used {
				used++
			}
		}
		if r.USat != nil {
			used = *r.USat
		}
		if r.NSat != nil {
			seen = *r.NSat
		}
		g.State.Satellites, g.State.SatellitesSeen = used, seen
		return out, nil
	case "TPV":
		if r.Mode == nil || *r.Mode < 0 || *r.Mode > 3 {
			g.fixOK = false
			return out, fmt.Errorf("%w: TPV without a mode of 0 to 3", ErrBadReport)
		}
		g.State.Mode = *r.Mode
		g.fixOK = false
		if *r.Mode < 2 {
			return out, ErrNoFix
		}
		if r.Time == nil || *r.Time == "" {
			return out, ErrNoTime
		}
		t, err := time.Parse(time.RFC3339Nano, *r.Time)
		if err != nil {
			return out, fmt.Errorf("%w: TPV time %q", ErrBadReport, *r.Time)
		}
		g.fixOK = true
		g.take(r.Device)
		if near(rx, g.lastTOFF, ppsPreferred) || near(rx, g.lastPPS, ppsPreferred) {
			return out, nil // TOFF/PPS carry this second, better stamped
		}
		g.State.LastFix = t
		return append(out, Sample{Local: rx, Ref: t}), nil
	}
	// TOFF, PPS
	if r.RealSec == nil || r.RealNsec == nil || r.ClockSec == nil || r.ClockNsec == nil ||
		*r.RealNsec < 0 || *r.RealNsec >= 1e9 || *r.ClockNsec < 0 || *r.ClockNsec >= 1e9 ||
		!secOK(*r.RealSec) || !secOK(*r.ClockSec) {
		return out, fmt.Errorf("%w: %s times", ErrBadReport, r.Class)
	}
	s := Sample{Local: time.Unix(*r.ClockSec, *r.ClockNsec).UTC(), Ref: time.Unix(*r.RealSec, *r.RealNsec).UTC()}
	if r.Precision != nil && *r.Precision > -40 && *r.Precision < 10 {
		s.Precision = precisionDuration(*r.Precision)
	}
	if r.Class == "PPS" {
		g.lastPPS = rx
	} else {
		g.lastTOFF = rx
	}
	if !g.fixOK {
		return out, ErrNoFix
	}
	g.take(r.Device)
	if r.Class == "PPS" {
		g.State.LastPPS = s.Ref
		g.State.LastFix = s.Ref
		return append(out, s), nil
	}
	if near(rx, g.lastPPS, ppsPreferred) {
		return out, nil
	}
	g.State.LastFix = s.Ref
	return append(out, s), nil
}

// secOK bounds a seconds field to what time.Unix and the engine handle.
func secOK(s int64) bool { return s >= 0 && s < 1<<40 }

func near(a, b time.Time, d time.Duration) bool {
	if b.IsZero() {
		return false
	}
	x := a.Sub(b)
	return x < d && x > -d
}

// precisionDuration is 2^p seconds.
func precisionDuration(p int) time.Duration {
	if p >= 0 {
		return time.Duration(1<<p) * time.Second
	}
	return time.Duration(float64(time.Second) / float64(uint64(1)<<(-p)))
}

func (g *GPSD) device(path, driver string) {
	if path == "" {
		return
	}
	if g.Device != "" && path != g.Device {
		return
	}
	if g.State.Device == "" || g.State.Device == path {
		g.State.Driver = driver
	}
}

// mine says whether a report of device is to be used: the configured
// device, or the one chosen, or any while none is.
func (g *GPSD) mine(dev string) bool {
	if g.Device != "" {
		return dev == g.Device
	}
	return g.State.Device == "" || dev == g.State.Device
}

// take chooses dev when no device is chosen yet.
func (g *GPSD) take(dev string) {
	if g.State.Device == "" {
		g.State.Device = dev
	}
}
