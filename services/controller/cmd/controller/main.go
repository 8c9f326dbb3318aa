// Command controller reconciles PlaybackStream resources into Kafka topics
// and producer Deployments. Run with -h for its variables.
//
// The reconcilers arrive with the controller issue; until then this binary
// loads and validates its configuration and serves its ops endpoints, so
// packaging and config contract tests have a real target.
package main

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"syscall"

	"playpulse.dev/services/controller/config"
	"playpulse.dev/services/playback/envconf"
	"playpulse.dev/services/playback/ops"
)

func main() {
	var cfg config.Config
	envconf.MustLoad("controller", &cfg, os.Args[1:])
	log := cfg.Logger("controller")

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	srv := ops.NewServer(log)
	srv.AddReadiness("reconcilers", func() error { return errors.New("no reconcilers in this build yet") })
	ln, err := ops.Listen(cfg.Addr)
	if err != nil {
		log.Error("listen", "err", err)
		os.Exit(1)
	}
	if err := srv.Serve(ctx, ln); err != nil {
		log.Error("http server", "err", err)
		os.Exit(1)
	}
}
