package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"playpulse.dev/services/playback/event"
	"playpulse.dev/tests/harness"
)

// sourcedView is one viewing session of the source tests.
type sourcedView struct {
	id, stream, source string
	stall              bool
}

// sourcedEvent is an event of a view at ts.
func sourcedEvent(v sourcedView, seq uint64, typ event.Type, ts time.Time, bitrate int) []byte {
	e := event.Event{V: 1, EventID: fmt.Sprint(v.id, "-", seq), SessionID: v.id, Seq: seq, Stream: v.stream, UserID: "u-" + v.id,
		MovieID: "m0001", Type: typ, Device: "desktop", TS: ts, Source: v.source, Bitrate: bitrate}
	if typ == event.Play && seq == 2 {
		e.FirstFrame, e.StartupMS = true, 800
	}
	if typ == event.BufferEnd {
		e.StallMS = 2000
	}
	return e.AppendJSON(nil)
}

// playViews writes each view's first 10 s, ending at t: start, first frame
// at 1750 kbps, and 10 s of play, or, with stall, 4 s of play, a 2 s stall
// and 4 s more (20% rebuffering). The views stay viewers.
func playViews(t *testing.T, p sarama.SyncProducer, topic string, t0 time.Time, views []sourcedView) {
	t.Helper()
	for i, v := range views {
		part := int32(i % 3)
		at := func(seq uint64, typ event.Type, d time.Duration, bitrate int) {
			ts := t0.Add(d)
			send(t, p, topic, part, ts, sourcedEvent(v, seq, typ, ts, bitrate))
		}
		at(1, event.Start, 0, 0)
		at(2, event.Play, 0, 1750)
		if v.stall {
			at(3, event.BufferStart, 4*time.Second, 1750)
			at(4, event.BufferEnd, 6*time.Second, 1750)
		}
		at(5, event.Heartbeat, 10*time.Second, 1750)
	}
}

// TestFanoutSources: events of several sources through real Kafka to the
// real fan-out: the snapshot breaks every figure down by source, the API
// scopes the snapshot and the stream list to one source, and a WebSocket
// client's tail filter on a source gets that source's events only.
func TestFanoutSources(t *testing.T) {
	topic := newTopic(t, 3)
	f := startFanout(t, broker.Addr(), topic, nil)
	p := syncProducer(t, broker.Addr())
	views := []sourcedView{
		{"s1", "e2e", event.SourceSim, false}, {"s2", "e2e", event.SourceSim, false}, {"s3", "e2e", event.SourceSim, false},
		{"c1", "e2e", event.SourceCMCD, true}, {"c2", "live2", event.SourceCMCD, true},
		{"b1", "e2e", event.SourceBeacon, false},
		{"u1", "e2e", "", false},
	}
	const events = 3*3 + 2*5 + 3 + 3
	playViews(t, p, topic, time.Now().Add(-12*time.Second), views)

	type qoe struct {
		ConcurrentViewers int64    `json:"concurrent_viewers"`
		Attempts          uint64   `json:"attempts"`
		RebufferPct       *float64 `json:"rebuffer_pct"`
		AvgBitrateKbps    *float64 `json:"avg_bitrate_kbps"`
	}
	type snapshot struct {
		EventsTotal uint64                   `json:"events_total"`
		Scope       *struct{ Source string } `json:"scope"`
		Sources     []string                 `json:"sources"`
		Streams     []string                 `json:"streams"`
		Overall     qoe                      `json:"overall"`
		BySource    map[string]qoe           `json:"by_source"`
		ByDevice    map[string]qoe           `json:"by_device"`
		Series      struct {
			Length  int                          `json:"length"`
			Overall struct{ Attempts []float64 } `json:"overall"`
			Sources map[string]json.RawMessage   `json:"sources"`
		} `json:"series"`
	}
	var all snapshot
	harness.Eventually(t, 30*time.Second, "the fan-out has every event", func() error {
		all = snapshot{}
		if err := getJSON(f.url("/api/snapshot"), &all); err != nil {
			return err
		}
		if all.EventsTotal != events {
			return fmt.Errorf("events_total %d, want %d", all.EventsTotal, events)
		}
		return nil
	})
	if want := []string{"sim", "cmcd", "beacon", "unknown"}; !slices.Equal(all.Sources, want) {
		t.Fatalf("sources %v, want %v", all.Sources, want)
	}
	for src, w := range map[string]struct {
		ccv      int64
		rebuffer float64
	}{"sim": {3, 0}, "cmcd": {2, 20}, "beacon": {1, 0}, "unknown": {1, 0}} {
		q := all.BySource[src]
		if q.ConcurrentViewers != w.ccv || q.Attempts != uint64(w.ccv) || q.RebufferPct == nil || *q.RebufferPct != w.rebuffer {
			t.Errorf("by_source[%s]: %d viewers, %d attempts, rebuffering %v; want %d, %d, %v", src, q.ConcurrentViewers, q.Attempts, q.RebufferPct, w.ccv, w.ccv, w.rebuffer)
		}
		if s := all.Series.Sources[src]; len(s) == 0 || s[0] != '{' {
			t.Errorf("series.sources[%s] = %.40s, want the source's own series", src, s)
		}
	}

	// The snapshot of one source.
	var cm snapshot
	if err := getJSON(f.url("/api/snapshot?source=cmcd&full=1"), &cm); err != nil {
		t.Fatal(err)
	}
	attempts := 0.0
	for _, v := range cm.Series.Overall.Attempts {
		attempts += v
	}
	if cm.Scope == nil || cm.Scope.Source != "cmcd" || cm.EventsTotal != 10 || cm.Overall.ConcurrentViewers != 2 || *cm.Overall.RebufferPct != 20 ||
		*cm.Overall.AvgBitrateKbps != 1750 || !slices.Equal(cm.Streams, []string{"e2e", "live2"}) || cm.ByDevice != nil || cm.Series.Length != 900 || attempts != 2 {
		t.Fatalf("/api/snapshot?source=cmcd&full=1: scope %v, events %d, overall %+v, streams %v, by_device %v, %d points holding %v attempts",
			cm.Scope, cm.EventsTotal, cm.Overall, cm.Streams, cm.ByDevice, cm.Series.Length, attempts)
	}
	for _, path := range []string{"/api/snapshot?source=browser", "/api/streams?source=SIM"} {
		resp, err := http.Get(f.url(path))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("%s: %s %q, want 400", path, resp.Status, body)
		}
	}

	// The streams of one source.
	type streamInfo struct {
		Name              string `json:"name"`
		EventsTotal       uint64 `json:"events_total"`
		ConcurrentViewers int64  `json:"concurrent_viewers"`
	}
	for src, want := range map[string][]streamInfo{
		"cmcd": {{"e2e", 5, 1}, {"live2", 5, 1}},
		"sim":  {{"e2e", 9, 3}},
		"":     {{"e2e", 20, 6}, {"live2", 5, 1}},
	} {
		var got struct{ Streams []streamInfo }
		if err := getJSON(f.url("/api/streams?source="+src), &got); err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got.Streams, want) {
			t.Errorf("/api/streams?source=%s: %+v, want %+v", src, got.Streams, want)
		}
	}

	// A WebSocket client's tail, filtered on a source.
	c := dial(t, f.addr, nil)
	if m := read(t, c, 10*time.Second); m.Type != "hello" {
		t.Fatalf("first message %q", m.Type)
	}
	if err := c.WriteJSON(map[string]any{"type": "filter", "filter": map[string]any{"source": "cmcd"}}); err != nil {
		t.Fatal(err)
	}
	for m := read(t, c, 10*time.Second); m.Type != "filter_ok"; m = read(t, c, 10*time.Second) {
	}
	now := time.Now()
	for i, v := range views {
		send(t, p, topic, int32(i%3), now, sourcedEvent(v, 6, event.Heartbeat, now, 1750))
	}
	var got []string
	for len(got) < 2 {
		m := read(t, c, 10*time.Second)
		for _, it := range m.Events {
			var e struct {
				SessionID string `json:"session_id"`
				Source    string `json:"source"`
			}
			if err := json.Unmarshal(it.Event, &e); err != nil {
				t.Fatal(err)
			}
			got = append(got, e.SessionID+"/"+e.Source)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, []string{"c1/cmcd", "c2/cmcd"}) {
		t.Fatalf("tail filtered on cmcd: %v", got)
	}
}
