package daemon

import (
	"context"
	"fmt"
	"strings"
	"time"

	eptp "gnomon.dev/gnomon/engine/ptp"
	"gnomon.dev/gnomon/engine/system"
	"gnomon.dev/gnomon/service/config"
	ptpsvc "gnomon.dev/gnomon/service/ptp"
)

// PTP ports get source IDs far above the engine's, so the two never meet.
const ptpIDBase system.ID = 1 << 40

// startPTP opens every PTP port of the configuration ([[source]] with
// mode = "ptp", slave only, and [[ptp-port]], which may become master)
// and runs each in its own goroutine. It runs before the privilege drop:
// AF_PACKET sockets, SIOCSHWTSTAMP and /dev/ptpN need it.
func (d *Daemon) startPTP(ctx context.Context) error {
	type want struct {
		name   string
		common config.PTPCommon
		port   *config.PTPPortConfig
		src    config.SourceConfig
	}
	var all []want
	for _, s := range d.cfg.Sources {
		if s.Mode == config.SourcePTP && s.PTP != nil {
			all = append(all, want{name: "ptp:" + s.PTP.Interface, common: *s.PTP, src: s})
		}
	}
	for i := range d.cfg.PTPPorts {
		p := &d.cfg.PTPPorts[i]
		all = append(all, want{name: "ptp-port:" + p.Interface, common: p.PTPCommon, port: p})
	}
	for _, w := range all {
		cfg, err := d.ptpPortConfig(w.name, w.common, w.port)
		if err != nil {
			return err
		}
		d.addPTPSource(ctx, w.name, w.src.Prefer, w.src.NoSelect, &cfg)
		p, err := ptpsvc.NewPort(cfg, d.log)
		if err != nil {
			return fmt.Errorf("%s: %w", w.name, err)
		}
		d.ptp = append(d.ptp, p)
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			if err := p.Run(ctx); err != nil {
				d.log.Error("PTP port stopped", "port", w.name, "err", err)
			}
		}()
	}
	if len(d.ptp) > 0 {
		d.republishEverySecond(ctx)
		d.log.Info("PTP ports started", "ports", len(d.ptp))
	}
	return nil
}

func (d *Daemon) ptpPortConfig(name string, c config.PTPCommon, port *config.PTPPortConfig) (ptpsvc.PortConfig, error) {
	kind := ptpsvc.Kind(c.Transport)
	prof, err := eptp.ProfileNamed(c.Profile, c.DelayMechanism == "p2p")
	if err != nil {
		return ptpsvc.PortConfig{}, fmt.Errorf("%s: %w", name, err)
	}
	eng := eptp.Config{Domain: uint8(c.Domain), Asymmetry: c.Asymmetry, SlaveOnly: port == nil}
	if port != nil {
		prof.LogAnnounceInterval = int8(port.AnnounceInterval)
		prof.LogSyncInterval = int8(port.SyncInterval)
		prof.LogMinDelayReqInterval = int8(port.DelayRequestInterval)
		prof.LogMinPdelayReqInterval = int8(port.DelayRequestInterval)
		prof.AnnounceReceiptTimeout = uint8(port.AnnounceReceiptTimeout)
		eng.Priority1, eng.Priority2 = uint8(port.Priority1), uint8(port.Priority2)
		eng.Quality = &eptp.ClockQuality{Class: uint8(port.ClockClass), Accuracy: uint8(port.ClockAccuracy), OffsetScaledLogVariance: eptp.VarianceUnknown}
		eng.MasterOnly, eng.OneStep = port.MasterOnly, port.OneStep
	}
	if c.Profile == "automotive" {
		// static roles (engine/ptp/automotive.go)
		eng.SlaveOnly = port == nil || port.Role == "slave"
		eng.MasterOnly = port != nil && port.Role == "grandmaster"
	}
	if c.NeighborPropDelayThresh > 0 { // 802.1AS (engine/ptp/gptp_link.go)
		prof.NeighborPropDelayThresh = c.NeighborPropDelayThresh
	}
	eng.Profile = prof
	observe := d.virtual != nil
	cfg := ptpsvc.PortConfig{Name: name, Engine: eng, Observe: observe,
		Transport: ptpsvc.Options{Kind: kind, Interface: c.Interface, Peer: c.DelayMechanism == "p2p", ManagementSocket: c.ManagementSocket}}
	hw, _ := ptpsvc.ChooseTimestamping(c.Timestamping, c.Interface)
	if hw {
		idx, err := ptpsvc.EnableHardware(c.Interface, kind)
		if err != nil {
			if c.Timestamping == "hardware" {
				return cfg, fmt.Errorf("%s: %w", name, err)
			}
			d.log.Warn("hardware timestamping unavailable, using software timestamps", "port", name, "err", err)
		} else {
			phc, err := ptpsvc.OpenPHC(idx, !observe)
			if err != nil {
				return cfg, fmt.Errorf("%s: %w", name, err)
			}
			cfg.PHC = phc
			cfg.Transport.Hardware = true
			if port != nil && port.PHCFollow {
				cfg.Follow = &ptpsvc.FollowOptions{StepThreshold: port.PHCStepThreshold}
			}
		}
	}
	return cfg, nil
}

// addPTPViews adds a source per PTP port to the snapshot every view reads.
func (d *Daemon) addPTPViews(sn *system.Snapshot) {
	for i, p := range d.ptp {
		st := p.Status()
		if st == nil {
			continue
		}
		v := eptp.ViewOf(&st.Status)
		v.Interface, v.Transport, v.Hardware, v.Correction = st.Interface, string(st.Transport), st.Hardware, st.Correction
		v.PHCFollow = st.PHCFollow
		ss := system.SourceSnapshot{
			ID:         ptpIDBase + system.ID(i),
			Name:       st.Name,
			Address:    fmt.Sprintf("%s/%s/domain %d", st.Interface, st.Transport, v.Domain),
			Kind:       "ptp",
			Origin:     originConfig,
			Protocol:   v.State.String(),
			Selection:  "ptp-" + strings.ToLower(v.State.String()),
			Offset:     v.Offset,
			Delay:      v.MeanPathDelay,
			Leap:       v.Leap,
			LastSample: v.LastSample,
			Poll:       st.Port.LogSyncInterval,
			LastError:  st.LastError,
			Valid:      st.Counters.Rx[eptp.MsgSync],
			Sent:       st.Counters.Tx[eptp.MsgDelayReq] + st.Counters.Tx[eptp.MsgPdelayReq] + st.Counters.Tx[eptp.MsgSync],
			PTP:        &v,
		}
		if v.State == eptp.StateSlave || v.State == eptp.StateUncalibrated {
			ss.Stratum = uint8(min(v.StepsRemoved, 15))
			if !v.LastSample.IsZero() && time.Since(v.LastSample) < 10*time.Second {
				ss.Reach = 0xff
			}
		}
		if es := d.ptpSnapshot(sn, i); es != nil {
			// The engine's source (ptpsys.go): its selection state,
			// reach, stratum, offset and delay (of the system clock)
			// stay; the port's facts are added.
			es.Address, es.Poll, es.PTP = ss.Address, ss.Poll, ss.PTP
			if ss.LastError != "" {
				es.LastError = ss.LastError
			}
			continue
		}
		sn.Sources = append(sn.Sources, ss)
	}
}

// republishEverySecond makes the owner republish its snapshot once a second
// until ctx ends, so that views follow what runs on its own (PTP ports, CSPTP
// clients) between the engine's events.
func (d *Daemon) republishEverySecond(ctx context.Context) {
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				select {
				case d.events <- event{kind: evCall, call: func() {}}:
				default:
				}
			}
		}
	}()
}
