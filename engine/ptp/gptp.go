package ptp

import (
	"encoding/binary"
	"fmt"
	"time"
)

// GPTP is the IEEE 802.1AS (gPTP) profile as far as gnomond implements
// it: majorSdoId 1 (transportSpecific 1), the peer-to-peer delay
// mechanism, every message to 01-80-C2-00-00-0E, PATH_TRACE on Announce,
// the follow-up information TLV on every Follow_Up, message interval
// requests honoured (automotive.go) and sent (gptp_link.go), and
// 802.1AS's default intervals (Announce 1 s, Sync 1/8 s, Pdelay_Req 1 s),
// with the neighborRateRatio measured and used for the path delay, and
// the per-link rules of gptp_link.go: asCapable (neighborPropDelayThresh,
// lost and multiple responses) gating Announce and Sync, the received
// cumulativeScaledRateOffset in the Sync path, syncReceiptTimeout. The
// BMCA is 1588's with 802.1AS's differences: no foreign master
// qualification (one Announce is enough) and no PRE_MASTER state. It runs
// over Ethernet (the configuration insists). Not implemented: the
// cumulativeScaledRateOffset a bridge would accumulate (sent as 0:
// gnomond is an end station, not a time-aware bridge).
var GPTP = Profile{
	Name: "gptp", MajorSdoID: 1, DelayMechanism: DelayP2P,
	LogAnnounceInterval: 0, LogSyncInterval: -3, LogMinDelayReqInterval: 0, LogMinPdelayReqInterval: 0,
	AnnounceReceiptTimeout: 3, PathTrace: true, FollowUpInfo: true, AllToPeerAddress: true,
	ForeignMasterThreshold: 1, ForeignMasterWindow: 4, NoPreMaster: true,
	NeighborPropDelayThresh: DefaultNeighborPropDelayThresh, AllowedLostResponses: DefaultAllowedLostResponses,
	SyncReceiptTimeout: DefaultSyncReceiptTimeout, OperLogSyncInterval: -3, OperLogPdelayReqInterval: 0,
}

// The follow-up information TLV's organization (IEEE 802.1, 00-80-C2)
// and subtype (1).
var (
	OUI8021             = [3]byte{0x00, 0x80, 0xc2}
	followUpInfoSubType = [3]byte{0, 0, 1}
)

// FollowUpInfo is 802.1AS's follow-up information TLV (§11.4.4.3).
type FollowUpInfo struct {
	CumulativeScaledRateOffset int32 // (rateRatio − 1) × 2^41
	GMTimeBaseIndicator        uint16
	LastGMPhaseChange          [12]byte // ScaledNs, kept as on the wire
	ScaledLastGMFreqChange     int32
}

// TLV encodes it as an ORGANIZATION_EXTENSION TLV.
func (f FollowUpInfo) TLV() TLV {
	d := make([]byte, 22)
	binary.BigEndian.PutUint32(d[0:4], uint32(f.CumulativeScaledRateOffset))
	binary.BigEndian.PutUint16(d[4:6], f.GMTimeBaseIndicator)
	copy(d[6:18], f.LastGMPhaseChange[:])
	binary.BigEndian.PutUint32(d[18:22], uint32(f.ScaledLastGMFreqChange))
	return OrgTLV{OUI: OUI8021, SubType: followUpInfoSubType, Data: d}.TLV(TLVOrganizationExtension)
}

// ParseFollowUpInfo finds the follow-up information TLV among tlvs.
func ParseFollowUpInfo(tlvs []TLV) (FollowUpInfo, bool, error) {
	var f FollowUpInfo
	for _, t := range tlvs {
		if t.Type != TLVOrganizationExtension {
			continue
		}
		o, err := ParseOrgTLV(t)
		if err != nil || o.OUI != OUI8021 || o.SubType != followUpInfoSubType {
			continue
		}
		if len(o.Data) < 22 {
			return f, false, fmt.Errorf("%w: follow-up information of %d octets, 22 needed", ErrTLV, len(o.Data))
		}
		f.CumulativeScaledRateOffset = int32(binary.BigEndian.Uint32(o.Data[0:4]))
		f.GMTimeBaseIndicator = binary.BigEndian.Uint16(o.Data[4:6])
		copy(f.LastGMPhaseChange[:], o.Data[6:18])
		f.ScaledLastGMFreqChange = int32(binary.BigEndian.Uint32(o.Data[18:22]))
		return f, true, nil
	}
	return f, false, nil
}

// ProfileNamed returns a profile by its configuration name ("" and
// "default" give the default profile of the delay mechanism).
func ProfileNamed(name string, p2p bool) (Profile, error) {
	switch name {
	case "", "default":
		if p2p {
			return DefaultP2P, nil
		}
		return DefaultE2E, nil
	case "gptp":
		return GPTP, nil
	case "automotive":
		return Automotive, nil
	}
	return Profile{}, fmt.Errorf("ptp: unknown profile %q", name)
}

// gptpState is what an 802.1AS port keeps about its link (Clock.gptp).
type gptpState struct {
	t3Prev    Timestamp
	t4Prev    time.Time
	havePrev  bool
	nrr       float64 // neighborRateRatio: the peer's frequency over ours
	nrrValid  bool
	lastReply time.Time // our receipt of the newest complete Pdelay exchange

	// gptp_link.go: the link peer, lost and multiple responses
	peer          PortIdentity
	peerValid     bool
	reqSent       bool // a Pdelay_Req is out
	reqSeq        uint16
	reqDone       bool // ... and was answered in full
	reqMultiple   bool // ... by more than one port
	reqResponder  PortIdentity
	lost          int
	lostTotal     uint64
	multipleSeq   int
	multipleTotal uint64
	pausedUntil   time.Time
	// the parent's follow-up information, syncReceiptTimeout, interval requests
	fui              FollowUpInfo
	haveFUI          bool
	tbChanges        uint64
	syncTimeout      time.Time
	syncTimeouts     uint64
	incapableDropped uint64
	oper             bool
	lastRequest      time.Time
	requestsSent     uint64
}

// gptpRTT is tryPdelay's hook: on a gPTP port it measures the
// neighborRateRatio from successive Pdelay exchanges (the responder's
// t3 against our t4) and returns the round trip with the responder's
// turnaround measured in our time: 802.1AS's (r·(t4−t1) − (t3−t2)),
// which is rtt + (r−1)·(t4−t1).
func (c *Clock) gptpRTT(p *exchange, rtt time.Duration) time.Duration {
	if c.prof.MajorSdoID != 1 {
		return rtt
	}
	g := &c.gptp
	if g.havePrev {
		d4 := p.t4.Sub(g.t4Prev)
		d3 := p.t3.Time().Sub(g.t3Prev.Time())
		if d4 > 0 && d3 > 0 {
			if r := float64(d3) / float64(d4); r > 0.999 && r < 1.001 { // ±1000 ppm: else a reset, not a rate
				g.nrr, g.nrrValid = r, true
			}
		}
	}
	g.t3Prev, g.t4Prev, g.havePrev, g.lastReply = p.t3, p.t4, true, p.t4
	if !g.nrrValid {
		return rtt
	}
	return rtt + time.Duration((g.nrr-1)*float64(p.t4.Sub(p.t1)))
}

// NeighborRateRatio is the measured neighborRateRatio (1 until two Pdelay
// exchanges have completed) and whether it was measured.
func (c *Clock) NeighborRateRatio() (float64, bool) {
	if !c.gptp.nrrValid {
		return 1, false
	}
	return c.gptp.nrr, true
}
