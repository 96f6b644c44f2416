package sd

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
)

func TestTargets(t *testing.T) {
	var out bytes.Buffer
	tg := NewTargets(&out, slog.LevelInfo, "text")
	log := slog.New(tg).With("part", "dbus")
	log.Info("first")
	if err := tg.SetTarget("null"); err != nil {
		t.Fatal(err)
	}
	log.Info("hidden")
	if err := tg.SetTarget("console"); err != nil {
		t.Fatal(err)
	}
	log.Info("second")
	if err := tg.SetTarget("bogus"); err == nil {
		t.Error("an unknown target was accepted")
	}
	got := out.String()
	if !strings.Contains(got, "msg=first part=dbus") || !strings.Contains(got, "msg=second part=dbus") || strings.Contains(got, "hidden") {
		t.Errorf("log:\n%s", got)
	}
	// journald is not listening at a path of this test: refused, and the
	// target stays console.
	old := journalSocket
	journalSocket = t.TempDir() + "/none"
	defer func() { journalSocket = old }()
	if err := tg.SetTarget("journal"); err == nil {
		t.Error("journal without journald was accepted")
	}
	log.Info("third")
	if !strings.Contains(out.String(), "msg=third") {
		t.Errorf("a refused target changed where the log goes:\n%s", out.String())
	}
}
