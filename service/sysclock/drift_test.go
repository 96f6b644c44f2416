package sysclock

import (
	"errors"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDriftRoundTrip(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "gnomon.drift")
	for _, tc := range []struct{ freq, skew float64 }{
		{0, 0},
		{-12.345678, 0.123456},
		{512.5, 3},
		{-99999.999999, 1000},
		{1e-7, 1e-7}, // below the file's resolution: rounds to 0
	} {
		if err := WriteDrift(path, tc.freq, tc.skew); err != nil {
			t.Fatal(err)
		}
		freq, skew, err := ReadDrift(path)
		if err != nil {
			t.Fatal(err)
		}
		if math.Abs(freq-tc.freq) > 5e-7 || math.Abs(skew-tc.skew) > 5e-7 {
			t.Errorf("wrote %v %v, read %v %v", tc.freq, tc.skew, freq, skew)
		}
		assertOnly(t, dir, "gnomon.drift")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(data) != "0.000000 0.000000\n" {
		t.Errorf("file holds %q", data)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("mode %v, %v", fi.Mode(), err)
	}
}

// assertOnly fails unless dir holds exactly names (no temporary files).
func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range ents {
		got = append(got, e.Name())
	}
	if strings.Join(got, ",") != strings.Join(names, ",") {
		t.Errorf("%s holds %v, want %v", dir, got, names)
	}
}

func TestReadDriftMissing(t *testing.T) {
	path := filepath.Join(t.TempDir(), "none")
	freq, skew, err := ReadDrift(path)
	if !errors.Is(err, fs.ErrNotExist) || freq != 0 || skew != 0 {
		t.Errorf("ReadDrift(missing) = %v, %v, %v", freq, skew, err)
	}
}

func TestReadDrift(t *testing.T) {
	tests := []struct {
		name       string
		content    string
		freq, skew float64
		bad        bool
	}{
		{"gnomon", "-12.345678 0.123456\n", -12.345678, 0.123456, false},
		{"chrony layout", "          -12.345678             0.123456\n", -12.345678, 0.123456, false},
		{"no newline", "1.5 0.25", 1.5, 0.25, false},
		{"tabs and CRLF", "1.5\t0.25\r\n", 1.5, 0.25, false},
		{"exponent", "1e2 2e-3\n", 100, 0.002, false},
		{"empty", "", 0, 0, true},
		{"blank", "\n", 0, 0, true},
		{"one number", "12.5\n", 0, 0, true},
		{"three numbers", "1 2 3\n", 0, 0, true},
		{"two lines", "1 2\n3 4\n", 0, 0, true},
		{"text", "freq skew\n", 0, 0, true},
		{"nan", "NaN 1\n", 0, 0, true},
		{"inf", "1 +Inf\n", 0, 0, true},
		{"overflow", "1e400 1\n", 0, 0, true},
		{"negative skew", "1 -0.5\n", 0, 0, true},
		{"absurd frequency", "2000000 1\n", 0, 0, true},
		{"hex", "0x1p4 1\n", 0, 0, true},
		{"underscore", "1_0 1\n", 0, 0, true},
		{"binary", "\x00\x01\x02", 0, 0, true},
		{"huge", strings.Repeat(" ", 5000) + "1 1\n", 0, 0, true},
	}
	dir := t.TempDir()
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			if err := os.WriteFile(path, []byte(tc.content), 0o644); err != nil {
				t.Fatal(err)
			}
			freq, skew, err := ReadDrift(path)
			if tc.bad {
				if err == nil {
					t.Fatalf("accepted: %v %v", freq, skew)
				}
				if !errors.Is(err, ErrDriftFormat) || !strings.Contains(err.Error(), path) {
					t.Errorf("error %q should name %s and wrap ErrDriftFormat", err, path)
				}
				if freq != 0 || skew != 0 {
					t.Errorf("values %v %v with an error", freq, skew)
				}
				return
			}
			if err != nil || freq != tc.freq || skew != tc.skew {
				t.Errorf("got %v %v %v, want %v %v", freq, skew, err, tc.freq, tc.skew)
			}
		})
	}
}

func TestWriteDriftFailureLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	// A non-empty directory in the way: the rename fails after the
	// temporary file was written.
	path := filepath.Join(dir, "drift")
	if err := os.Mkdir(path, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(path, "x"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := WriteDrift(path, 1, 1); err == nil {
		t.Fatal("WriteDrift over a directory succeeded")
	}
	assertOnly(t, dir, "drift")

	if err := WriteDrift(filepath.Join(dir, "missing", "drift"), 1, 1); err == nil {
		t.Error("WriteDrift into a missing directory succeeded")
	}
	for _, v := range [][2]float64{{math.NaN(), 0}, {0, math.Inf(1)}, {0, -1}, {2e6, 0}} {
		if err := WriteDrift(filepath.Join(dir, "bad"), v[0], v[1]); !errors.Is(err, ErrDriftFormat) {
			t.Errorf("WriteDrift(%v) = %v", v, err)
		}
	}
	assertOnly(t, dir, "drift")
}

func TestWriteDriftReplaces(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "drift")
	if err := os.WriteFile(path, []byte("garbage that is longer than a drift line\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := WriteDrift(path, 7, 0.5); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if string(data) != "7.000000 0.500000\n" {
		t.Errorf("file holds %q", data)
	}
	assertOnly(t, dir, "drift")
}

func FuzzParseDrift(f *testing.F) {
	for _, s := range []string{
		"-12.345678 0.123456\n",
		"          -12.345678             0.123456\n", // chrony's %20.6f layout
		"0.000000 0.000000\n",
		"1e2 2e-3",
		"NaN 1\n",
		"1 2 3\n",
		"1 2\n\n",
		"0x1p-2 1\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		freq, skew, err := parseDrift(data)
		if err != nil {
			if !errors.Is(err, ErrDriftFormat) {
				t.Fatalf("error %v does not wrap ErrDriftFormat", err)
			}
			return
		}
		if math.IsNaN(freq) || math.IsInf(freq, 0) || math.Abs(freq) > maxDriftPPM || skew < 0 || skew > maxDriftPPM {
			t.Fatalf("accepted %v %v", freq, skew)
		}
		freq2, skew2, err := parseDrift(formatDrift(freq, skew))
		if err != nil {
			t.Fatalf("own output %q refused: %v", formatDrift(freq, skew), err)
		}
		if math.Abs(freq2-freq) > 5e-7+1e-9 || math.Abs(skew2-skew) > 5e-7+1e-9 { // half the file's last digit
			t.Fatalf("round trip %v %v -> %v %v", freq, skew, freq2, skew2)
		}
	})
}
