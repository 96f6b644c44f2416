package netio

import (
	"fmt"
	"os"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Transmit timestamps of a server socket, for the interleaved mode: the
// kernel stamps each reply as it leaves and queues the time on the
// socket's error queue under a per-socket counter (SOF_TIMESTAMPING_OPT_ID)
// that WriteBatch mirrors in Message.TxID.

// TxStamp is when the reply WriteBatch numbered ID left, by the kernel.
type TxStamp struct {
	ID   uint32
	Time time.Time
}

// serverTx is the write side's part (guarded by wmu) and the error-queue
// reader (guarded by mu).
type serverTx struct {
	on     bool
	nextID uint32
	idx    [MaxBatch]int // header k -> message index of the current chunk

	mu   sync.Mutex
	hdr  unix.Msghdr
	iov  unix.Iovec
	scr  [64]byte
	ctrl [256]byte
}

func (t *serverTx) index(k, i int) { t.idx[k] = i }

// reset clears the IDs of a chunk about to be sent.
func (t *serverTx) reset(msgs []Message) {
	if t.on {
		for i := range msgs {
			msgs[i].TxSent = false
		}
	}
}

// sent numbers the n messages sendmmsg sent from header off on.
func (t *serverTx) sent(msgs []Message, off, n int) {
	if !t.on {
		return
	}
	for j := off; j < off+n; j++ {
		m := &msgs[t.idx[j]]
		m.TxSent, m.TxID = true, t.nextID
		t.nextID++
	}
}

// EnableTxTimestamps asks the kernel for software transmit timestamps of
// every datagram sent from now on. Call it before the first WriteBatch;
// then drain them with ReadTxTimestamps, or they fill the socket's
// receive buffer.
func (s *ServerConn) EnableTxTimestamps() error {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	if s.tx.on {
		return nil
	}
	var got bool
	err := control(s.raw, func(fd int) error {
		got = enableTimestamps(fd, true)&TimestampTX != 0
		return nil
	})
	if err != nil {
		return err
	}
	if !got {
		return fmt.Errorf("netio: the kernel gives no transmit timestamps on %v", s.local)
	}
	s.tx.on, s.tx.nextID = true, 0
	s.mode |= TimestampTX
	return nil
}

// ReadTxTimestamps reads, without blocking, the transmit timestamps queued
// so far into out and returns how many. Other error-queue entries (ICMP
// errors) are dropped.
func (s *ServerConn) ReadTxTimestamps(out []TxStamp) (int, error) {
	t := &s.tx
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	var rerr error
	err := s.raw.Control(func(fd uintptr) {
		for n < len(out) {
			t.iov = unix.Iovec{Base: &t.scr[0]}
			t.iov.SetLen(len(t.scr))
			t.hdr = unix.Msghdr{Iov: &t.iov, Iovlen: 1, Control: &t.ctrl[0]}
			t.hdr.SetControllen(len(t.ctrl))
			_, _, e := unix.Syscall(unix.SYS_RECVMSG, fd, uintptr(unsafe.Pointer(&t.hdr)), unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
			switch e {
			case 0:
				tc := parseErrQueueControl(t.ctrl[:clampLen(uint64(t.hdr.Controllen), len(t.ctrl))])
				if tc.IsTimestamp {
					out[n] = TxStamp{ID: tc.ID, Time: tc.Time}
					n++
				}
				continue
			case unix.EINTR:
				continue
			case unix.EAGAIN:
			default:
				rerr = os.NewSyscallError("recvmsg", e)
			}
			return
		}
	})
	if err != nil {
		return n, err
	}
	return n, rerr
}
