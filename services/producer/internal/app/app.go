// Package app builds the producer from its resolved configuration and runs
// it: the simulator, the publisher that paces its events into Kafka, and
// the ops server (/healthz, /readyz, /metrics).
package app

import (
	"context"

	"playpulse.dev/services/playback/ops"
	"playpulse.dev/services/playback/sim"
	"playpulse.dev/services/producer/internal/publish"
	"playpulse.dev/services/producer/pkg/config"
)

// App is one producer process.
type App struct {
	cfg config.Resolved
	ops *ops.Server
	sim *sim.Sim
	pub *publish.Publisher
}

// New builds the producer; it touches neither the network nor the disk.
func New(cfg config.Resolved) (*App, error) {
	// The instance id is random per process unless PRODUCER_ID is set, and
	// the simulator mixes it into its seed: Run logs both, so that a run
	// can be reproduced.
	source, err := sim.New(cfg.Sim, cfg.Stream, cfg.Instance)
	if err != nil {
		return nil, err
	}
	srv := ops.NewServer(cfg.Log)
	pub := publish.New(cfg.Sarama, cfg.Brokers, source, publish.Options{
		Topic: cfg.Topic, Rate: cfg.Rate, MaxBuffered: cfg.MaxBuffered,
		Compression: cfg.Codec, Linger: cfg.Linger,
		Log: cfg.Log, Registerer: srv.Registry(), Health: cfg.NewHealth(cfg.Log, srv.Registry()),
	})
	srv.AddReadiness("kafka", pub.Ready)
	return &App{cfg: cfg, ops: srv, sim: source, pub: pub}, nil
}

// Run listens on PRODUCER_ADDR and publishes until ctx ends, then flushes
// what Kafka has not acknowledged yet and stops serving.
func (a *App) Run(ctx context.Context) error {
	ln, err := ops.Listen(a.cfg.Addr)
	if err != nil {
		return err
	}
	c := a.cfg
	c.Log.Info("producer starting", "topic", c.Topic, "rate", c.Rate, "stream", c.Stream, "brokers", c.Brokers,
		"compression", c.Compression, "linger", publish.EffectiveLinger(c.Linger, c.Rate), "daily_profile", c.Sim.DailyProfile,
		"seed", a.sim.Seed(), "instance", c.Instance, "incidents", len(a.sim.Incidents()))
	for _, in := range a.sim.Incidents() {
		c.Log.Info("incident scheduled", "incident", in.String())
	}
	// The server drains while the publisher flushes: both fit in the 10 s
	// a pod is given after SIGTERM.
	httpDone := make(chan error, 1)
	go func() { httpDone <- a.ops.Serve(ctx, ln) }()
	a.pub.Run(ctx)
	return <-httpDone
}
