// Package app builds the collector from its resolved configuration and
// runs its roles: the HTTP edge (ingest) and the sessionizer, beside the
// ops endpoints.
package app

import (
	"context"
	"runtime/debug"
	"time"

	"playpulse.dev/services/collector/internal/ingest"
	"playpulse.dev/services/collector/internal/sessionize"
	"playpulse.dev/services/collector/internal/sessions"
	"playpulse.dev/services/collector/pkg/config"
	"playpulse.dev/services/playback/ops"
)

// flushTimeout bounds the edge's flush of accepted reports on shutdown;
// with the HTTP drain (ops.ShutdownTimeout) it fits the 10 s a pod gets.
const flushTimeout = 4 * time.Second

// App is one collector process.
type App struct {
	cfg  config.Resolved
	ops  *ops.Server
	edge *ingest.Edge
	sz   *sessionize.Sessionizer
}

// gcPercent is the collector's GC target. Its live heap is small and
// bounded (the send buffer, the sessions, the rate limiter) while it
// allocates a little for every report, so the default (100) spent about a
// sixth of its CPU collecting: four times the live heap in garbage costs a
// few MB and most of that CPU (make bench). A GOGC the operator set wins.
const gcPercent = 400

// New builds the collector; it touches neither the network nor the disk.
func New(cfg config.Resolved) (*App, error) {
	if prev := debug.SetGCPercent(gcPercent); prev != 100 {
		debug.SetGCPercent(prev)
	}
	o := ops.NewServer(cfg.Log)
	a := &App{cfg: cfg, ops: o}
	health := cfg.NewHealth(cfg.Log, o.Registry())
	if cfg.Ingest {
		// Each role has its own copy of the Kafka settings: they configure
		// different clients on it.
		sc := *cfg.Sarama
		a.edge = ingest.New(&sc, cfg.Brokers, ingest.Options{
			IntakeTopic: cfg.IntakeTopic, EventsTopic: cfg.EventsTopic, DefaultStream: cfg.DefaultStream,
			AllowedOrigins: cfg.AllowedOrigins, TrustedProxies: cfg.Proxies, CountryHeader: cfg.CountryHeader,
			UserIDKey: cfg.UserIDKey, MaxBodyBytes: cfg.MaxBodyBytes, MaxLines: cfg.MaxLines, MaxLineBytes: cfg.MaxLineBytes,
			RateLimit: cfg.RateLimit, RateBurst: cfg.RateBurst, RateAddresses: cfg.RateAddresses,
			MaxBuffered: cfg.MaxBuffered, DeliveryTimeout: cfg.DeliveryTimeout, TSTolerance: cfg.TSTolerance,
			ValidStream: config.ValidStream, Health: health, Log: cfg.Log, Registerer: o.Registry(),
		})
		a.edge.Mount(o)
		o.AddReadiness("kafka_ingest", a.edge.Producer().Ready)
	}
	if cfg.Sessionize {
		sc := *cfg.Sarama
		a.sz = sessionize.New(&sc, cfg.Brokers, sessionize.Options{
			IntakeTopic: cfg.IntakeTopic, EventsTopic: cfg.EventsTopic, Group: cfg.Group,
			UserIDKey: cfg.UserIDKey, MaxLineBytes: cfg.MaxLineBytes,
			Sessions: sessions.Options{ReorderWindow: cfg.ReorderWindow, Inactivity: cfg.InactivityTimeout,
				StoppedTTL: cfg.StoppedTTL, MaxSessions: cfg.MaxSessions},
			Lookback: cfg.RebuildLookback, TSTolerance: cfg.TSTolerance, CommitInterval: cfg.CommitInterval,
			Health: health, Log: cfg.Log, Registerer: o.Registry(),
		})
		o.AddReadiness("kafka_sessionize", a.sz.Ready)
	}
	return a, nil
}

// Run listens on COLLECTOR_ADDR and runs the roles until ctx ends. Then the
// HTTP server drains first (requests in progress finish), the edge flushes
// what it accepted, and the sessionizer commits its open transactions.
func (a *App) Run(ctx context.Context) error {
	ln, err := ops.Listen(a.cfg.Addr)
	if err != nil {
		return err
	}
	c := a.cfg
	c.Log.Info("collector starting", "addr", ln.Addr().String(), "roles", c.Roles, "intake_topic", c.IntakeTopic,
		"events_topic", c.EventsTopic, "group", c.Group, "brokers", c.Brokers)
	prodCtx, stopProd := context.WithCancel(context.WithoutCancel(ctx))
	defer stopProd()
	if a.edge != nil {
		go a.edge.Run(prodCtx, flushTimeout)
	}
	szDone := make(chan error, 1)
	if a.sz != nil {
		go func() { szDone <- a.sz.Run(ctx) }()
	} else {
		szDone <- nil
	}
	err = a.ops.Serve(ctx, ln)
	stopProd()
	if a.edge != nil {
		<-a.edge.Producer().Done()
	}
	if serr := <-szDone; serr != nil && err == nil {
		err = serr
	}
	return err
}
