// Package web serves the dashboard, the WebSocket endpoint and the JSON API
// of the fan-out.
package web

import (
	"bufio"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"playpulse.dev/services/fanout/internal/hub"
)

// Options configure the handlers.
type Options struct {
	AllowedOrigins      []string // besides same-origin
	MaxConnections      int
	MaxConnectionsPerIP int          // 0: no limit
	TrustedProxies      []*net.IPNet // whose X-Forwarded-For is believed
	AuthToken           string       // "": no token needed
	// Streams is the list of /api/streams, of one source when source is
	// not "" (an error: the source is not one of the protocol's, 400).
	// Nil: an empty list.
	Streams func(source string) (any, error)
	// SourceSnapshot is /api/snapshot?source= (an error: 400, as for
	// Streams). Nil: every source gets 400.
	SourceSnapshot func(source string, full bool) ([]byte, error)
	// Alerts is /api/alerts: the pending and firing alerts, encoded. Nil:
	// the fan-out has no rules, and /api/alerts lists none.
	Alerts func() []byte
	// History is /api/history (docs/tier.md, "History"): the merge role's
	// reader of past windows. Nil: 404, this fan-out has no history.
	History    http.Handler
	Log        *slog.Logger
	Registerer prometheus.Registerer
}

// contentSecurityPolicy forbids inline script and every origin but ours:
// even if event data ever reached the DOM as markup, it could not run.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'none'"

// Mount registers the routes on mux.
func Mount(mux interface {
	Handle(string, http.Handler)
}, h *hub.Hub, opts Options) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	mux.Handle("GET /", secure(dashboard()))
	s := &wsServer{hub: h, opts: opts, perIP: map[string]int{}}
	s.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "playpulse_fanout_connections_refused_total", Help: "WebSocket upgrades refused: origin, auth, max_connections, per_ip.",
	}, []string{"reason"})
	for _, r := range []string{"origin", "auth", "max_connections", "per_ip"} {
		s.refused.WithLabelValues(r)
	}
	if opts.Registerer != nil {
		opts.Registerer.MustRegister(s.refused)
	}
	s.upgrader = websocket.Upgrader{
		ReadBufferSize:    1024,
		WriteBufferSize:   4 << 10,                                  // pooled; large messages go out in one writev anyway
		WriteBufferPool:   &sync.Pool{},                             // an idle client holds no write buffer
		CheckOrigin:       func(*http.Request) bool { return true }, // checked before, with a 403
		EnableCompression: true,                                     // used for shared snapshots only (compressed once); tail frames are sent uncompressed
	}
	mux.Handle("GET /ws", s)
	mux.Handle("GET /api/snapshot", secure(s.auth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		full := q.Get("full") == "1"
		var b []byte
		switch src := q.Get("source"); {
		case src != "":
			var err error
			if opts.SourceSnapshot == nil {
				err = errors.New("no source scopes on this server")
			} else {
				b, err = opts.SourceSnapshot(src, full)
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		case full:
			b, _ = h.FullSnapshot()
		default:
			b = h.Snapshot()
		}
		if b == nil {
			b = []byte(`{"type":"snapshot"}`)
		}
		writeJSON(w, b)
	}))))
	mux.Handle("GET /api/alerts", secure(s.auth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := []byte(`{"alerts":[]}`)
		if opts.Alerts != nil {
			b = opts.Alerts()
		}
		writeJSON(w, b)
	}))))
	history := opts.History
	if history == nil {
		history = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "no history here: /api/history is served by fan-outs in the merge role (FANOUT_ROLE=merge), which read it back from the aggregates topic", http.StatusNotFound)
		})
	}
	mux.Handle("GET /api/history", secure(s.auth(history)))
	mux.Handle("GET /api/streams", secure(s.auth(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var list any = []any{}
		if opts.Streams != nil {
			var err error
			if list, err = opts.Streams(r.URL.Query().Get("source")); err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
		}
		b, err := json.Marshal(map[string]any{"streams": list})
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		writeJSON(w, b)
	}))))
}

func writeJSON(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
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
	refused  *prometheus.CounterVec

	mu    sync.Mutex
	perIP map[string]int
}

// authorized checks the bearer token: Authorization header, or the
// access_token query parameter (browsers cannot set WebSocket headers).
func (s *wsServer) authorized(r *http.Request) bool {
	if s.opts.AuthToken == "" {
		return true
	}
	got := r.URL.Query().Get("access_token")
	if a := r.Header.Get("Authorization"); a != "" {
		scheme, tok, ok := strings.Cut(a, " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			return false
		}
		got = strings.TrimSpace(tok)
	}
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.opts.AuthToken)) == 1
}

func (s *wsServer) auth(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.authorized(r) {
			unauthorized(w)
			return
		}
		next.ServeHTTP(w, r)
	})
}

func unauthorized(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", `Bearer realm="playpulse"`)
	http.Error(w, "missing or wrong bearer token", http.StatusUnauthorized)
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

// clientIP is the TCP peer, or the last X-Forwarded-For hop when the peer
// is a trusted proxy.
func (s *wsServer) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	ip := net.ParseIP(host)
	if ip == nil || len(s.opts.TrustedProxies) == 0 {
		return host
	}
	trusted := false
	for _, n := range s.opts.TrustedProxies {
		if n.Contains(ip) {
			trusted = true
			break
		}
	}
	if !trusted {
		return host
	}
	xff := r.Header.Values("X-Forwarded-For")
	if len(xff) == 0 {
		return host
	}
	hops := strings.Split(xff[len(xff)-1], ",")
	if last := strings.TrimSpace(hops[len(hops)-1]); net.ParseIP(last) != nil {
		return last
	}
	return host
}

func (s *wsServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.checkOrigin(r) {
		s.refused.WithLabelValues("origin").Inc()
		s.opts.Log.Warn("websocket origin refused", "origin", r.Header.Get("Origin"), "host", r.Host)
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	if !s.authorized(r) {
		s.refused.WithLabelValues("auth").Inc()
		unauthorized(w)
		return
	}
	if n := s.conns.Add(1); n > int64(s.opts.MaxConnections) {
		s.conns.Add(-1)
		s.refused.WithLabelValues("max_connections").Inc()
		w.Header().Set("Retry-After", "5")
		http.Error(w, "too many connections", http.StatusServiceUnavailable)
		return
	}
	ip := s.clientIP(r)
	if lim := s.opts.MaxConnectionsPerIP; lim > 0 {
		s.mu.Lock()
		if s.perIP[ip] >= lim {
			s.mu.Unlock()
			s.conns.Add(-1)
			s.refused.WithLabelValues("per_ip").Inc()
			w.Header().Set("Retry-After", "5")
			http.Error(w, "too many connections from this address", http.StatusServiceUnavailable)
			return
		}
		s.perIP[ip]++
		s.mu.Unlock()
	}
	release := func() {
		s.conns.Add(-1)
		if s.opts.MaxConnectionsPerIP > 0 {
			s.mu.Lock()
			if s.perIP[ip]--; s.perIP[ip] <= 0 {
				delete(s.perIP, ip)
			}
			s.mu.Unlock()
		}
	}
	o := clientOptions(r)
	conn, err := s.upgrader.Upgrade(batching{w}, r, nil)
	if err != nil {
		release()
		return // the upgrader has answered
	}
	// Serve the WebSocket from its own goroutine and return: net/http then
	// frees what it held for the request (buffers, context, the handler
	// goroutine's stack), about half of an idle client's memory.
	go func() {
		defer release()
		_ = s.hub.ServeClient(conn, o)
	}()
}

// batching hands the upgrader a connection on which the hub writes each
// clock tick's messages with one system call (hub.Batching).
type batching struct{ http.ResponseWriter }

func (b batching) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(b.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	return hub.Batching(c), rw, nil
}

// clientOptions reads the protocol a client speaks from ?protocol= (the
// page sends its own; docs/protocol.md). A browser page that names none
// was built for protocol 2, before pages named it: it is told to reload.
// Other clients (no Origin) just get no deltas.
func clientOptions(r *http.Request) hub.ClientOptions {
	p, err := strconv.Atoi(r.URL.Query().Get("protocol"))
	if err != nil {
		return hub.ClientOptions{Outdated: r.Header.Get("Origin") != ""}
	}
	return hub.ClientOptions{Deltas: p >= 3, Outdated: p < hub.Protocol}
}
