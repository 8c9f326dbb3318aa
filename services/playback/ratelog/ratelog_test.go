package ratelog_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"playpulse.dev/services/playback/ratelog"
)

func TestWarnIsBoundedPerKey(t *testing.T) {
	var buf bytes.Buffer
	now := time.Unix(0, 0)
	l := ratelog.New(slog.New(slog.NewJSONHandler(&buf, nil)), time.Second).WithClock(func() time.Time { return now })

	steps := []struct {
		advance time.Duration
		key     string
		written bool
	}{
		{0, "not_json", true},
		{100 * time.Millisecond, "not_json", false},
		{100 * time.Millisecond, "not_json", false},
		{0, "wrong_type", true}, // other keys are independent
		{time.Second, "not_json", true},
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		if got := l.Warn(s.key, "bad record"); got != s.written {
			t.Fatalf("step %d: written = %v, want %v", i, got, s.written)
		}
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d lines:\n%s", len(lines), buf.String())
	}
	var last map[string]any
	if err := json.Unmarshal([]byte(lines[2]), &last); err != nil {
		t.Fatal(err)
	}
	if last["suppressed"] != float64(2) {
		t.Fatalf("last line should report 2 suppressed: %v", last)
	}
}

func TestKeysAreBounded(t *testing.T) {
	var buf bytes.Buffer
	l := ratelog.New(slog.New(slog.NewJSONHandler(&buf, nil)), time.Hour)
	written := 0
	for i := 0; i < 10_000; i++ {
		if l.Warn(fmt.Sprint("k", i), "x") {
			written++
		}
	}
	if written > 257 {
		t.Fatalf("%d lines for 10k distinct keys; state is not bounded", written)
	}
}
