// Package forward decides which raw events an aggregator forwards to the
// tail topic, so that merge-mode fan-outs can show a live tail without
// reading the raw topics (docs/architecture.md, "Aggregation tier"):
//
//   - a fair sample of every stream: each shard forwards at most
//     SampleRate/partitions events a second of each stream, evenly spaced,
//     so the tail topic carries about SampleRate events a second per
//     stream whatever the raw rate;
//   - every event a browser's narrow filter asks for (one user, one title):
//     merge-mode fan-outs announce their clients' filters on a small
//     compacted topic, and every aggregator forwards the matching events,
//     at most MaxPerFilter a second each.
//
// A Sampler belongs to one shard (one goroutine). The Filters set is
// shared: the goroutine reading the filters topic replaces it whole, the
// shards read it through an atomic pointer.
package forward

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"playpulse.dev/services/playback/event"
)

// Filter is what a merge-mode fan-out asks the aggregators for: every
// event of a user, or of a title. Filters on a stream, a type, a device or
// a source are served from the sample and not announced: they match too
// much to forward in full.
type Filter struct {
	User  string `json:"user_id,omitempty"`
	Movie string `json:"movie_id,omitempty"`
}

// Announcement is the value a fan-out writes to the filters topic under
// its instance name: its clients' filters, valid until Expires (Unix ms);
// it writes it again well before then while they stay. An empty list (or
// an expired announcement) withdraws them.
type Announcement struct {
	Expires int64    `json:"expires"`
	Filters []Filter `json:"filters"`
}

// Limits of what one announcement and all of them together may ask: the
// filters topic is internal, but a bug must not make every aggregator
// match against an unbounded set.
const (
	MaxFilters      = 1000 // per announcement
	MaxAnnouncers   = 1000 // fan-out instances
	maxFilterLength = 256
)

// Encode is the value of a fan-out's announcement.
func (a Announcement) Encode() []byte {
	b, _ := json.Marshal(a)
	return b
}

// Filters is the union of the announced filters, shared by the shards.
type Filters struct {
	mu  sync.Mutex // the announcements; the readers use cur
	ann map[string]Announcement
	cur atomic.Pointer[filterSet]
}

type filterSet struct {
	users, movies map[string]int64 // value → expiry, Unix ms
}

// NewFilters returns an empty set.
func NewFilters() *Filters {
	f := &Filters{ann: map[string]Announcement{}}
	f.cur.Store(&filterSet{})
	return f
}

// ErrAnnouncement is a value of the filters topic that is not an
// announcement within the limits.
var ErrAnnouncement = errors.New("bad filter announcement")

// Set records the announcement of instance (a record of the filters
// topic); an empty value withdraws it.
func (f *Filters) Set(instance string, value []byte) error {
	var a Announcement
	if len(value) > 0 {
		if err := json.Unmarshal(value, &a); err != nil {
			return fmt.Errorf("%w: %v", ErrAnnouncement, err)
		}
		if len(a.Filters) > MaxFilters {
			return fmt.Errorf("%w: %d filters, at most %d", ErrAnnouncement, len(a.Filters), MaxFilters)
		}
		for _, x := range a.Filters {
			if len(x.User) > maxFilterLength || len(x.Movie) > maxFilterLength {
				return fmt.Errorf("%w: a value longer than %d bytes", ErrAnnouncement, maxFilterLength)
			}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(a.Filters) == 0 {
		delete(f.ann, instance)
	} else if _, ok := f.ann[instance]; ok || len(f.ann) < MaxAnnouncers {
		f.ann[instance] = a
	} else {
		return fmt.Errorf("%w: more than %d fan-outs announce filters", ErrAnnouncement, MaxAnnouncers)
	}
	s := &filterSet{users: map[string]int64{}, movies: map[string]int64{}}
	for _, a := range f.ann {
		for _, x := range a.Filters {
			if x.User != "" {
				s.users[x.User] = max(s.users[x.User], a.Expires)
			}
			if x.Movie != "" {
				s.movies[x.Movie] = max(s.movies[x.Movie], a.Expires)
			}
		}
	}
	f.cur.Store(s)
	return nil
}

// Len is the number of distinct filter values announced (expired or not).
func (f *Filters) Len() int {
	s := f.cur.Load()
	return len(s.users) + len(s.movies)
}

// match says whether an announced, unexpired filter asks for e, and
// which value (for its rate limit).
func (s *filterSet) match(e *event.Event, nowMS int64) (string, bool) {
	if exp, ok := s.users[e.UserID]; ok && e.UserID != "" && exp > nowMS {
		return "u/" + e.UserID, true
	}
	if exp, ok := s.movies[e.MovieID]; ok && e.MovieID != "" && exp > nowMS {
		return "m/" + e.MovieID, true
	}
	return "", false
}

// Options configure a Sampler.
type Options struct {
	// SampleRate is the events a second of each stream this sampler
	// forwards (the tier's rate divided by the topic's partitions).
	// Default 10.
	SampleRate float64
	// MaxPerFilter is the most events a second forwarded for one
	// announced filter value by this sampler. Default 1000.
	MaxPerFilter int
	// MaxStreams bounds the streams with their own sample; events of
	// further streams are not sampled. Default 1000.
	MaxStreams int
}

// Sampler is one shard's choice of events to forward.
type Sampler struct {
	opts     Options
	filters  *Filters
	interval int64            // ns between sampled events of a stream
	next     map[string]int64 // stream → earliest Unix ns of its next sampled event
	sec      int64            // second of the per-filter counts
	perValue map[string]int   // forwarded this second per filter value
	Dropped  uint64           // matched a filter over MaxPerFilter
}

// NewSampler returns a sampler that also forwards what filters ask for
// (nil: sample only).
func NewSampler(opts Options, filters *Filters) *Sampler {
	if opts.SampleRate <= 0 {
		opts.SampleRate = 10
	}
	if opts.MaxPerFilter <= 0 {
		opts.MaxPerFilter = 1000
	}
	if opts.MaxStreams <= 0 {
		opts.MaxStreams = 1000
	}
	return &Sampler{opts: opts, filters: filters, interval: int64(float64(time.Second) / opts.SampleRate),
		next: map[string]int64{}, perValue: map[string]int{}}
}

// Why says why an event is forwarded.
type Why uint8

const (
	Skip   Why = iota // not forwarded
	Sample            // the stream's sample
	Asked             // an announced filter asked for it
)

// Take says whether to forward e, whose record is stamped at, and why.
// The sample spaces a stream's events at least 1/SampleRate apart by
// their record times, so it is spread over each second instead of taking
// its first events, and it does not thin out when records are read in
// bursts (a busy machine, a backlog). A filter's cap counts per second of
// record time too.
func (s *Sampler) Take(e *event.Event, at time.Time) Why {
	ns := at.UnixNano()
	if s.filters != nil {
		if v, ok := s.filters.cur.Load().match(e, ns/1e6); ok {
			if sec := ns / 1e9; sec != s.sec {
				s.sec = sec
				clear(s.perValue)
			}
			if s.perValue[v] >= s.opts.MaxPerFilter {
				s.Dropped++
			} else {
				s.perValue[v]++
				return Asked
			}
		}
	}
	next, ok := s.next[e.Stream]
	if !ok && len(s.next) >= s.opts.MaxStreams {
		return Skip
	}
	if ns < next {
		return Skip
	}
	s.next[e.Stream] = max(next, ns) + s.interval
	return Sample
}
