package playertest

import (
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
	"time"

	"playpulse.dev/services/playback/event"
	"playpulse.dev/tests/browsertest"
)

// What the tests hold the pipeline to.
const (
	// measureTolerance: the collector's startup and stall times against the
	// page's own measurement. Both are Date.now() in the same browser at the
	// same video element events: the page's listeners on "play", "playing"
	// and "waiting", the player's CMCD listeners that stamp the sta=s, sta=p
	// and sta=r reports' ts. What separates them is listener order, the
	// player's own bookkeeping and, for Shaka, its first play state (r, when
	// load() starts buffering) against the element's "play" event: measured
	// 0-40 ms. The bound.
	measureTolerance = 100 * time.Millisecond
	// stallHold is how long the test holds the segment server once it sees
	// the player stalled: the stall the viewer sees is that, plus the time the
	// test takes to see the stall (it polls the page: 50 ms and a chromedp
	// round trip) and the time the player takes to resume once the held
	// segment is answered (fetch, append, decode).
	stallHold = 3 * time.Second
	// resumeSlack bounds each of those two: measured 7-20 ms and 15-30 ms
	// on a quiet machine, 0.6 s together at load average 50; a second each
	// leaves room for a loaded 2-core machine.
	resumeSlack = time.Second
	// throttleKbps is the slow link: below the 540p rendition's bandwidth,
	// above the 360p one's, so ABR must switch down to 360p.
	throttleKbps = 800
)

// TestRealPlayers plays the ffmpeg-made stream with hls.js and Shaka Player in
// headless Chromium, CMCD v2 event mode pointed at the real collector
// (cross-origin), and reads back what reached Kafka (kcat) and the fan-out
// (/api/snapshot, the dashboard in a second tab). One stack for all; the
// players run one at a time, each session with its own stream name, so the
// fan-out's per-stream figures are that session's.
func TestRealPlayers(t *testing.T) {
	st := startStack(t)
	for _, p := range []struct {
		page string
		// failCode is the error code the player reports for a segment it
		// cannot decode ("": none).
		failCode  string
		dashboard bool // also check the dashboard with this player's session
	}{
		{"hlsjs", "mediaSourceRequiresReset", true},
		// Shaka's debug build: the release build of 5.2.12 sends no play
		// state (see shaka-release below and docs/collector.md), so only
		// this build can show rebuffering and fatal errors.
		{"shaka-debug", "", false},
	} {
		t.Run(p.page, func(t *testing.T) {
			s := st.open(t, p.page, "pt-"+p.page)
			s.startup()
			s.bitrate()
			if p.dashboard {
				s.dashboard()
			}
			// Throttle first: a player may switch down during a stall
			// too, and this checks a switch from the top rendition.
			s.throttle()
			s.stall()
			s.close()
		})
		t.Run(p.page+"-failure", func(t *testing.T) {
			s := st.open(t, p.page, "pt-"+p.page+"-failure")
			s.fail(p.failCode)
		})
	}
	t.Run("shaka-release", func(t *testing.T) {
		s := st.open(t, "shaka-release", "pt-shaka-release")
		s.releaseBuild()
	})
}

// session is one player session: a media server of its own, the page in a
// tab, and what the test expects of its events.
type session struct {
	t    *testing.T
	st   *stack
	srv  *Server
	page *Page
	sid  string
	id   sessionIdentity
	// renditions' bitrates as both players report them (CMCD br):
	// BANDWIDTH/1000 of master.m3u8, lowest first.
	kbps []int
}

// open starts a media server on the stack's page origin and opens page
// (hlsjs, shaka-debug, shaka-release) reporting to the collector as stream
// name, with content id "title-<name>".
func (st *stack) open(t *testing.T, page, name string) *session {
	t.Helper()
	s := &session{t: t, st: st, id: sessionIdentity{contentID: "title-" + name, stream: name}}
	for _, r := range st.media.Renditions {
		s.kbps = append(s.kbps, r.Bandwidth/1000)
	}
	s.srv = NewServer(t, st.origin, st.media, st.players)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("--- the media server's last requests ---\n%s", s.srv.Log(80))
		}
	})
	o := &PageOptions{Player: page, Collector: st.collector + "/v1/cmcd/" + name, ContentID: s.id.contentID, Interval: reportInterval}
	s.page = Open(t, st.browser, s.srv, o)
	s.sid = o.SessionID
	return s
}

func (s *session) events(d time.Duration, what string, cond func([]event.Event) bool) []event.Event {
	s.t.Helper()
	return s.st.waitEvents(s.t, s.sid, s.id, d, what, cond)
}

// stream waits until the fan-out's figures of the session's stream satisfy
// check.
func (s *session) stream(what string, check func(q qoe) error) {
	s.t.Helper()
	s.st.waitSnapshot(s.t, 30*time.Second, s.id.stream+": "+what, func(snap snapshot) error {
		q, ok := snap.ByStream[s.id.stream]
		if !ok {
			return fmt.Errorf("no stream %s in %v", s.id.stream, keys(snap.ByStream))
		}
		if err := check(q); err != nil {
			return fmt.Errorf("%w; by_stream[%s] = %+v", err, s.id.stream, q)
		}
		return nil
	})
}

func keys[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func within(a, b, tol time.Duration) bool { return (a - b).Abs() <= tol }

func ms(n int64) time.Duration { return time.Duration(n) * time.Millisecond }

// startup: the session appears in Kafka and on the fan-out, and its startup
// time is the page's own measurement.
func (s *session) startup() {
	t := s.t
	m := s.page.WaitFor(30*time.Second, "the first frame", func(m Measurements) bool { return m.FirstPlayingAt > 0 })
	evs := s.events(30*time.Second, "the first frame", func(evs []event.Event) bool { _, ok := firstFrame(evs); return ok })
	if evs[0].Type != event.Start {
		t.Fatalf("the session does not begin with start:%s", describe(evs))
	}
	play, _ := firstFrame(evs)
	t.Logf("%s %s: startup %d ms (the page measured %d ms)", m.Player, m.Version, play.StartupMS, m.StartupMs)
	if !within(ms(int64(play.StartupMS)), ms(m.StartupMs), measureTolerance) {
		t.Errorf("startup %d ms, the page measured %d ms (play() at %d, play at %d, playing at %d): more than %s apart",
			play.StartupMS, m.StartupMs, m.PlayRequestedAt, m.FirstPlayAt, m.FirstPlayingAt, measureTolerance)
	}
	s.st.waitSnapshot(t, 30*time.Second, "the session's title, device and source", func(snap snapshot) error {
		if !slices.Contains(snap.Sources, event.SourceCMCD) || snap.BySource[event.SourceCMCD].ConcurrentViewers < 1 || snap.ByDevice["desktop"].ConcurrentViewers < 1 {
			return fmt.Errorf("sources %v, cmcd viewers %d, desktop viewers %d", snap.Sources, snap.BySource[event.SourceCMCD].ConcurrentViewers, snap.ByDevice["desktop"].ConcurrentViewers)
		}
		for _, tt := range snap.TopTitles {
			if tt.MovieID == s.id.contentID && tt.ConcurrentViewers == 1 {
				return nil
			}
		}
		return fmt.Errorf("%s is not among the top titles with 1 viewer: %+v", s.id.contentID, snap.TopTitles)
	})
	s.stream("one attempt, one play at the session's startup", func(q qoe) error {
		// The p50 comes from a log-linear histogram: ±3.2% + 1 ms (docs/metrics.md).
		if q.Attempts != 1 || q.Plays != 1 || q.ConcurrentViewers != 1 || q.StartupP50MS == nil ||
			math.Abs(*q.StartupP50MS-float64(play.StartupMS)) > 0.033*float64(play.StartupMS)+1 {
			return fmt.Errorf("want 1 attempt, 1 play, 1 viewer, startup p50 %d ms", play.StartupMS)
		}
		return nil
	})
}

// bitrate: once the player plays the top rendition, the session's events
// carry its bitrate.
func (s *session) bitrate() {
	t := s.t
	top := s.kbps[len(s.kbps)-1]
	m := s.page.WaitFor(30*time.Second, fmt.Sprintf("playing the top rendition (%d kbps)", top), func(m Measurements) bool { return int(m.Kbps) == top })
	if r := s.srv.LastRendition(); r != s.st.media.Renditions[len(s.kbps)-1].Name {
		t.Fatalf("the player plays %v kbps, but the server's latest segment was of %s", m.Kbps, r)
	}
	since := time.Now()
	s.events(20*time.Second, fmt.Sprintf("an event at %d kbps after the page played it", top), func(evs []event.Event) bool {
		last := evs[len(evs)-1]
		return !last.TS.Before(since) && last.Bitrate == top
	})
}

// dashboard: the fan-out's page, in a second tab, shows the session in the
// source breakdown and the live tail, and scoped to source cmcd.
func (s *session) dashboard() {
	t := s.t
	d := s.st.browser.NewTab(t)
	defer d.Close()
	d.Open(s.st.fanout + "/")
	d.Wait(30*time.Second, `document.getElementById("status").dataset.state === "live"`)
	// The breakdown by source: real players, this one among the viewers,
	// with a startup time and an average bitrate.
	d.Wait(30*time.Second, `(r => !!r && Number(r.cells[1].textContent) >= 1 && / m?s$/.test(r.cells[2].textContent) && / [kM]bps$/.test(r.cells[5].textContent))([...document.querySelectorAll("#bd-source tbody tr:not([hidden])")].find(r => r.cells[0].textContent === "cmcd"))`)
	// The live tail: the session's heartbeats (every reportInterval).
	row := fmt.Sprintf(`[...document.querySelectorAll("#tail tr.ev")].some(r => r.cells[2].textContent === %q && r.cells[5].textContent === "desktop" && r.cells[9].textContent === %q && r.cells[10].textContent === "cmcd")`,
		s.id.contentID, s.id.stream)
	d.Wait(30*time.Second, row)
	// Scoped to source cmcd, as a user chooses it: the server filters the
	// tail, and the session's events still arrive.
	d.Wait(10*time.Second, `(s => (s.value = "cmcd", s.dispatchEvent(new Event("change")), true))(document.getElementById("source"))`)
	d.Wait(20*time.Second, `document.getElementById("filter-state").dataset.state === "ok" && document.getElementById("filter-state").textContent === "Showing source cmcd"`)
	d.Wait(30*time.Second, row)
	if rows := browsertest.Eval[[]string](d, `[...document.querySelectorAll("#tail tr.ev")].map(r => r.cells[10].textContent)`); slices.ContainsFunc(rows, func(src string) bool { return src != "cmcd" }) {
		t.Fatalf("the tail scoped to source cmcd shows sources %q", rows)
	}
	d.AssertClean()
}

// stall: a 3 s hold of the segment server makes one rebuffering period of
// about 3 s, as the page measured it, and the fan-out counts it. Earlier
// stalls (a throttled link makes some) are not this one's.
func (s *session) stall() {
	t := s.t
	held, seen := s.holdStall()
	since := func(evs []event.Event) []event.Event {
		return slices.DeleteFunc(slices.Clone(evs), func(e event.Event) bool { return e.TS.Before(held) })
	}
	evs := s.events(20*time.Second, "the stall's end", func(evs []event.Event) bool { return len(ofType(since(evs), event.BufferEnd)) > 0 })
	starts, ends := ofType(since(evs), event.BufferStart), ofType(since(evs), event.BufferEnd)
	if len(starts) != 1 || len(ends) != 1 {
		t.Fatalf("%d buffer_start and %d buffer_end since the hold, want one rebuffering period:%s", len(starts), len(ends), describe(evs))
	}
	got := ms(int64(ends[0].StallMS))
	t.Logf("stall %s (the page measured %s)", got, seen.Duration())
	if !within(got, seen.Duration(), measureTolerance) || !within(ms(starts[0].TS.UnixMilli()), ms(seen.Start), measureTolerance) {
		t.Errorf("rebuffering from %s for %s; the page saw it from %s for %s (tolerance %s)", starts[0].TS.Format("15:04:05.000"), got,
			time.UnixMilli(seen.Start).UTC().Format("15:04:05.000"), seen.Duration(), measureTolerance)
	}
	// Every stall of the session, this one and any before it.
	n, total := len(ofType(evs, event.BufferStart)), 0
	for _, e := range ofType(evs, event.BufferEnd) {
		total += e.StallMS
	}
	s.stream("the stalls", func(q qoe) error {
		if q.Stalls != n || q.RebufferPct == nil || *q.RebufferPct <= 0 || math.Abs(q.StallTimeS-float64(total)/1000) > 0.05 {
			return fmt.Errorf("want %d stalls, %.3f s, rebuffering above 0", n, float64(total)/1000)
		}
		return nil
	})
}

// holdStall holds the segment server from the next segment the player
// needs: once its buffer has drained and it stalls, for stallHold more. It
// returns when the hold began and the one stall the page saw since.
func (s *session) holdStall() (held time.Time, seen Stall) {
	t := s.t
	s.page.WaitFor(30*time.Second, "playing before the hold", func(m Measurements) bool { return !m.Waiting })
	held = time.Now()
	hold := s.srv.Hold(Match{From: s.srv.NextSegment()})
	s.page.WaitFor(60*time.Second, "the player stalls on the held segments", func(m Measurements) bool { return m.Waiting && len(m.StallsSince(held)) > 0 })
	observed := time.Now()
	released := hold.ReleaseAfter(stallHold)
	m := s.page.WaitFor(30*time.Second, "playing again after the hold", func(m Measurements) bool { return !m.Waiting })
	stalls := m.StallsSince(held)
	if len(stalls) != 1 {
		t.Fatalf("the page saw %d stalls since the hold, want 1: %+v", len(stalls), stalls)
	}
	seen = stalls[0]
	start, end := time.UnixMilli(seen.Start), time.UnixMilli(seen.End)
	t.Logf("the page's stall: %s; the test saw it after %s, the player resumed %s after the release",
		seen.Duration(), observed.Sub(start).Round(time.Millisecond), end.Sub(released).Round(time.Millisecond))
	if observed.Sub(start) > resumeSlack || end.Before(released) || end.Sub(released) > resumeSlack {
		t.Fatalf("the page's stall: %s to %s (%s); the test saw it at %s and released the segments at %s (slack %s each)",
			start.Format("15:04:05.000"), end.Format("15:04:05.000"), seen.Duration(), observed.Format("15:04:05.000"), released.Format("15:04:05.000"), resumeSlack)
	}
	return held, seen
}

// throttle: on a link too slow for the rendition it plays, the player
// switches down to the lowest, and the session's bitrate follows.
func (s *session) throttle() {
	lowest := s.kbps[0]
	since := time.Now()
	undo := s.srv.Throttle(throttleKbps)
	defer undo()
	s.page.WaitFor(90*time.Second, fmt.Sprintf("switched down to %d kbps on a %d kbps link", lowest, throttleKbps), func(m Measurements) bool { return int(m.Kbps) == lowest })
	s.t.Logf("playing %d kbps %s after the link was throttled to %d kbps", lowest, time.Since(since).Round(100*time.Millisecond), throttleKbps)
	s.events(20*time.Second, fmt.Sprintf("a switch down to %d kbps", lowest), func(evs []event.Event) bool {
		for _, e := range ofType(evs, event.BitrateChange) {
			if !e.TS.Before(since) && e.Bitrate == lowest && e.PrevBitrate > lowest {
				return evs[len(evs)-1].Bitrate == lowest
			}
		}
		return false
	})
}

// close: a closed tab sends nothing; the collector stops the session after
// the inactivity timeout, at the time of its last report.
func (s *session) close() {
	t := s.t
	s.page.Close()
	closed := time.Now()
	evs := s.events(inactivityTimeout+20*time.Second, "the stop after the tab was closed", func(evs []event.Event) bool { return evs[len(evs)-1].Type == event.Stop })
	stop := evs[len(evs)-1]
	var last int64
	for _, r := range s.st.reports(t, s.sid) {
		last = max(last, r.TS())
	}
	if stop.StopReason != event.StopQuit || stop.TS.UnixMilli() != last || stop.TS.After(closed) {
		t.Fatalf("stop %s at %s; want quit at the last report (%s), before the tab closed (%s)", stop.StopReason,
			stop.TS.Format("15:04:05.000"), time.UnixMilli(last).UTC().Format("15:04:05.000"), closed.UTC().Format("15:04:05.000"))
	}
	s.stream("the view ended", func(q qoe) error {
		if q.ViewsEnded != 1 || q.ConcurrentViewers != 0 || q.PlaybackFailures != 0 {
			return fmt.Errorf("want 1 view ended, no viewer, no failure")
		}
		return nil
	})
}

// fail: every media segment from the next one on is corrupt (200, the media
// data scrambled): the browser cannot decode it, the player gives up, and the
// collector makes a playback failure of it. code is the error code the
// session's error must carry ("" when the player sends none).
func (s *session) fail(code string) {
	t := s.t
	s.page.WaitFor(30*time.Second, "the first frame", func(m Measurements) bool { return m.FirstPlayingAt > 0 })
	s.events(30*time.Second, "the first frame", func(evs []event.Event) bool { _, ok := firstFrame(evs); return ok })
	s.srv.Break(Match{From: s.srv.NextSegment()}, Corrupt)
	// hls.js retries a segment it cannot append, resetting the media
	// source, for 20-60 s before it gives up.
	m := s.page.WaitFor(150*time.Second, "a fatal error", func(m Measurements) bool { return m.Fatal })
	evs := s.events(30*time.Second, "the session's stop", func(evs []event.Event) bool { return evs[len(evs)-1].Type == event.Stop })
	n := len(evs)
	fatal, stop := evs[n-2], evs[n-1]
	if fatal.Type != event.Error || !fatal.Fatal || stop.StopReason != event.StopError || slices.ContainsFunc(evs[:n-2], func(e event.Event) bool { return e.Type == event.Error && e.Fatal }) {
		t.Fatalf("want one fatal error, then stop error:%s", describe(evs))
	}
	var pageCodes []string
	for _, e := range m.Errors {
		if e.Fatal {
			pageCodes = append(pageCodes, e.Source+" "+e.Code+" "+e.Detail)
		}
	}
	t.Logf("fatal error %q; the page saw %q", fatal.ErrorCode, pageCodes)
	if code != "" && (fatal.ErrorCode != code || !slices.ContainsFunc(pageCodes, func(c string) bool { return strings.HasSuffix(c, " "+code) })) {
		t.Errorf("error code %q, want %q, which the page saw too", fatal.ErrorCode, code)
	}
	s.stream("a playback failure", func(q qoe) error {
		if q.PlaybackFailures != 1 || q.StartFailures != 0 || q.ViewsEnded != 0 || q.ConcurrentViewers != 0 {
			return fmt.Errorf("want 1 playback failure, no start failure, no view ended, no viewer")
		}
		return nil
	})
}

// releaseBuild: Shaka 5.2.12's release build sends no sta (the Closure
// compiler renames the key). The collector still makes a session of it:
// its start, its first frame from msd, its bitrate, its stop on inactivity;
// but a stall is lost.
func (s *session) releaseBuild() {
	t := s.t
	m := s.page.WaitFor(30*time.Second, "the first frame", func(m Measurements) bool { return m.FirstPlayingAt > 0 })
	evs := s.events(30*time.Second, "the first frame (from msd)", func(evs []event.Event) bool { _, ok := firstFrame(evs); return ok })
	play, _ := firstFrame(evs)
	var msd int64 = -1
	for _, r := range s.st.reports(t, s.sid) {
		if r.Has("sta") {
			t.Fatalf("the release build sent a play state: %s; if Shaka fixed it, test the release build in full and update docs/collector.md", r.Line)
		}
		if r.Has("msd") {
			msd = r.Int("msd")
		}
	}
	// Shaka measures msd from load(), which the page calls just before
	// play(): the page's measurement from its play() call is the same span.
	pageMS := m.FirstPlayingAt - m.PlayRequestedAt
	t.Logf("%s %s: startup %d ms from msd=%d (the page measured %d ms from play())", m.Player, m.Version, play.StartupMS, msd, pageMS)
	if int64(play.StartupMS) != msd || !within(ms(msd), ms(pageMS), measureTolerance) {
		t.Errorf("startup %d ms, msd %d, the page measured %d ms from play() (tolerance %s)", play.StartupMS, msd, pageMS, measureTolerance)
	}
	s.bitrate()

	// A stall the page sees is lost: without sta there is no rebuffering.
	_, seen := s.holdStall()
	ended := time.UnixMilli(seen.End)
	evs = s.events(20*time.Second, "a report after the stall", func(evs []event.Event) bool { return evs[len(evs)-1].TS.After(ended) })
	if n := len(ofType(evs, event.BufferStart)); n != 0 {
		t.Fatalf("%d buffer_start from the release build: it sends sta after all?%s", n, describe(evs))
	}
	s.stream("no stall counted", func(q qoe) error {
		if q.Stalls != 0 || q.Plays != 1 || q.ConcurrentViewers != 1 {
			return fmt.Errorf("want no stall, 1 play, 1 viewer")
		}
		return nil
	})
	s.close()
}
