package alert

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// receiver is an Alertmanager stand-in that records each POST and answers
// with the next status of its script (200 when the script is done).
type receiver struct {
	mu     sync.Mutex
	posts  [][]amAlert
	status []int
	got    chan struct{}
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	var a []amAlert
	if err := json.NewDecoder(req.Body).Decode(&a); err != nil || req.Header.Get("Content-Type") != "application/json" {
		http.Error(w, "bad payload", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	code := http.StatusOK
	if len(r.status) > 0 {
		code, r.status = r.status[0], r.status[1:]
	}
	if code == http.StatusOK {
		r.posts = append(r.posts, a)
	}
	r.mu.Unlock()
	w.WriteHeader(code)
	r.got <- struct{}{}
}

func TestNotifier(t *testing.T) {
	rec := &receiver{got: make(chan struct{}, 10), status: []int{http.StatusOK, http.StatusServiceUnavailable}}
	srv := httptest.NewServer(rec)
	defer srv.Close()
	var results []string
	var rmu sync.Mutex
	n := NewNotifier(NotifierOptions{URL: srv.URL, ResendEvery: time.Hour, Labels: map[string]string{"cluster": "test"},
		Result: func(r string) { rmu.Lock(); results = append(results, r); rmu.Unlock() }})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { n.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	wait := func() {
		t.Helper()
		select {
		case <-rec.got:
		case <-time.After(5 * time.Second):
			t.Fatal("no POST")
		}
	}

	a := Alert{Rule: "failures", Metric: PlaybackFailurePct, Stream: "live", Severity: "critical", State: Firing,
		Since: t0, ActiveAt: t0.Add(time.Minute), Value: 9.84, Threshold: 5,
		Explained: &Explanation{Dim: DimCDN, Value: "fastly", Share: 0.82}}
	n.Update([]Alert{a}, []Change{{Alert: a, From: Pending}})
	wait()
	rec.mu.Lock()
	got := rec.posts[0]
	rec.mu.Unlock()
	if len(got) != 1 || got[0].Labels["alertname"] != "failures" || got[0].Labels["stream"] != "live" || got[0].Labels["cluster"] != "test" ||
		!got[0].StartsAt.Equal(a.ActiveAt) || !got[0].EndsAt.After(time.Now()) ||
		!strings.Contains(got[0].Annotations["summary"], "playback failures 9.8% (threshold 5%) on live") ||
		!strings.Contains(got[0].Annotations["summary"], "cdn=fastly accounts for 82% of the failures") {
		t.Fatalf("firing: %+v", got)
	}

	// The resolution meets a 503: it is sent again with the next change.
	r := a
	r.State, r.ResolvedAt = Resolved, t0.Add(5*time.Minute)
	n.Update(nil, []Change{{Alert: r, From: Firing}})
	wait()
	b := Alert{Rule: "startup", Metric: StartupP95, Stream: "live", Severity: "warning", State: Firing, Since: t0, ActiveAt: t0, Value: 20, Threshold: 10}
	n.Update([]Alert{b}, []Change{{Alert: b, From: Pending}})
	wait()
	rec.mu.Lock()
	got = rec.posts[len(rec.posts)-1]
	rec.mu.Unlock()
	if len(got) != 2 || got[0].Labels["alertname"] != "startup" || got[1].Labels["alertname"] != "failures" || !got[1].EndsAt.Equal(r.ResolvedAt) {
		t.Fatalf("after the 503: %+v", got)
	}
	// Delivered: the resolved alert is not sent again.
	n.Update([]Alert{b}, []Change{{Alert: b, From: Pending}})
	wait()
	rec.mu.Lock()
	got = rec.posts[len(rec.posts)-1]
	rec.mu.Unlock()
	if len(got) != 1 || got[0].Labels["alertname"] != "startup" {
		t.Fatalf("resolved sent twice: %+v", got)
	}
	// The result is told after the response is read: wait for the last.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		rmu.Lock()
		r := strings.Join(results, ",")
		rmu.Unlock()
		if r == "ok,error,ok,ok" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("results %v", r)
		}
	}
}

// TestNotifierBounded: a receiver that is away costs at most MaxResolved
// resolved alerts, the newest.
func TestNotifierBounded(t *testing.T) {
	n := NewNotifier(NotifierOptions{URL: "http://127.0.0.1:1", MaxResolved: 3})
	for i := range 10 {
		a := Alert{Rule: string(rune('a' + i)), State: Resolved}
		n.Update(nil, []Change{{Alert: a, From: Firing}})
	}
	if len(n.resolve) != 3 || n.resolve[0].Rule != "h" || n.resolve[2].Rule != "j" {
		t.Fatalf("held %+v", n.resolve)
	}
}
