package ptp

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// TSInfo is what ETHTOOL_GET_TS_INFO says about an interface's
// timestamping: the SOF_TIMESTAMPING_* capabilities, the index of its PTP
// hardware clock (/dev/ptpN; -1 when none), and the supported transmit
// types and receive filters (bit masks of HWTSTAMP_TX_* and
// HWTSTAMP_FILTER_*).
type TSInfo struct {
	Capabilities uint32
	PHCIndex     int
	TxTypes      uint32
	RxFilters    uint32
}

// Hardware says whether the interface can timestamp PTP in hardware.
func (i TSInfo) Hardware() bool {
	const need = unix.SOF_TIMESTAMPING_TX_HARDWARE | unix.SOF_TIMESTAMPING_RX_HARDWARE | unix.SOF_TIMESTAMPING_RAW_HARDWARE
	return i.Capabilities&need == need && i.PHCIndex >= 0
}

// Software says whether the kernel timestamps the interface's traffic.
func (i TSInfo) Software() bool {
	const need = unix.SOF_TIMESTAMPING_TX_SOFTWARE | unix.SOF_TIMESTAMPING_RX_SOFTWARE
	return i.Capabilities&need == need
}

func tsInfoOf(v *unix.EthtoolTsInfo) TSInfo {
	return TSInfo{Capabilities: v.So_timestamping, PHCIndex: int(v.Phc_index), TxTypes: v.Tx_types, RxFilters: v.Rx_filters}
}

// GetTSInfo asks the driver (SIOCETHTOOL, ETHTOOL_GET_TS_INFO).
func GetTSInfo(iface string) (TSInfo, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return TSInfo{}, err
	}
	defer unix.Close(fd)
	v, err := unix.IoctlGetEthtoolTsInfo(fd, iface)
	if err != nil {
		return TSInfo{}, fmt.Errorf("ptp: ETHTOOL_GET_TS_INFO on %s: %w", iface, err)
	}
	return tsInfoOf(v), nil
}

// hwConfig is the SIOCSHWTSTAMP request gnomond makes: timestamp every
// transmitted packet, and received PTPv2 event messages of the transport
// (or all packets when the NIC only offers that).
func hwConfig(info TSInfo, kind Kind) (unix.HwTstampConfig, error) {
	cfg := unix.HwTstampConfig{Tx_type: unix.HWTSTAMP_TX_ON}
	if info.TxTypes&(1<<unix.HWTSTAMP_TX_ON) == 0 {
		return cfg, fmt.Errorf("ptp: the NIC cannot timestamp transmitted packets (tx types %#x)", info.TxTypes)
	}
	want := []int32{unix.HWTSTAMP_FILTER_PTP_V2_EVENT}
	if kind == Ethernet {
		want = append(want, unix.HWTSTAMP_FILTER_PTP_V2_L2_EVENT)
	} else {
		want = append(want, unix.HWTSTAMP_FILTER_PTP_V2_L4_EVENT)
	}
	want = append(want, unix.HWTSTAMP_FILTER_ALL)
	for _, f := range want {
		if info.RxFilters&(1<<uint(f)) != 0 {
			cfg.Rx_filter = f
			return cfg, nil
		}
	}
	return cfg, fmt.Errorf("ptp: the NIC has no receive filter for PTPv2 (filters %#x)", info.RxFilters)
}

// EnableHardware turns hardware timestamping on for the interface
// (SIOCSHWTSTAMP; needs CAP_NET_ADMIN) and returns the PHC index.
func EnableHardware(iface string, kind Kind) (int, error) {
	info, err := GetTSInfo(iface)
	if err != nil {
		return -1, err
	}
	if !info.Hardware() {
		return -1, fmt.Errorf("ptp: %s has no hardware timestamping (capabilities %#x, PHC %d)", iface, info.Capabilities, info.PHCIndex)
	}
	cfg, err := hwConfig(info, kind)
	if err != nil {
		return -1, err
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	defer unix.Close(fd)
	if err := unix.IoctlSetHwTstamp(fd, iface, &cfg); err != nil {
		return -1, fmt.Errorf("ptp: SIOCSHWTSTAMP on %s: %w", iface, err)
	}
	return info.PHCIndex, nil
}

// ChooseTimestamping resolves "auto": hardware when the interface has a
// PHC and hardware timestamps, else software.
func ChooseTimestamping(mode, iface string) (hardware bool, err error) {
	switch mode {
	case "hardware":
		return true, nil
	case "software":
		return false, nil
	}
	info, err := GetTSInfo(iface)
	if err != nil {
		return false, nil
	}
	return info.Hardware(), nil
}
