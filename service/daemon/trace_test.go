package daemon

import (
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gnomon.dev/gnomon/engine/system"
)

// TestWireTrace: with GNOMON_ENGINE_TRACE set, each source datagram's raw
// time is written with its source's address and the packet's origin,
// receive and transmit fields (the bench matches them with its relays').
func TestWireTrace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "trace")
	t.Setenv("GNOMON_ENGINE_TRACE", path)
	d := &Daemon{log: quietLogger(),
		sources: map[system.ID]*liveSource{7: {addr: netip.MustParseAddrPort("127.0.0.41:123")}}}
	if d.engineTrace() == nil || d.wireTrace == nil {
		t.Fatal("no trace with GNOMON_ENGINE_TRACE set")
	}
	pkt := make([]byte, 48)
	binary.BigEndian.PutUint64(pkt[24:], 0x11)
	binary.BigEndian.PutUint64(pkt[32:], 0x22)
	binary.BigEndian.PutUint64(pkt[40:], 0x33)
	at := time.Unix(1796678901, 129716816)
	d.wireTrace("rx", 7, at, true, pkt)
	d.wireTrace("txk", 7, at, true, nil)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2:\n%s", len(lines), b)
	}
	for i, want := range []string{
		" rx src=127.0.0.41:123 at=1796678901129716816 kernel=true org=11 rec=22 xmt=33",
		" txk src=127.0.0.41:123 at=1796678901129716816 kernel=true org=0 rec=0 xmt=0",
	} {
		if !strings.HasSuffix(lines[i], want) {
			t.Errorf("line %d: %q, want it to end %q", i, lines[i], want)
		}
	}
}
