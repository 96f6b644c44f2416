package ptp

import (
	"encoding/binary"
	"fmt"
)

// GPTP is the IEEE 802.1AS (gPTP) profile as far as gnomond implements
// it: majorSdoId 1 (transportSpecific 1), the peer-to-peer delay
// mechanism, every message to 01-80-C2-00-00-0E, PATH_TRACE on Announce,
// the follow-up information TLV on every Follow_Up, message interval
// requests honoured (automotive.go), and 802.1AS's default intervals (Announce 1 s, Sync
// 1/8 s, Pdelay_Req 1 s). It runs over Ethernet (the configuration
// insists). Not implemented: neighborRateRatio (the ratio is taken as 1:
// exact for two ports of one host, an error of the frequency offset
// times the residence time otherwise), the cumulativeScaledRateOffset a
// bridge would accumulate (sent as 0: gnomond is an end station),
// asCapable as a per-link state (a port exchanges Sync with any peer
// that answers its Pdelay_Req), Signaling interval requests, and
// 802.1AS's syncReceiptTimeout.
var GPTP = Profile{
	Name: "gptp", MajorSdoID: 1, DelayMechanism: DelayP2P,
	LogAnnounceInterval: 0, LogSyncInterval: -3, LogMinDelayReqInterval: 0, LogMinPdelayReqInterval: 0,
	AnnounceReceiptTimeout: 3, PathTrace: true, FollowUpInfo: true, AllToPeerAddress: true,
	ForeignMasterThreshold: 2, ForeignMasterWindow: 4,
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
