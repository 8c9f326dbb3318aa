package forward

import (
	"fmt"
	"testing"
	"time"

	"playpulse.dev/services/playback/event"
)

// The sample forwards SampleRate events a second of each stream, spread
// over the second, whatever the rate they come at.
func TestSampleRate(t *testing.T) {
	for _, c := range []struct {
		name   string
		rate   float64 // events/s of each stream coming in
		sample float64
		want   int // forwarded per stream in 10 s
	}{
		{"above the sample rate", 5000, 10, 100},
		{"below it: everything", 5, 10, 50},
		{"fractional sample rate", 1000, 0.5, 5},
	} {
		t.Run(c.name, func(t *testing.T) {
			s := NewSampler(Options{SampleRate: c.sample}, nil)
			t0 := time.Unix(1_800_000_000, 0)
			got := map[string]int{}
			var firstHalf int
			step := time.Duration(float64(time.Second) / c.rate)
			for now := t0; now.Before(t0.Add(10 * time.Second)); now = now.Add(step) {
				for _, st := range []string{"a", "b"} {
					e := event.Event{Stream: st}
					if s.Take(&e, now) != Skip {
						got[st]++
						if st == "a" && now.Sub(t0)%time.Second < 500*time.Millisecond {
							firstHalf++
						}
					}
				}
			}
			for _, st := range []string{"a", "b"} {
				if d := got[st] - c.want; d < -1 || d > 1 {
					t.Errorf("stream %s: %d forwarded in 10 s, want %d", st, got[st], c.want)
				}
			}
			if c.rate > c.sample && c.sample >= 2 && (firstHalf < got["a"]/2-2 || firstHalf > got["a"]/2+2) {
				t.Errorf("%d of %d in the first half of their seconds: not spread", firstHalf, got["a"])
			}
		})
	}
}

// An announced user or title gets every event, up to MaxPerFilter a
// second, until the announcement expires or is withdrawn.
func TestFilters(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	f := NewFilters()
	s := NewSampler(Options{SampleRate: 1, MaxPerFilter: 50}, f)
	if err := f.Set("fanout-a", Announcement{Expires: t0.Add(30 * time.Second).UnixMilli(), Filters: []Filter{{User: "u1"}, {Movie: "m9"}}}.Encode()); err != nil {
		t.Fatal(err)
	}
	count := func(e event.Event, from time.Time, n int) (got int) {
		for i := range n {
			if s.Take(&e, from.Add(time.Duration(i)*time.Millisecond)) != Skip {
				got++
			}
		}
		return
	}
	if got := count(event.Event{Stream: "x", UserID: "u1"}, t0, 40); got != 40 {
		t.Errorf("user filter: %d of 40 forwarded", got)
	}
	if got := count(event.Event{Stream: "y", MovieID: "m9"}, t0.Add(time.Second), 80); got != 51 {
		t.Errorf("title filter over its cap: %d of 80 forwarded, want 50 and the stream's sample of 1", got)
	}
	if s.Dropped != 30 {
		t.Errorf("dropped %d, want 30", s.Dropped)
	}
	if got := count(event.Event{Stream: "z", UserID: "u2"}, t0.Add(2*time.Second), 40); got != 1 {
		t.Errorf("unfiltered user: %d of 40 forwarded, want the sample's 1", got)
	}
	if got := count(event.Event{Stream: "w", UserID: "u1"}, t0.Add(31*time.Second), 40); got != 1 {
		t.Errorf("expired filter: %d of 40 forwarded, want the sample's 1", got)
	}
	if err := f.Set("fanout-a", nil); err != nil || f.Len() != 0 {
		t.Errorf("withdrawn: %v, %d values left", err, f.Len())
	}
}

func TestAnnouncementLimits(t *testing.T) {
	f := NewFilters()
	many := make([]Filter, MaxFilters+1)
	for i := range many {
		many[i] = Filter{User: fmt.Sprint(i)}
	}
	for name, v := range map[string][]byte{
		"not JSON":     []byte("{"),
		"too many":     Announcement{Expires: 1, Filters: many}.Encode(),
		"value length": Announcement{Expires: 1, Filters: []Filter{{User: string(make([]byte, 300))}}}.Encode(),
	} {
		if err := f.Set("x", v); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if f.Len() != 0 {
		t.Errorf("%d values kept from bad announcements", f.Len())
	}
}
