package sd

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync/atomic"
)

// Targets is a slog.Handler whose destination LogControl1's LogTarget
// (systemctl service-log-target) changes at run time, with systemd's
// target names. Loggers made from it (With, WithGroup) follow the change.
type Targets struct {
	cur   *atomic.Pointer[slog.Handler]
	attrs func(slog.Handler) slog.Handler // With/WithGroup applied so far

	stderr io.Writer
	level  slog.Leveler
	format string
	auto   slog.Handler
}

// NewTargets starts on what NewLogHandler(w, level, format) picks, which is
// also what the target "auto" returns to.
func NewTargets(w io.Writer, level slog.Leveler, format string) *Targets {
	auto := NewLogHandler(w, level, format)
	t := &Targets{cur: new(atomic.Pointer[slog.Handler]), attrs: func(h slog.Handler) slog.Handler { return h },
		stderr: w, level: level, format: format, auto: auto}
	t.cur.Store(&auto)
	return t
}

// SetTarget sends every record from now on to target: "auto" (the start's
// choice), "console" and "console-prefixed" (text on standard error),
// "journal" and "syslog" (journald's native protocol: journald is the
// syslog of a systemd machine), "kmsg" (/dev/kmsg), the "-or-kmsg" forms
// (journald, else /dev/kmsg), or "null" (nothing). A target that cannot be
// opened is an error and changes nothing.
func (t *Targets) SetTarget(target string) error {
	var h slog.Handler
	var err error
	switch target {
	case "auto":
		h = t.auto
	case "console", "console-prefixed":
		h = slog.NewTextHandler(t.stderr, &slog.HandlerOptions{Level: t.level})
	case "journal", "syslog":
		h, err = NewJournalHandler(journalSocket, t.level)
	case "kmsg":
		h, err = t.kmsg()
	case "journal-or-kmsg", "syslog-or-kmsg":
		if h, err = NewJournalHandler(journalSocket, t.level); err != nil {
			h, err = t.kmsg()
		}
	case "null":
		h = slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: t.level})
	default:
		return fmt.Errorf("unknown log target %q", target)
	}
	if err != nil {
		return fmt.Errorf("log target %s: %w", target, err)
	}
	t.cur.Store(&h)
	return nil
}

func (t *Targets) kmsg() (slog.Handler, error) {
	f, err := os.OpenFile("/dev/kmsg", os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		return nil, err
	}
	// Every record its own write: the kernel takes a write as one line.
	return slog.NewTextHandler(f, &slog.HandlerOptions{Level: t.level}), nil
}

func (t *Targets) handler() slog.Handler { return t.attrs(*t.cur.Load()) }

// Enabled implements slog.Handler.
func (t *Targets) Enabled(ctx context.Context, l slog.Level) bool {
	return t.handler().Enabled(ctx, l)
}

// Handle implements slog.Handler.
func (t *Targets) Handle(ctx context.Context, r slog.Record) error {
	return t.handler().Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (t *Targets) WithAttrs(as []slog.Attr) slog.Handler {
	prev := t.attrs
	n := *t
	n.attrs = func(h slog.Handler) slog.Handler { return prev(h).WithAttrs(as) }
	return &n
}

// WithGroup implements slog.Handler.
func (t *Targets) WithGroup(name string) slog.Handler {
	prev := t.attrs
	n := *t
	n.attrs = func(h slog.Handler) slog.Handler { return prev(h).WithGroup(name) }
	return &n
}
