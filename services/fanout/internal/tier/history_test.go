package tier

import (
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestHistoryRequests: what /api/history refuses before it reads Kafka:
// bad windows (400, saying why), and requests over the concurrency cap
// (503 with Retry-After), each counted by outcome.
func TestHistoryRequests(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := NewHistory(sarama.NewConfig(), []string{"127.0.0.1:1"}, HistoryOptions{Topic: "agg", Registerer: reg})
	now := time.Now().Unix()
	past := strconv.FormatInt(now-7200, 10)
	for _, c := range []struct{ query, says string }{
		{"", "Unix times"},
		{"from=1&to=x", "Unix times"},
		{"from=" + past + "&to=" + strconv.FormatInt(now-7201, 10), "before"},
		{"from=" + past + "&to=" + strconv.FormatInt(now-7200+3600, 10), "at most 3600"},
		{"from=" + strconv.FormatInt(now-10, 10) + "&to=" + strconv.FormatInt(now+5, 10), "past second"},
		{"from=" + past + "&to=" + past + "&resolution=60", "FANOUT_ROLLUPS_TOPIC"},
		{"from=" + past + "&to=" + past + "&resolution=10", "resolution must be 1"},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/history?"+c.query, nil))
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), c.says) {
			t.Errorf("?%s: %d %q, want 400 saying %q", c.query, rec.Code, rec.Body, c.says)
		}
	}
	for range cap(h.sem) {
		h.sem <- struct{}{}
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/api/history?from="+past+"&to="+past, nil))
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Errorf("over the cap: %d, Retry-After %q; want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}
	// With the rollups: a day at one point a minute, the minutes widened.
	h2 := NewHistory(sarama.NewConfig(), []string{"127.0.0.1:1"}, HistoryOptions{Topic: "agg", RollupsTopic: "minutes", Registerer: prometheus.NewRegistry()})
	day := strconv.FormatInt(now-86400-120, 10)
	for _, c := range []struct{ query, says string }{
		{"from=" + day + "&to=" + strconv.FormatInt(now-120+60, 10) + "&resolution=60", "at most 86400"},
		{"from=" + strconv.FormatInt(now-600, 10) + "&to=" + strconv.FormatInt(now+5, 10) + "&resolution=60", "past second"},
	} {
		rec := httptest.NewRecorder()
		h2.ServeHTTP(rec, httptest.NewRequest("GET", "/api/history?"+c.query, nil))
		if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), c.says) {
			t.Errorf("?%s: %d %q, want 400 saying %q", c.query, rec.Code, rec.Body, c.says)
		}
	}
	for _, c := range []struct {
		from, to, wantFrom, wantTo int64
	}{
		{120, 179, 120, 179},
		{121, 121, 120, 179},
		{119, 3000, 60, 3059},
		{-1, 0, -60, 59},
	} {
		r := httptest.NewRequest("GET", "/api/history?from="+strconv.FormatInt(c.from, 10)+"&to="+strconv.FormatInt(c.to, 10)+"&resolution=60", nil)
		from, to, res, err := historyWindow(r, time.Unix(1e9, 0))
		if err != nil || from != c.wantFrom || to != c.wantTo || res != 60 {
			t.Errorf("minutes of %d…%d: %d…%d at %d (%v), want %d…%d", c.from, c.to, from, to, res, err, c.wantFrom, c.wantTo)
		}
	}
	if n := testutil.ToFloat64(h.requests.WithLabelValues("bad_request")); n != 7 {
		t.Errorf("bad_request counted %v times, want 7", n)
	}
	if n := testutil.ToFloat64(h.requests.WithLabelValues("busy")); n != 1 {
		t.Errorf("busy counted %v times, want 1", n)
	}
}
