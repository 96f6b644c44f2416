package ptp

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"gnomon.dev/gnomon/engine/sample"
)

// Config configures an ordinary clock and its one port.
type Config struct {
	Profile    Profile
	Identity   ClockIdentity
	PortNumber uint16 // default 1
	Domain     uint8
	Priority1  uint8 // default 128
	Priority2  uint8 // default 128
	// Quality defaults to class 248, accuracy unknown, variance 0xffff
	// (linuxptp's defaults); a slave-only clock gets class 255.
	Quality    *ClockQuality
	SlaveOnly  bool
	MasterOnly bool
	// OneStep sends one-step Sync (the origin timestamp is the time the
	// message was built: only useful with hardware that inserts it);
	// two-step is the default.
	OneStep bool
	// Asymmetry is 1588's delayAsymmetry: how much longer the
	// master-to-slave path is than the mean path delay.
	Asymmetry time.Duration
	// What a master announces about its time (defaults: linuxptp's on
	// CLOCK_REALTIME: the arbitrary timescale with the local clock's
	// readings, currentUtcOffset 37 not marked valid, internal
	// oscillator). PTPTimescale sends TAI (the local clock plus
	// UTCOffset) with the PTP timescale flag.
	UTCOffset     int16
	PTPTimescale  bool
	TimeFlags     uint16 // extra time property flags (traceability, leap)
	TimeSource    uint8
	Servo         ServoConfig
	MaxForeign    int // foreign master records kept (default 1024)
	DelayFilter   int // path delay median filter length (default 10)
	FaultReset    time.Duration
	ManagementOff bool // do not answer management messages
}

// Send is a message for the service to send.
type Send struct {
	Data []byte
	Type MessageType
	Seq  uint16
	// Event messages go to the event port (319) and are timestamped; the
	// service reports the transmit timestamp with TxTimestamp when
	// WantTimestamp is set (or, lacking one, when it sent it).
	Event         bool
	WantTimestamp bool
	// Peer messages (Pdelay_*) go to the peer-delay multicast address
	// (224.0.0.107, ff02::6b, 01-80-C2-00-00-0E).
	Peer bool
}

// Measurement is one offset measurement of the local clock against the
// master.
type Measurement struct {
	Time      time.Time     // local time the Sync was received (t2)
	Offset    time.Duration // master minus local, as sample.Sample's
	PathDelay time.Duration // the mean path delay used
	Leap      sample.Leap
}

// Sample turns the measurement into the engine's sample type (the delay
// is the round trip, twice the mean path delay).
func (m Measurement) Sample(stepsRemoved uint16) sample.Sample {
	return sample.Sample{Time: m.Time, Offset: m.Offset, Delay: 2 * m.PathDelay, Leap: m.Leap,
		Dispersion: time.Microsecond, Stratum: uint8(min(stepsRemoved+1, 15))}
}

// Output is what one call asks the service to do. It is reused: each
// call clears it.
type Output struct {
	Sends        []Send
	Measurements []Measurement
	// Adjust, when set, is what the servo asks of the clock this port
	// disciplines: step it, then set its frequency. Apply it before
	// anything else reaches the port.
	Adjust *ServoOutput
	// StateChanged says the port state changed (Status has the new one).
	StateChanged bool
}

func (o *Output) reset() {
	o.Sends = o.Sends[:0]
	o.Measurements = o.Measurements[:0]
	o.Adjust = nil
	o.StateChanged = false
}

// Counters are what the port counted (for views and tests).
type Counters struct {
	Rx, Tx            [16]uint64 // by message type
	Malformed         uint64     // did not decode
	WrongVersion      uint64
	WrongDomain       uint64
	Own               uint64 // our own messages looped back
	AnnounceRejected  uint64 // stepsRemoved ≥ 255, path trace loop, ...
	ForeignDropped    uint64 // a new foreign master while the list was full
	Unmatched         uint64 // Follow_Up, Delay_Resp, Pdelay_* matching nothing we wait for
	NotFromParent     uint64 // Sync/Follow_Up from a port that is not our parent
	MechanismMismatch uint64 // E2E messages on a P2P port and vice versa
	Management        uint64 // management requests answered
	AnnounceTimeouts  uint64
	StateChanges      uint64
	IntervalRequests  uint64 // Signaling message interval requests applied
}

// Status is the port and its datasets, a value copy for views.
type Status struct {
	Default        DefaultDS
	Current        CurrentDS
	Parent         ParentDS
	TimeProperties TimePropertiesDS
	Port           PortDS
	Decision       Decision
	Servo          ServoState
	FreqPPB        float64
	Offset         time.Duration // newest measurement, master minus local
	MeanPathDelay  time.Duration
	LastSample     time.Time
	ForeignMasters int
	Counters       Counters
	GPTP           GPTPLink // gptp_link.go (zero for other profiles)
}

// Leap is the leap warning the parent announces.
func (s *Status) Leap() sample.Leap {
	switch {
	case s.TimeProperties.Leap61():
		return sample.LeapInsert
	case s.TimeProperties.Leap59():
		return sample.LeapDelete
	}
	return sample.LeapNone
}

type foreign struct {
	sender PortIdentity
	ann    Announce
	times  []time.Time // receipt times within the window, oldest first
	last   time.Time
}

type syncState struct {
	valid     bool
	seq       uint16
	src       PortIdentity
	t2        time.Time
	corr      TimeInterval
	haveSync  bool
	t1        Timestamp
	fupCorr   TimeInterval
	haveFup   bool
	twoStep   bool
	logInt    int8
	utcOffset time.Duration
}

type exchange struct {
	active  bool
	seq     uint16
	t1      time.Time // our transmit time (t3 for Delay_Req, t1 for Pdelay_Req)
	haveT1  bool
	resp    bool
	t2      Timestamp // Pdelay: the responder's receipt
	t4      time.Time // Delay_Req: the master's receipt (local frame); Pdelay: our receipt of the response
	corr    TimeInterval
	fup     bool // Pdelay: the follow-up arrived (or was not needed)
	t3      Timestamp
	fupCorr TimeInterval
}

type pendingResp struct {
	seq        uint16
	requesting PortIdentity
	corr       TimeInterval
	domain     uint8
	sdo        uint8
}

// Clock is an ordinary clock with one port (1588-2019 §9): its datasets,
// the BMCA, the port state machine and the delay mechanism. It is not
// safe for concurrent use.
type Clock struct {
	cfg  Config
	prof Profile

	dds  DefaultDS
	cds  CurrentDS
	pds  ParentDS
	tps  TimePropertiesDS
	port PortDS

	decision Decision
	foreign  []*foreign
	servo    *Servo

	// timers (zero: not armed)
	announceTimeout time.Time
	qualifyAt       time.Time
	nextAnnounce    time.Time
	nextSync        time.Time
	nextDelayReq    time.Time
	nextPdelay      time.Time
	nextBMCA        time.Time
	faultUntil      time.Time

	seqAnnounce, seqSync, seqDelay, seqPdelay, seqSignaling uint16

	sync      syncState
	lastSync  syncState // newest complete Sync, for the E2E delay
	delayReq  exchange
	pdelay    exchange
	delays    []time.Duration // newest last
	meanDelay time.Duration
	haveDelay bool
	syncTx    map[uint16]bool // two-step Syncs waiting for their transmit timestamp
	pdResp    []pendingResp   // Pdelay_Resps waiting for their transmit timestamp
	lastMeas  Measurement
	counters  Counters
	out       Output
	gptp      gptpState // gptp.go
}

// NewClock makes the clock and starts it: INITIALIZING, then LISTENING
// (or PRE_MASTER for a master-only port).
func NewClock(cfg Config, now time.Time) (*Clock, error) {
	prof := cfg.Profile
	if prof.Name == "" {
		prof = DefaultE2E
	}
	if prof.AnnounceReceiptTimeout == 0 {
		prof.AnnounceReceiptTimeout = 3
	}
	if prof.ForeignMasterThreshold == 0 {
		prof.ForeignMasterThreshold = 2
	}
	if prof.ForeignMasterWindow == 0 {
		prof.ForeignMasterWindow = 4
	}
	if prof.DelayMechanism == 0 {
		prof.DelayMechanism = DelayE2E
	}
	if cfg.SlaveOnly && cfg.MasterOnly {
		return nil, errors.New("ptp: a port cannot be both slave-only and master-only")
	}
	if cfg.Identity == (ClockIdentity{}) || cfg.Identity == AllOnes {
		return nil, fmt.Errorf("ptp: clock identity %s is reserved", cfg.Identity)
	}
	if cfg.PortNumber == 0 {
		cfg.PortNumber = 1
	}
	if cfg.Priority1 == 0 && !cfg.MasterOnly {
		cfg.Priority1 = 128
	}
	if cfg.Priority2 == 0 {
		cfg.Priority2 = 128
	}
	q := ClockQuality{Class: ClassDefault, Accuracy: AccuracyUnknown, OffsetScaledLogVariance: VarianceUnknown}
	if cfg.Quality != nil {
		q = *cfg.Quality
	} else if cfg.SlaveOnly {
		q.Class = ClassSlaveOnly
	}
	if cfg.UTCOffset == 0 {
		cfg.UTCOffset = 37
	}
	if cfg.TimeSource == 0 {
		cfg.TimeSource = TimeSourceInternalOsc
	}
	if cfg.MaxForeign <= 0 {
		// Enough that a flood of one-shot fake masters below
		// MaxForeign per announce interval cannot push a real master's
		// first Announce out before its second qualifies it.
		cfg.MaxForeign = 1024
	}
	if cfg.DelayFilter <= 0 {
		cfg.DelayFilter = 10
	}
	if cfg.FaultReset <= 0 {
		cfg.FaultReset = 16 * time.Second
	}
	c := &Clock{cfg: cfg, prof: prof, syncTx: map[uint16]bool{}}
	c.dds = DefaultDS{TwoStep: !cfg.OneStep, SlaveOnly: cfg.SlaveOnly, NumberPorts: 1, Priority1: cfg.Priority1,
		Quality: q, Priority2: cfg.Priority2, Identity: cfg.Identity, Domain: cfg.Domain, SdoID: uint16(prof.MajorSdoID) << 8}
	c.port = PortDS{Identity: PortIdentity{cfg.Identity, cfg.PortNumber}, State: StateInitializing,
		LogMinDelayReqInterval: prof.LogMinDelayReqInterval, LogAnnounceInterval: prof.LogAnnounceInterval,
		AnnounceReceiptTimeout: prof.AnnounceReceiptTimeout, LogSyncInterval: prof.LogSyncInterval,
		DelayMechanism: prof.DelayMechanism, LogMinPdelayReqInterval: prof.LogMinPdelayReqInterval,
		VersionNumber: 2} // as ptp4l: the major version; the minor one is in every header
	c.servo = NewServo(cfg.Servo, logInterval(prof.LogSyncInterval))
	c.becomeGrandmaster()
	c.initialize(now)
	return c, nil
}

// initialize is INITIALIZING: datasets reset, then LISTENING.
func (c *Clock) initialize(now time.Time) {
	c.setState(StateInitializing, now)
	c.foreign = c.foreign[:0]
	c.resetExchanges()
	c.haveDelay = false
	c.delays = c.delays[:0]
	c.setState(StateListening, now)
	if c.prof.DelayMechanism == DelayP2P {
		c.nextPdelay = now
	}
	if c.cfg.MasterOnly {
		c.decide(now, true)
	}
	c.staticRole(now) // automotive.go
}

func (c *Clock) resetExchanges() {
	c.sync = syncState{}
	c.lastSync = syncState{}
	c.delayReq = exchange{}
	c.pdelay = exchange{}
	clear(c.syncTx)
	c.pdResp = c.pdResp[:0]
}

// becomeGrandmaster sets the parent and time properties datasets to the
// local clock's (decisions M1 and M2, and at start).
func (c *Clock) becomeGrandmaster() {
	c.cds = CurrentDS{}
	c.pds = ParentDS{ParentPort: PortIdentity{Clock: c.dds.Identity}, ObservedVariance: 0xffff,
		ObservedPhaseRate: 0x7fffffff, GMPriority1: c.dds.Priority1, GMQuality: c.dds.Quality,
		GMPriority2: c.dds.Priority2, GMIdentity: c.dds.Identity}
	flags := c.cfg.TimeFlags & timePropertiesFlags
	if c.cfg.PTPTimescale {
		flags |= FlagPTPTimescale
	}
	c.tps = TimePropertiesDS{CurrentUTCOffset: c.cfg.UTCOffset, Flags: flags, TimeSource: c.cfg.TimeSource}
}

func (c *Clock) setState(s PortState, now time.Time) {
	if c.port.State == s {
		return
	}
	prev := c.port.State
	c.port.State = s
	c.out.StateChanged = true
	c.counters.StateChanges++
	ai := logInterval(c.port.LogAnnounceInterval)
	// disarm what the old state needed, arm what the new one needs
	c.qualifyAt, c.nextAnnounce, c.nextSync, c.nextDelayReq = time.Time{}, time.Time{}, time.Time{}, time.Time{}
	switch s {
	case StateListening, StateUncalibrated, StateSlave, StatePassive:
		if prev != StateUncalibrated && prev != StateSlave || s == StateListening || s == StatePassive {
			c.announceTimeout = now.Add(time.Duration(c.port.AnnounceReceiptTimeout) * ai)
		}
		if s == StateUncalibrated || s == StateSlave {
			if c.prof.DelayMechanism == DelayE2E {
				c.nextDelayReq = now.Add(logInterval(c.port.LogMinDelayReqInterval))
			}
		}
		if s != StateUncalibrated && s != StateSlave {
			c.servo.Reset()
		}
	case StatePreMaster:
		c.announceTimeout = time.Time{}
		c.qualifyAt = now.Add(time.Duration(c.cds.StepsRemoved+1) * ai)
	case StateMaster:
		c.announceTimeout = time.Time{}
		c.nextAnnounce = now
		c.nextSync = now
		c.servo.Reset()
	case StateFaulty:
		c.announceTimeout = time.Time{}
		c.faultUntil = now.Add(c.cfg.FaultReset)
	}
	if s != StateSlave && s != StateUncalibrated {
		c.sync, c.lastSync, c.delayReq = syncState{}, syncState{}, exchange{}
	}
	if c.nextBMCA.IsZero() {
		c.nextBMCA = now.Add(ai)
	}
}

// Fault puts the port into FAULTY (the service could not send, or the
// interface went down); it re-initializes after Config.FaultReset.
func (c *Clock) Fault(now time.Time) *Output {
	c.out.reset()
	c.setState(StateFaulty, now)
	return &c.out
}

// Receive handles a datagram received at rx (the local clock's reading
// from the kernel timestamp; event messages need one, general messages
// may have the zero time) when the time is now.
func (c *Clock) Receive(now time.Time, b []byte, rx time.Time) (*Output, error) {
	c.out.reset()
	if rx.IsZero() {
		rx = now
	}
	m, err := Parse(b)
	if err != nil {
		if errors.Is(err, ErrVersion) {
			c.counters.WrongVersion++
		} else {
			c.counters.Malformed++
		}
		return &c.out, err
	}
	h := m.Hdr()
	c.counters.Rx[h.Type&0x0f]++
	if c.port.State == StateFaulty || c.port.State == StateDisabled {
		return &c.out, nil
	}
	if h.Domain != c.dds.Domain || h.MajorSdoID != c.prof.MajorSdoID {
		c.counters.WrongDomain++
		return &c.out, fmt.Errorf("ptp: %s for domain %d (sdo %d), ours is %d (sdo %d)", h.Type, h.Domain, h.MajorSdoID, c.dds.Domain, c.prof.MajorSdoID)
	}
	if h.Source.Clock == c.dds.Identity {
		c.counters.Own++
		return &c.out, nil
	}
	switch m := m.(type) {
	case *Announce:
		err = c.rxAnnounce(now, m)
	case *Sync:
		c.rxSync(now, m, rx)
	case *FollowUp:
		err = c.rxFollowUp(now, m)
	case *DelayReq:
		err = c.rxDelayReq(m, rx)
	case *DelayResp:
		err = c.rxDelayResp(m)
	case *PdelayReq:
		err = c.rxPdelayReq(m, rx)
	case *PdelayResp:
		err = c.rxPdelayResp(m, rx)
	case *PdelayRespFollowUp:
		err = c.rxPdelayRespFollowUp(m)
	case *Management:
		err = c.rxManagement(m)
	case *Signaling:
		// Message interval requests (gPTP, automotive: automotive.go);
		// unicast negotiation is not implemented: counted and ignored.
		c.handleSignaling(m)
	}
	return &c.out, err
}

func (c *Clock) isSlave() bool {
	return c.port.State == StateSlave || c.port.State == StateUncalibrated
}

// --- Announce and the BMCA ---

func (c *Clock) rxAnnounce(now time.Time, a *Announce) error {
	if !c.gptpMayRx() { // gptp_link.go
		return nil
	}
	if a.StepsRemoved >= 255 {
		c.counters.AnnounceRejected++
		return fmt.Errorf("ptp: Announce from %s with stepsRemoved %d", a.Source, a.StepsRemoved)
	}
	if c.prof.PathTrace {
		for _, id := range PathTrace(a.TLVs) {
			if id == c.dds.Identity {
				c.counters.AnnounceRejected++
				return fmt.Errorf("ptp: Announce from %s has our identity in its path trace", a.Source)
			}
		}
	}
	if c.cfg.MasterOnly {
		return nil
	}
	f := c.findForeign(a.Source)
	if f == nil {
		if len(c.foreign) >= c.cfg.MaxForeign && !c.evictForeign(now) {
			c.counters.ForeignDropped++
			return fmt.Errorf("ptp: foreign master list full (%d), Announce from %s dropped", c.cfg.MaxForeign, a.Source)
		}
		f = &foreign{sender: a.Source}
		c.foreign = append(c.foreign, f)
	}
	f.ann = *a
	f.ann.TLVs = nil
	f.last = now
	f.times = append(f.times, now)
	c.pruneForeign(now)
	if c.isSlave() && a.Source == c.pds.ParentPort {
		// The parent speaks: keep it, and take its news.
		c.announceTimeout = now.Add(time.Duration(c.port.AnnounceReceiptTimeout) * logInterval(c.port.LogAnnounceInterval))
		c.updateParent(a)
	}
	c.decide(now, false)
	return nil
}

func (c *Clock) findForeign(p PortIdentity) *foreign {
	for _, f := range c.foreign {
		if f.sender == p {
			return f
		}
	}
	return nil
}

// evictForeign makes room for a new foreign master: the longest-silent
// record that is neither qualified nor our parent goes.
func (c *Clock) evictForeign(now time.Time) bool {
	c.pruneForeign(now)
	victim := -1
	for i, f := range c.foreign {
		if c.qualified(f) || f.sender == c.pds.ParentPort {
			continue
		}
		if victim < 0 || f.last.Before(c.foreign[victim].last) {
			victim = i
		}
	}
	if victim < 0 {
		return false
	}
	c.foreign = append(c.foreign[:victim], c.foreign[victim+1:]...)
	return true
}

func (c *Clock) window() time.Duration {
	return time.Duration(c.prof.ForeignMasterWindow) * logInterval(c.port.LogAnnounceInterval)
}

// pruneForeign forgets receipts older than the window, and records with
// none left.
func (c *Clock) pruneForeign(now time.Time) {
	cut := now.Add(-c.window())
	keep := c.foreign[:0]
	for _, f := range c.foreign {
		i := 0
		for i < len(f.times) && !f.times[i].After(cut) {
			i++
		}
		f.times = append(f.times[:0], f.times[i:]...)
		if len(f.times) > c.prof.ForeignMasterThreshold+1 {
			f.times = append(f.times[:0], f.times[len(f.times)-c.prof.ForeignMasterThreshold-1:]...)
		}
		if len(f.times) > 0 {
			keep = append(keep, f)
		}
	}
	clear(c.foreign[len(keep):])
	c.foreign = keep
}

func (c *Clock) qualified(f *foreign) bool { return len(f.times) >= c.prof.ForeignMasterThreshold }

// erbest is the best qualified foreign master (nil when none).
func (c *Clock) erbest() (*foreign, *Candidate) {
	var best *foreign
	var bc Candidate
	for _, f := range c.foreign {
		if !c.qualified(f) {
			continue
		}
		cand := CandidateOf(&f.ann, c.port.Identity)
		if best == nil || Compare(&cand, &bc) > 0 {
			best, bc = f, cand
		}
	}
	if best == nil {
		return nil, nil
	}
	return best, &bc
}

// decide runs the state decision and the state changes it implies.
// timedOut says the announce receipt timeout expired (so LISTENING may
// end without a foreign master).
func (c *Clock) decide(now time.Time, timedOut bool) {
	if c.prof.NoBMCA {
		return
	}
	c.pruneForeign(now)
	best, erbest := c.erbest()
	if erbest == nil && c.port.State == StateListening && !timedOut && !c.cfg.MasterOnly {
		c.decision = DecisionListening
		return
	}
	d0 := LocalCandidate(&c.dds)
	d := Decide(&d0, c.dds.Quality.Class, erbest, erbest, erbest != nil, c.cfg.SlaveOnly, c.cfg.MasterOnly)
	c.decision = d
	switch d {
	case DecisionM1, DecisionM2, DecisionM3:
		if d != DecisionM3 {
			c.becomeGrandmaster()
		}
		switch c.port.State {
		case StateMaster, StatePreMaster:
		default:
			c.setState(c.masterEntry(), now) // gptp_link.go
		}
	case DecisionP1, DecisionP2:
		c.setState(StatePassive, now)
	case DecisionS1:
		newParent := best.sender != c.pds.ParentPort
		c.updateParent(&best.ann)
		switch {
		case newParent || !c.isSlave():
			if c.isSlave() {
				// a different master: start over (servo, delay)
				c.port.State = StateListening
			}
			c.servo.Reset()
			c.haveDelay = false
			c.delays = c.delays[:0]
			c.setState(StateUncalibrated, now)
			c.announceTimeout = now.Add(time.Duration(c.port.AnnounceReceiptTimeout) * logInterval(c.port.LogAnnounceInterval))
		}
	case DecisionListening:
		if c.port.State != StateListening {
			c.setState(StateListening, now)
		}
	}
}

// updateParent takes the parent and time properties datasets from the
// parent's Announce (decision S1).
func (c *Clock) updateParent(a *Announce) {
	c.cds.StepsRemoved = a.StepsRemoved + 1
	c.pds.ParentPort = a.Source
	c.pds.GMIdentity = a.GMIdentity
	c.pds.GMPriority1 = a.GMPriority1
	c.pds.GMPriority2 = a.GMPriority2
	c.pds.GMQuality = a.GMQuality
	c.tps = TimePropertiesDS{CurrentUTCOffset: a.CurrentUTCOffset, Flags: a.Flags & timePropertiesFlags, TimeSource: a.TimeSource}
}

// --- slave side: Sync, Follow_Up, Delay_Resp ---

func (c *Clock) rxSync(now time.Time, m *Sync, rx time.Time) {
	if !c.isSlave() || !c.gptpMayRx() { // gptp_link.go
		return
	}
	c.adoptSource(m.Source) // automotive.go
	if m.Source != c.pds.ParentPort {
		c.counters.NotFromParent++
		return
	}
	twoStep := m.Flags&FlagTwoStep != 0
	if c.sync.valid && c.sync.haveFup && !c.sync.haveSync && c.sync.seq == m.Sequence && c.sync.src == m.Source {
		// its Follow_Up came first
		c.sync.haveSync, c.sync.t2, c.sync.corr, c.sync.twoStep = true, rx, m.Correction, true
		c.sync.logInt = m.LogInterval
		c.completeSync(now)
		return
	}
	c.sync = syncState{valid: true, seq: m.Sequence, src: m.Source, t2: rx, corr: m.Correction, haveSync: true,
		twoStep: twoStep, logInt: m.LogInterval, utcOffset: c.tps.UTCOffset()}
	if !twoStep {
		c.sync.t1, c.sync.haveFup = m.Origin, true
		c.completeSync(now)
	}
}

func (c *Clock) rxFollowUp(now time.Time, m *FollowUp) error {
	if !c.isSlave() || !c.gptpMayRx() { // gptp_link.go
		return nil
	}
	c.adoptSource(m.Source) // automotive.go
	if m.Source != c.pds.ParentPort {
		c.counters.NotFromParent++
		return nil
	}
	c.gptpFollowUp(m) // gptp_link.go
	if c.sync.valid && c.sync.haveSync && c.sync.twoStep && !c.sync.haveFup && c.sync.seq == m.Sequence && c.sync.src == m.Source {
		c.sync.t1, c.sync.fupCorr, c.sync.haveFup = m.PreciseOrigin, m.Correction, true
		c.completeSync(now)
		return nil
	}
	if c.sync.valid && c.sync.haveSync && c.sync.seq == m.Sequence {
		c.counters.Unmatched++
		return fmt.Errorf("ptp: Follow_Up %d does not match the Sync", m.Sequence)
	}
	// It came before its Sync (they travel on different sockets).
	c.sync = syncState{valid: true, seq: m.Sequence, src: m.Source, t1: m.PreciseOrigin, fupCorr: m.Correction,
		haveFup: true, utcOffset: c.tps.UTCOffset()}
	return nil
}

// masterTime converts a master's timestamp to the local clock's frame:
// the PTP timescale is TAI, so the UTC offset goes; the arbitrary
// timescale (linuxptp on CLOCK_REALTIME) is taken as it is.
func masterTime(ts Timestamp, utcOffset time.Duration) time.Time {
	return ts.Time().Add(-utcOffset)
}

func (c *Clock) completeSync(now time.Time) {
	s := c.sync
	c.sync = syncState{}
	c.lastSync = s
	if s.logInt != 0x7f && s.logInt != c.port.LogSyncInterval && s.logInt > -8 && s.logInt < 8 {
		c.port.LogSyncInterval = s.logInt
		c.servo.SetInterval(logInterval(s.logInt))
	}
	if c.prof.DelayMechanism == DelayE2E {
		c.tryDelay()
	}
	c.measure(now, s)
	c.gptpSyncReceived(now) // gptp_link.go
}

// syncDelta is t2 - t1 - corrections: the master-to-slave delay plus
// the local clock's offset (local minus master).
func syncDelta(s syncState) time.Duration {
	t1 := masterTime(s.t1, s.utcOffset)
	return s.t2.Sub(t1) - (s.corr + s.fupCorr).Duration()
}

func (c *Clock) measure(now time.Time, s syncState) {
	if !c.haveDelay {
		return
	}
	localMinusMaster := syncDelta(s) - c.gptpSyncDelay(c.meanDelay) - c.cfg.Asymmetry // gptp_link.go
	st := c.Status()
	m := Measurement{Time: s.t2, Offset: -localMinusMaster, PathDelay: c.meanDelay, Leap: st.Leap()}
	c.lastMeas = m
	c.cds.OffsetFromMaster = Interval(localMinusMaster)
	c.cds.MeanPathDelay = Interval(c.meanDelay)
	c.out.Measurements = append(c.out.Measurements, m)
	so := c.servo.Sample(m.Offset, s.t2)
	c.out.Adjust = &so
	switch so.State {
	case ServoJump:
		// The clock is stepped before anything else comes in: what
		// is pending was measured on the old time scale.
		c.sync, c.lastSync, c.delayReq, c.pdelay = syncState{}, syncState{}, exchange{}, exchange{}
	case ServoLocked:
		if c.port.State == StateUncalibrated {
			c.setState(StateSlave, now)
		}
	}
}

func (c *Clock) sendDelayReq(now time.Time) {
	c.seqDelay++
	m := &DelayReq{Header: c.header(MsgDelayReq, c.seqDelay, 0x7f)}
	c.delayReq = exchange{active: true, seq: c.seqDelay, t1: now}
	c.emit(m, true, false, true)
}

func (c *Clock) rxDelayResp(m *DelayResp) error {
	if !c.isSlave() || c.prof.DelayMechanism != DelayE2E {
		return nil
	}
	if m.Requesting != c.port.Identity {
		return nil // for another slave
	}
	if m.Source != c.pds.ParentPort || !c.delayReq.active || c.delayReq.resp || m.Sequence != c.delayReq.seq {
		c.counters.Unmatched++
		return fmt.Errorf("ptp: Delay_Resp %d from %s matches no Delay_Req", m.Sequence, m.Source)
	}
	c.delayReq.resp = true
	c.delayReq.t4 = masterTime(m.Receive, c.tps.UTCOffset())
	c.delayReq.corr = m.Correction
	if m.LogInterval != 0x7f && m.LogInterval > -8 && m.LogInterval < 8 {
		c.port.LogMinDelayReqInterval = m.LogInterval
	}
	c.tryDelay()
	return nil
}

// tryDelay computes the E2E mean path delay once t1..t4 are known.
func (c *Clock) tryDelay() {
	d := &c.delayReq
	if !d.active || !d.resp || !d.haveT1 || !c.lastSync.haveFup || !c.lastSync.haveSync {
		return
	}
	tsm := d.t4.Sub(d.t1) - d.corr.Duration()
	c.addDelay((syncDelta(c.lastSync) + tsm) / 2)
	*d = exchange{}
}

func (c *Clock) addDelay(d time.Duration) {
	if d < 0 {
		// Possible with software timestamps and a tiny path; linuxptp
		// keeps them too (they average out); keep them.
		_ = d
	}
	c.delays = append(c.delays, d)
	if len(c.delays) > c.cfg.DelayFilter {
		c.delays = c.delays[len(c.delays)-c.cfg.DelayFilter:]
	}
	s := append([]time.Duration(nil), c.delays...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	if len(s)%2 == 1 {
		c.meanDelay = s[len(s)/2]
	} else {
		c.meanDelay = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	c.haveDelay = true
	if c.prof.DelayMechanism == DelayP2P {
		c.port.PeerMeanPathDelay = Interval(c.meanDelay)
	}
	c.cds.MeanPathDelay = Interval(c.meanDelay)
}

// --- master side ---

func (c *Clock) header(t MessageType, seq uint16, logInt int8) Header {
	h := Header{MajorSdoID: c.prof.MajorSdoID, Type: t, MinorVersion: 1, Version: 2, Domain: c.dds.Domain,
		Source: c.port.Identity, Sequence: seq, LogInterval: logInt}
	if t == MsgSync && !c.cfg.OneStep {
		h.Flags |= FlagTwoStep
	}
	if t == MsgPdelayResp {
		h.Flags |= FlagTwoStep
	}
	return h
}

// masterStamp converts a local time to what a master sends.
func (c *Clock) masterStamp(t time.Time) Timestamp {
	if c.tps.PTPTimescale() && c.pds.GMIdentity == c.dds.Identity {
		t = t.Add(time.Duration(c.tps.CurrentUTCOffset) * time.Second)
	}
	return TimestampOf(t)
}

func (c *Clock) emit(m Message, event, peer, wantTS bool) {
	b := make([]byte, MaxLen)
	n, err := m.MarshalTo(b)
	if err != nil {
		return // our own messages always encode; nothing to send otherwise
	}
	h := m.Hdr()
	c.counters.Tx[h.Type&0x0f]++
	peer = peer || c.prof.AllToPeerAddress // gptp.go
	c.out.Sends = append(c.out.Sends, Send{Data: b[:n:n], Type: h.Type, Seq: h.Sequence, Event: event, Peer: peer, WantTimestamp: wantTS})
}

func (c *Clock) sendAnnounce() {
	if c.prof.NoAnnounce || !c.gptpMayTx() { // gptp_link.go
		return
	}
	c.seqAnnounce++
	h := c.header(MsgAnnounce, c.seqAnnounce, c.port.LogAnnounceInterval)
	h.Flags |= c.tps.Flags & timePropertiesFlags
	a := &Announce{Header: h, CurrentUTCOffset: c.tps.CurrentUTCOffset, GMPriority1: c.pds.GMPriority1,
		GMQuality: c.pds.GMQuality, GMPriority2: c.pds.GMPriority2, GMIdentity: c.pds.GMIdentity,
		StepsRemoved: c.cds.StepsRemoved, TimeSource: c.tps.TimeSource}
	if c.prof.PathTrace {
		a.TLVs = []TLV{PathTraceTLV([]ClockIdentity{c.dds.Identity})}
	}
	c.emit(a, false, false, false)
}

func (c *Clock) sendSync(now time.Time) {
	if !c.gptpMayTx() { // gptp_link.go
		return
	}
	c.seqSync++
	s := &Sync{Header: c.header(MsgSync, c.seqSync, c.port.LogSyncInterval)}
	if c.cfg.OneStep {
		s.Origin = c.masterStamp(now)
		c.emit(s, true, false, false)
		return
	}
	// bounded: a transmit timestamp that never comes must not grow this
	if len(c.syncTx) > 8 {
		clear(c.syncTx)
	}
	c.syncTx[c.seqSync] = true
	c.emit(s, true, false, true)
}

// TxTimestamp reports when an event message with WantTimestamp left (the
// kernel's transmit timestamp, or the time it was sent when there is
// none), in the local clock's reading.
func (c *Clock) TxTimestamp(now time.Time, t MessageType, seq uint16, at time.Time) *Output {
	c.out.reset()
	switch t {
	case MsgSync:
		if !c.syncTx[seq] || c.port.State != StateMaster {
			break
		}
		delete(c.syncTx, seq)
		f := &FollowUp{Header: c.header(MsgFollowUp, seq, c.port.LogSyncInterval), PreciseOrigin: c.masterStamp(at)}
		if c.prof.FollowUpInfo {
			f.TLVs = []TLV{FollowUpInfo{}.TLV()} // gptp.go
		}
		c.emit(f, false, false, false)
	case MsgDelayReq:
		if c.delayReq.active && c.delayReq.seq == seq && !c.delayReq.haveT1 {
			c.delayReq.t1, c.delayReq.haveT1 = at, true
			c.tryDelay()
		}
	case MsgPdelayReq:
		if c.pdelay.active && c.pdelay.seq == seq && !c.pdelay.haveT1 {
			c.pdelay.t1, c.pdelay.haveT1 = at, true
			c.tryPdelay()
		}
	case MsgPdelayResp:
		for i, p := range c.pdResp {
			if p.seq != seq {
				continue
			}
			h := c.header(MsgPdelayRespFollowUp, seq, 0x7f)
			h.Domain, h.MajorSdoID, h.Correction = p.domain, p.sdo, p.corr
			f := &PdelayRespFollowUp{Header: h, ResponseOrigin: c.masterStamp(at), Requesting: p.requesting}
			c.emit(f, false, true, false)
			c.pdResp = append(c.pdResp[:i], c.pdResp[i+1:]...)
			break
		}
	}
	return &c.out
}

func (c *Clock) rxDelayReq(m *DelayReq, rx time.Time) error {
	if c.port.State != StateMaster {
		return nil
	}
	if c.prof.DelayMechanism != DelayE2E {
		c.counters.MechanismMismatch++
		return fmt.Errorf("ptp: Delay_Req from %s on a P2P port", m.Source)
	}
	h := c.header(MsgDelayResp, m.Sequence, c.port.LogMinDelayReqInterval)
	h.Correction = m.Correction
	h.Flags = m.Flags & FlagUnicast
	r := &DelayResp{Header: h, Receive: c.masterStamp(rx), Requesting: m.Source}
	c.emit(r, false, false, false)
	return nil
}

// --- peer delay ---

func (c *Clock) sendPdelayReq(now time.Time) {
	if !c.gptpPdelaySend(now, c.seqPdelay+1) { // gptp_link.go
		return
	}
	c.seqPdelay++
	m := &PdelayReq{Header: c.header(MsgPdelayReq, c.seqPdelay, c.port.LogMinPdelayReqInterval)}
	c.pdelay = exchange{active: true, seq: c.seqPdelay, t1: now}
	c.emit(m, true, true, true)
}

func (c *Clock) rxPdelayReq(m *PdelayReq, rx time.Time) error {
	if c.prof.DelayMechanism != DelayP2P {
		c.counters.MechanismMismatch++
		return fmt.Errorf("ptp: Pdelay_Req from %s on an E2E port", m.Source)
	}
	h := c.header(MsgPdelayResp, m.Sequence, 0x7f)
	r := &PdelayResp{Header: h, RequestReceipt: c.masterStamp(rx), Requesting: m.Source}
	if len(c.pdResp) >= 8 {
		c.pdResp = c.pdResp[1:]
	}
	c.pdResp = append(c.pdResp, pendingResp{seq: m.Sequence, requesting: m.Source, corr: m.Correction, domain: m.Domain, sdo: m.MajorSdoID})
	c.emit(r, true, true, true)
	return nil
}

func (c *Clock) rxPdelayResp(m *PdelayResp, rx time.Time) error {
	if c.prof.DelayMechanism != DelayP2P {
		c.counters.MechanismMismatch++
		return nil
	}
	if m.Requesting != c.port.Identity {
		return nil
	}
	if c.gptpPdelayResp(m) { // gptp_link.go: a second responder
		return fmt.Errorf("ptp: a second Pdelay_Resp %d, from %s", m.Sequence, m.Source)
	}
	p := &c.pdelay
	if !p.active || p.resp || p.seq != m.Sequence {
		c.counters.Unmatched++
		return fmt.Errorf("ptp: Pdelay_Resp %d from %s matches no Pdelay_Req", m.Sequence, m.Source)
	}
	p.resp, p.t2, p.t4, p.corr = true, m.RequestReceipt, rx, m.Correction
	if m.Flags&FlagTwoStep == 0 {
		p.fup = true
	}
	c.tryPdelay()
	return nil
}

func (c *Clock) rxPdelayRespFollowUp(m *PdelayRespFollowUp) error {
	if c.prof.DelayMechanism != DelayP2P || m.Requesting != c.port.Identity {
		return nil
	}
	p := &c.pdelay
	if !p.active || p.fup || p.seq != m.Sequence {
		c.counters.Unmatched++
		return fmt.Errorf("ptp: Pdelay_Resp_Follow_Up %d from %s matches no Pdelay_Req", m.Sequence, m.Source)
	}
	p.fup, p.t3, p.fupCorr = true, m.ResponseOrigin, m.Correction
	c.tryPdelay()
	return nil
}

func (c *Clock) tryPdelay() {
	p := &c.pdelay
	if !p.active || !p.haveT1 || !p.resp || !p.fup {
		return
	}
	rtt := p.t4.Sub(p.t1) - p.corr.Duration() - p.fupCorr.Duration()
	if !p.t3.IsZero() || !p.t2.IsZero() {
		rtt -= p.t3.Time().Sub(p.t2.Time())
	}
	c.addDelay(c.gptpRTT(p, rtt) / 2) // gptp.go
	c.gptpPdelayDone()                // gptp_link.go
	*p = exchange{}
}

// --- management ---

func (c *Clock) rxManagement(m *Management) error {
	if c.cfg.ManagementOff || m.Action != ActionGet {
		if m.Action == ActionSet || m.Action == ActionCommand {
			return c.mgmtReply(m, nil, MgmtErrNotSupported)
		}
		return nil
	}
	if (m.Target.Clock != AllOnes && m.Target.Clock != c.dds.Identity) ||
		(m.Target.Port != 0xffff && m.Target.Port != 0 && m.Target.Port != c.port.Identity.Port) {
		return nil
	}
	var data []byte
	switch m.ID {
	case MgmtNull:
	case MgmtDefaultDS:
		data, _ = c.dds.MarshalBinary()
	case MgmtCurrentDS:
		data, _ = c.cds.MarshalBinary()
	case MgmtParentDS:
		data, _ = c.pds.MarshalBinary()
	case MgmtTimePropertiesDS:
		data, _ = c.tps.MarshalBinary()
	case MgmtPortDS:
		data, _ = c.port.MarshalBinary()
	case MgmtPriority1:
		data = []byte{c.dds.Priority1, 0}
	case MgmtPriority2:
		data = []byte{c.dds.Priority2, 0}
	case MgmtDomain:
		data = []byte{c.dds.Domain, 0}
	default:
		return c.mgmtReply(m, nil, MgmtErrNoSuchID)
	}
	return c.mgmtReply(m, data, 0)
}

func (c *Clock) mgmtReply(req *Management, data []byte, errID uint16) error {
	c.counters.Management++
	h := c.header(MsgManagement, req.Sequence, 0x7f)
	r := &Management{Header: h, Target: req.Source, StartingBoundaryHops: req.StartingBoundaryHops - req.BoundaryHops,
		Action: ActionResponse, ID: req.ID, Data: data, Error: errID}
	if req.Action == ActionCommand {
		r.Action = ActionAcknowledge
	}
	r.BoundaryHops = r.StartingBoundaryHops
	c.emit(r, false, false, false)
	return nil
}

// --- time ---

// Wakeup does what is due at now.
func (c *Clock) Wakeup(now time.Time) *Output {
	c.out.reset()
	due := func(t time.Time) bool { return !t.IsZero() && !now.Before(t) }
	if due(c.faultUntil) && c.port.State == StateFaulty {
		c.faultUntil = time.Time{}
		c.initialize(now)
	}
	c.gptpWakeup(now) // gptp_link.go
	if due(c.announceTimeout) {
		c.counters.AnnounceTimeouts++
		c.announceTimeout = time.Time{}
		// Whoever has been silent for the timeout is gone (the parent,
		// in SLAVE; the better master, in PASSIVE).
		cut := now.Add(-time.Duration(c.port.AnnounceReceiptTimeout) * logInterval(c.port.LogAnnounceInterval))
		keep := c.foreign[:0]
		for _, f := range c.foreign {
			if f.last.After(cut) {
				keep = append(keep, f)
			}
		}
		clear(c.foreign[len(keep):])
		c.foreign = keep
		c.decide(now, true)
		if c.port.State == StateListening || c.port.State == StatePassive {
			c.announceTimeout = now.Add(time.Duration(c.port.AnnounceReceiptTimeout) * logInterval(c.port.LogAnnounceInterval))
		}
	}
	if due(c.qualifyAt) && c.port.State == StatePreMaster {
		c.setState(StateMaster, now)
	}
	if due(c.nextBMCA) {
		c.nextBMCA = now.Add(logInterval(c.port.LogAnnounceInterval))
		if c.port.State == StateMaster || c.port.State == StatePreMaster || c.isSlave() || c.port.State == StatePassive {
			c.decide(now, false)
		}
	}
	if c.port.State == StateMaster {
		if due(c.nextAnnounce) {
			c.nextAnnounce = now.Add(logInterval(c.port.LogAnnounceInterval))
			c.sendAnnounce()
		}
		if due(c.nextSync) {
			c.nextSync = now.Add(logInterval(c.port.LogSyncInterval))
			c.sendSync(now)
		}
	}
	if c.isSlave() && c.prof.DelayMechanism == DelayE2E && due(c.nextDelayReq) {
		c.nextDelayReq = now.Add(logInterval(c.port.LogMinDelayReqInterval))
		if c.lastSync.haveSync || c.sync.valid {
			c.sendDelayReq(now)
		}
	}
	if c.prof.DelayMechanism == DelayP2P && due(c.nextPdelay) && c.port.State != StateFaulty && c.port.State != StateDisabled {
		c.nextPdelay = now.Add(logInterval(c.port.LogMinPdelayReqInterval))
		c.sendPdelayReq(now)
	}
	return &c.out
}

// NextWakeup is when Wakeup next has something to do.
func (c *Clock) NextWakeup() time.Time {
	var next time.Time
	for _, t := range []time.Time{c.announceTimeout, c.qualifyAt, c.nextAnnounce, c.nextSync, c.nextDelayReq, c.nextPdelay, c.nextBMCA, c.faultUntil, c.gptpNext()} {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	return next
}

// Stepped tells the clock that the clock it timestamps with was stepped
// by d outside the servo's Adjust: what was pending is forgotten.
func (c *Clock) Stepped(d time.Duration) {
	if d == 0 {
		return
	}
	c.sync, c.lastSync, c.delayReq, c.pdelay = syncState{}, syncState{}, exchange{}, exchange{}
	c.servo.Reset()
}

// State is the port's state.
func (c *Clock) State() PortState { return c.port.State }

// Status returns the datasets and counters.
func (c *Clock) Status() Status {
	return Status{Default: c.dds, Current: c.cds, Parent: c.pds, TimeProperties: c.tps, Port: c.port,
		Decision: c.decision, Servo: c.servo.State(), FreqPPB: c.servo.FreqPPB(), Offset: c.lastMeas.Offset,
		MeanPathDelay: c.meanDelay, LastSample: c.lastMeas.Time, ForeignMasters: len(c.foreign), Counters: c.counters, GPTP: c.GPTPLink()}
}
