package playertest

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"playpulse.dev/tests/browsertest"
)

// NewBrowser starts Debian's headless Chromium (tests/browsertest's flags)
// for the players: one browser per test, a tab per player session (Open)
// and one for the dashboard. Pages may start playing without a user gesture,
// as the test pages do.
func NewBrowser(t testing.TB) *browsertest.Browser {
	t.Helper()
	return browsertest.New(t, chromedp.Flag("autoplay-policy", "no-user-gesture-required"))
}

// Page is one tab playing a test page.
type Page struct {
	t   testing.TB
	tab *browsertest.Browser
	URL string
}

// PageOptions are the test page's query parameters (see web/page.js).
type PageOptions struct {
	Player    string // the page: "hlsjs", "shaka-debug" or "shaka-release" (web/<Player>.html)
	Collector string // the CMCD event target URL
	SessionID string // CMCD sid; NewSessionID when empty
	ContentID string // CMCD cid
	Events    []string
	Interval  int // seconds between t reports; 0 = the page's default (10)
	Batch     int // reports per POST; 0 = 1
	Buffer    int // forward buffer goal, seconds; 0 = the page's default (6)
}

// NewSessionID returns a random UUID (version 4), as CMCD recommends for sid.
func NewSessionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// PageURL is the URL of the test page on s for o.
func (s *Server) PageURL(o PageOptions) string {
	return s.URL + "/" + o.Player + ".html?" + o.Query(s.MasterURL()).Encode()
}

// Query is the page's query string for o, playing src.
func (o PageOptions) Query(src string) url.Values {
	q := url.Values{}
	q.Set("src", src)
	q.Set("collector", o.Collector)
	q.Set("sid", o.SessionID)
	q.Set("cid", o.ContentID)
	if len(o.Events) > 0 {
		q.Set("events", strings.Join(o.Events, ","))
	}
	if o.Interval > 0 {
		q.Set("interval", strconv.Itoa(o.Interval))
	}
	if o.Batch > 0 {
		q.Set("batch", strconv.Itoa(o.Batch))
	}
	if o.Buffer > 0 {
		q.Set("buffer", strconv.Itoa(o.Buffer))
	}
	return q
}

// Open opens the player's test page in a new tab of b; the page starts
// playing at once. The tab is closed when the test ends, if Close did not
// close it; when the test failed, the page's measurements and console are
// logged first.
func Open(t testing.TB, b *browsertest.Browser, s *Server, o *PageOptions) *Page {
	t.Helper()
	if o.SessionID == "" {
		o.SessionID = NewSessionID()
	}
	p := &Page{t: t, tab: b.NewTab(t), URL: s.PageURL(*o)}
	t.Cleanup(func() {
		if t.Failed() {
			p.dump()
		}
		p.tab.Close()
	})
	p.tab.Open(p.URL)
	return p
}

func (p *Page) dump() {
	if !p.tab.Closed() {
		p.t.Logf("--- the page's measurements ---\n%s", p.Measure().Brief())
	}
	p.t.Logf("--- the page's console ---\n%s", strings.Join(p.tab.Console(), "\n"))
}

// WaitFor polls the page's measurements until cond holds and returns them.
func (p *Page) WaitFor(d time.Duration, what string, cond func(Measurements) bool) Measurements {
	p.t.Helper()
	deadline := time.Now().Add(d)
	for {
		m := p.Measure()
		if cond(m) {
			return m
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("the page: %s: not within %s; measurements: %s", what, d, m.Brief())
		}
		time.Sleep(50 * time.Millisecond) // poll interval of a condition wait
	}
}

// Measurements is window.pp.snapshot(): what the page measured itself.
type Measurements struct {
	Player          string  `json:"player"`
	Version         string  `json:"version"`
	PlayRequestedAt int64   `json:"playRequestedAt"` // Unix ms, just before video.play()
	FirstPlayAt     int64   `json:"firstPlayAt"`     // Unix ms of the first "play" event
	FirstPlayingAt  int64   `json:"firstPlayingAt"`  // Unix ms of the first "playing" event
	FirstFrameAt    int64   `json:"firstFrameAt"`    // Unix ms the first frame was presented
	StartupMs       int64   `json:"startupMs"`       // FirstPlayingAt - FirstPlayAt; -1 before
	Stalls          []Stall `json:"stalls"`
	Waiting         bool    `json:"waiting"` // stalled now
	Errors          []struct {
		At     int64  `json:"at"`
		Fatal  bool   `json:"fatal"`
		Source string `json:"source"`
		Code   string `json:"code"`
		Detail string `json:"detail"`
	} `json:"errors"`
	Fatal    bool `json:"fatal"`
	Bitrates []struct {
		At   int64   `json:"at"`
		Kbps float64 `json:"kbps"`
	} `json:"bitrates"`
	Kbps        float64 `json:"kbps"` // the rendition being played, per the player API
	CurrentTime float64 `json:"currentTime"`
	BufferAhead float64 `json:"bufferAhead"`
	Paused      bool    `json:"paused"`
	ReadyState  int     `json:"readyState"`
	Ended       bool    `json:"ended"`
	Events      [][]any `json:"events"`
	UserAgent   string  `json:"userAgent"`
}

// Stall is one rebuffering the page saw: "waiting" to the next "playing".
type Stall struct {
	Start    int64   `json:"start"`
	End      int64   `json:"end"` // 0 while it lasts
	Position float64 `json:"position"`
}

// StallsSince returns the stalls that began at or after t.
func (m Measurements) StallsSince(t time.Time) []Stall {
	var out []Stall
	for _, s := range m.Stalls {
		if s.Start >= t.UnixMilli() {
			out = append(out, s)
		}
	}
	return out
}

// Duration is the stall's length (0 while it lasts).
func (s Stall) Duration() time.Duration {
	if s.End == 0 {
		return 0
	}
	return time.Duration(s.End-s.Start) * time.Millisecond
}

// Brief is the measurements without the event log, for failure messages.
func (m Measurements) Brief() string {
	m.Events = nil
	b, _ := json.Marshal(m)
	return string(b)
}

// Measure reads the page's measurements.
func (p *Page) Measure() Measurements {
	p.t.Helper()
	return browsertest.Eval[Measurements](p.tab, `window.pp ? window.pp.snapshot() : {}`)
}

// Close closes the tab the way a viewer does (the page's pagehide and unload
// handlers run), once.
func (p *Page) Close() { p.tab.Close() }
