package dbus

import (
	godbus "github.com/godbus/dbus/v5"

	"gnomon.dev/gnomon/engine/system"
)

// ptpLinkProps is a Source's PTPLink property: an 802.1AS (gPTP or
// automotive) port's link as the engine sees it (docs/dbus.md), empty
// for other sources and other PTP profiles.
func ptpLinkProps(x system.SourceSnapshot) map[string]godbus.Variant {
	out := map[string]godbus.Variant{}
	if x.PTP == nil || !x.PTP.IEEE8021AS {
		return out
	}
	l := x.PTP.GPTP
	for k, v := range map[string]any{
		"AsCapable":                  l.AsCapable,
		"NotCapable":                 l.NotCapable,
		"NeighborRateRatio":          l.NeighborRateRatio,
		"NeighborRateRatioValid":     l.NeighborRateRatioValid,
		"NeighborPropDelay":          int64(l.NeighborPropDelay),
		"NeighborPropDelayThresh":    int64(l.NeighborPropDelayThresh),
		"Peer":                       l.Peer.String(),
		"LostResponses":              l.LostTotal,
		"MultipleResponses":          l.MultipleResponses,
		"RateRatio":                  l.RateRatio,
		"CumulativeScaledRateOffset": l.CumulativeScaledRateOffset,
		"GMTimeBaseIndicator":        l.GMTimeBaseIndicator,
		"GMTimeBaseChanges":          l.GMTimeBaseChanges,
		"SyncReceiptTimeouts":        l.SyncReceiptTimeouts,
		"IntervalRequestsSent":       l.IntervalRequestsSent,
		"LogSyncInterval":            int32(x.PTP.LogSyncInterval),
		"LogPdelayReqInterval":       int32(x.PTP.LogPdelayReqInterval),
	} {
		out[k] = godbus.MakeVariant(v)
	}
	return out
}
