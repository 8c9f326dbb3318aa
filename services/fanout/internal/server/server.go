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
}

// New builds a fan-out from its configuration.
func New(cfg config.Config, log *slog.Logger) (*Server, error) {
	sc, err := cfg.Sarama()
	if err != nil {
		return nil, err
	}
	o := ops.NewServer(log)
	s := &Server{cfg: cfg, log: log, ops: o, agg: aggregate.New()}
	s.cons = consume.New(sc, cfg.BrokerList(), consume.Options{
		Topics: cfg.Topics, Warmup: cfg.Warmup, Log: log, Registerer: o.Registry(),
	})
	s.hub = hub.New(hub.Options{
		TailRate: cfg.TailRate, FrameHz: cfg.FrameHz, WriteTimeout: cfg.WriteTimeout,
		Log: log, Registerer: o.Registry(),
	})
	o.AddReadiness("kafka", s.cons.Ready)
	web.Mount(o, s.hub, web.Options{AllowedOrigins: cfg.AllowedOrigins, MaxConnections: cfg.MaxConnections, Log: log})
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
	s.log.Info("fanout starting", "addr", ln.Addr().String(), "topics", s.cfg.Topics, "brokers", s.cfg.Brokers)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		_ = s.cons.Run(ctx, func(r *consume.Record) {
			s.agg.Add(r)
			s.hub.Publish(r)
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

func (s *Server) snapshots(ctx context.Context) {
	t := time.NewTicker(time.Second / time.Duration(s.cfg.SnapshotHz))
	defer t.Stop()
	for {
		if err := s.hub.SetSnapshot(s.agg.Snapshot(time.Now()).JSON()); err != nil {
			s.log.Error("snapshot", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
