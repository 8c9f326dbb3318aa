// Package aggregate keeps live per-second statistics of the event stream
// for the dashboard: events per second by type over the last 15 minutes and
// the streams seen. Memory is fixed: a ring of one-second buckets and a
// capped set of stream names.
package aggregate

import (
	"encoding/json"
	"slices"
	"sync"
	"time"

	"playpulse.dev/services/fanout/internal/consume"
	"playpulse.dev/services/playback/event"
)

// Window is how much history the series keep.
const Window = 15 * time.Minute

// MaxStreams caps the stream names remembered; beyond it new names are
// counted in StreamsEvicted and not listed.
const MaxStreams = 1000

const slots = int(Window / time.Second)

type bucket struct {
	sec    int64
	byType [event.NumTypes]uint32
}

// Aggregator is safe for concurrent use.
type Aggregator struct {
	mu      sync.Mutex
	buckets [slots]bucket
	total   uint64
	streams map[string]uint64
	evicted uint64
	lastTS  time.Time // newest Kafka timestamp seen
}

// New returns an empty Aggregator.
func New() *Aggregator { return &Aggregator{streams: map[string]uint64{}} }

// Add counts one record in the second of its Kafka timestamp. Records older
// than the window are counted in the total only.
func (a *Aggregator) Add(r *consume.Record) {
	sec := r.Timestamp.Unix()
	a.mu.Lock()
	defer a.mu.Unlock()
	a.total++
	if r.Timestamp.After(a.lastTS) {
		a.lastTS = r.Timestamp
	}
	if n, ok := a.streams[r.Event.Stream]; ok || len(a.streams) < MaxStreams {
		a.streams[r.Event.Stream] = n + 1
	} else {
		a.evicted++
	}
	b := &a.buckets[sec%int64(slots)]
	if b.sec != sec {
		if b.sec > sec {
			return // older than the window
		}
		*b = bucket{sec: sec}
	}
	b.byType[r.Event.Type]++
}

// Snapshot is what the dashboard draws; docs/protocol.md describes it.
type Snapshot struct {
	Type         string            `json:"type"` // always "snapshot"
	Time         int64             `json:"time"` // unix ms
	EventsTotal  uint64            `json:"events_total"`
	EventsPerSec float64           `json:"events_per_second"` // over the last 10 complete seconds
	ByType       map[string]uint64 `json:"by_type_10s"`
	LatestTS     int64             `json:"latest_kafka_ts"` // unix ms of the newest record, 0 if none
	Streams      []string          `json:"streams"`
	Series       Series            `json:"series"`
}

// Series holds one value per second, oldest first, for the last Window.
type Series struct {
	Start  int64               `json:"start"` // unix seconds of the first point
	ByType map[string][]uint32 `json:"events_by_type"`
}

// Snapshot returns the statistics as of now; the current (incomplete)
// second is left out.
func (a *Aggregator) Snapshot(now time.Time) Snapshot {
	end := now.Unix() // exclusive
	start := end - int64(slots)
	s := Snapshot{Type: "snapshot", Time: now.UnixMilli(), ByType: map[string]uint64{}, Series: Series{Start: start, ByType: map[string][]uint32{}}}
	a.mu.Lock()
	defer a.mu.Unlock()
	s.EventsTotal = a.total
	if !a.lastTS.IsZero() {
		s.LatestTS = a.lastTS.UnixMilli()
	}
	for name := range a.streams {
		s.Streams = append(s.Streams, name)
	}
	slices.Sort(s.Streams)
	for _, t := range event.Types() {
		s.Series.ByType[t.String()] = make([]uint32, slots)
	}
	var last10 uint64
	for sec := start; sec < end; sec++ {
		b := &a.buckets[sec%int64(slots)]
		if b.sec != sec {
			continue
		}
		i := sec - start
		for _, t := range event.Types() {
			n := b.byType[t]
			s.Series.ByType[t.String()][i] = n
			if sec >= end-10 {
				s.ByType[t.String()] += uint64(n)
				last10 += uint64(n)
			}
		}
	}
	s.EventsPerSec = float64(last10) / 10
	return s
}

// JSON encodes a snapshot.
func (s Snapshot) JSON() []byte {
	b, _ := json.Marshal(s)
	return b
}
