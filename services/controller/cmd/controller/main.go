// Command controller reconciles PlaybackStream resources into Kafka topics
// (Strimzi KafkaTopics, or directly through the Kafka admin API) and
// producer Deployments. Run with -h for its variables.
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"playpulse.dev/services/controller/config"
	"playpulse.dev/services/controller/internal/app"
	"playpulse.dev/services/playback/envconf"
)

func main() {
	var cfg config.Config
	envconf.MustLoad("controller", &cfg, os.Args[1:])
	log := cfg.Logger("controller")

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	if err := app.Run(ctx, &cfg, log); err != nil {
		var ve *envconf.VarError
		if errors.As(err, &ve) {
			fmt.Fprintf(os.Stderr, "controller: invalid configuration: %v\n", err)
			os.Exit(envconf.ExitInvalid)
		}
		log.Error("controller failed", "err", err)
		os.Exit(1)
	}
}
