package sysclock

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"

	"gnomon.dev/gnomon/service/atomicfile"
)

// The drift file keeps the clock's frequency correction across restarts,
// in the layout of chrony's driftfile: one line "<freq ppm> <skew ppm>\n".
// The frequency is gnomon's correction as Clock.SetFrequency takes it
// (positive makes the clock faster); the skew is its estimated error.

// ErrDriftFormat is wrapped by ReadDrift's error for a file whose content
// is not a drift file.
var ErrDriftFormat = errors.New("not a drift file")

// maxDriftFile bounds what ReadDrift reads: a drift file is one short line.
const maxDriftFile = 4096

// maxDriftPPM bounds a believable frequency in a drift file. It is wider
// than any clock's range so a file is not refused for a clock's limit; the
// caller clamps.
const maxDriftPPM = 1e6

// ReadDrift reads the drift file at path. A missing file returns (0, 0, an
// error wrapping fs.ErrNotExist); bad content an error that names the file
// and wraps ErrDriftFormat.
func ReadDrift(path string) (freqPPM, skewPPM float64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0, fmt.Errorf("sysclock: drift file: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxDriftFile+1))
	if err != nil {
		return 0, 0, fmt.Errorf("sysclock: drift file: %w", err)
	}
	if len(data) > maxDriftFile {
		return 0, 0, fmt.Errorf("sysclock: drift file %s: longer than %d bytes: %w", path, maxDriftFile, ErrDriftFormat)
	}
	freqPPM, skewPPM, err = parseDrift(data)
	if err != nil {
		return 0, 0, fmt.Errorf("sysclock: drift file %s: %w", path, err)
	}
	return freqPPM, skewPPM, nil
}

// parseDrift parses a drift file's content: two finite numbers separated
// by blanks on one line, the newline after them optional.
func parseDrift(data []byte) (freqPPM, skewPPM float64, err error) {
	line, rest, _ := bytes.Cut(data, []byte("\n"))
	if len(bytes.TrimSpace(rest)) != 0 {
		return 0, 0, fmt.Errorf("more than one line: %w", ErrDriftFormat)
	}
	fields := bytes.Fields(line)
	if len(fields) != 2 {
		return 0, 0, fmt.Errorf("%d fields, want 2: %w", len(fields), ErrDriftFormat)
	}
	freqPPM, err = parseDriftNumber(fields[0])
	if err != nil {
		return 0, 0, fmt.Errorf("frequency: %w", err)
	}
	skewPPM, err = parseDriftNumber(fields[1])
	if err != nil {
		return 0, 0, fmt.Errorf("skew: %w", err)
	}
	if math.Abs(freqPPM) > maxDriftPPM {
		return 0, 0, fmt.Errorf("frequency %g ppm out of range: %w", freqPPM, ErrDriftFormat)
	}
	if skewPPM < 0 || skewPPM > maxDriftPPM {
		return 0, 0, fmt.Errorf("skew %g ppm out of range: %w", skewPPM, ErrDriftFormat)
	}
	return freqPPM, skewPPM, nil
}

// parseDriftNumber parses a decimal number (no hex, no Inf or NaN).
func parseDriftNumber(b []byte) (float64, error) {
	if bytes.IndexFunc(b, func(r rune) bool { return !strings.ContainsRune("0123456789+-.eE", r) }) >= 0 {
		return 0, fmt.Errorf("%q is not a decimal number: %w", b, ErrDriftFormat)
	}
	v, err := strconv.ParseFloat(string(b), 64)
	if err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		return 0, fmt.Errorf("%q is not a finite number: %w", b, ErrDriftFormat)
	}
	return v, nil
}

// formatDrift is the drift file's content for freqPPM and skewPPM.
func formatDrift(freqPPM, skewPPM float64) []byte {
	return fmt.Appendf(nil, "%.6f %.6f\n", freqPPM, skewPPM)
}

// WriteDrift replaces the drift file at path atomically (atomicfile): a
// crash leaves the old file or the new one, never a torn one, and no
// temporary file is left behind on error.
func WriteDrift(path string, freqPPM, skewPPM float64) error {
	if math.IsNaN(freqPPM) || math.IsInf(freqPPM, 0) || math.Abs(freqPPM) > maxDriftPPM ||
		math.IsNaN(skewPPM) || skewPPM < 0 || skewPPM > maxDriftPPM {
		return fmt.Errorf("sysclock: drift file %s: refusing to write %v %v: %w", path, freqPPM, skewPPM, ErrDriftFormat)
	}
	if err := atomicfile.WriteFile(path, formatDrift(freqPPM, skewPPM), 0o644); err != nil {
		return fmt.Errorf("sysclock: drift file: %w", err)
	}
	return nil
}
