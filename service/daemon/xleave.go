package daemon

import (
	"gnomon.dev/gnomon/engine/ntp"
	"gnomon.dev/gnomon/service/netio"
)

// The server side of the interleaved mode ([[server]] xleave): each worker
// remembers its recent answers by receive timestamp (ntp.InterleavedTable)
// and replaces the transmit time it wrote in each by the kernel's, read
// back from its socket; an interleaved request then gets the kernel's
// transmit time of the previous answer.

const (
	xleaveTableSize = 16384 // answers remembered per worker
	xleaveTxRing    = 4096  // sent answers awaiting their kernel timestamp
)

type xleaveWorker struct {
	table  *ntp.InterleavedTable
	lastRx ntp.Timestamp // receive timestamp of the answer answer() just made; 0 if none
	outRx  []ntp.Timestamp
	ring   [xleaveTxRing]struct {
		id uint32
		rx ntp.Timestamp
	}
	stamps []netio.TxStamp
	// interleaved counts interleaved answers (tests read it through logs).
	interleaved uint64
}

// initXleave turns the mode on for this worker's socket when configured
// and the kernel gives transmit timestamps.
func (w *worker) initXleave(c *netio.ServerConn) {
	if !w.cur.cfg.XLeave {
		return
	}
	if err := c.EnableTxTimestamps(); err != nil {
		w.d.log.Warn("interleaved mode off: no transmit timestamps", "listen", c.LocalAddr(), "err", err)
		return
	}
	w.xl = &xleaveWorker{
		table:  ntp.NewInterleavedTable(xleaveTableSize),
		outRx:  make([]ntp.Timestamp, len(w.out)),
		stamps: make([]netio.TxStamp, 64),
	}
}

// interleave makes resp (a normal answer to req from client, transmit
// time set) interleaved when req asks for it and the previous answer is
// known, and remembers this answer.
func (w *worker) interleave(req, resp *ntp.Header, client [16]byte, kissed bool) {
	x := w.xl
	if x == nil {
		return
	}
	x.lastRx = 0
	if kissed {
		return
	}
	resp.ReceiveTime = x.table.Unique(resp.ReceiveTime)
	own := resp.TransmitTime
	if ntp.IsInterleavedRequest(req) {
		if prev, ok := x.table.Lookup(client, req.OriginTime); ok {
			ntp.MakeInterleaved(resp, req, prev)
			x.interleaved++
		}
	}
	x.table.Save(client, resp.ReceiveTime, own)
	x.lastRx = resp.ReceiveTime
}

// answered notes that out[m] carries the answer interleave just saw.
func (w *worker) answered(m int) {
	if w.xl != nil {
		w.xl.outRx[m] = w.xl.lastRx
	}
}

// afterWrite files the sent answers under their transmit IDs and takes
// the kernel timestamps already queued.
func (w *worker) afterWrite(c *netio.ServerConn, out []netio.Message) {
	x := w.xl
	if x == nil {
		return
	}
	for i := range out {
		if out[i].TxSent && !x.outRx[i].IsZero() {
			e := &x.ring[out[i].TxID%xleaveTxRing]
			e.id, e.rx = out[i].TxID, x.outRx[i]
		}
	}
	w.drainTx(c)
}

// drainTx reads the kernel's transmit timestamps and puts them in the
// table.
func (w *worker) drainTx(c *netio.ServerConn) {
	x := w.xl
	if x == nil {
		return
	}
	for range 64 { // bounded: at most 64 × 64 timestamps a call
		n, err := c.ReadTxTimestamps(x.stamps)
		if err != nil {
			w.d.logLimited("server-txstamp", "cannot read transmit timestamps", "err", err)
			return
		}
		for _, ts := range x.stamps[:n] {
			e := &x.ring[ts.ID%xleaveTxRing]
			if e.id == ts.ID && !e.rx.IsZero() {
				x.table.SetTransmit(e.rx, ntp.TimestampFromTime(w.d.mapRaw(ts.Time.Round(0)).Add(w.smearCorr)))
				e.rx = 0
			}
		}
		if n < len(x.stamps) {
			return
		}
	}
}
