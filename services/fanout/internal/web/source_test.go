package web_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"playpulse.dev/services/fanout/internal/hub"
	"playpulse.dev/services/fanout/internal/web"
	"playpulse.dev/services/playback/event"
)

// TestTailFilterBySource: the tail filter's source picks the events of one
// source ("unknown": those without one), alone or with the other parts,
// live and in a resume's replay; filter_ok states it; a source outside
// the contract is refused.
func TestTailFilterBySource(t *testing.T) {
	sources := []string{event.SourceSim, event.SourceCMCD, event.SourceBeacon, "", event.SourceCMCD}
	devices := []string{"tv", "tv", "mobile", "tv", "mobile"}
	for _, tc := range []struct {
		name   string
		filter map[string]any
		want   []int // seqs: index + 1 in sources
	}{
		{"cmcd", map[string]any{"source": "cmcd"}, []int{2, 5}},
		{"sim", map[string]any{"source": "sim"}, []int{1}},
		{"beacon", map[string]any{"source": "beacon"}, []int{3}},
		{"unknown is no source field", map[string]any{"source": "unknown"}, []int{4}},
		{"with a device", map[string]any{"source": "cmcd", "device": "mobile"}, []int{5}},
		{"none", map[string]any{}, []int{1, 2, 3, 4, 5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, web.Options{}, hub.Options{})
			publish := func(off0 int64) {
				for i, src := range sources {
					r := rec(0, off0+int64(i), time.Now(), event.Heartbeat)
					r.Event.Seq, r.Event.Source, r.Event.Device = uint64(i+1), src, devices[i]
					f.hub.Publish(r)
				}
			}
			f.hub.PartitionStarted("t", 0, 0)
			publish(0) // before connecting: reached by the resume
			c, _, err := f.dial(t, "")
			if err != nil {
				t.Fatal(err)
			}
			next(t, c, "hello")
			if err := c.WriteJSON(map[string]any{"type": "resume", "filter": tc.filter, "positions": []map[string]any{{"topic": "t", "partition": 0, "offset": -1}}}); err != nil {
				t.Fatal(err)
			}
			// filter_ok, the replay and resume_ok; filter_ok may come anywhere.
			var ok *anyMsg
			var replay []int
			for done := false; !done || ok == nil; {
				m := readAny(t, c)
				switch m.Type {
				case "filter_ok":
					ok = &m
				case "tail":
					replay = append(replay, seqsOf(t, m)...)
				case "resume_ok":
					done = true
				}
			}
			if ok.Filter["source"] != tc.filter["source"] {
				t.Fatalf("filter_ok %v, want the source %v", ok, tc.filter["source"])
			}
			publish(int64(len(sources))) // live, in one frame or more
			var live []int
			for len(live) < len(tc.want) {
				if m := readAny(t, c); m.Type == "tail" {
					live = append(live, seqsOf(t, m)...)
				}
			}
			if !slices.Equal(replay, tc.want) || !slices.Equal(live, tc.want) {
				t.Fatalf("filter %v: replayed %v, live %v; want %v", tc.filter, replay, live, tc.want)
			}
		})
	}

	f := newFixture(t, web.Options{}, hub.Options{})
	c, _, err := f.dial(t, "")
	if err != nil {
		t.Fatal(err)
	}
	next(t, c, "hello")
	for _, bad := range []string{"browser", "Sim", strings.Repeat("s", 300)} {
		if err := c.WriteJSON(map[string]any{"type": "filter", "filter": map[string]any{"source": bad}}); err != nil {
			t.Fatal(err)
		}
		if m := next(t, c, "error"); m.Code != "bad_message" {
			t.Fatalf("source %.20q: %+v, want bad_message", bad, m)
		}
	}
}

// seqsOf is the seq of each event of a tail frame.
func seqsOf(t *testing.T, tail anyMsg) []int {
	t.Helper()
	var out []int
	for _, raw := range tail.Events {
		var it struct{ Event struct{ Seq int } }
		if err := json.Unmarshal(raw, &it); err != nil {
			t.Fatal(err)
		}
		out = append(out, it.Event.Seq)
	}
	return out
}

// TestAPISourceParameter: /api/snapshot and /api/streams pass ?source= to
// the server's scopes and answer 400 with the reason when it refuses one.
func TestAPISourceParameter(t *testing.T) {
	refuse := errors.New("source must be one of sim, cmcd, beacon, unknown")
	f := newFixture(t, web.Options{
		Streams: func(source string) (any, error) {
			if source == "bogus" {
				return nil, refuse
			}
			return []string{"streams of " + source}, nil
		},
		SourceSnapshot: func(source string, full bool) ([]byte, error) {
			if source == "bogus" {
				return nil, refuse
			}
			b, _ := json.Marshal(map[string]any{"type": "snapshot", "scope": map[string]any{"source": source}, "full": full})
			return b, nil
		},
	}, hub.Options{})
	if err := f.hub.SetSnapshot([]byte(`{"type":"snapshot","events_total":7}`)); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, want string
		status     int
	}{
		{"/api/snapshot", `{"type":"snapshot","events_total":7}`, 200},
		{"/api/snapshot?source=cmcd", `{"full":false,"scope":{"source":"cmcd"},"type":"snapshot"}`, 200},
		{"/api/snapshot?source=unknown&full=1", `{"full":true,"scope":{"source":"unknown"},"type":"snapshot"}`, 200},
		{"/api/snapshot?source=bogus", refuse.Error() + "\n", 400},
		{"/api/streams", `{"streams":["streams of "]}`, 200},
		{"/api/streams?source=beacon", `{"streams":["streams of beacon"]}`, 200},
		{"/api/streams?source=bogus", refuse.Error() + "\n", 400},
	} {
		resp, err := http.Get(f.srv.URL + tc.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.status || string(body) != tc.want {
			t.Errorf("%s: %d %s, want %d %s", tc.path, resp.StatusCode, body, tc.status, tc.want)
		}
	}
}
