// Package server wires the fan-out together: consume → aggregate and hub →
// web. It is a package rather than main so black-box tests can run a whole
// fan-out in-process.
package server

import (
	"context"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"playpulse.dev/services/fanout/config"
	"playpulse.dev/services/fanout/internal/aggregate"
	"playpulse.dev/services/fanout/internal/consume"
	"playpulse.dev/services/fanout/internal/hub"
	"playpulse.dev/services/fanout/internal/web"
	"playpulse.dev/services/playback/ops"
)

// Server is one fan-out.
type Server struct {
	cfg  config.Config
	log  *slog.Logger
	ops  *ops.Server
	cons *consume.Consumer
	agg  *aggregate.Aggregator
	hub  *hub.Hub
	rate prometheus.Gauge
}

// New builds a fan-out from its configuration.
func New(cfg config.Config, log *slog.Logger) (*Server, error) {
	sc, err := cfg.Sarama()
	if err != nil {
		return nil, err
	}
	o := ops.NewServer(log)
	reg := o.Registry()
	s := &Server{cfg: cfg, log: log, ops: o}
	s.agg = aggregate.New(aggregate.Options{
		MaxSessions: cfg.MaxSessions, SessionTimeout: cfg.SessionTimeout, MaxStreams: cfg.MaxStreams,
		Registerer: reg, Log: log,
	})
	s.hub = hub.New(hub.Options{
		TailRate: cfg.TailRate, FrameHz: cfg.FrameHz, SnapshotHz: cfg.SnapshotHz, WriteTimeout: cfg.WriteTimeout,
		RingSize: cfg.TailBuffer, ResumeWindow: cfg.ResumeWindow,
		Full: func() []byte { return s.snapshot(time.Now(), true) },
		Log:  log, Registerer: reg,
	})
	s.cons = consume.New(sc, cfg.BrokerList(), consume.Options{
		Topics: cfg.Topics, Pattern: cfg.Pattern(), Warmup: cfg.Warmup, Refresh: cfg.DiscoveryInterval, StaleAfter: cfg.StaleAfter,
		OnPartition: s.hub.PartitionStarted, Log: log, Registerer: reg,
	})
	s.rate = prometheus.NewGauge(prometheus.GaugeOpts{Name: "playpulse_fanout_events_per_second", Help: "Valid events per second over the last 10 complete seconds, by record timestamp."})
	reg.MustRegister(s.rate)
	o.AddReadiness("kafka", s.cons.Ready)
	web.Mount(o, s.hub, web.Options{
		AllowedOrigins: cfg.AllowedOrigins, MaxConnections: cfg.MaxConnections, MaxConnectionsPerIP: cfg.MaxConnectionsPerIP,
		TrustedProxies: cfg.Proxies(), AuthToken: cfg.Token(), Streams: func() any { return s.agg.Streams(time.Now()) },
		Log: log, Registerer: reg,
	})
	return s, nil
}

// Run serves on cfg.Addr until ctx ends.
func (s *Server) Run(ctx context.Context) error {
	ln, err := ops.Listen(s.cfg.Addr)
	if err != nil {
		return err
	}
	return s.Serve(ctx, ln)
}

// Serve serves on ln until ctx ends, then closes every WebSocket with 1001
// and stops.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	s.log.Info("fanout starting", "addr", ln.Addr().String(), "topics", s.cfg.Topics, "pattern", s.cfg.TopicPattern, "brokers", s.cfg.Brokers)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_ = s.cons.Run(ctx, func(rs []consume.Record) {
			s.agg.AddBatch(rs)
			s.hub.PublishBatch(rs)
		})
	}()
	go func() { defer wg.Done(); s.snapshots(ctx) }()
	httpErr := make(chan error, 1)
	go func() { httpErr <- s.ops.Serve(ctx, ln) }()
	<-ctx.Done()
	s.hub.Close()
	err := <-httpErr
	wg.Wait()
	return err
}

// snapshot computes one snapshot with the source state and encodes it.
func (s *Server) snapshot(now time.Time, full bool) []byte {
	st := s.cons.Status()
	if st.State == consume.StateStale {
		s.agg.SetStale(st.Since)
	} else {
		s.agg.SetStale(time.Time{})
	}
	snap := s.agg.Snapshot(now, full)
	snap.Stale = st.State == consume.StateStale
	snap.Source = aggregate.Source{State: st.State, Since: st.Since.UnixMilli(), Message: st.Message, Partitions: st.Partitions, Lag: st.Lag}
	if !full {
		s.rate.Set(float64(snap.EventsPerSec))
	}
	return snap.JSON()
}

func (s *Server) snapshots(ctx context.Context) {
	t := time.NewTicker(time.Second / time.Duration(s.cfg.SnapshotHz))
	defer t.Stop()
	for {
		if err := s.hub.SetSnapshot(s.snapshot(time.Now(), false)); err != nil {
			s.log.Error("snapshot", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
