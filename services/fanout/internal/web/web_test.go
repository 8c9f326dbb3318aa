package web_test

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"playpulse.dev/services/fanout/internal/hub"
	"playpulse.dev/services/fanout/internal/web"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type fixture struct {
	hub *hub.Hub
	srv *httptest.Server
}

func newFixture(t *testing.T, opts web.Options, hopts hub.Options) *fixture {
	t.Helper()
	if hopts.TailRate == 0 {
		hopts = hub.Options{TailRate: 1000, FrameHz: 50, WriteTimeout: 2 * time.Second}
	}
	hopts.Log = slog.New(slog.DiscardHandler)
	h := hub.New(hopts)
	mux := http.NewServeMux()
	if opts.MaxConnections == 0 {
		opts.MaxConnections = 100
	}
	opts.Log = slog.New(slog.DiscardHandler)
	web.Mount(mux, h, opts)
	srv := httptest.NewServer(mux)
	t.Cleanup(func() { h.Close(); srv.Close() })
	return &fixture{hub: h, srv: srv}
}

func newServer(t *testing.T, h http.Handler, hb *hub.Hub) string {
	srv := httptest.NewServer(h)
	t.Cleanup(func() { hb.Close(); srv.Close() })
	return srv.URL
}

func (f *fixture) dial(t *testing.T, origin string) (*websocket.Conn, *http.Response, error) {
	return f.dialQuery(t, origin, "")
}

// dialQuery is dial with a query string ("?…") on /ws.
func (f *fixture) dialQuery(t *testing.T, origin, query string) (*websocket.Conn, *http.Response, error) {
	h := http.Header{}
	if origin != "" {
		h.Set("Origin", origin)
	}
	c, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(f.srv.URL, "http")+"/ws"+query, h)
	if err == nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, resp, err
}

type msg struct {
	Type string `json:"type"`
}

func next(t *testing.T, c *websocket.Conn, typ string) msg {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		_ = c.SetReadDeadline(deadline)
		_, b, err := c.ReadMessage()
		if err != nil {
			t.Fatalf("waiting for %q: %v", typ, err)
		}
		var m msg
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if m.Type == typ {
			return m
		}
	}
}

func TestSecurityHeaders(t *testing.T) {
	f := newFixture(t, web.Options{}, hub.Options{})
	resp, err := http.Get(f.srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	csp := resp.Header.Get("Content-Security-Policy")
	if !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Fatalf("CSP %q", csp)
	}
	if !strings.Contains(string(body), "Playpulse") || strings.Contains(string(body), "<script>") {
		t.Fatalf("index.html must load script from a file, not inline")
	}
}

func TestOriginCheck(t *testing.T) {
	f := newFixture(t, web.Options{AllowedOrigins: []string{"https://dash.example.com"}}, hub.Options{})
	tests := []struct {
		origin string
		ok     bool
	}{
		{"", true},
		{f.srv.URL, true},
		{"https://dash.example.com", true},
		{"https://evil.example.com", false},
		{"null", false},
	}
	for _, tt := range tests {
		_, resp, err := f.dial(t, tt.origin)
		if tt.ok && err != nil {
			t.Errorf("origin %q refused: %v", tt.origin, err)
		}
		if !tt.ok && (err == nil || resp == nil || resp.StatusCode != http.StatusForbidden) {
			t.Errorf("origin %q: want 403, got %v", tt.origin, err)
		}
	}
}

func TestMaxConnections(t *testing.T) {
	f := newFixture(t, web.Options{MaxConnections: 2}, hub.Options{})
	for i := 0; i < 2; i++ {
		c, _, err := f.dial(t, "")
		if err != nil {
			t.Fatal(err)
		}
		next(t, c, "hello")
	}
	_, resp, err := f.dial(t, "")
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("third connection: %v, want 503", err)
	}
}

func TestSnapshotSharedAndAPI(t *testing.T) {
	f := newFixture(t, web.Options{}, hub.Options{})
	if err := f.hub.SetSnapshot([]byte(`{"type":"snapshot","events_total":7}`)); err != nil {
		t.Fatal(err)
	}
	c, _, err := f.dial(t, "")
	if err != nil {
		t.Fatal(err)
	}
	next(t, c, "snapshot")
	resp, err := http.Get(f.srv.URL + "/api/snapshot")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s struct {
		EventsTotal int `json:"events_total"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil || s.EventsTotal != 7 {
		t.Fatalf("api snapshot %+v %v", s, err)
	}
}

// The page names its protocol in the query: a version-3 one gets deltas;
// a browser page that names none (version 2) is told to reload and gets
// complete snapshots, like any client that does not ask for deltas.
func TestProtocolQuery(t *testing.T) {
	tests := []struct {
		name, query     string
		browser         bool
		outdated, delta bool
	}{
		{"page of protocol 3", "?protocol=3", true, false, true},
		{"page of protocol 2", "", true, true, false},
		{"page naming protocol 2", "?protocol=2", true, true, false},
		{"not a browser", "", false, false, false},
		{"not a browser, protocol 3", "?protocol=3", false, false, true},
	}
	snap := func(n int) []byte {
		return []byte(fmt.Sprintf(`{"type":"snapshot","full":false,"time":%d,"n":%d,"pad":%q}`, n, n, strings.Repeat("x", 300)))
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, web.Options{}, hub.Options{})
			if err := f.hub.SetSnapshot(snap(1)); err != nil {
				t.Fatal(err)
			}
			origin := ""
			if tt.browser {
				origin = f.srv.URL
			}
			c, _, err := f.dialQuery(t, origin, tt.query)
			if err != nil {
				t.Fatal(err)
			}
			var types []string
			read := func() {
				_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
				_, b, err := c.ReadMessage()
				if err != nil {
					t.Fatal(err)
				}
				var m struct{ Type, Code string }
				_ = json.Unmarshal(b, &m)
				types = append(types, m.Type+m.Code)
			}
			want := []string{"hello", "snapshot", "snapshot"}
			if tt.outdated {
				want = []string{"hello", "erroroutdated_page", "snapshot", "snapshot"}
			}
			if tt.delta {
				want[len(want)-1] = "delta"
			}
			for range len(want) - 1 {
				read()
			}
			if err := f.hub.SetSnapshot(snap(2)); err != nil {
				t.Fatal(err)
			}
			read()
			if !slices.Equal(types, want) {
				t.Errorf("messages %v, want %v", types, want)
			}
		})
	}
}

// TestHistoryRoute: /api/history needs the token as /api/snapshot does,
// has the security headers, and answers 404 saying why on a fan-out that
// has no history (not in the merge role).
func TestHistoryRoute(t *testing.T) {
	served := false
	for _, c := range []struct {
		history http.Handler
		token   string
		want    int
		says    string
	}{
		{nil, "", http.StatusNotFound, "merge role"},
		{http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { served = true }), "s3cret", http.StatusUnauthorized, ""},
		{http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { served = true }), "", http.StatusOK, ""},
	} {
		f := newFixture(t, web.Options{History: c.history, AuthToken: c.token}, hub.Options{})
		resp, err := http.Get(f.srv.URL + "/api/history?from=1&to=2")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.want || !strings.Contains(string(body), c.says) || resp.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("token %q: %s %q, want %d saying %q, with the security headers", c.token, resp.Status, body, c.want, c.says)
		}
	}
	if !served {
		t.Error("the history handler was never called")
	}
}
