// Command producer simulates viewing sessions and publishes their events to
// Kafka at PRODUCER_RATE events per second. Run with -h for its variables.
package main

import (
	"os"

	"playpulse.dev/services/playback/envconf"
	"playpulse.dev/services/playback/ops"
	"playpulse.dev/services/producer/internal/app"
	"playpulse.dev/services/producer/pkg/config"
)

func main() {
	var cfg config.Config
	resolved := envconf.MustLoad("producer", &cfg, os.Args[1:]) // exits 2 on a bad value
	ops.Main("producer", resolved.Log, resolved, app.New)
}
