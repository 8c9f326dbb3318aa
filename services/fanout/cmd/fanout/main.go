// Command fanout consumes every partition of the served topics, keeps live
// statistics, and pushes them with a filtered live event tail to browsers
// over WebSockets. Run with -h for its variables.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"playpulse.dev/services/fanout/config"
	"playpulse.dev/services/fanout/internal/server"
	"playpulse.dev/services/playback/envconf"
)

func main() {
	var cfg config.Config
	envconf.MustLoad("fanout", &cfg, os.Args[1:])
	log := cfg.Logger("fanout")

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	srv, err := server.New(cfg, log)
	if err != nil {
		log.Error("fanout config", "err", err)
		os.Exit(envconf.ExitInvalid)
	}
	if err := srv.Run(ctx); err != nil {
		log.Error("fanout failed", "err", err)
		os.Exit(1)
	}
}
