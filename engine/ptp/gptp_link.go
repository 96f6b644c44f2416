package ptp

import (
	"math"
	"time"
)

// 802.1AS's per-link rules (IEEE 802.1AS-2020 §11.2.2, §11.2.13,
// §11.2.17-19, §10.2.5, §10.3.10): asCapable from the peer delay
// exchanges, the gating of Announce and Sync on it, lost and multiple
// Pdelay responses, the rate ratio of the follow-up information TLV in
// the Sync path, the gmTimeBaseIndicator, syncReceiptTimeout, and the
// message interval requests a slave sends. Every function here is a hook
// the port (port.go) calls on gPTP and automotive ports (majorSdoId 1)
// and a no-op on others.

// 802.1AS's defaults (§11.5, table 11-1; linuxptp's the same).
const (
	// DefaultNeighborPropDelayThresh is 802.1AS's for 100BASE-TX and
	// 1000BASE-T (800 ns). A software-timestamped veth measures ~1 µs:
	// configure more there (neighbor-prop-delay-thresh), as
	// ptp4l needs --neighborPropDelayThresh.
	DefaultNeighborPropDelayThresh = 800 * time.Nanosecond
	// DefaultMinNeighborPropDelay is linuxptp's gPTP.cfg's
	// min_neighbor_prop_delay (−20 ms): a path delay below it is a
	// broken link, not a measurement.
	DefaultMinNeighborPropDelay = -20 * time.Millisecond
	// DefaultAllowedLostResponses is allowedLostResponses (3).
	DefaultAllowedLostResponses = 3
	// DefaultSyncReceiptTimeout is syncReceiptTimeout (3 Sync intervals).
	DefaultSyncReceiptTimeout = 3
	// multipleResponderPause is how long a port that saw several
	// responders to allowedLostResponses+1 successive requests stops
	// sending Pdelay_Req (802.1AS §11.2.19.3.4: 5 minutes).
	multipleResponderPause = 5 * time.Minute
	// intervalNoChange, intervalInitial and intervalStop are the
	// special values of the message interval request TLV (§10.6.4.3.6;
	// linuxptp's SIGNAL_NO_CHANGE and SIGNAL_SET_INITIAL).
	intervalNoChange int8 = -128
	intervalInitial  int8 = 126
	intervalStop     int8 = 127
)

// GPTPLink is a gPTP port's link and rate state, for views (Status.GPTP).
type GPTPLink struct {
	// AsCapable: the port exchanges Announce and Sync with its link peer
	// (the automotive profile assumes it). NotCapable says why not.
	AsCapable  bool
	NotCapable string
	// NeighborRateRatio is the link peer's frequency over ours, from
	// successive Pdelay exchanges (valid once two have completed).
	NeighborRateRatio      float64
	NeighborRateRatioValid bool
	// NeighborPropDelay is the mean link delay (the median filter of the
	// last exchanges) in the responder's time base; Thresh is the limit
	// above which the link is not asCapable.
	NeighborPropDelay       time.Duration
	NeighborPropDelayThresh time.Duration
	// Peer is the port that answers our Pdelay_Req (zero: none yet).
	Peer PortIdentity
	// LostResponses is how many Pdelay_Req in a row got no complete
	// answer (802.1AS's lostResponses; more than AllowedLostResponses
	// and the link is not asCapable); LostTotal counts them all.
	LostResponses        int
	AllowedLostResponses int
	LostTotal            uint64
	// MultipleResponses counts Pdelay_Req answered by more than one
	// port; MultipleSequential how many of the newest requests in a row.
	// PdelayPausedUntil is set while Pdelay_Req is stopped after too
	// many (802.1AS: 5 minutes).
	MultipleResponses  uint64
	MultipleSequential int
	PdelayPausedUntil  time.Time
	// RateRatio is the grandmaster's frequency over ours: the received
	// follow-up information TLV's cumulativeScaledRateOffset (the rate
	// of the grandmaster over our link peer) times the
	// neighborRateRatio. CumulativeScaledRateOffset is as received.
	RateRatio                  float64
	CumulativeScaledRateOffset int32
	// GMTimeBaseIndicator is the newest one received, and
	// GMTimeBaseChanges how often it changed (each is a grandmaster
	// change or a phase or frequency change of its time base, with
	// LastGMPhaseChange and ScaledLastGMFreqChange).
	GMTimeBaseIndicator    uint16
	GMTimeBaseChanges      uint64
	LastGMPhaseChange      [12]byte
	ScaledLastGMFreqChange int32
	// SyncReceiptTimeouts counts the parents given up for lack of Sync;
	// IncapableDropped the Announce, Sync and Follow_Up messages dropped
	// because the link was not asCapable; IntervalRequestsSent the
	// message interval requests sent (the operational intervals once
	// locked, the initial ones again when unlocked).
	SyncReceiptTimeouts  uint64
	IncapableDropped     uint64
	IntervalRequestsSent uint64
	// OperationalIntervals: this slave asked for the operational
	// intervals and runs its Pdelay_Req at the operational rate.
	OperationalIntervals bool
}

// gptpOn says whether the 802.1AS rules apply to the port.
func (c *Clock) gptpOn() bool { return c.prof.MajorSdoID == 1 }

func (c *Clock) gptpThresh() time.Duration {
	if c.prof.NeighborPropDelayThresh != 0 {
		return c.prof.NeighborPropDelayThresh
	}
	return DefaultNeighborPropDelayThresh
}

func (c *Clock) gptpAllowedLost() int {
	if c.prof.AllowedLostResponses > 0 {
		return c.prof.AllowedLostResponses
	}
	return DefaultAllowedLostResponses
}

// gptpNotCapable is why the link is not asCapable ("" when it is), as
// linuxptp's port_capable and 802.1AS §11.2.13.
func (c *Clock) gptpNotCapable() string {
	if c.prof.NoBMCA {
		return "" // automotive: asCapable assumed
	}
	g := &c.gptp
	switch {
	case !g.peerValid:
		return "no Pdelay responder"
	case g.lost > c.gptpAllowedLost():
		return "Pdelay responses lost"
	case g.multipleSeq > c.gptpAllowedLost():
		return "several Pdelay responders"
	case !g.nrrValid:
		return "neighborRateRatio not measured"
	case !c.haveDelay:
		return "no path delay"
	case c.meanDelay > c.gptpThresh():
		return "neighborPropDelay above neighborPropDelayThresh"
	case c.meanDelay < DefaultMinNeighborPropDelay:
		return "neighborPropDelay below min_neighbor_prop_delay"
	}
	return ""
}

// AsCapable says whether a gPTP port may exchange Announce and Sync with
// its link peer (802.1AS §11.2.13.1): the automotive profile assumes it;
// gPTP needs a link peer (one, not several), a measured
// neighborRateRatio, a neighborPropDelay within neighborPropDelayThresh,
// and no more than allowedLostResponses lost responses in a row. Ports
// of other profiles are never asCapable (the notion is 802.1AS's).
func (c *Clock) AsCapable(time.Time) bool {
	return c.gptpOn() && c.gptpNotCapable() == ""
}

// gptpMayRx gates a received Announce, Sync or Follow_Up (802.1AS
// §10.2.2.1, §10.3.10: not taken on a port that is not asCapable; as
// linuxptp's incapable_ignore).
func (c *Clock) gptpMayRx() bool {
	if !c.gptpOn() || c.gptpNotCapable() == "" {
		return true
	}
	c.gptp.incapableDropped++
	return false
}

// gptpMayTx gates a Sync or Announce to send: none on a port that is not
// asCapable.
func (c *Clock) gptpMayTx() bool {
	return !c.gptpOn() || c.gptpNotCapable() == ""
}

// gptpPdelaySend is sendPdelayReq's hook, before the new request replaces
// the old: it counts the old one lost when it was not answered in full,
// tallies the multiple responders of the last request, and says whether
// to send at all (not while paused after too many multiple responders,
// nor from an automotive grandmaster: linuxptp's inhibit_delay_req).
func (c *Clock) gptpPdelaySend(now time.Time, seq uint16) bool {
	if !c.gptpOn() {
		return true
	}
	if c.prof.NoBMCA && c.cfg.MasterOnly {
		return false
	}
	g := &c.gptp
	if now.Before(g.pausedUntil) {
		return false
	}
	if g.reqSent {
		if !g.reqDone {
			g.lost++
			g.lostTotal++
		}
		if g.reqMultiple {
			g.multipleSeq++
			if g.multipleSeq > c.gptpAllowedLost() {
				// 802.1AS §11.2.19.3.4: stop for 5 minutes, then
				// start over with a clean count.
				g.pausedUntil = now.Add(multipleResponderPause)
				g.multipleSeq, g.peerValid, g.nrrValid, g.havePrev = 0, false, false, false
				g.reqSent = false
				return false
			}
		} else {
			g.multipleSeq = 0
		}
	}
	g.reqSent, g.reqSeq, g.reqDone, g.reqMultiple, g.reqResponder = true, seq, false, false, PortIdentity{}
	return true
}

// gptpPdelayResp is rxPdelayResp's hook for a response to us: it notes
// the responder, and reports (true) a second response to the same
// request from another port, which is then not used.
func (c *Clock) gptpPdelayResp(m *PdelayResp) bool {
	if !c.gptpOn() {
		return false
	}
	g := &c.gptp
	if !g.reqSent || m.Sequence != g.reqSeq {
		return false
	}
	if g.reqResponder == (PortIdentity{}) {
		g.reqResponder = m.Source
		if g.peerValid && g.peer != m.Source {
			// another link peer: its rate is not the old one's
			g.nrrValid, g.havePrev = false, false
		}
		g.peer, g.peerValid = m.Source, true
		return false
	}
	if m.Source != g.reqResponder && !g.reqMultiple {
		g.reqMultiple = true
		g.multipleTotal++
	}
	return m.Source != g.reqResponder
}

// gptpPdelayDone is tryPdelay's hook when an exchange completes.
func (c *Clock) gptpPdelayDone() {
	if c.gptpOn() {
		c.gptp.reqDone = true
		c.gptp.lost = 0
	}
}

// gptpFollowUp takes the follow-up information TLV of the parent's
// Follow_Up (rxFollowUp's hook): the cumulativeScaledRateOffset for the
// Sync path and the grandmaster's time base indicator.
func (c *Clock) gptpFollowUp(m *FollowUp) {
	if !c.gptpOn() {
		return
	}
	f, ok, err := ParseFollowUpInfo(m.TLVs)
	if !ok || err != nil {
		return
	}
	g := &c.gptp
	if g.haveFUI && f.GMTimeBaseIndicator != g.fui.GMTimeBaseIndicator {
		g.tbChanges++
	}
	g.fui, g.haveFUI = f, true
}

// gmOverNeighbor is the grandmaster's frequency over the link peer's:
// 1 + cumulativeScaledRateOffset·2⁻⁴¹ (1 without a TLV).
func (c *Clock) gmOverNeighbor() float64 {
	if !c.gptp.haveFUI {
		return 1
	}
	return 1 + float64(c.gptp.fui.CumulativeScaledRateOffset)/(1<<41)
}

// gptpSyncDelay is the path delay the Sync path subtracts (measure's
// hook): 802.1AS measures neighborPropDelay in the responder's time
// base; the Sync's times are the grandmaster's, so the delay is scaled by
// the grandmaster's rate over the responder's (the received
// cumulativeScaledRateOffset; §11.2.14.2.1's neighborPropDelay ×
// rateRatio/neighborRateRatio).
func (c *Clock) gptpSyncDelay(d time.Duration) time.Duration {
	if !c.gptpOn() || !c.gptp.haveFUI {
		return d
	}
	return time.Duration(math.Round(float64(d) * c.gmOverNeighbor()))
}

// gptpSyncReceived re-arms the syncReceiptTimeout in the parent's Sync
// interval, and sends the interval requests the servo's new state calls
// for (completeSync's hook, after the measurement).
func (c *Clock) gptpSyncReceived(now time.Time) {
	if !c.gptpOn() {
		return
	}
	if !c.prof.NoBMCA {
		c.gptp.syncTimeout = now.Add(c.syncReceiptTimeout())
	}
	c.gptpIntervals(now)
}

func (c *Clock) syncReceiptTimeout() time.Duration {
	n := c.prof.SyncReceiptTimeout
	if n == 0 {
		n = DefaultSyncReceiptTimeout
	}
	return time.Duration(n) * logInterval(c.port.LogSyncInterval)
}

// gptpWakeup is Wakeup's hook: syncReceiptTimeout (802.1AS §10.2.3.3,
// §10.3.11.2.1: a slave whose parent sends no Sync for that long gives it
// up as on an announce receipt timeout), and the message interval
// requests of a slave (operational intervals once its servo locks, the
// initial ones when it unlocks).
func (c *Clock) gptpWakeup(now time.Time) {
	if !c.gptpOn() {
		return
	}
	g := &c.gptp
	if !c.prof.NoBMCA {
		switch {
		case !c.isSlave():
			g.syncTimeout = time.Time{}
		case g.syncTimeout.IsZero():
			g.syncTimeout = now.Add(c.syncReceiptTimeout())
		case !now.Before(g.syncTimeout):
			g.syncTimeout = time.Time{}
			g.syncTimeouts++
			c.dropForeign(c.pds.ParentPort)
			c.decide(now, true)
			if c.port.State == StateListening {
				c.announceTimeout = now.Add(time.Duration(c.port.AnnounceReceiptTimeout) * logInterval(c.port.LogAnnounceInterval))
			}
		}
	}
	c.gptpIntervals(now)
}

// gptpNext is the hook's next deadline for NextWakeup.
func (c *Clock) gptpNext() time.Time { return c.gptp.syncTimeout }

// dropForeign forgets a foreign master record.
func (c *Clock) dropForeign(p PortIdentity) {
	for i, f := range c.foreign {
		if f.sender == p {
			c.foreign = append(c.foreign[:i], c.foreign[i+1:]...)
			return
		}
	}
}

// gptpIntervals sends a slave's message interval requests (linuxptp's
// msg_interval_request with operLogSyncInterval and
// operLogPdelayReqInterval, the automotive profile's): once the port is
// SLAVE and its servo locked, it runs its own Pdelay_Req at the
// operational interval and asks the master for the operational Sync
// interval; when it leaves SLAVE or its servo unlocks (a step) it goes
// back to the initial Pdelay_Req interval and asks for the initial Sync
// interval again; when the master's Syncs show it has forgotten the
// request (it restarted), it asks again.
func (c *Clock) gptpIntervals(now time.Time) {
	if !c.prof.IntervalRequest || c.cfg.MasterOnly {
		return
	}
	g := &c.gptp
	locked := c.port.State == StateSlave && c.servo.State() == ServoLocked
	// The master's Syncs carry another interval than the one asked for
	// a while ago: it started over (ptp4l's case in
	// message_interval_request); ask again, at most once a second.
	forgot := g.oper && c.lastSync.logInt != c.prof.OperLogSyncInterval && now.Sub(g.lastRequest) >= time.Second
	switch {
	case locked && (!g.oper || forgot):
		if !c.gptpMayTx() {
			return
		}
		g.oper, g.lastRequest = true, now
		c.setPdelayInterval(c.prof.OperLogPdelayReqInterval)
		c.sendIntervalRequest(IntervalRequest{LinkDelay: intervalNoChange, TimeSync: c.prof.OperLogSyncInterval, Announce: intervalNoChange})
	case !locked && g.oper:
		g.oper, g.lastRequest = false, now
		c.setPdelayInterval(c.prof.LogMinPdelayReqInterval)
		c.sendIntervalRequest(IntervalRequest{LinkDelay: intervalNoChange, TimeSync: intervalInitial, Announce: intervalNoChange})
	}
}

// setPdelayInterval changes our Pdelay_Req interval, keeping the
// neighborRateRatio's measurement going.
func (c *Clock) setPdelayInterval(l int8) {
	c.port.LogMinPdelayReqInterval = l
}

// sendIntervalRequest sends a Signaling message with a message interval
// request to every port of the link (target all ones).
func (c *Clock) sendIntervalRequest(r IntervalRequest) {
	c.seqSignaling++
	m := &Signaling{Header: c.header(MsgSignaling, c.seqSignaling, 0x7f),
		Target: PortIdentity{Clock: AllOnes, Port: 0xffff}, TLVs: []TLV{r.TLV()}}
	c.emit(m, false, true, false)
	c.gptp.requestsSent++
}

// GPTPLink returns the port's link state (zero on ports of other
// profiles).
func (c *Clock) GPTPLink() GPTPLink {
	if !c.gptpOn() {
		return GPTPLink{}
	}
	g := &c.gptp
	why := c.gptpNotCapable()
	l := GPTPLink{AsCapable: why == "", NotCapable: why, NeighborRateRatio: 1, NeighborRateRatioValid: g.nrrValid,
		NeighborPropDelay: c.meanDelay, NeighborPropDelayThresh: c.gptpThresh(),
		LostResponses: g.lost, AllowedLostResponses: c.gptpAllowedLost(), LostTotal: g.lostTotal,
		MultipleResponses: g.multipleTotal, MultipleSequential: g.multipleSeq, PdelayPausedUntil: g.pausedUntil,
		CumulativeScaledRateOffset: g.fui.CumulativeScaledRateOffset, GMTimeBaseIndicator: g.fui.GMTimeBaseIndicator,
		GMTimeBaseChanges: g.tbChanges, LastGMPhaseChange: g.fui.LastGMPhaseChange, ScaledLastGMFreqChange: g.fui.ScaledLastGMFreqChange,
		SyncReceiptTimeouts: g.syncTimeouts, IncapableDropped: g.incapableDropped, IntervalRequestsSent: g.requestsSent,
		OperationalIntervals: g.oper}
	if g.peerValid {
		l.Peer = g.peer
	}
	if g.nrrValid {
		l.NeighborRateRatio = g.nrr
	}
	if !c.haveDelay {
		l.NeighborPropDelay = 0
	}
	l.RateRatio = c.gmOverNeighbor() * l.NeighborRateRatio
	return l
}

// masterEntry is the state a port the BMCA makes master enters:
// PRE_MASTER (1588), or MASTER at once (802.1AS).
func (c *Clock) masterEntry() PortState {
	if c.prof.NoPreMaster {
		return StateMaster
	}
	return StatePreMaster
}
