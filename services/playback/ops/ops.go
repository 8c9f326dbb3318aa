// Package ops is the operational surface every Playpulse service shares:
// liveness and readiness endpoints, Prometheus metrics, JSON logs and a
// graceful shutdown bounded in time.
package ops

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"playpulse.dev/services/playback/envconf"
)

// ShutdownTimeout bounds how long Serve waits for in-flight requests after
// the context ends. Services must exit within 10 s of SIGTERM, and they have
// their own draining (producer flush, WebSocket close) in that budget too.
const ShutdownTimeout = 5 * time.Second

// Logging is the logging part of every service's config.
type Logging struct {
	LogLevel string `envconfig:"LOG_LEVEL" default:"info" desc:"debug, info, warn or error; logs are JSON lines on stderr"`
}

// Validate rejects unknown levels.
func (l *Logging) Validate() error {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(l.LogLevel)); err != nil {
		return envconf.Invalid("LOG_LEVEL", "%q is not debug, info, warn or error", l.LogLevel)
	}
	return nil
}

// Logger returns a JSON logger on stderr tagged with the service name.
func (l *Logging) Logger(service string) *slog.Logger {
	var lv slog.Level
	_ = lv.UnmarshalText([]byte(l.LogLevel)) // validated at load
	return slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: lv})).With("service", service)
}

// Server serves /healthz, /readyz and /metrics, plus whatever the service
// mounts on it.
type Server struct {
	mux    *http.ServeMux
	reg    *prometheus.Registry
	log    *slog.Logger
	mu     sync.Mutex
	checks []check
}

type check struct {
	name string
	fn   func() error
}

// NewServer returns a server with Go, process and build-info metrics
// registered. Every service builds its one Server at startup, so this is
// also where the build is logged.
func NewServer(log *slog.Logger) *Server {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), BuildInfo())
	log.Info("build", "version", Version, "revision", Revision, "goversion", runtime.Version())
	s := &Server{mux: http.NewServeMux(), reg: reg, log: log}
	s.mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	s.mux.HandleFunc("GET /readyz", s.readyz)
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
	return s
}

// Registry is where the service registers its metrics.
func (s *Server) Registry() *prometheus.Registry { return s.reg }

// Handle mounts a handler, with net/http pattern syntax.
func (s *Server) Handle(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// Handler returns the server's root handler (for tests and embedding).
func (s *Server) Handler() http.Handler { return s.mux }

// AddReadiness adds a check to /readyz. fn must be cheap: it runs on every
// probe, so it should read state the service keeps, not dial anything.
func (s *Server) AddReadiness(name string, fn func() error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks = append(s.checks, check{name, fn})
}

func (s *Server) readyz(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	checks := s.checks
	s.mu.Unlock()
	failing := map[string]string{}
	for _, c := range checks {
		if err := c.fn(); err != nil {
			failing[c.name] = err.Error()
		}
	}
	w.Header().Set("Content-Type", "application/json")
	if len(failing) > 0 {
		w.WriteHeader(http.StatusServiceUnavailable)
		_ = json.NewEncoder(w).Encode(map[string]any{"ready": false, "failing": failing})
		return
	}
	_ = json.NewEncoder(w).Encode(map[string]any{"ready": true})
}

// Listen opens addr; split from Serve so callers learn the real port of ":0"
// before serving.
func Listen(addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", addr, err)
	}
	return ln, nil
}

// Serve serves on ln until ctx ends, then shuts down gracefully within
// ShutdownTimeout. Hijacked connections (WebSockets) are the caller's to
// close.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	return Serve(ctx, ln, s.mux, s.log)
}

// Serve serves h on ln like Server.Serve, for a service that builds its
// own handler (the controller serves controller-runtime's metrics).
func Serve(ctx context.Context, ln net.Listener, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("http listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), ShutdownTimeout)
	defer cancel()
	err := srv.Shutdown(sctx)
	<-errc
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return nil
}

// NotReady is a readiness error with a reason a person can act on.
func NotReady(format string, args ...any) error {
	return errors.New(strings.TrimSpace(fmt.Sprintf(format, args...)))
}
