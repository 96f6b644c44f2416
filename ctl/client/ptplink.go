package client

import (
	godbus "github.com/godbus/dbus/v5"
)

// PTPLink is a Source's PTPLink property: an 802.1AS port's link (nil for
// other sources and profiles).
type PTPLink struct {
	AsCapable                  bool    `json:"as_capable"`
	NotCapable                 string  `json:"not_capable,omitempty"`
	NeighborRateRatio          float64 `json:"neighbor_rate_ratio"`
	NeighborRateRatioValid     bool    `json:"neighbor_rate_ratio_valid"`
	NeighborPropDelayNS        int64   `json:"neighbor_prop_delay_ns"`
	NeighborPropDelayThreshNS  int64   `json:"neighbor_prop_delay_thresh_ns"`
	Peer                       string  `json:"peer"`
	LostResponses              uint64  `json:"lost_responses"`
	MultipleResponses          uint64  `json:"multiple_responses"`
	RateRatio                  float64 `json:"rate_ratio"`
	CumulativeScaledRateOffset int32   `json:"cumulative_scaled_rate_offset"`
	GMTimeBaseIndicator        uint16  `json:"gm_time_base_indicator"`
	GMTimeBaseChanges          uint64  `json:"gm_time_base_changes"`
	SyncReceiptTimeouts        uint64  `json:"sync_receipt_timeouts"`
	IntervalRequestsSent       uint64  `json:"interval_requests_sent"`
	LogSyncInterval            int32   `json:"log_sync_interval"`
	LogPdelayReqInterval       int32   `json:"log_pdelay_req_interval"`
}

func ptpLinkOf(p map[string]godbus.Variant) *PTPLink {
	var m map[string]godbus.Variant
	get(p, "PTPLink", &m)
	if len(m) == 0 {
		return nil
	}
	l := &PTPLink{}
	get(m, "AsCapable", &l.AsCapable)
	get(m, "NotCapable", &l.NotCapable)
	get(m, "NeighborRateRatio", &l.NeighborRateRatio)
	get(m, "NeighborRateRatioValid", &l.NeighborRateRatioValid)
	get(m, "NeighborPropDelay", &l.NeighborPropDelayNS)
	get(m, "NeighborPropDelayThresh", &l.NeighborPropDelayThreshNS)
	get(m, "Peer", &l.Peer)
	get(m, "LostResponses", &l.LostResponses)
	get(m, "MultipleResponses", &l.MultipleResponses)
	get(m, "RateRatio", &l.RateRatio)
	get(m, "CumulativeScaledRateOffset", &l.CumulativeScaledRateOffset)
	get(m, "GMTimeBaseIndicator", &l.GMTimeBaseIndicator)
	get(m, "GMTimeBaseChanges", &l.GMTimeBaseChanges)
	get(m, "SyncReceiptTimeouts", &l.SyncReceiptTimeouts)
	get(m, "IntervalRequestsSent", &l.IntervalRequestsSent)
	get(m, "LogSyncInterval", &l.LogSyncInterval)
	get(m, "LogPdelayReqInterval", &l.LogPdelayReqInterval)
	return l
}
