package sim

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// LoadPaths reads measured one-way delays for Path.Measured: one
// exchange a line, "OUT BACK" in nanoseconds; blank lines and lines
// starting with # are skipped.
func LoadPaths(r io.Reader) ([][2]time.Duration, error) {
	var out [][2]time.Duration
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 2 {
			return nil, fmt.Errorf("line %d: want two delays in ns, got %q", n, line)
		}
		var p [2]time.Duration
		for i, s := range f {
			v, err := strconv.ParseInt(s, 10, 64)
			if err != nil || v < 0 {
				return nil, fmt.Errorf("line %d: delay %q: want a non-negative integer (ns)", n, s)
			}
			p[i] = time.Duration(v)
		}
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no delays")
	}
	return out, nil
}
