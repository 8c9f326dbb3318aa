package e2e

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"playpulse.dev/services/playback/sim"
	"playpulse.dev/tests/benchproducer"
	"playpulse.dev/tests/harness"
)

// Rate tests run the producer built without the race detector
// (harness.FastBin): they measure speed. Measurement, as in
// tests/benchproducer's package documentation, over a 10 s window starting
// 3 s after the producer is ready:
//
//   - by timestamp: records with a timestamp in the window (ListOffsets by
//     time per partition), within ±2% of rate × 10 s; exactly 10 at rate 1;
//   - delivery kept up: the same count one second later is unchanged, so
//     every record of the window was in Kafka within 1 s of its end;
//   - wall clock: the high-water marks grew by rate × 10 s ±2% (±2 events)
//     during the window (rates ≥ 10).
const (
	rateWindow  = 10 * time.Second
	rateDeliver = time.Second
	rateTol     = 0.02
)

type rateCase struct {
	rate  float64
	extra map[string]string
	// expected, when set, is the number of events due in [t0, t1) (the
	// daily profile); else rate × window.
	expected func(t0, t1 time.Time) float64
}

// TestProducerRateAccuracy: the rate measured in Kafka is within ±2% of
// PRODUCER_RATE from 1 to 50,000 events/s, and follows the daily profile.
// The small rates share one window; 10k and 50k run alone.
func TestProducerRateAccuracy(t *testing.T) {
	bin := harness.FastBin(t)
	daily := map[string]string{"PRODUCER_DAILY_PROFILE": "true", "PRODUCER_DAILY_PERIOD": "1m"}
	groups := [][]rateCase{
		{{rate: 1}, {rate: 10}, {rate: 100}, {rate: 1000}, {rate: 1000, extra: daily, expected: dailyExpected(1000, daily)}},
		{{rate: 10000}},
		{{rate: 50000}},
	}
	for _, g := range groups {
		measureGroup(t, bin, g)
	}
}

// dailyExpected integrates rate × the daily profile's factor over [t0, t1)
// (1 ms steps).
func dailyExpected(rate float64, env map[string]string) func(t0, t1 time.Time) float64 {
	cfg := sim.DefaultConfig()
	cfg.DailyProfile = true
	var err error
	if cfg.DailyPeriod, err = time.ParseDuration(env["PRODUCER_DAILY_PERIOD"]); err != nil {
		panic(err)
	}
	return func(t0, t1 time.Time) float64 {
		var n float64
		for t := t0; t.Before(t1); t = t.Add(time.Millisecond) {
			n += rate * cfg.DailyFactor(t.Add(500*time.Microsecond)) / 1000
		}
		return n
	}
}

func measureGroup(t *testing.T, bin string, cases []rateCase) {
	t.Helper()
	type run struct {
		rateCase
		p     producerRun
		topic *benchproducer.Topic
		res   benchproducer.RateResult
		err   error
	}
	runs := make([]*run, len(cases))
	for i, c := range cases {
		name := newTopic(t, 3)
		r := &run{rateCase: c, p: runProducer(t, bin, broker, name, strconv.FormatFloat(c.rate, 'f', -1, 64), withWarnLogs(c.extra))}
		tp, err := benchproducer.OpenTopic(broker.Addr(), name)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { tp.Close() })
		r.topic = tp
		runs[i] = r
	}
	for _, r := range runs {
		r.p.waitAcked(t, 1, 30*time.Second)
	}
	t0 := benchproducer.NextWindow(3 * time.Second)
	var wg sync.WaitGroup
	for _, r := range runs {
		wg.Go(func() { r.res, r.err = r.topic.MeasureRate(r.rate, t0, rateWindow, rateDeliver) })
	}
	wg.Wait()
	for _, r := range runs {
		what := fmt.Sprintf("rate %g", r.rate)
		if r.extra != nil {
			what += fmt.Sprintf(" %v", r.extra)
		}
		if r.err != nil {
			t.Errorf("%s: %v", what, r.err)
			continue
		}
		res := r.res
		if r.expected != nil {
			// Compare with the integral of the profile: scale the target so
			// that Target × Window is the expected count.
			res.Target = r.expected(t0, t0.Add(rateWindow)) / rateWindow.Seconds()
		}
		t.Logf("%s: %s", what, res)
		if err := res.Err(rateTol, r.rate >= 10); err != nil {
			t.Errorf("%s: %v", what, err)
		}
		m, err := benchproducer.Scrape(r.p.metricsURL())
		if err != nil {
			t.Fatal(err)
		}
		if f := m.Sum("playpulse_producer_events_failed_total"); f != 0 {
			t.Errorf("%s: %v events failed", what, f)
		}
	}
}

func withWarnLogs(extra map[string]string) map[string]string {
	env := map[string]string{"LOG_LEVEL": "warn"}
	for k, v := range extra {
		env[k] = v
	}
	return env
}

// TestProducerRestartNewRate: a producer restarted with a new
// PRODUCER_RATE is on the new target within 3 s of the restart: the 10 s
// window starting 3 s after the new process was started holds 2,000/s
// ±2% (measured as in TestProducerRateAccuracy). The two processes never
// share a session id: every event id is unique and every session's seqs run
// 1, 2, 3, ... in the topic.
func TestProducerRestartNewRate(t *testing.T) {
	bin := harness.FastBin(t)
	name := newTopic(t, 3)
	old := runProducer(t, bin, broker, name, "200", nil) // info logs: stopProducer reads the final counts
	old.waitAcked(t, 200, 30*time.Second)
	stopProducer(t, old)

	restarted := time.Now()
	p := startProducerProc(t, bin, broker, name, "2000", nil)
	tp, err := benchproducer.OpenTopic(broker.Addr(), name)
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	t0 := restarted.Add(3*time.Second + time.Millisecond).Truncate(time.Millisecond)
	res, err := tp.MeasureRate(2000, t0, rateWindow, rateDeliver)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("window from %s after the restart: %s", t0.Sub(restarted), res)
	if err := res.Err(rateTol, true); err != nil {
		t.Error(err)
	}
	c := stopProducer(t, p)
	recs := readAll(t, broker, name)
	sessions := checkExactlyOnce(t, recs)
	checkPartitionTimes(t, recs) // one process after the other
	if prefixes := sessionPrefixes(recs); len(prefixes) != 2 {
		t.Errorf("session id prefixes %v, want one per process", prefixes)
	}
	t.Logf("%d records, %d sessions; the new process acknowledged %d", len(recs), sessions, c.Acknowledged)
}

// sessionPrefixes returns the instance ids in front of the session
// counters ("host-1a2b3c4d-" of "host-1a2b3c4d-2s").
func sessionPrefixes(recs []record) map[string]int {
	out := map[string]int{}
	for _, r := range recs {
		id := r.ev.SessionID
		out[id[:strings.LastIndexByte(id, '-')+1]]++
	}
	return out
}

// TestProducerReplicasNeverCollide: two producers of the same stream on the
// same host and topic (what two replicas of a PlaybackStream are, but for
// the host) never produce the same session id: the topic holds every event
// each acknowledged, once, under two distinct instance prefixes, and every
// session's seqs run 1, 2, 3, ...
func TestProducerReplicasNeverCollide(t *testing.T) {
	bin := harness.Bin(t)
	name := newTopic(t, 3)
	a := startProducerProc(t, bin, broker, name, "500", nil)
	b := startProducerProc(t, bin, broker, name, "500", nil)
	harness.WaitReady(t, a.readyURL(), 60*time.Second)
	harness.WaitReady(t, b.readyURL(), 60*time.Second)
	a.waitAcked(t, 2000, 30*time.Second)
	b.waitAcked(t, 2000, 30*time.Second)
	ca, cb := stopProducer(t, a), stopProducer(t, b)
	recs := readAll(t, broker, name)
	sessions := checkExactlyOnce(t, recs)
	if int64(len(recs)) != ca.Acknowledged+cb.Acknowledged {
		t.Fatalf("%d records, the producers acknowledged %d + %d", len(recs), ca.Acknowledged, cb.Acknowledged)
	}
	prefixes := sessionPrefixes(recs)
	if len(prefixes) != 2 {
		t.Fatalf("session id prefixes %v, want two distinct ones", prefixes)
	}
	t.Logf("%d records, %d sessions, prefixes %v", len(recs), sessions, prefixes)
}

// TestProducerPausedAtRateZero: PRODUCER_RATE=0 connects, reports ready,
// and sends nothing; SIGTERM still exits 0.
func TestProducerPausedAtRateZero(t *testing.T) {
	name := newTopic(t, 3)
	p := runProducer(t, harness.Bin(t), broker, name, "0", nil)
	time.Sleep(3 * time.Second) // an observation window: nothing may be sent
	if err := wantStatus(p.readyURL(), http.StatusOK); err != nil {
		t.Fatalf("paused producer not ready: %v", err)
	}
	m, err := benchproducer.Scrape(p.metricsURL())
	if err != nil {
		t.Fatal(err)
	}
	if g, tr := m.Sum("playpulse_producer_events_generated_total"), m.Sum("playpulse_producer_target_rate"); g != 0 || tr != 0 {
		t.Fatalf("paused producer: generated %v, target rate %v", g, tr)
	}
	tp, err := benchproducer.OpenTopic(broker.Addr(), name)
	if err != nil {
		t.Fatal(err)
	}
	defer tp.Close()
	if n, err := tp.HighWater(); err != nil || n != 0 {
		t.Fatalf("topic holds %d records (%v)", n, err)
	}
	if c := stopProducer(t, p); c.Generated != 0 {
		t.Fatalf("paused producer: %+v", c)
	}
}
