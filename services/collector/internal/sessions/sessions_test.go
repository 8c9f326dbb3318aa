package sessions

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"playpulse.dev/services/collector/internal/cmcd"
	"playpulse.dev/services/collector/internal/mapping"
	"playpulse.dev/services/playback/event"
)

const uidKey = "com.example-uid"

// rep is a report of session sid from the keys given; received = ts.
func rep(t testing.TB, sid, keys string) record {
	t.Helper()
	r, err := cmcd.Parse([]byte(`v=2,sid="`+sid+`",cid="m1",`+keys), cmcd.Options{UserIDKey: uidKey})
	if err != nil {
		t.Fatalf("%s: %v", keys, err)
	}
	return record{mapping.Input{Report: r, Ctx: mapping.Context{Stream: "s", Device: "tv", Country: "DE"}}, r.TS}
}

// script builds a session's reports: one per line, sn numbered in order.
func script(t testing.TB, sid string, lines ...string) []record {
	var out []record
	for i, l := range lines {
		out = append(out, rep(t, sid, fmt.Sprintf("sn=%d,%s", i, l)))
	}
	return out
}

// TestMapping: the transitions CMCD has and the contract has not, and the
// keys each field comes from, one session each.
func TestMapping(t *testing.T) {
	tests := []struct {
		name  string
		lines []string
		want  string
	}{
		{"startup from s to the first p", []string{"e=ps,sta=d,ts=1000", "e=ps,sta=s,ts=1100", "e=bc,br=(3000),ts=1200", "e=ps,sta=p,ts=1600"},
			"start play(500ms@3000) stop(quit)"},
		{"msd before the first p wins", []string{"e=ps,sta=s,ts=1000", "e=t,msd=450,ts=1400", "e=ps,sta=p,br=560,ts=1600"},
			"start play(450ms@560) stop(quit)"},
		{"bsd is the stall duration when sent", []string{"e=ps,sta=s,ts=1000", "e=ps,sta=p,ts=1100", "e=ps,sta=r,ts=2000", "e=ps,sta=p,bsd=1234,ts=4000"},
			"start play(100ms@0) buffer_start buffer_end(1234ms) stop(quit)"},
		{"seek during a stall ends the stall first; buffering after a seek is not rebuffering", []string{"e=ps,sta=s,ts=1000", "e=ps,sta=p,ts=1100", "e=ps,sta=r,ts=2000", "e=ps,sta=k,pt=50000,ts=2500", "e=ps,sta=r,ts=2600", "e=ps,sta=p,ts=3000"},
			"start play(100ms@0) buffer_start buffer_end(500ms) seek stop(quit)"},
		{"pause during a stall", []string{"e=ps,sta=s,ts=1000", "e=ps,sta=p,ts=1100", "e=ps,sta=r,ts=2000", "e=ps,sta=a,ts=2300", "e=ps,sta=r,ts=2400", "e=ps,sta=p,ts=5000"},
			"start play(100ms@0) buffer_start buffer_end(300ms) pause play stop(quit)"},
		{"bitrate while paused waits for the resume", []string{"e=ps,sta=s,ts=1000", "e=ps,sta=p,br=3000,ts=1100", "e=ps,sta=a,ts=2000", "e=bc,br=1750,ts=2100", "e=t,ts=2200", "e=ps,sta=p,ts=3000"},
			"start play(100ms@3000) pause heartbeat play bitrate_change(3000>1750) stop(quit)"},
		{"fatal while paused: a resume at the same instant", []string{"e=ps,sta=s,ts=1000", "e=ps,sta=p,ts=1100", "e=ps,sta=a,ts=2000", `e=e,sta=f,ec=("E1"),ts=2100`},
			"start play(100ms@0) pause play error(E1,fatal=true) stop(error)"},
		{"ended while paused is a quit", []string{"e=ps,sta=s,ts=1000", "e=ps,sta=p,ts=1100", "e=ps,sta=a,ts=2000", "e=ps,sta=e,ts=2100"},
			"start play(100ms@0) pause stop(quit)"},
		{"ended while playing", []string{"e=ps,sta=s,ts=1000", "e=ps,sta=p,ts=1100", "e=ps,sta=e,ts=9100"},
			"start play(100ms@0) stop(ended)"},
		{"non-fatal errors; none while paused", []string{"e=ps,sta=s,ts=1000", `e=e,ec=("startup-glitch"),ts=1050`, "e=ps,sta=p,ts=1100", `e=e,ec=("E2" "E3"),ts=1200`, "e=ps,sta=a,ts=2000", "e=e,ts=2100"},
			"start error(startup-glitch,fatal=false) play(100ms@0) error(E2,fatal=false) pause stop(quit)"},
		{"fatal before the first frame: a start failure", []string{"e=ps,sta=s,ts=1000", "e=ps,sta=f,ts=1500", `e=e,sta=f,ec=("MEDIA_ERR_DECODE"),ts=1502`, "e=ps,sta=s,ts=1600"},
			"start error(MEDIA_ERR_DECODE,fatal=true) stop(error)"},
		{"fatal on a ps report and nothing after: the timeout emits it", []string{"e=ps,sta=s,ts=1000", "e=ps,sta=p,ts=1100", `e=ps,sta=f,ec=("late"),ts=5000`},
			"start play(100ms@0) error(late,fatal=true) stop(error)"},
		{"quit before the first frame", []string{"e=ps,sta=d,ts=1000", "e=ps,sta=s,ts=1100", "e=ps,sta=q,ts=4000"},
			"start stop(exit_before_start)"},
		{"quit", []string{"e=ps,sta=s,ts=1000", "e=ps,sta=p,ts=1100", "e=ps,sta=q,ts=4000"},
			"start play(100ms@0) stop(quit)"},
		{"silent before the first frame", []string{"e=ps,sta=d,ts=1000", "e=ps,sta=s,ts=1100"},
			"start stop(exit_before_start)"},
		{"a state seen on another report type is a change when the ps report was lost", []string{"e=ps,sta=s,ts=1000", "e=t,sta=p,ts=1100", "e=t,sta=p,ts=2100", "e=t,sta=r,ts=3100", "e=bc,br=300,sta=r,ts=3200", "e=t,sta=p,ts=4100"},
			"start play(100ms@0) heartbeat heartbeat buffer_start heartbeat bitrate_change(0>300) buffer_end(1000ms) heartbeat stop(quit)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			evs, _ := run(t, script(t, "s1", tt.lines...), Options{})
			if got := describe(evs); got != tt.want {
				t.Errorf("\n got: %s\nwant: %s", got, tt.want)
			}
		})
	}
}

// TestFieldsFromKeys: positions from pt, the last known without it;
// user id from the custom key; cdn; the edge's context; ids and seq from
// (sid, sn, index).
func TestFieldsFromKeys(t *testing.T) {
	evs, _ := run(t, script(t, "s1",
		`e=ps,sta=s,ts=1000,com.example-uid="u-42",cdn="cdn-a"`,
		"e=ps,sta=p,pt=10000,br=(3000 128),ts=1100",
		"e=ps,sta=k,pt=70500,ts=2000",
		"e=ps,sta=p,ts=2400",
	), Options{})
	want := []struct {
		typ      event.Type
		seq      uint64
		pos      float64
		from     float64
		tsMillis int64
	}{
		{event.Start, 1, 0, 0, 1000},
		{event.Play, 17, 10, 0, 1100},
		{event.Seek, 33, 70.5, 10, 2000},
		{event.Stop, 3*16 + 15, 70.5, 0, 2400}, // the timeout's slot of the last report
	}
	if len(evs) != len(want) {
		t.Fatalf("events: %s", describe(evs))
	}
	for i, w := range want {
		e := evs[i]
		if e.Type != w.typ || e.Seq != w.seq || e.Position != w.pos || e.From != w.from || e.TS.UnixMilli() != w.tsMillis ||
			e.EventID != fmt.Sprintf("s1:%d", w.seq) || e.UserID != "u-42" || e.CDN != "cdn-a" || e.MovieID != "m1" ||
			e.Country != "DE" || e.Device != "tv" || e.Stream != "s" || e.Source != event.SourceCMCD {
			t.Errorf("event %d: %s", i, e.AppendJSON(nil))
		}
	}
}

// TestReorderWindow: a report waits for a missing earlier sn for the
// window, measured in partition time; then the gap is skipped and a late
// report is a duplicate.
func TestReorderWindow(t *testing.T) {
	tb := New(Options{ReorderWindow: time.Second})
	recs := script(t, "s1", "e=ps,sta=s,ts=1000", "e=ps,sta=p,ts=1100", "e=t,ts=1200", "e=t,ts=1300")
	evs := tb.Add(recs[0].in, 10_000, nil)
	evs = tb.Add(recs[2].in, 10_000, evs) // sn 2 before sn 1
	evs = tb.Add(recs[3].in, 10_500, evs)
	if got := describe(evs); got != "start" {
		t.Fatalf("before the window: %s", got)
	}
	evs = tb.Tick(10_999, evs)
	if got := describe(evs); got != "start" {
		t.Fatalf("just before the window: %s", got)
	}
	evs = tb.Tick(11_000, evs)
	// sn 1 (the first p) never came: the heartbeats cannot be mapped
	// before the first frame; the late p is a duplicate.
	evs = tb.Add(recs[1].in, 11_100, evs)
	if got, st := describe(evs), tb.Stats(); got != "start" || st.Gaps != 1 || st.Duplicates != 1 {
		t.Fatalf("after the window: %s, %+v", got, st)
	}
	if !tb.Waiting() || tb.Live() != 1 {
		t.Fatal("the session should still be live")
	}
}

// TestInactivityAndStoppedTTL: a silent session is stopped at the
// inactivity timeout; a stopped session's later reports are ignored
// for StoppedTTL, after which its id is forgotten.
func TestInactivityAndStoppedTTL(t *testing.T) {
	tb := New(Options{Inactivity: 45 * time.Second, StoppedTTL: 2 * time.Minute})
	recs := script(t, "s1", "e=ps,sta=s,ts=1000", "e=ps,sta=p,ts=1100", "e=t,ts=31100", "e=t,ts=200000")
	var evs []event.Event
	for _, r := range recs[:3] {
		evs = tb.Add(r.in, r.received, evs)
	}
	evs = tb.Tick(31_100+44_999, evs)
	if got := describe(evs); got != "start play(100ms@0) heartbeat" {
		t.Fatalf("before the timeout: %s", got)
	}
	evs = tb.Tick(31_100+45_000, evs)
	if got := describe(evs); got != "start play(100ms@0) heartbeat stop(quit)" || tb.Stats().TimedOut != 1 || tb.Waiting() {
		t.Fatalf("at the timeout: %s, %+v", got, tb.Stats())
	}
	if evs[3].TS.UnixMilli() != 31_100 {
		t.Fatalf("the stop takes the last report's time, not the timeout's: %s", evs[3].TS)
	}
	n := len(evs)
	evs = tb.Add(recs[3].in, 31_100+46_000, evs) // a report after the stop
	if len(evs) != n || tb.Stats().AfterStop != 1 || tb.Len() != 1 {
		t.Fatalf("after the stop: %s, %+v", describe(evs[n:]), tb.Stats())
	}
	tb.Tick(31_100+46_000+120_000, nil)
	if tb.Len() != 0 {
		t.Fatalf("stopped session kept past StoppedTTL: %d", tb.Len())
	}
}

// TestBounded: the table never holds more than MaxSessions; the live
// session idle longest is stopped (its stop emitted) to make room, and a
// session cannot hold back more than MaxPending reports.
func TestBounded(t *testing.T) {
	tb := New(Options{MaxSessions: 10, MaxPending: 4})
	var evs []event.Event
	for i := range 25 {
		r := rep(t, fmt.Sprintf("s%02d", i), fmt.Sprintf("sn=0,e=ps,sta=s,ts=%d", 1000+i))
		evs = tb.Add(r.in, r.received, evs)
		if tb.Len() > 10 {
			t.Fatalf("%d sessions held", tb.Len())
		}
	}
	if st := tb.Stats(); st.Evicted != 15 || strings.Count(describe(evs), "stop(exit_before_start)") != 15 || evs[10].SessionID != "s00" {
		t.Fatalf("stats %+v, events %s", st, describe(evs))
	}
	// A session whose sn 1 never comes: at most MaxPending wait.
	tb = New(Options{MaxPending: 4})
	evs = tb.Add(rep(t, "p", "sn=0,e=ps,sta=s,ts=1000").in, 1000, nil)
	evs = tb.Add(rep(t, "p", "sn=2,e=ps,sta=p,ts=1100").in, 1000, evs)
	for sn := 3; sn <= 6; sn++ {
		evs = tb.Add(rep(t, "p", fmt.Sprintf("sn=%d,e=t,ts=%d", sn, 1000+sn*100)).in, 1000, evs)
	}
	if got := describe(evs); got != "start play(100ms@0) heartbeat heartbeat heartbeat heartbeat" || tb.Stats().Gaps != 1 {
		t.Fatalf("past MaxPending: %s, %+v", got, tb.Stats())
	}
}

// TestReplayFromLookback is the property the takeover rests on: a new
// owner that replays the records from a look-back before the committed
// offset (emitting nothing), then continues, emits exactly what the
// previous owner would have emitted after that offset, byte for byte:
// deadlines depend only on the records.
func TestReplayFromLookback(t *testing.T) {
	// Three sessions interleaved on one partition, with ticks, a
	// duplicate, a reordered pair and a timeout.
	var all []record
	a := load(t, "hlsjs-stall")
	b := load(t, "shakadbg-throttle")
	c := load(t, "hlsjs-close")
	for i := 0; i < max(len(a), len(b), len(c)); i++ {
		for _, s := range [][]record{a, b, c} {
			if i < len(s) {
				all = append(all, s[i])
			}
		}
	}
	// Received times: the partition's clock, increasing.
	for i := range all {
		all[i].received = 1_000_000 + int64(i)*700
	}
	all = append(all[:10:10], append([]record{all[9]}, all[10:]...)...) // a duplicate
	type item struct {
		rec  *record
		tick int64
	}
	var log []item
	for i := range all {
		log = append(log, item{rec: &all[i]})
		if i%7 == 0 {
			log = append(log, item{tick: all[i].received + 300})
		}
	}
	last := all[len(all)-1].received
	for dt := int64(500); dt <= 60_000; dt += 500 {
		log = append(log, item{tick: last + dt})
	}
	apply := func(tb *Table, it item, dst []event.Event) []event.Event {
		if it.rec != nil {
			return tb.Add(it.rec.in, it.rec.received, dst)
		}
		return tb.Tick(it.tick, dst)
	}
	// The old owner: every record from the start; remember what it had
	// emitted when it committed at offset k.
	var full []event.Event
	old := New(Options{})
	emittedBefore := make([]int, len(log)+1)
	for i, it := range log {
		emittedBefore[i] = len(full)
		full = apply(old, it, full)
	}
	emittedBefore[len(log)] = len(full)
	checkLegal(t, full)
	// A new owner for every commit point k, replaying from the first record
	// no more than the look-back (here: the inactivity timeout plus the
	// reorder window) of partition time before it.
	lookback := (45*time.Second + time.Second).Milliseconds()
	for k := 1; k < len(log); k += 3 {
		var ptimeK int64
		for _, it := range log[:k] {
			if it.rec != nil {
				ptimeK = max(ptimeK, it.rec.received)
			}
			ptimeK = max(ptimeK, it.tick)
		}
		from := 0
		for from < k {
			it := log[from]
			at := it.tick
			if it.rec != nil {
				at = it.rec.received
			}
			if at >= ptimeK-lookback {
				break
			}
			from++
		}
		nw := New(Options{})
		for _, it := range log[from:k] {
			apply(nw, it, nil) // replay: emits nothing
		}
		var after []event.Event
		for _, it := range log[k:] {
			after = apply(nw, it, after)
		}
		want := full[emittedBefore[k]:]
		if len(after) != len(want) {
			t.Fatalf("commit at %d (replay from %d): %d events after the takeover, want %d\n got: %s\nwant: %s", k, from, len(after), len(want), describe(after), describe(want))
		}
		for i := range after {
			if g, w := after[i].AppendJSON(nil), want[i].AppendJSON(nil); string(g) != string(w) {
				t.Fatalf("commit at %d: event %d\n got: %s\nwant: %s", k, i, g, w)
			}
		}
	}
}
