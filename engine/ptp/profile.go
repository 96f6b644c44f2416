package ptp

import "time"

// Profile is a set of defaults and rule switches (1588-2019 §20.3). The
// default profiles of Annex I (Delay Request-Response and Peer-to-Peer)
// are here; 802.1AS, the automotive profile and CSPTP set more of it.
type Profile struct {
	Name                    string
	MajorSdoID              uint8
	DelayMechanism          DelayMechanism
	LogAnnounceInterval     int8
	LogSyncInterval         int8
	LogMinDelayReqInterval  int8
	LogMinPdelayReqInterval int8
	AnnounceReceiptTimeout  uint8
	// PathTrace appends and checks the PATH_TRACE TLV (§16.2).
	PathTrace bool
	// NoBMCA fixes the port's role instead of running the BMCA (the
	// automotive profile's static roles build on it).
	NoBMCA bool
	// FollowUpInfo adds 802.1AS's follow-up information TLV to every
	// Follow_Up (gptp.go).
	FollowUpInfo bool
	// AllToPeerAddress sends every message to the peer delay address
	// (802.1AS: 01-80-C2-00-00-0E, which bridges never forward), not only
	// the Pdelay ones.
	AllToPeerAddress bool
	// NoAnnounce: a master sends no Announce (the automotive profile's
	// inhibit_announce); AnySource: a slave takes Sync from any master
	// (ignore_source_id). automotive.go.
	NoAnnounce bool
	AnySource  bool
	// ForeignMasterThreshold and Window are the qualification rule of
	// §9.3.2.5 (2 Announces within 4 announce intervals).
	ForeignMasterThreshold int
	ForeignMasterWindow    int
	// NoPreMaster: a port the BMCA makes master is MASTER at once
	// (802.1AS has no PRE_MASTER state).
	NoPreMaster bool
	// 802.1AS's per-link settings (gptp_link.go): the path delay above
	// which a link is not asCapable, how many Pdelay responses may be
	// lost in a row, and the syncReceiptTimeout in Sync intervals.
	NeighborPropDelayThresh time.Duration
	AllowedLostResponses    int
	SyncReceiptTimeout      uint8
	// IntervalRequest: a slave, once locked, asks its master for
	// OperLogSyncInterval and runs its own Pdelay_Req at
	// OperLogPdelayReqInterval (linuxptp's msg_interval_request,
	// operLogSyncInterval, operLogPdelayReqInterval).
	IntervalRequest          bool
	OperLogSyncInterval      int8
	OperLogPdelayReqInterval int8
}

// DefaultE2E is the Delay Request-Response default profile (Annex I.3).
var DefaultE2E = Profile{
	Name: "default-e2e", DelayMechanism: DelayE2E,
	LogAnnounceInterval: 1, LogSyncInterval: 0, LogMinDelayReqInterval: 0, LogMinPdelayReqInterval: 0,
	AnnounceReceiptTimeout: 3, ForeignMasterThreshold: 2, ForeignMasterWindow: 4,
}

// DefaultP2P is the Peer-to-Peer default profile (Annex I.4).
var DefaultP2P = func() Profile {
	p := DefaultE2E
	p.Name = "default-p2p"
	p.DelayMechanism = DelayP2P
	return p
}()

func logInterval(l int8) time.Duration {
	if l >= 0 {
		if l > 30 {
			l = 30
		}
		return time.Second << uint(l)
	}
	if l < -30 {
		l = -30
	}
	return time.Second >> uint(-l)
}
