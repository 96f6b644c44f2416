package daemon

import (
	"log/slog"
	"testing"
	"time"

	"gnomon.dev/gnomon/engine/clock"
	eptp "gnomon.dev/gnomon/engine/ptp"
	"gnomon.dev/gnomon/service/config"
	ptpsvc "gnomon.dev/gnomon/service/ptp"
)

// TestPTPPortConfig: the configuration becomes the engine's and the
// transport's settings.
func TestPTPPortConfig(t *testing.T) {
	d := &Daemon{log: slog.Default(), virtual: clock.NewVirtual(wallReader{})}
	common := config.PTPCommon{Interface: "eth9", Domain: 24, Transport: "ethernet", DelayMechanism: "p2p",
		Timestamping: "software", Asymmetry: 250 * time.Nanosecond, ManagementSocket: "/var/lib/gnomon/x.sock"}
	src, err := d.ptpPortConfig("ptp:eth9", common, nil)
	if err != nil {
		t.Fatal(err)
	}
	e := src.Engine
	if !e.SlaveOnly || e.MasterOnly || e.Domain != 24 || e.Asymmetry != 250*time.Nanosecond || e.Profile.DelayMechanism != eptp.DelayP2P {
		t.Errorf("source engine config %+v", e)
	}
	if tr := src.Transport; tr.Kind != ptpsvc.Ethernet || tr.Interface != "eth9" || !tr.Peer || tr.Hardware || tr.ManagementSocket != common.ManagementSocket || !src.Observe || src.PHC != nil {
		t.Errorf("source transport %+v observe %v", tr, src.Observe)
	}
	port := config.PTPPortConfig{PTPCommon: common, Priority1: 90, Priority2: 91, ClockClass: 6, ClockAccuracy: 0x21,
		AnnounceInterval: 0, SyncInterval: -3, DelayRequestInterval: -2, AnnounceReceiptTimeout: 4, MasterOnly: true, OneStep: true}
	port.DelayMechanism = "e2e"
	pc, err := d.ptpPortConfig("ptp-port:eth9", port.PTPCommon, &port)
	if err != nil {
		t.Fatal(err)
	}
	e = pc.Engine
	if e.SlaveOnly || !e.MasterOnly || !e.OneStep || e.Priority1 != 90 || e.Priority2 != 91 || e.Quality == nil ||
		e.Quality.Class != 6 || e.Quality.Accuracy != 0x21 || e.Profile.LogSyncInterval != -3 || e.Profile.LogAnnounceInterval != 0 ||
		e.Profile.LogMinDelayReqInterval != -2 || e.Profile.AnnounceReceiptTimeout != 4 || e.Profile.DelayMechanism != eptp.DelayE2E {
		t.Errorf("port engine config %+v profile %+v", e, e.Profile)
	}
}
