package ops_test

import (
	"io"
	"log/slog"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"playpulse.dev/services/playback/envconf"
	"playpulse.dev/services/playback/ops"
)

// TestBuildInfoOnMetrics: every service's /metrics carries the build, with
// no code in the service, because NewServer registers it.
func TestBuildInfoOnMetrics(t *testing.T) {
	s := ops.NewServer(slog.New(slog.NewTextHandler(io.Discard, nil)))
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	var line string
	for l := range strings.Lines(rec.Body.String()) {
		if strings.HasPrefix(l, "playpulse_build_info{") {
			line = strings.TrimSpace(l)
		}
	}
	if line == "" {
		t.Fatalf("no playpulse_build_info on /metrics:\n%s", rec.Body.String())
	}
	for _, want := range []string{`version="dev"`, `revision="unknown"`, `goversion="` + runtime.Version() + `"`, `service="`} {
		if !strings.Contains(line, want) {
			t.Errorf("%s lacks %s", line, want)
		}
	}
	if strings.Contains(line, `service=""`) || !strings.HasSuffix(line, "} 1") {
		t.Errorf("want a named service and the value 1: %s", line)
	}
}

// TestHelpShowsVersion: -h says which build it is, through the hook ops
// sets at init.
func TestHelpShowsVersion(t *testing.T) {
	var b strings.Builder
	envconf.Usage(&b, "svc", &struct {
		Logging ops.Logging
	}{})
	want := "svc version dev, revision unknown, " + runtime.Version()
	if !strings.Contains(b.String(), want) {
		t.Errorf("-h lacks %q:\n%s", want, b.String())
	}
}
