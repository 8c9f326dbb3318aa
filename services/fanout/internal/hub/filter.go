package hub

import (
	"fmt"

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
}

// maxFilterValue bounds each filter string; ids are far shorter.
const maxFilterValue = 256

// compiled is a Filter ready for matching.
type compiled struct {
	all                         bool
	types                       uint32 // bit per event.Type; 0 = all
	stream, movie, user, device string
}

func (f Filter) compile() (compiled, error) {
	c := compiled{stream: f.Stream, movie: f.Movie, user: f.User, device: f.Device}
	for _, s := range []string{f.Stream, f.Movie, f.User, f.Device} {
		if len(s) > maxFilterValue {
			return c, fmt.Errorf("filter values are limited to %d bytes", maxFilterValue)
		}
	}
	for _, name := range f.Types {
		t := event.ParseType(name)
		if t == event.TypeUnknown {
			return c, fmt.Errorf("unknown event type %q", name)
		}
		c.types |= 1 << t
	}
	c.all = c.types == 0 && c.stream == "" && c.movie == "" && c.user == "" && c.device == ""
	return c, nil
}

func (c *compiled) match(it *item) bool {
	if c.all {
		return true
	}
	return (c.types == 0 || c.types&(1<<it.typ) != 0) &&
		(c.stream == "" || c.stream == it.stream) &&
		(c.movie == "" || c.movie == it.movie) &&
		(c.user == "" || c.user == it.user) &&
		(c.device == "" || c.device == it.device)
}
