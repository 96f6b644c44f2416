package daemon

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// Once gnomond has first synchronized, it gives back the memory that only
// its start-up used (trimMemory). Most of an idle gnomond's resident set
// was not its heap but its own binary: the pages of program text and
// read-only data that start-up touched (package initialisation, the
// configuration parser, cobra, D-Bus introspection, TLS) and that the
// kernel maps in 64 kB at a time. Measured on an idle client of 4 servers:
// 10.0 MiB resident, of which 8.2 MiB were file-backed pages of the
// gnomond binary and 1.6 MiB anonymous (docs/benchmarks.md, "What the
// resident set is made of").

// trimMemory returns the Go heap's free pages to the kernel
// (debug.FreeOSMemory, which collects first) and, when binary is set (a
// gnomond that serves nothing or plain NTP only: lowGC in gcpolicy.go),
// unmaps the pages of the executable's read-only mappings (text,
// read-only data) with MADV_DONTNEED. Those pages are clean copies of the
// file: whatever the daemon runs afterwards faults back in from the page
// cache, so only the pages it still uses stay resident (an NTP server
// answering 10 000 requests/s: about 3 of 8.3 MB). Writable mappings are
// never touched (MADV_DONTNEED would discard their changes), nor
// read-only ones holding written pages (readOnlyMappings). It reports how
// many bytes of mappings it advised.
//
// Until 2026-12-07 (late night) a server kept its pages: it trimmed them
// once, but the runtime's collection every two minutes mapped 2 MB of the
// function tables back in and kept them (5.6 -> 8.4 MiB in two 15-minute
// soaks). With the lean collector setting (gcpolicy.go) a plain NTP
// server no longer collects every two minutes and trims again after the
// collections it makes.
func trimMemory(binary bool) (int, error) {
	debug.FreeOSMemory()
	if !binary {
		return 0, nil
	}
	return trimBinary()
}

// The executable's read-only mappings, found once: they do not change
// while the process runs, and reading /proc/self/smaps walks every page
// table of the process.
var (
	binOnce   sync.Once
	binRanges []addrRange
	binErr    error
)

// trimBinary is trimMemory's second half: MADV_DONTNEED on the
// executable's read-only mappings.
func trimBinary() (int, error) {
	binOnce.Do(func() { binRanges, binErr = findBinary() })
	if binErr != nil {
		return 0, binErr
	}
	n := 0
	for _, r := range binRanges {
		if err := madviseRange(r.start, r.end, unix.MADV_DONTNEED); err != nil {
			return n, fmt.Errorf("trim: madvise %#x-%#x: %w", r.start, r.end, err)
		}
		n += int(r.end - r.start)
	}
	return n, nil
}

// findBinary reads the executable's read-only mappings from
// /proc/self/smaps.
func findBinary() ([]addrRange, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return nil, fmt.Errorf("trim: %w", err)
	}
	smaps, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		return nil, fmt.Errorf("trim: %w", err)
	}
	ranges, err := readOnlyMappings(smaps, exe)
	if err != nil {
		return nil, fmt.Errorf("trim: %w", err)
	}
	return ranges, nil
}

type addrRange struct{ start, end uintptr }

// readOnlyMappings picks from /proc/self/smaps the private mappings of
// the file path that are neither writable nor shared, "r-xp" (text) and
// "r--p" (read-only data), and hold no anonymous page: a read-only
// mapping can hold pages written before it was made read-only (the
// relocations of a dynamically linked or position-independent binary,
// RELRO), which MADV_DONTNEED would throw away. The path of a deleted
// executable ends in " (deleted)" in both /proc/self/exe and smaps, so it
// still matches.
func readOnlyMappings(smaps []byte, path string) ([]addrRange, error) {
	var out []addrRange
	var cur addrRange
	pick, anon := false, false
	flush := func() {
		if pick && !anon {
			out = append(out, cur)
		}
		pick, anon = false, false
	}
	sc := bufio.NewScanner(bytes.NewReader(smaps))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if strings.HasSuffix(f[0], ":") {
			// A field of the mapping above: "Anonymous:   12 kB".
			if pick && f[0] == "Anonymous:" && (len(f) < 2 || f[1] != "0") {
				anon = true
			}
			continue
		}
		// A mapping: address perms offset dev inode [pathname]
		flush()
		if len(f) < 6 || strings.Join(f[5:], " ") != path || (f[1] != "r-xp" && f[1] != "r--p") {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			return nil, fmt.Errorf("smaps: bad address range %q", f[0])
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			return nil, fmt.Errorf("smaps: bad address range %q", f[0])
		}
		cur, pick = addrRange{uintptr(start), uintptr(end)}, true
	}
	flush()
	return out, sc.Err()
}

// madviseRange is madvise(2) on [start, end), an address range of this
// process's own mappings (not a Go slice: the text is no Go object).
func madviseRange(start, end uintptr, advice int) error {
	_, _, e := unix.Syscall(unix.SYS_MADVISE, start, end-start, uintptr(advice))
	if e != 0 {
		return e
	}
	return nil
}
