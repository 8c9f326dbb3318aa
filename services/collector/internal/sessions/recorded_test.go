package sessions

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"playpulse.dev/services/collector/internal/cmcd"
	"playpulse.dev/services/collector/internal/mapping"
	"playpulse.dev/services/playback/event"
	"playpulse.dev/services/playback/player"
)

// The files in testdata/recorded are the bodies hls.js 1.7.4 and Shaka
// Player 5.2.12 POSTed from headless Chromium (tests/playertest), one report
// per line in the order they arrived: hlsjs-* from hls.js; shakadbg-* from
// Shaka's debug build; shaka-* from its release build, which never sends sta
// (an upstream bug: Closure renames the key).

// record is one line of a recording as the sessionizer sees it: the report
// and the time the edge received it (here: its ts, so arrival order is the
// file's order and time is the player's).
type record struct {
	in       mapping.Input
	received int64
}

func load(t testing.TB, name string) []record {
	t.Helper()
	f, err := os.Open("testdata/recorded/" + name + ".cmcd")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []record
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		r, err := cmcd.Parse(sc.Bytes(), cmcd.Options{})
		if err != nil {
			t.Fatalf("%s: %v", sc.Text(), err)
		}
		out = append(out, record{mapping.Input{Report: r, Ctx: mapping.Context{Stream: "players", Device: "desktop"}}, r.TS})
	}
	return out
}

// run feeds the records, then lets the partition time run on by a minute
// (as tick records would), and returns the events and the table.
func run(t testing.TB, recs []record, opts Options) ([]event.Event, *Table) {
	t.Helper()
	tb := New(opts)
	var evs []event.Event
	var last int64
	for _, r := range recs {
		evs = tb.Add(r.in, r.received, evs)
		last = max(last, r.received)
	}
	evs = tb.Tick(last+time.Minute.Milliseconds(), evs)
	checkLegal(t, evs)
	return evs, tb
}

// checkLegal holds every session's events to the contract: legal player
// transitions, seq increasing, ts never going back, and each event
// valid on the wire.
func checkLegal(t testing.TB, evs []event.Event) {
	t.Helper()
	state := map[string]player.State{}
	seq := map[string]uint64{}
	ts := map[string]time.Time{}
	for i := range evs {
		e := &evs[i]
		next, err := player.Step(state[e.SessionID], e)
		if err != nil {
			t.Fatalf("event %d (%s seq %d): %v", i, e.Type, e.Seq, err)
		}
		if e.Seq <= seq[e.SessionID] || e.TS.Before(ts[e.SessionID]) {
			t.Fatalf("event %d (%s): seq %d after %d, ts %s after %s", i, e.Type, e.Seq, seq[e.SessionID], e.TS, ts[e.SessionID])
		}
		var back event.Event
		if err := event.Decode(e.AppendJSON(nil), &back); err != nil {
			t.Fatalf("event %d does not decode: %v", i, err)
		}
		state[e.SessionID], seq[e.SessionID], ts[e.SessionID] = next, e.Seq, e.TS
	}
}

// describe renders events compactly: type, then what matters for it.
func describe(evs []event.Event) string {
	var b strings.Builder
	for _, e := range evs {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(e.Type.String())
		switch {
		case e.Type == event.Play && e.FirstFrame:
			fmt.Fprintf(&b, "(%dms@%d)", e.StartupMS, e.Bitrate)
		case e.Type == event.BufferEnd:
			fmt.Fprintf(&b, "(%dms)", e.StallMS)
		case e.Type == event.BitrateChange:
			fmt.Fprintf(&b, "(%d>%d)", e.PrevBitrate, e.Bitrate)
		case e.Type == event.Error:
			fmt.Fprintf(&b, "(%s,fatal=%v)", e.ErrorCode, e.Fatal)
		case e.Type == event.Stop:
			fmt.Fprintf(&b, "(%s)", e.StopReason)
		}
	}
	return b.String()
}

func TestRecordedSessions(t *testing.T) {
	tests := []struct {
		file string
		want string
		// counters that must hold, beyond the events
		afterStop uint64
	}{
		// d, then s when told to play; startup = ts(first p) - ts(s):
		// 494 ms (the player measured 507 ms). Closing the tab sends
		// nothing: the inactivity timeout stops the session.
		{file: "hlsjs-close", want: "start play(494ms@2820) heartbeat stop(quit)"},
		// sn=1 arrived before sn=0: reordered, nothing lost or doubled.
		{file: "hlsjs-default", want: "start play(415ms@2820) heartbeat heartbeat stop(quit)"},
		// Bitrate remembered before the first frame: the first frame
		// carries the last one (1390 then 2820).
		{file: "hlsjs", want: "start play(781ms@2820) heartbeat heartbeat heartbeat stop(quit)"},
		// A 3 s hold of the segment server: r ... p, 3077 ms by ts (no bsd).
		{file: "hlsjs-stall", want: "start play(494ms@2820) heartbeat heartbeat bitrate_change(2820>510) buffer_start heartbeat bitrate_change(510>2820) buffer_end(3077ms) heartbeat stop(quit)"},
		{file: "hlsjs-throttle", want: "start play(366ms@2820) heartbeat bitrate_change(2820>510) heartbeat heartbeat stop(quit)"},
		// Shaka (debug build) skips s: startup runs from its first play
		// state (r) to p, 401 ms (the player measured 403; msd=407 comes
		// later and is not needed).
		{file: "shakadbg-stall", want: "start play(401ms@2820) heartbeat heartbeat buffer_start heartbeat bitrate_change(2820>510) buffer_end(3064ms) heartbeat stop(quit)"},
		{file: "shakadbg-throttle", want: "start play(306ms@2820) heartbeat bitrate_change(2820>1390) buffer_start heartbeat buffer_end(3170ms) buffer_start buffer_end(1092ms) heartbeat bitrate_change(1390>510) buffer_start buffer_end(990ms) heartbeat stop(quit)"},
		// sta=f on a ps report waits for the error report; Shaka then keeps
		// trying under the same sid (k, r, p, f...), out of order (sn 16
		// before 15): all counted and ignored after the stop.
		{file: "shakadbg-corrupt", want: "start play(411ms@2820) error(unknown,fatal=true) stop(error)", afterStop: 16},
		// Shaka's release build: no sta at all. The session still starts,
		// its first frame comes from msd, its bitrate from br; errors stay
		// non-fatal and rebuffering is invisible.
		{file: "shaka-default", want: "start play(741ms@2820) heartbeat heartbeat stop(quit)"},
		{file: "shaka-stall", want: "start play(401ms@2820) heartbeat heartbeat heartbeat bitrate_change(2820>510) heartbeat stop(quit)"},
		{file: "shaka-throttle", want: "start play(457ms@2820) heartbeat bitrate_change(2820>510) heartbeat stop(quit)"},
		{file: "shaka-corrupt", want: "start play(281ms@2820)" + strings.Repeat(" error(unknown,fatal=false)", 8) + " heartbeat" + strings.Repeat(" error(unknown,fatal=false)", 2) + " stop(quit)"},
		// Closed before the first frame (and no msd ever came).
		{file: "shaka-close", want: "start stop(exit_before_start)"},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			evs, tb := run(t, load(t, tt.file), Options{})
			if got := describe(evs); got != tt.want {
				t.Errorf("events\n got: %s\nwant: %s", got, tt.want)
			}
			st := tb.Stats()
			if st.AfterStop != tt.afterStop || st.Duplicates != 0 || st.Gaps != 0 {
				t.Errorf("stats %+v, want %d after stop, no duplicates, no gaps", st, tt.afterStop)
			}
			for _, e := range evs {
				if e.Source != event.SourceCMCD || e.MovieID != "title-1" || e.UserID != mapping.Anonymous || e.Stream != "players" || e.Device != "desktop" {
					t.Fatalf("identity of %s: %+v", e.Type, e)
				}
			}
		})
	}
}

// TestRecordedErrorLoop: hls.js with a segment it cannot decode loops
// d/r/k/p for about a minute (12 reports/s), then sends sta=f on a ps
// report and the error report with its code, then sta=a.
func TestRecordedErrorLoop(t *testing.T) {
	evs, tb := run(t, load(t, "hlsjs-corrupt"), Options{})
	n := len(evs)
	if got := describe(evs[n-2:]); got != "error(mediaSourceRequiresReset,fatal=true) stop(error)" {
		t.Fatalf("end of the session: %s", got)
	}
	if got := describe(evs[:2]); got != "start play(970ms@2820)" {
		t.Fatalf("start of the session: %s", got)
	}
	stalls := 0
	for _, e := range evs {
		if e.Type == event.BufferStart {
			stalls++
		}
	}
	// Each loop that rebuffers outside a seek is one stall; buffering
	// right after a seek is not.
	if stalls < 20 || tb.Stats().AfterStop != 1 {
		t.Fatalf("%d stalls, stats %+v", stalls, tb.Stats())
	}
}

// TestDuplicatesAndReorder: every report twice (a player retrying after
// a lost answer), in reverse pairs arriving at the same time: the same
// events, byte for byte, as the clean run.
func TestDuplicatesAndReorder(t *testing.T) {
	clean, _ := run(t, load(t, "hlsjs-stall"), Options{})
	recs := load(t, "hlsjs-stall")
	var messy []record
	for i := 0; i+1 < len(recs); i += 2 {
		a, b := recs[i], recs[i+1]
		b.received = a.received
		messy = append(messy, b, a, b, a)
	}
	messy = append(messy, recs[len(recs)-1], recs[len(recs)-1])
	got, tb := run(t, messy, Options{})
	if describe(got) != describe(clean) {
		t.Fatalf("with duplicates and reordering:\n%s\nclean:\n%s", describe(got), describe(clean))
	}
	for i := range got {
		if string(got[i].AppendJSON(nil)) != string(clean[i].AppendJSON(nil)) {
			t.Fatalf("event %d differs:\n%s\n%s", i, got[i].AppendJSON(nil), clean[i].AppendJSON(nil))
		}
	}
	if st := tb.Stats(); st.Duplicates != uint64(len(messy)-len(recs)) {
		t.Fatalf("stats %+v, want %d duplicates", st, len(messy)-len(recs))
	}
}
