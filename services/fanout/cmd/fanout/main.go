// Command fanout consumes every partition of the served topics, keeps live
// statistics, and pushes them with a filtered live event tail to browsers
// over WebSockets. Run with -h for its variables.
package main

import (
	"os"

	"playpulse.dev/services/fanout/internal/app"
	"playpulse.dev/services/fanout/pkg/config"
	"playpulse.dev/services/playback/envconf"
	"playpulse.dev/services/playback/ops"
)

func main() {
	var cfg config.Config
	resolved := envconf.MustLoad("fanout", &cfg, os.Args[1:]) // exits 2 on a bad value
	ops.Main("fanout", resolved.Log, resolved, app.New)
}
