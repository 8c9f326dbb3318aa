package aggregate

import (
	"bytes"
	"testing"
	"time"

	"playpulse.dev/services/fanout/internal/consume"
	"playpulse.dev/services/playback/event"
	"playpulse.dev/services/playback/sim"
)

// TestShardCatchesUpAfterOldRecords: a shard that replays records two
// hours old (a new group's long warm-up, a backlog) publishes every second
// of them, the last ones too, when it catches up and the clock, not the
// records, closes the seconds: the clock's close then jumps past the
// shard's ring, and the open seconds close by their records first.
func TestShardCatchesUpAfterOldRecords(t *testing.T) {
	clock := time.Date(2026, 11, 24, 21, 0, 0, 0, time.UTC)
	now := func() time.Time { return clock }
	t0 := clock.Add(-2 * time.Hour)
	const span = 300 // seconds of records: more than the ring (128)
	// Sessions time out after 5 min: once caught up, they expire into
	// seconds further past the records than the ring holds, which moves
	// the ring past them.
	s := NewShard("t", 0, ShardOptions{Aggregator: Options{Now: now, SessionTimeout: 5 * time.Minute}})
	var kvs []keyValue
	emit := func(k, v []byte) { kvs = append(kvs, keyValue{bytes.Clone(k), bytes.Clone(v)}) }

	cfg := sim.DefaultConfig()
	sm, err := sim.New(cfg, "s", "s")
	if err != nil {
		t.Fatal(err)
	}
	sm.SetRate(20)
	var e event.Event
	var recs []consume.Record
	for at := t0; at.Before(t0.Add(span * time.Second)); at = at.Add(50 * time.Millisecond) {
		sm.Next(at, &e)
		recs = append(recs, consume.Record{Topic: "t", Offset: int64(len(recs)), Timestamp: e.TS.Truncate(time.Millisecond), Event: e})
	}
	// In batches, as the aggregator reads; the records' lag says how far
	// behind the partition's end each one is, 0 for the last.
	for i := 0; i < len(recs); i += 500 {
		b := recs[i:min(i+500, len(recs))]
		for j := range b {
			b[j].Lag = int64(len(recs)) - b[j].Offset - 1
		}
		s.AddBatch(b)
		s.Flush(clock, emit)
	}
	for range 3 {
		clock = clock.Add(100 * time.Millisecond)
		s.Flush(clock, emit)
	}

	from, to := t0.Unix(), t0.Unix()+span-1
	h := NewHistory(Options{Now: now}, from, to)
	for _, kv := range kvs {
		if err := h.Apply(kv.key, kv.value); err != nil {
			t.Fatal(err)
		}
	}
	got := h.Series()
	perSec := make([]float64, span)
	for _, vs := range got.Overall.EventsByType {
		for i, v := range vs {
			perSec[i] += v
		}
	}
	want := make([]float64, span)
	for _, r := range recs {
		want[r.Timestamp.Unix()-from]++
	}
	for i := range want {
		if perSec[i] != want[i] {
			t.Errorf("second %d of %d: %v events published, %v written", i, span, perSec[i], want[i])
		}
	}
}
