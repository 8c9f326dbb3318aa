// Package ratelog logs repeated warnings at a bounded rate. A flood of bad
// records or failed sends must be visible in the logs without the logs
// becoming the outage: per key, one line per interval, and that line says
// how many were suppressed since the last one.
package ratelog

import (
	"log/slog"
	"sync"
	"time"
)

// maxKeys bounds the per-key state; keys are meant to be a small fixed set
// (error reasons), and anything beyond shares one overflow slot.
const maxKeys = 256

// Logger rate-limits log lines per key.
type Logger struct {
	log   *slog.Logger
	every time.Duration
	now   func() time.Time

	mu   sync.Mutex
	keys map[string]*keyState
}

type keyState struct {
	last       time.Time
	suppressed int
}

// New returns a Logger that writes at most one line per key per interval.
func New(log *slog.Logger, every time.Duration) *Logger {
	return &Logger{log: log, every: every, now: time.Now, keys: map[string]*keyState{}}
}

// WithClock replaces the clock, for tests.
func (l *Logger) WithClock(now func() time.Time) *Logger { l.now = now; return l }

// Warn logs msg at warn level unless a line with the same key was written
// less than the interval ago. It reports whether the line was written.
func (l *Logger) Warn(key, msg string, args ...any) bool {
	l.mu.Lock()
	st, ok := l.keys[key]
	if !ok {
		if len(l.keys) >= maxKeys {
			key = "(overflow)"
			st = l.keys[key]
		}
		if st == nil {
			st = &keyState{}
			l.keys[key] = st
		}
	}
	now := l.now()
	if !st.last.IsZero() && now.Sub(st.last) < l.every {
		st.suppressed++
		l.mu.Unlock()
		return false
	}
	suppressed := st.suppressed
	st.last, st.suppressed = now, 0
	l.mu.Unlock()
	if suppressed > 0 {
		args = append(args, "suppressed", suppressed)
	}
	l.log.Warn(msg, append(args, "key", key)...)
	return true
}
