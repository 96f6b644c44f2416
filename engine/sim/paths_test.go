package sim

import (
	"strings"
	"testing"
)

func TestLoadPaths(t *testing.T) {
	p, err := LoadPaths(strings.NewReader("# comment\n\n100 200\n 5 6 \n"))
	if err != nil || len(p) != 2 || p[0][0] != 100 || p[0][1] != 200 || p[1][0] != 5 || p[1][1] != 6 {
		t.Fatalf("got %v, %v", p, err)
	}
	for _, bad := range []string{"", "# only\n", "1\n", "1 2 3\n", "1 x\n", "-1 2\n"} {
		if _, err := LoadPaths(strings.NewReader(bad)); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
	if _, err := LoadPaths(strings.NewReader("1 2\n1 x\n")); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("error does not name the line: %v", err)
	}
}

func FuzzLoadPaths(f *testing.F) {
	f.Add("100 200\n")
	f.Add("# c\n1 2\n3 4\n")
	f.Fuzz(func(t *testing.T, s string) {
		p, err := LoadPaths(strings.NewReader(s))
		if err != nil {
			return
		}
		for _, x := range p {
			if x[0] < 0 || x[1] < 0 {
				t.Fatalf("negative delay %v from %q", x, s)
			}
		}
	})
}
