// Command controller reconciles PlaybackStream resources into Kafka topics
// (Strimzi KafkaTopics, or directly through the Kafka admin API) and
// producer Deployments, and QoEAlert resources into the rules ConfigMap
// the fan-outs evaluate, with their status from a fan-out's /api/alerts.
// Run with -h for its variables.
package main

import (
	"os"

	"playpulse.dev/services/controller/internal/app"
	"playpulse.dev/services/controller/pkg/config"
	"playpulse.dev/services/playback/envconf"
	"playpulse.dev/services/playback/ops"
)

func main() {
	var cfg config.Config
	resolved := envconf.MustLoad("controller", &cfg, os.Args[1:]) // exits 2 on a bad value
	ops.Main("controller", resolved.Log, resolved, app.New)
}
