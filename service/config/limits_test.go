package config

import (
	"runtime"
	"strings"
	"testing"
)

// hostileConfigs are documents built to make a parser spend memory: each
// fits in the 1 MiB a configuration may have.
func hostileConfigs() map[string]string {
	longKey := strings.Repeat("k", 300_000)
	return map[string]string{
		// 800 KB: 24 GB in gnomon's own pass before the limits.
		"nested arrays": "x = " + strings.Repeat("[", 400_000) + strings.Repeat("]", 400_000) + "\n",
		// the TOML library alone ran out of memory on these.
		"nested inline tables": "x = " + strings.Repeat("{a=", 200_000) + "1" + strings.Repeat("}", 200_000) + "\n",
		"dotted key":           strings.Repeat("a.", 300_000) + "b = 1\n",
		"table header":         "[" + strings.Repeat("a.", 300_000) + "b]\n",
		"array table header":   "[[" + strings.Repeat("a.", 300_000) + "b]]\n",
		// a long key over a long array: every element's path repeats the key.
		"long key, long array": "[[server]]\n" + `"` + longKey + `" = [` + strings.Repeat("1,", 300_000) + "]\n",
		// one error per element, each with its own message.
		"many errors": "[[server]]\nlisten = \"127.0.0.1:123\"\nallowlist = { filter = [" + strings.Repeat("1,", 400_000) + "] }\n",
	}
}

// TestParseHostileBounded: pathological documents are refused with a
// file:line error, and parsing each allocates a bounded amount of memory
// (allocations counted with runtime.MemStats, not time).
func TestParseHostileBounded(t *testing.T) {
	// Linear in the input: a flat array of 400 000 elements (a key path,
	// a tree node and a line each) takes about 150 bytes per input byte.
	// Before the limits, the nested arrays took 24 GB.
	const perByte = 200
	for name, doc := range hostileConfigs() {
		t.Run(name, func(t *testing.T) {
			if len(doc) > maxFileSize {
				t.Fatalf("test document is %d bytes, over the %d a file may have", len(doc), maxFileSize)
			}
			data := []byte(doc)
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := Parse("hostile.toml", data, Options{CanSetClock: true})
			runtime.ReadMemStats(&after)
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("%d bytes in, %d MiB allocated", len(data), alloc>>20)
			if maxAlloc := uint64(perByte * len(data)); alloc > maxAlloc {
				t.Errorf("parsing allocated %d MiB, want at most %d MiB", alloc>>20, maxAlloc>>20)
			}
			if err == nil {
				t.Fatal("accepted")
			}
			es := err.(Errors)
			if len(es) > MaxErrors+1 {
				t.Errorf("%d errors listed, want at most %d", len(es), MaxErrors+1)
			}
			if es[0].File != "hostile.toml" || es[0].Line == 0 {
				t.Errorf("first error %q has no file:line", es[0].Error())
			}
			t.Log(es[0].Error())
		})
	}
}

// TestNestingLimit: MaxNesting levels are accepted by the scanner, one
// more is refused on the line where it happens.
func TestNestingLimit(t *testing.T) {
	ok := "a = 1\nx = " + strings.Repeat("[", MaxNesting-1) + strings.Repeat("]", MaxNesting-1) + "\n"
	if _, lim := scanKeys([]byte(ok)); lim != nil {
		t.Errorf("%d levels refused: %s", MaxNesting, lim.msg)
	}
	bad := "a = 1\nx = " + strings.Repeat("[", MaxNesting) + strings.Repeat("]", MaxNesting) + "\n"
	_, lim := scanKeys([]byte(bad))
	if lim == nil || lim.line != 2 || !strings.Contains(lim.msg, "nested more than") {
		t.Errorf("%d levels: got %+v, want a nesting error on line 2", MaxNesting+1, lim)
	}
	_, err := Parse("deep.toml", []byte(bad), Options{})
	if err == nil || !strings.HasPrefix(err.Error(), "deep.toml:2: nested more than") {
		t.Errorf("Parse: %v", err)
	}
}

// TestManyErrorsCapped: a document with more than MaxErrors problems lists
// the first MaxErrors and says how many more there were.
func TestManyErrorsCapped(t *testing.T) {
	doc := "[[server]]\nlisten = \"127.0.0.1:123\"\nallowlist = { filter = [" + strings.Repeat("1,", 150) + "] }\n"
	_, err := Parse("many.toml", []byte(doc), Options{})
	es, _ := err.(Errors)
	if len(es) != MaxErrors+1 || !strings.Contains(es[MaxErrors].Msg, "and 50 more errors") {
		t.Fatalf("got %d errors, last %v", len(es), es[len(es)-1])
	}
}
