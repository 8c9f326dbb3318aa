package aggregate

import (
	"bytes"
	"encoding/json"
	"hash/fnv"
	"testing"
	"time"

	"playpulse.dev/services/fanout/internal/consume"
	"playpulse.dev/services/playback/event"
	"playpulse.dev/services/playback/sim"
)

// TestHistoryMatchesSingleProcess: a simulated workload through the
// single-process Aggregator and through Shards (late records included,
// so seconds are published again); the partials, spread over the
// partitions of a stand-in aggregates topic and applied one partition
// after the other into a History, give the very series the single
// process draws for the same seconds: every count, ratio, percentile and
// the viewers, exactly.
func TestHistoryMatchesSingleProcess(t *testing.T) {
	const (
		rate     = 60 // events/s per stream
		parts    = 3  // raw partitions
		aggParts = 4  // partitions of the aggregates topic
		duration = 16 * time.Minute
	)
	knobs := eventfulKnobs()

	t0 := time.Date(2026, 11, 24, 21, 0, 0, 0, time.UTC)
	clock := t0
	now := func() time.Time { return clock }
	single := New(Options{Now: now})
	topic := make([][]keyValue, aggParts)
	emit := func(k, v []byte) {
		h := fnv.New32a()
		h.Write(k)
		p := h.Sum32() % aggParts
		topic[p] = append(topic[p], keyValue{bytes.Clone(k), bytes.Clone(v)})
	}
	shards := make([]*Shard, parts)
	for p := range shards {
		shards[p] = NewShard("t", int32(p), ShardOptions{Aggregator: Options{Now: now}})
	}
	w := newWorkload(t, knobs, 11, rate, parts, true)
	w.play(&clock, t0, duration, single, shards, emit)
	want := single.Snapshot(clock, true).Series

	for _, w := range []struct {
		name     string
		from, to time.Duration // after t0
	}{
		{"ten minutes in the past", 4 * time.Minute, 14 * time.Minute},
		{"up to the last second", 10 * time.Minute, duration - time.Second},
		{"one second", 12 * time.Minute, 12 * time.Minute},
	} {
		t.Run(w.name, func(t *testing.T) {
			from, to := t0.Add(w.from).Unix(), t0.Add(w.to).Unix()
			h := NewHistory(Options{Now: now}, from, to)
			for _, part := range topic {
				for _, kv := range part {
					if err := h.Apply(kv.key, kv.value); err != nil {
						t.Fatal(err)
					}
				}
			}
			got := h.Series()
			ref := sliceSeries(want, from, to)
			if len(got.Streams) != 2 || len(got.Sources) != 1 {
				t.Errorf("streams %d, sources %d: want 2 and 1", len(got.Streams), len(got.Sources))
			}
			if v := got.Overall.ConcurrentViewers; v[len(v)-1] == 0 || got.Overall.EventsByType["heartbeat"][0] == 0 {
				t.Fatalf("an empty window: viewers %v", v[len(v)-1])
			}
			checkSame(t, jsonOf(t, ref), jsonOf(t, got), func(string) bool { return false })
		})
	}
}

// sliceSeries is the seconds [from, to] of a snapshot's series.
func sliceSeries(s SeriesSet, from, to int64) SeriesSet {
	i, j := int(from-s.Start), int(to-s.Start+1)
	cut := func(x Series) Series {
		c := func(n Nums) Nums { return n[i:j] }
		out := Series{EventsByType: map[string]Nums{}, Attempts: c(x.Attempts), SPS: c(x.SPS), ConcurrentViewers: c(x.ConcurrentViewers),
			StartupP50MS: c(x.StartupP50MS), StartupP95MS: c(x.StartupP95MS), RebufferPct: c(x.RebufferPct), AvgBitrateKbps: c(x.AvgBitrateKbps),
			StartFailurePct: c(x.StartFailurePct), ExitBeforeStartPct: c(x.ExitBeforeStartPct), PlaybackFailurePct: c(x.PlaybackFailurePct)}
		for k, v := range x.EventsByType {
			out.EventsByType[k] = c(v)
		}
		return out
	}
	out := SeriesSet{Start: from, Length: j - i, SmoothingS: s.SmoothingS, Overall: cut(s.Overall), Streams: map[string]Series{}, Sources: map[string]SourceSeries{}}
	for k, v := range s.Streams {
		out.Streams[k] = cut(v)
	}
	for k, v := range s.Sources {
		if v.Overall {
			out.Sources[k] = v
		} else {
			out.Sources[k] = SourceSeries{Series: cut(v.Series)}
		}
	}
	return out
}

func jsonOf(t *testing.T, v any) any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// BenchmarkHistoryHour: applying an hour of partials (6 raw partitions, a
// default simulator workload at 500 events/s) into a History and computing
// its series, in process: the CPU side of /api/history, without Kafka.
func BenchmarkHistoryHour(b *testing.B) {
	const (
		parts = 6
		rate  = 500
		hour  = 3600
	)
	s, err := sim.New(sim.DefaultConfig(), "bench", "bench")
	if err != nil {
		b.Fatal(err)
	}
	s.SetRate(rate)
	t0 := time.Date(2026, 11, 24, 21, 0, 0, 0, time.UTC)
	end := t0.Add((hour + 20) * time.Second)
	now := func() time.Time { return end }
	shards := make([]*Shard, parts)
	for p := range shards {
		shards[p] = NewShard("t", int32(p), ShardOptions{Aggregator: Options{Now: now}})
	}
	var topic []keyValue
	emit := func(k, v []byte) { topic = append(topic, keyValue{bytes.Clone(k), bytes.Clone(v)}) }
	var e event.Event
	offsets := make([]int64, parts)
	for at := t0; at.Before(end); at = at.Add(time.Second / rate) {
		s.Next(at, &e)
		h := fnv.New32a()
		h.Write([]byte(e.SessionID))
		p := h.Sum32() % parts
		shards[p].AddBatch([]consume.Record{{Topic: "t", Partition: int32(p), Offset: offsets[p], Timestamp: e.TS, Event: e, Lag: 1}})
		offsets[p]++
		if offsets[p]%100 == 0 {
			shards[p].Flush(at, emit)
		}
	}
	var n int
	for _, kv := range topic {
		n += len(kv.key) + len(kv.value)
	}
	from := t0.Unix() + 10
	b.ResetTimer()
	for range b.N {
		h := NewHistory(Options{}, from, from+hour-1)
		for _, kv := range topic {
			if err := h.Apply(kv.key, kv.value); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := json.Marshal(h.Series()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(topic)), "partials")
	b.ReportMetric(float64(n), "bytes")
}
