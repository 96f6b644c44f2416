package ptp

import (
	"encoding/binary"
	"fmt"
	"time"
)

// PortState is a port's state (1588-2019 table 20 and §9.2.5).
type PortState uint8

// The port states.
const (
	StateInitializing PortState = 1
	StateFaulty       PortState = 2
	StateDisabled     PortState = 3
	StateListening    PortState = 4
	StatePreMaster    PortState = 5
	StateMaster       PortState = 6
	StatePassive      PortState = 7
	StateUncalibrated PortState = 8
	StateSlave        PortState = 9
)

func (s PortState) String() string {
	switch s {
	case StateInitializing:
		return "INITIALIZING"
	case StateFaulty:
		return "FAULTY"
	case StateDisabled:
		return "DISABLED"
	case StateListening:
		return "LISTENING"
	case StatePreMaster:
		return "PRE_MASTER"
	case StateMaster:
		return "MASTER"
	case StatePassive:
		return "PASSIVE"
	case StateUncalibrated:
		return "UNCALIBRATED"
	case StateSlave:
		return "SLAVE"
	}
	return fmt.Sprintf("state(%d)", uint8(s))
}

// DelayMechanism is the port's delay mechanism (1588-2019 table 21).
type DelayMechanism uint8

// The delay mechanisms.
const (
	DelayE2E  DelayMechanism = 1
	DelayP2P  DelayMechanism = 2
	DelayNone DelayMechanism = 0xfe
)

func (d DelayMechanism) String() string {
	switch d {
	case DelayE2E:
		return "E2E"
	case DelayP2P:
		return "P2P"
	case DelayNone:
		return "NO_MECHANISM"
	}
	return fmt.Sprintf("delayMechanism(%d)", uint8(d))
}

// Time sources (1588-2019 table 6).
const (
	TimeSourceAtomic      uint8 = 0x10
	TimeSourceGNSS        uint8 = 0x20
	TimeSourceTerrestrial uint8 = 0x30
	TimeSourcePTP         uint8 = 0x40
	TimeSourceNTP         uint8 = 0x50
	TimeSourceHandSet     uint8 = 0x60
	TimeSourceOther       uint8 = 0x90
	TimeSourceInternalOsc uint8 = 0xa0
)

// Clock classes and accuracies used by the defaults.
const (
	ClassPrimary       uint8  = 6
	ClassDefault       uint8  = 248
	ClassSlaveOnly     uint8  = 255
	AccuracyUnknown    uint8  = 0xfe
	VarianceUnknown    uint16 = 0xffff
	linuxptpVarianceSW uint16 = 0xffff
)

// DefaultDS is the default dataset (1588-2019 §8.2.1).
type DefaultDS struct {
	TwoStep     bool
	SlaveOnly   bool
	NumberPorts uint16
	Priority1   uint8
	Quality     ClockQuality
	Priority2   uint8
	Identity    ClockIdentity
	Domain      uint8
	SdoID       uint16 // 12 bits: majorSdoId<<8 | minorSdoId
}

// CurrentDS is the current dataset (§8.2.2).
type CurrentDS struct {
	StepsRemoved     uint16
	OffsetFromMaster TimeInterval
	MeanPathDelay    TimeInterval
}

// ParentDS is the parent dataset (§8.2.3).
type ParentDS struct {
	ParentPort            PortIdentity
	ParentStats           bool
	ObservedVariance      uint16
	ObservedPhaseRate     int32
	GMPriority1           uint8
	GMQuality             ClockQuality
	GMPriority2           uint8
	GMIdentity            ClockIdentity
	ParentAddressProtocol uint16
}

// TimePropertiesDS is the time properties dataset (§8.2.4).
type TimePropertiesDS struct {
	CurrentUTCOffset int16
	Flags            uint16 // the time property bits of the header flags (FlagLeap61...)
	TimeSource       uint8
}

// UTCOffsetValid, PTPTimescale, Leap61 and Leap59 read the flags.
func (t TimePropertiesDS) UTCOffsetValid() bool { return t.Flags&FlagUTCOffsetValid != 0 }
func (t TimePropertiesDS) PTPTimescale() bool   { return t.Flags&FlagPTPTimescale != 0 }
func (t TimePropertiesDS) Leap61() bool         { return t.Flags&FlagLeap61 != 0 }
func (t TimePropertiesDS) Leap59() bool         { return t.Flags&FlagLeap59 != 0 }

// UTCOffset is how far the master's timestamps are ahead of UTC: the
// announced currentUtcOffset when the PTP timescale is in use (TAI), zero
// for the arbitrary timescale (linuxptp on CLOCK_REALTIME sends UTC).
func (t TimePropertiesDS) UTCOffset() time.Duration {
	if t.PTPTimescale() {
		return time.Duration(t.CurrentUTCOffset) * time.Second
	}
	return 0
}

// PortDS is the port dataset (§8.2.15).
type PortDS struct {
	Identity                PortIdentity
	State                   PortState
	LogMinDelayReqInterval  int8
	PeerMeanPathDelay       TimeInterval
	LogAnnounceInterval     int8
	AnnounceReceiptTimeout  uint8
	LogSyncInterval         int8
	DelayMechanism          DelayMechanism
	LogMinPdelayReqInterval int8
	VersionNumber           uint8 // versionPTP, 2 (ptp4l sends the high nibble, the minor version, as 0)
}

// Dataset wire lengths in management TLVs (1588-2019 §15.5.3).
const (
	defaultDSLen        = 20
	currentDSLen        = 18
	parentDSLen         = 32
	timePropertiesDSLen = 4
	portDSLen           = 26
)

// Management IDs of the datasets (1588-2019 table 59).
const (
	MgmtNull             uint16 = 0x0000
	MgmtClockDescription uint16 = 0x0001
	MgmtDefaultDS        uint16 = 0x2000
	MgmtCurrentDS        uint16 = 0x2001
	MgmtParentDS         uint16 = 0x2002
	MgmtTimePropertiesDS uint16 = 0x2003
	MgmtPortDS           uint16 = 0x2004
	MgmtPriority1        uint16 = 0x2005
	MgmtPriority2        uint16 = 0x2006
	MgmtDomain           uint16 = 0x2007
	MgmtSlaveOnly        uint16 = 0x2008
)

// MarshalBinary encodes the dataset as a management TLV's dataField.
func (d DefaultDS) MarshalBinary() ([]byte, error) {
	b := make([]byte, defaultDSLen)
	if d.TwoStep {
		b[0] |= 1
	}
	if d.SlaveOnly {
		b[0] |= 2
	}
	binary.BigEndian.PutUint16(b[2:4], d.NumberPorts)
	b[4] = d.Priority1
	putQuality(b[5:9], d.Quality)
	b[9] = d.Priority2
	copy(b[10:18], d.Identity[:])
	b[18] = d.Domain
	return b, nil
}

// UnmarshalBinary decodes a management dataField.
func (d *DefaultDS) UnmarshalBinary(b []byte) error {
	if len(b) < defaultDSLen {
		return fmt.Errorf("%w: DEFAULT_DATA_SET of %d octets, %d needed", ErrShort, len(b), defaultDSLen)
	}
	d.TwoStep = b[0]&1 != 0
	d.SlaveOnly = b[0]&2 != 0
	d.NumberPorts = binary.BigEndian.Uint16(b[2:4])
	d.Priority1 = b[4]
	d.Quality = getQuality(b[5:9])
	d.Priority2 = b[9]
	copy(d.Identity[:], b[10:18])
	d.Domain = b[18]
	return nil
}

// MarshalBinary encodes the dataset as a management TLV's dataField.
func (d CurrentDS) MarshalBinary() ([]byte, error) {
	b := make([]byte, currentDSLen)
	binary.BigEndian.PutUint16(b[0:2], d.StepsRemoved)
	binary.BigEndian.PutUint64(b[2:10], uint64(d.OffsetFromMaster))
	binary.BigEndian.PutUint64(b[10:18], uint64(d.MeanPathDelay))
	return b, nil
}

// UnmarshalBinary decodes a management dataField.
func (d *CurrentDS) UnmarshalBinary(b []byte) error {
	if len(b) < currentDSLen {
		return fmt.Errorf("%w: CURRENT_DATA_SET of %d octets, %d needed", ErrShort, len(b), currentDSLen)
	}
	d.StepsRemoved = binary.BigEndian.Uint16(b[0:2])
	d.OffsetFromMaster = TimeInterval(binary.BigEndian.Uint64(b[2:10]))
	d.MeanPathDelay = TimeInterval(binary.BigEndian.Uint64(b[10:18]))
	return nil
}

// MarshalBinary encodes the dataset as a management TLV's dataField.
func (d ParentDS) MarshalBinary() ([]byte, error) {
	b := make([]byte, parentDSLen)
	putPortID(b[0:10], d.ParentPort)
	if d.ParentStats {
		b[10] = 1
	}
	binary.BigEndian.PutUint16(b[12:14], d.ObservedVariance)
	binary.BigEndian.PutUint32(b[14:18], uint32(d.ObservedPhaseRate))
	b[18] = d.GMPriority1
	putQuality(b[19:23], d.GMQuality)
	b[23] = d.GMPriority2
	copy(b[24:32], d.GMIdentity[:])
	return b, nil
}

// UnmarshalBinary decodes a management dataField.
func (d *ParentDS) UnmarshalBinary(b []byte) error {
	if len(b) < parentDSLen {
		return fmt.Errorf("%w: PARENT_DATA_SET of %d octets, %d needed", ErrShort, len(b), parentDSLen)
	}
	d.ParentPort = getPortID(b[0:10])
	d.ParentStats = b[10]&1 != 0
	d.ObservedVariance = binary.BigEndian.Uint16(b[12:14])
	d.ObservedPhaseRate = int32(binary.BigEndian.Uint32(b[14:18]))
	d.GMPriority1 = b[18]
	d.GMQuality = getQuality(b[19:23])
	d.GMPriority2 = b[23]
	copy(d.GMIdentity[:], b[24:32])
	return nil
}

// MarshalBinary encodes the dataset as a management TLV's dataField.
func (d TimePropertiesDS) MarshalBinary() ([]byte, error) {
	b := make([]byte, timePropertiesDSLen)
	binary.BigEndian.PutUint16(b[0:2], uint16(d.CurrentUTCOffset))
	b[2] = uint8(d.Flags & timePropertiesFlags)
	b[3] = d.TimeSource
	return b, nil
}

// UnmarshalBinary decodes a management dataField.
func (d *TimePropertiesDS) UnmarshalBinary(b []byte) error {
	if len(b) < timePropertiesDSLen {
		return fmt.Errorf("%w: TIME_PROPERTIES_DATA_SET of %d octets, %d needed", ErrShort, len(b), timePropertiesDSLen)
	}
	d.CurrentUTCOffset = int16(binary.BigEndian.Uint16(b[0:2]))
	d.Flags = uint16(b[2]) & timePropertiesFlags
	d.TimeSource = b[3]
	return nil
}

// MarshalBinary encodes the dataset as a management TLV's dataField.
func (d PortDS) MarshalBinary() ([]byte, error) {
	b := make([]byte, portDSLen)
	putPortID(b[0:10], d.Identity)
	b[10] = uint8(d.State)
	b[11] = uint8(d.LogMinDelayReqInterval)
	binary.BigEndian.PutUint64(b[12:20], uint64(d.PeerMeanPathDelay))
	b[20] = uint8(d.LogAnnounceInterval)
	b[21] = d.AnnounceReceiptTimeout
	b[22] = uint8(d.LogSyncInterval)
	b[23] = uint8(d.DelayMechanism)
	b[24] = uint8(d.LogMinPdelayReqInterval)
	b[25] = d.VersionNumber
	return b, nil
}

// UnmarshalBinary decodes a management dataField.
func (d *PortDS) UnmarshalBinary(b []byte) error {
	if len(b) < portDSLen {
		return fmt.Errorf("%w: PORT_DATA_SET of %d octets, %d needed", ErrShort, len(b), portDSLen)
	}
	d.Identity = getPortID(b[0:10])
	d.State = PortState(b[10])
	d.LogMinDelayReqInterval = int8(b[11])
	d.PeerMeanPathDelay = TimeInterval(binary.BigEndian.Uint64(b[12:20]))
	d.LogAnnounceInterval = int8(b[20])
	d.AnnounceReceiptTimeout = b[21]
	d.LogSyncInterval = int8(b[22])
	d.DelayMechanism = DelayMechanism(b[23])
	d.LogMinPdelayReqInterval = int8(b[24])
	d.VersionNumber = b[25]
	return nil
}
