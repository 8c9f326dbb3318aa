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
		{"from=" + past + "&to=" + past + "&resolution=60", "resolution"},
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
	if n := testutil.ToFloat64(h.requests.WithLabelValues("bad_request")); n != 6 {
		t.Errorf("bad_request counted %v times, want 6", n)
	}
	if n := testutil.ToFloat64(h.requests.WithLabelValues("busy")); n != 1 {
		t.Errorf("busy counted %v times, want 1", n)
	}
}
