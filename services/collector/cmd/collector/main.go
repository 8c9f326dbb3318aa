// Command collector receives real players' CMCD v2 event reports (and
// contract events from custom players) over HTTP and turns them into
// Playpulse contract events in Kafka. Run with -h for its variables.
package main

import (
	"os"

	"playpulse.dev/services/collector/internal/app"
	"playpulse.dev/services/collector/pkg/config"
	"playpulse.dev/services/playback/envconf"
	"playpulse.dev/services/playback/ops"
)

func main() {
	var cfg config.Config
	resolved := envconf.MustLoad("collector", &cfg, os.Args[1:]) // exits 2 on a bad value
	ops.Main("collector", resolved.Log, resolved, app.New)
}
