package daemon

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

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
// (debug.FreeOSMemory, which collects first) and unmaps the pages of the
// executable's read-only mappings (text, read-only data) with
// MADV_DONTNEED. Those pages are clean copies of the file: whatever the
// daemon runs afterwards faults back in from the page cache, so only the
// pages it still uses stay resident. Writable mappings are never touched
// (MADV_DONTNEED would discard their changes). It reports how many bytes
// of mappings it advised.
func trimMemory() (int, error) {
	debug.FreeOSMemory()
	return trimBinary()
}

// trimBinary is trimMemory's second half: MADV_DONTNEED on the
// executable's read-only mappings.
func trimBinary() (int, error) {
	exe, err := os.Readlink("/proc/self/exe")
	if err != nil {
		return 0, fmt.Errorf("trim: %w", err)
	}
	maps, err := os.ReadFile("/proc/self/maps")
	if err != nil {
		return 0, fmt.Errorf("trim: %w", err)
	}
	ranges, err := readOnlyMappings(maps, exe)
	if err != nil {
		return 0, fmt.Errorf("trim: %w", err)
	}
	n := 0
	for _, r := range ranges {
		if err := madviseRange(r.start, r.end, unix.MADV_DONTNEED); err != nil {
			return n, fmt.Errorf("trim: madvise %#x-%#x: %w", r.start, r.end, err)
		}
		n += int(r.end - r.start)
	}
	return n, nil
}

type addrRange struct{ start, end uintptr }

// readOnlyMappings picks from /proc/self/maps the private mappings of the
// file path that are neither writable nor shared: "r-xp" (text) and
// "r--p" (read-only data). The path of a deleted executable ends in
// " (deleted)" in both /proc/self/exe and maps, so it still matches.
func readOnlyMappings(maps []byte, path string) ([]addrRange, error) {
	var out []addrRange
	sc := bufio.NewScanner(bytes.NewReader(maps))
	for sc.Scan() {
		// address perms offset dev inode pathname
		f := strings.Fields(sc.Text())
		if len(f) < 6 {
			continue
		}
		if name := strings.Join(f[5:], " "); name != path {
			continue
		}
		if f[1] != "r-xp" && f[1] != "r--p" {
			continue
		}
		lo, hi, ok := strings.Cut(f[0], "-")
		if !ok {
			return nil, fmt.Errorf("maps: bad address range %q", f[0])
		}
		start, err1 := strconv.ParseUint(lo, 16, 64)
		end, err2 := strconv.ParseUint(hi, 16, 64)
		if err1 != nil || err2 != nil || end <= start {
			return nil, fmt.Errorf("maps: bad address range %q", f[0])
		}
		out = append(out, addrRange{uintptr(start), uintptr(end)})
	}
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
