package ptp

import (
	"fmt"
	"time"
)

// Automotive is the AVnu automotive profile as linuxptp's
// automotive-master.cfg and automotive-slave.cfg run it: 802.1AS messages
// (gPTP's majorSdoId, P2P, follow-up information) with static roles
// instead of the BMCA (a port is grandmaster or slave from the start:
// fast start, asCapable assumed), no Announce, and a slave that takes
// Sync from whichever master sends it. Its initial intervals are Sync
// 1/8 s and Pdelay_Req 1 s; a slave may ask the master for slower
// operational ones with a Signaling message interval request, which a
// gnomond master honours (HandleSignaling) and a gnomond slave sends once
// its servo has locked (gptp_link.go's gptpIntervals: Sync 1 s,
// Pdelay_Req 4 s, linuxptp's automotive-slave.cfg). A grandmaster sends no
// Pdelay_Req (inhibit_delay_req).
var Automotive = func() Profile {
	p := GPTP
	p.Name = "automotive"
	p.NoBMCA = true
	p.NoAnnounce = true
	p.AnySource = true
	// automotive-slave.cfg's operational intervals (Sync 1 s,
	// Pdelay_Req 4 s), asked for once the slave is locked
	p.IntervalRequest = true
	p.OperLogSyncInterval = 0
	p.OperLogPdelayReqInterval = 2
	return p
}()

// The message interval request TLV (802.1AS §10.6.4.3): organization
// 00-80-C2, subtype 2; linkDelayInterval, timeSyncInterval,
// announceInterval (log2 s; 126 keeps, 127 stops, −128 means the
// initial value), flags, 2 reserved.
var intervalRequestSubType = [3]byte{0, 0, 2}

// IntervalRequest is a message interval request.
type IntervalRequest struct {
	LinkDelay, TimeSync, Announce int8
	Flags                         uint8
}

// TLV encodes it as an ORGANIZATION_EXTENSION TLV.
func (r IntervalRequest) TLV() TLV {
	d := []byte{byte(r.LinkDelay), byte(r.TimeSync), byte(r.Announce), r.Flags, 0, 0}
	return OrgTLV{OUI: OUI8021, SubType: intervalRequestSubType, Data: d}.TLV(TLVOrganizationExtension)
}

// ParseIntervalRequest finds a message interval request among tlvs.
func ParseIntervalRequest(tlvs []TLV) (IntervalRequest, bool, error) {
	for _, t := range tlvs {
		if t.Type != TLVOrganizationExtension {
			continue
		}
		o, err := ParseOrgTLV(t)
		if err != nil || o.OUI != OUI8021 || o.SubType != intervalRequestSubType {
			continue
		}
		if len(o.Data) < 4 {
			return IntervalRequest{}, false, fmt.Errorf("%w: message interval request of %d octets, 6 needed", ErrTLV, len(o.Data))
		}
		return IntervalRequest{LinkDelay: int8(o.Data[0]), TimeSync: int8(o.Data[1]), Announce: int8(o.Data[2]), Flags: o.Data[3]}, true, nil
	}
	return IntervalRequest{}, false, nil
}

// staticRole is the automotive start (initialize's hook): no BMCA, the
// configured role at once.
func (c *Clock) staticRole(now time.Time) {
	if !c.prof.NoBMCA {
		return
	}
	switch {
	case c.cfg.MasterOnly:
		c.setState(StateMaster, now)
	case c.cfg.SlaveOnly:
		c.setState(StateSlave, now)
		c.announceTimeout = time.Time{} // no Announce is coming
	}
}

// adoptSource makes the sender of a Sync or Follow_Up the parent when
// the profile takes Sync from any master (rxSync's and rxFollowUp's
// hook).
func (c *Clock) adoptSource(src PortIdentity) {
	if !c.prof.AnySource || src == c.pds.ParentPort {
		return
	}
	c.pds.ParentPort = src
	c.pds.GMIdentity = src.Clock
	c.cds.StepsRemoved = 1
	c.sync = syncState{}
}

// HandleSignaling applies a message interval request addressed to this
// port (or to all ports) on a gPTP or automotive port (Receive's hook):
// the Sync, Pdelay_Req and (gPTP) Announce intervals change as asked
// (802.1AS §10.6.4.3.6: −128 keeps, 126 restores the profile's initial
// one, 127 stops sending; linuxptp's SIGNAL_NO_CHANGE and
// SIGNAL_SET_INITIAL).
func (c *Clock) handleSignaling(m *Signaling) {
	if c.prof.MajorSdoID != 1 {
		return
	}
	if m.Target != WildcardPort && m.Target != c.port.Identity && m.Target.Clock != AllOnes {
		return
	}
	r, ok, err := ParseIntervalRequest(m.TLVs)
	if !ok || err != nil {
		return
	}
	set := func(v int8, initial int8, dst *int8) {
		switch {
		case v == intervalNoChange:
		case v == intervalInitial:
			*dst = initial
		case v == intervalStop:
			*dst = intervalStop // logInterval makes it 2³⁰ s: stopped
		case v >= -7 && v <= 7:
			*dst = v
		}
	}
	set(r.TimeSync, c.prof.LogSyncInterval, &c.port.LogSyncInterval)
	set(r.LinkDelay, c.prof.LogMinPdelayReqInterval, &c.port.LogMinPdelayReqInterval)
	if !c.prof.NoAnnounce {
		set(r.Announce, c.prof.LogAnnounceInterval, &c.port.LogAnnounceInterval)
	}
	c.counters.IntervalRequests++
}

// Interval request helpers for tests and for a slave that asks.
func (r IntervalRequest) String() string {
	return fmt.Sprintf("linkDelay %d timeSync %d announce %d", r.LinkDelay, r.TimeSync, r.Announce)
}
