package hub

import (
	"fmt"
	"slices"

	"playpulse.dev/services/playback/event"
)

// Filter selects the live-tail events a client receives. Empty fields match
// everything; set fields must all match (exact, case-sensitive).
type Filter struct {
	Stream string   `json:"stream,omitempty"`
	Types  []string `json:"types,omitempty"`
	Movie  string   `json:"movie_id,omitempty"`
	User   string   `json:"user_id,omitempty"`
	Device string   `json:"device,omitempty"`
	// Source is one of event.Sources, or unknownSource for events
	// without one.
	Source string `json:"source,omitempty"`
}

// unknownSource selects the events without a source field, as the
// snapshot's by_source names them.
const unknownSource = "unknown"

// sourceOf numbers an event's source for matching: 1 + its index in
// event.Sources, 1 + len(event.Sources) when it has none; 0 is "any" in a
// filter. A fixed set (the decoder refuses other values), so a byte.
func sourceOf(s string) uint8 {
	if s == "" {
		return uint8(len(event.Sources) + 1)
	}
	return uint8(slices.Index(event.Sources, s) + 1)
}

// maxFilterValue bounds each filter string; ids are far shorter.
const maxFilterValue = 256

// compiled is a Filter ready for matching.
type compiled struct {
	all                         bool
	types                       uint32 // bit per event.Type; 0 = all
	source                      uint8  // sourceOf; 0 = any
	stream, movie, user, device uint64 // hashes; 0 = any
	// userID and movieID are the filter's own values, for Narrow.
	userID, movieID string
}

func hashOrAny(s string) uint64 {
	if s == "" {
		return 0
	}
	if h := hash(s); h != 0 {
		return h
	}
	return 1
}

func (f Filter) compile() (compiled, error) {
	c := compiled{stream: hashOrAny(f.Stream), movie: hashOrAny(f.Movie), user: hashOrAny(f.User), device: hashOrAny(f.Device), userID: f.User, movieID: f.Movie}
	for _, s := range []string{f.Stream, f.Movie, f.User, f.Device, f.Source} {
		if len(s) > maxFilterValue {
			return c, fmt.Errorf("filter values are limited to %d bytes", maxFilterValue)
		}
	}
	switch {
	case f.Source == unknownSource:
		c.source = sourceOf("")
	case f.Source != "":
		if !slices.Contains(event.Sources, f.Source) {
			return c, fmt.Errorf("unknown source %q (one of %v or %q)", f.Source, event.Sources, unknownSource)
		}
		c.source = sourceOf(f.Source)
	}
	for _, name := range f.Types {
		t := event.ParseType(name)
		if t == event.TypeUnknown {
			return c, fmt.Errorf("unknown event type %q", name)
		}
		c.types |= 1 << t
	}
	c.all = c.types == 0 && c.source == 0 && c.stream == 0 && c.movie == 0 && c.user == 0 && c.device == 0
	return c, nil
}

func (c *compiled) match(it *item) bool {
	if c.all {
		return true
	}
	return (c.types == 0 || c.types&(1<<it.typ) != 0) &&
		(c.source == 0 || c.source == it.source) &&
		(c.stream == 0 || c.stream == it.stream) &&
		(c.movie == 0 || c.movie == it.movie) &&
		(c.user == 0 || c.user == it.user) &&
		(c.device == 0 || c.device == it.device)
}
