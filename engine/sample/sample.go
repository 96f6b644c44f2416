// Package sample defines the one measurement type that every source kind
// (NTP, NTS, PTP, gpsd, PPS, SHM) hands to the algorithms. It is the only
// contract between the protocols and selection/discipline.
package sample

import (
	"fmt"
	"time"
)

// Leap is the leap-second warning a source announces (RFC 5905 LI field).
type Leap uint8

const (
	LeapNone   Leap = 0 // no warning
	LeapInsert Leap = 1 // last minute of the current month has 61 seconds
	LeapDelete Leap = 2 // last minute of the current month has 59 seconds
	LeapUnsync Leap = 3 // source is not synchronized
)

func (l Leap) String() string {
	switch l {
	case LeapNone:
		return "none"
	case LeapInsert:
		return "insert"
	case LeapDelete:
		return "delete"
	case LeapUnsync:
		return "unsynchronized"
	}
	return fmt.Sprintf("leap(%d)", uint8(l))
}

// Sample is one measurement of the local clock against a source.
//
// Offset follows RFC 5905: it is the source's time minus the local time, so a
// positive offset means the local clock is behind and must be advanced.
type Sample struct {
	// Time is the local (engine) time at which Offset held, for NTP the
	// midpoint of the exchange.
	Time time.Time
	// Offset is reference minus local.
	Offset time.Duration
	// Delay is the round-trip network delay to the source (zero for
	// reference clocks).
	Delay time.Duration
	// Dispersion is the error bound of this one measurement beyond
	// Delay/2: precisions of both ends plus frequency tolerance over the
	// exchange.
	Dispersion time.Duration
	// RootDelay and RootDispersion are the source's own distance to its
	// primary reference, as it reports them.
	RootDelay      time.Duration
	RootDispersion time.Duration
	// Leap is the source's leap-second warning.
	Leap Leap
	// Stratum is the source's stratum (1 for a primary server; 0 for a
	// reference clock attached to this machine).
	Stratum uint8
	// RefID is the source's reference identifier.
	RefID uint32
}

// RootDistance is the source's maximum error relative to the primary
// reference through this sample: half the total delay plus the total
// dispersion (RFC 5905's lambda without the jitter term).
func (s Sample) RootDistance() time.Duration {
	return (s.RootDelay+s.Delay)/2 + s.RootDispersion + s.Dispersion
}
