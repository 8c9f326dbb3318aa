// Command producer simulates viewing sessions and publishes their events to
// Kafka at PRODUCER_RATE events per second. Run with -h for its variables.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"playpulse.dev/services/playback/envconf"
	"playpulse.dev/services/playback/ops"
	"playpulse.dev/services/playback/sim"
	"playpulse.dev/services/producer/config"
	"playpulse.dev/services/producer/internal/publish"
)

func main() {
	var cfg config.Config
	envconf.MustLoad("producer", &cfg, os.Args[1:])
	log := cfg.Logger("producer")

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	sc, err := cfg.Sarama()
	if err != nil {
		log.Error("kafka config", "err", err)
		os.Exit(envconf.ExitInvalid)
	}
	// The instance id is random per process unless PRODUCER_ID is set, and
	// the simulator mixes it into its seed: it is logged with the seed so
	// that a run can be reproduced.
	instance := cfg.InstanceID()
	source, err := sim.New(cfg.Sim, cfg.Stream, instance)
	if err != nil {
		log.Error("simulator config", "err", err)
		os.Exit(envconf.ExitInvalid)
	}
	srv := ops.NewServer(log)
	pub := publish.New(sc, cfg.BrokerList(), source, publish.Options{
		Topic: cfg.Topic, Rate: cfg.Rate, MaxBuffered: cfg.MaxBuffered,
		Compression: cfg.Codec(), Linger: cfg.Linger,
		Log: log, Registerer: srv.Registry(),
	})
	srv.AddReadiness("kafka", pub.Ready)
	ln, err := ops.Listen(cfg.Addr)
	if err != nil {
		log.Error("listen", "err", err)
		os.Exit(1)
	}
	log.Info("producer starting", "topic", cfg.Topic, "rate", cfg.Rate, "stream", cfg.Stream, "brokers", cfg.Brokers,
		"compression", cfg.Compression, "linger", publish.EffectiveLinger(cfg.Linger, cfg.Rate), "daily_profile", cfg.Sim.DailyProfile, "seed", source.Seed(), "instance", instance)

	httpDone := make(chan error, 1)
	go func() { httpDone <- srv.Serve(ctx, ln) }()
	if err := pub.Run(ctx); err != nil {
		log.Error("producer failed", "err", err)
		stop()
		<-httpDone
		os.Exit(1)
	}
	stop()
	if err := <-httpDone; err != nil {
		log.Error("http server", "err", err)
		os.Exit(1)
	}
}
