// Package web serves the dashboard, the WebSocket endpoint and the JSON API
// of the fan-out.
package web

import (
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"

	"github.com/gorilla/websocket"

	"playpulse.dev/services/fanout/internal/hub"
)

// Options configure the handlers.
type Options struct {
	AllowedOrigins []string // besides same-origin
	MaxConnections int
	Log            *slog.Logger
}

// contentSecurityPolicy forbids inline script and every origin but ours:
// even if event data ever reached the DOM as markup, it could not run.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"

// Mount registers the routes on mux.
func Mount(mux interface {
	Handle(string, http.Handler)
}, h *hub.Hub, opts Options) {
	mux.Handle("GET /", secure(dashboard()))
	s := &wsServer{hub: h, opts: opts}
	s.upgrader = websocket.Upgrader{
		ReadBufferSize:    1024,
		WriteBufferSize:   16 << 10,
		CheckOrigin:       s.checkOrigin,
		EnableCompression: false, // per-message deflate costs CPU per client; frames are small
	}
	mux.Handle("GET /ws", s)
	mux.Handle("GET /api/snapshot", secure(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		b := h.Snapshot()
		if b == nil {
			b = []byte(`{"type":"snapshot"}`)
		}
		_, _ = w.Write(b)
	})))
}

func secure(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", contentSecurityPolicy)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("X-Frame-Options", "DENY")
		next.ServeHTTP(w, r)
	})
}

type wsServer struct {
	hub      *hub.Hub
	opts     Options
	upgrader websocket.Upgrader
	conns    atomic.Int64
}

// checkOrigin allows same-origin pages, configured extra origins, and
// clients that send no Origin (not browsers, so not subject to CSRF).
func (s *wsServer) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	for _, o := range s.opts.AllowedOrigins {
		if strings.EqualFold(strings.TrimSuffix(o, "/"), origin) {
			return true
		}
	}
	return false
}

func (s *wsServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if n := s.conns.Add(1); n > int64(s.opts.MaxConnections) {
		s.conns.Add(-1)
		w.Header().Set("Retry-After", "5")
		http.Error(w, "too many connections", http.StatusServiceUnavailable)
		return
	}
	defer s.conns.Add(-1)
	if !s.checkOrigin(r) {
		s.opts.Log.Warn("websocket origin refused", "origin", r.Header.Get("Origin"), "host", r.Host)
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	conn, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader has answered
	}
	_ = s.hub.Serve(conn)
}
