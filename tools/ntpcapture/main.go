// Command ntpcapture captures raw NTP packets for gnomon's golden tests
// (engine/ntp/testdata) and answers NTP clients with engine/ntp's Respond, so
// that real clients can be pointed at the codec.
//
//	ntpcapture query [flags] HOST:PORT
//	    send one NTP client request and print it and the reply as hex
//	ntpcapture listen [flags] HOST:PORT
//	    print every datagram received; with -answer, reply to client
//	    requests with engine/ntp.Respond (or a Kiss-o'-Death with -kiss)
//	ntpcapture relay [flags] LISTEN_HOST:PORT SERVER_HOST:PORT
//	    forward client datagrams to the server and its replies back,
//	    printing both (for clients that cannot be pointed at a port of
//	    ours, such as an NTS client told its server by NTS-KE)
//
// With -save PREFIX each packet is also written to PREFIX-request.hex,
// PREFIX-reply.hex (query), or PREFIX-request-N.hex and PREFIX-reply-N.hex
// (listen and relay), in the testdata format: '#' comment lines, then hex.
//
// It is a test tool: point it at loopback or at a network namespace.
package main

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"time"

	"gnomon.dev/gnomon/engine/ntp"
	"gnomon.dev/gnomon/engine/sample"
)

func main() {
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, nil)))
	if len(os.Args) < 2 {
		usage(os.Stderr)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var err error
	switch os.Args[1] {
	case "query":
		err = runQuery(ctx, os.Args[2:], os.Stdout)
	case "listen":
		err = runListen(ctx, os.Args[2:], os.Stdout)
	case "relay":
		err = runRelay(ctx, os.Args[2:], os.Stdout)
	case "-h", "-help", "--help", "help":
		usage(os.Stdout)
		return
	default:
		usage(os.Stderr)
		os.Exit(2)
	}
	if err != nil {
		slog.Error("ntpcapture failed", "err", err)
		os.Exit(1)
	}
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: ntpcapture query [flags] HOST:PORT | listen [flags] HOST:PORT | relay [flags] LISTEN SERVER (-h after the verb for flags)")
}

// runQuery sends one request and prints request and reply.
func runQuery(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("query", flag.ContinueOnError)
	version := fs.Uint("version", 4, "NTP version of the request")
	poll := fs.Int("poll", 6, "poll exponent of the request")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for the reply")
	save := fs.String("save", "", "also write PREFIX-request.hex and PREFIX-reply.hex")
	note := fs.String("note", "", "comment line to put in saved files")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("query needs HOST:PORT")
	}
	addr := fs.Arg(0)
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	var d net.Dialer
	conn, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(dl); err != nil {
			return err
		}
	}
	stopAfter := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Now()) })
	defer stopAfter()

	req := ntp.Header{Version: uint8(*version), Mode: ntp.ModeClient, Poll: int8(*poll)}
	var reqBuf [ntp.HeaderLen]byte
	now := time.Now()
	// Randomize the transmit fraction below the clock's resolution, as
	// chrony does, so the origin check cannot be guessed.
	var rnd [2]byte
	_, _ = rand.Read(rnd[:])
	req.TransmitTime = ntp.TimestampFromTime(now) ^ ntp.Timestamp(binary.BigEndian.Uint16(rnd[:]))
	if _, err := req.MarshalTo(reqBuf[:]); err != nil {
		return err
	}
	if _, err := conn.Write(reqBuf[:]); err != nil {
		return err
	}
	buf := make([]byte, 2048)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return fmt.Errorf("no reply from %s: %w", addr, err)
		}
		var p ntp.Packet
		perr := ntp.Parse(buf[:n], &p)
		if perr == nil && p.OriginTime != req.TransmitTime {
			slog.Warn("reply with another origin ignored", "from", addr)
			continue
		}
		fmt.Fprintf(out, "# ntpcapture query %s at %s\n", addr, now.UTC().Format(time.RFC3339Nano))
		fmt.Fprintf(out, "request %x\n", reqBuf[:])
		fmt.Fprintf(out, "reply %x\n", buf[:n])
		if perr != nil {
			fmt.Fprintf(out, "# reply does not parse: %v\n", perr)
		} else {
			fmt.Fprintf(out, "# %s\n", describe(&p))
			fmt.Fprintf(out, "# check: %v\n", errText(ntp.CheckReply(&p.Header, req.TransmitTime, 0)))
		}
		if *save != "" {
			comment := fmt.Sprintf("ntpcapture query %s at %s", addr, now.UTC().Format(time.RFC3339))
			if err := saveHex(*save+"-request.hex", []string{*note, comment, "request sent by ntpcapture"}, reqBuf[:]); err != nil {
				return err
			}
			if err := saveHex(*save+"-reply.hex", []string{*note, comment, "reply received"}, buf[:n]); err != nil {
				return err
			}
		}
		return nil
	}
}

// runListen prints (and optionally answers) requests until count packets
// were seen or the timeout passes.
func runListen(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("listen", flag.ContinueOnError)
	count := fs.Int("count", 1, "stop after this many datagrams (0: until timeout or interrupt)")
	timeout := fs.Duration("timeout", 30*time.Second, "stop after this long")
	answer := fs.Bool("answer", false, "answer client requests with engine/ntp.Respond")
	kiss := fs.String("kiss", "", "answer with this Kiss-o'-Death code instead (RATE, DENY, RSTR)")
	stratum := fs.Uint("stratum", 1, "stratum to answer with")
	refid := fs.String("refid", "LOCL", "reference ID to answer with (up to 4 ASCII characters)")
	save := fs.String("save", "", "also write PREFIX-request-N.hex (and PREFIX-reply-N.hex)")
	note := fs.String("note", "", "comment line to put in saved files")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("listen needs HOST:PORT")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp", fs.Arg(0))
	if err != nil {
		return err
	}
	defer pc.Close()
	stopAfter := context.AfterFunc(ctx, func() { pc.SetDeadline(time.Now()) })
	defer stopAfter()
	fmt.Fprintf(out, "# listening on %s\n", pc.LocalAddr())

	st := ntp.ServerState{
		Leap:           sample.LeapNone,
		Stratum:        uint8(*stratum),
		Precision:      -20,
		RootDelay:      0,
		RootDispersion: 100 * time.Microsecond,
		ReferenceID:    refID(*refid),
		ReferenceTime:  time.Now().Add(-time.Second),
	}
	buf := make([]byte, 2048)
	var respBuf [ntp.HeaderLen]byte
	for i := 1; *count == 0 || i <= *count; i++ {
		n, from, err := pc.ReadFrom(buf)
		rx := time.Now()
		if err != nil {
			if ctx.Err() != nil {
				if *count == 0 {
					return nil
				}
				return fmt.Errorf("got %d of %d datagrams: %w", i-1, *count, ctx.Err())
			}
			return err
		}
		fmt.Fprintf(out, "# from %s at %s\n", from, rx.UTC().Format(time.RFC3339Nano))
		fmt.Fprintf(out, "request %x\n", buf[:n])
		var p ntp.Packet
		perr := ntp.Parse(buf[:n], &p)
		if perr != nil {
			fmt.Fprintf(out, "# does not parse: %v\n", perr)
		} else {
			fmt.Fprintf(out, "# %s\n", describe(&p))
		}
		comment := fmt.Sprintf("ntpcapture listen %s: datagram %d from %s at %s", fs.Arg(0), i, from, rx.UTC().Format(time.RFC3339))
		if *save != "" {
			if err := saveHex(fmt.Sprintf("%s-request-%d.hex", *save, i), []string{*note, comment}, buf[:n]); err != nil {
				return err
			}
		}
		if perr != nil || (!*answer && *kiss == "") {
			continue
		}
		var resp ntp.Header
		if *kiss != "" {
			ntp.RespondKiss(&p.Header, refID(*kiss), &resp)
		} else {
			st.ReferenceTime = rx.Add(-time.Second)
			if !ntp.Respond(&p.Header, rx, time.Now(), &st, &resp) {
				fmt.Fprintln(out, "# not answered (Respond refused it)")
				continue
			}
		}
		if _, err := resp.MarshalTo(respBuf[:]); err != nil {
			return err
		}
		if _, err := pc.WriteTo(respBuf[:], from); err != nil {
			return err
		}
		fmt.Fprintf(out, "reply %x\n", respBuf[:])
		if *save != "" {
			if err := saveHex(fmt.Sprintf("%s-reply-%d.hex", *save, i), []string{*note, comment, "reply sent by ntpcapture (engine/ntp)"}, respBuf[:]); err != nil {
				return err
			}
		}
	}
	return nil
}

func refID(s string) uint32 {
	var b [4]byte
	copy(b[:], s)
	return binary.BigEndian.Uint32(b[:])
}

func describe(p *ntp.Packet) string {
	return fmt.Sprintf("leap=%d version=%d mode=%v stratum=%d poll=%d precision=%d rootdelay=%v rootdisp=%v refid=%08x(%s) ref=%016x org=%016x rec=%016x xmt=%016x ext=%dB mac=%dB",
		p.Leap, p.Version, p.Mode, p.Stratum, p.Poll, p.Precision, p.RootDelay.Duration(), p.RootDispersion.Duration(),
		p.ReferenceID, ntp.KissCodeString(p.ReferenceID), uint64(p.ReferenceTime), uint64(p.OriginTime),
		uint64(p.ReceiveTime), uint64(p.TransmitTime), len(p.Extensions), len(p.MAC))
}

func errText(err error) string {
	if err == nil {
		return "ok"
	}
	return err.Error()
}

// saveHex writes b as hex, 16 bytes a line, after '#' comment lines.
func saveHex(path string, comments []string, b []byte) error {
	var sb strings.Builder
	for _, c := range comments {
		if c != "" {
			fmt.Fprintf(&sb, "# %s\n", c)
		}
	}
	for len(b) > 0 {
		n := min(16, len(b))
		sb.WriteString(hex.EncodeToString(b[:n]))
		sb.WriteByte('\n')
		b = b[n:]
	}
	return os.WriteFile(path, []byte(sb.String()), 0o644)
}

// runRelay forwards datagrams between one client and a server, printing
// each, until count client datagrams were relayed or the timeout passes.
func runRelay(ctx context.Context, args []string, out io.Writer) error {
	fs := flag.NewFlagSet("relay", flag.ContinueOnError)
	count := fs.Int("count", 1, "stop after this many client datagrams and their replies (0: until timeout)")
	timeout := fs.Duration("timeout", 30*time.Second, "stop after this long")
	replyWait := fs.Duration("reply-wait", 2*time.Second, "how long to wait for each server reply")
	save := fs.String("save", "", "also write PREFIX-request-N.hex and PREFIX-reply-N.hex")
	note := fs.String("note", "", "comment line to put in saved files")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 2 {
		return errors.New("relay needs LISTEN_HOST:PORT SERVER_HOST:PORT")
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp", fs.Arg(0))
	if err != nil {
		return err
	}
	defer pc.Close()
	var d net.Dialer
	up, err := d.DialContext(ctx, "udp", fs.Arg(1))
	if err != nil {
		return err
	}
	defer up.Close()
	stopAfter := context.AfterFunc(ctx, func() {
		pc.SetDeadline(time.Now())
		up.SetDeadline(time.Now())
	})
	defer stopAfter()
	fmt.Fprintf(out, "# relaying %s to %s\n", pc.LocalAddr(), fs.Arg(1))

	buf := make([]byte, 4096)
	for i := 1; *count == 0 || i <= *count; i++ {
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			if ctx.Err() != nil && *count == 0 {
				return nil
			}
			return fmt.Errorf("relayed %d datagrams: %w", i-1, err)
		}
		at := time.Now().UTC()
		comment := fmt.Sprintf("ntpcapture relay %s %s: datagram %d from %s at %s", fs.Arg(0), fs.Arg(1), i, from, at.Format(time.RFC3339))
		fmt.Fprintf(out, "# %s\nrequest %x\n", comment, buf[:n])
		printParsed(out, buf[:n])
		if *save != "" {
			if err := saveHex(fmt.Sprintf("%s-request-%d.hex", *save, i), []string{*note, comment, "client request"}, buf[:n]); err != nil {
				return err
			}
		}
		if _, err := up.Write(buf[:n]); err != nil {
			return err
		}
		if err := up.SetReadDeadline(time.Now().Add(*replyWait)); err != nil {
			return err
		}
		m, err := up.Read(buf)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			fmt.Fprintf(out, "# no reply: %v\n", err)
			continue
		}
		fmt.Fprintf(out, "reply %x\n", buf[:m])
		printParsed(out, buf[:m])
		if *save != "" {
			if err := saveHex(fmt.Sprintf("%s-reply-%d.hex", *save, i), []string{*note, comment, "server reply"}, buf[:m]); err != nil {
				return err
			}
		}
		if _, err := pc.WriteTo(buf[:m], from); err != nil {
			return err
		}
	}
	return nil
}

func printParsed(out io.Writer, b []byte) {
	var p ntp.Packet
	if err := ntp.Parse(b, &p); err != nil {
		fmt.Fprintf(out, "# does not parse: %v\n", err)
		return
	}
	fmt.Fprintf(out, "# %s\n", describe(&p))
	it := p.ExtensionFields()
	for f, ok := it.Next(); ok; f, ok = it.Next() {
		fmt.Fprintf(out, "#   extension field type 0x%04x, %d bytes of value\n", f.Type, len(f.Value))
	}
	if err := it.Err(); err != nil {
		fmt.Fprintf(out, "#   extension fields: %v\n", err)
	}
}
