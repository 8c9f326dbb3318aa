// Package config is the fan-out's one configuration struct, public so that
// contract tests can compare it with what the chart and scripts set.
package config

import (
	"net/url"
	"strings"
	"time"

	"playpulse.dev/services/playback/envconf"
	"playpulse.dev/services/playback/kafkacfg"
	"playpulse.dev/services/playback/ops"
)

// Config is everything the fan-out reads from the environment.
type Config struct {
	kafkacfg.Config
	ops.Logging

	Addr           string        `envconfig:"FANOUT_ADDR" default:":8080" desc:"listen address of the dashboard, /ws, /api and the ops endpoints"`
	Topics         []string      `envconfig:"FANOUT_TOPICS" default:"playback-events" desc:"comma-separated topics to serve; every replica reads every partition of each"`
	AllowedOrigins []string      `envconfig:"FANOUT_ALLOWED_ORIGINS" desc:"extra origins allowed to open /ws (scheme://host[:port]); same-origin is always allowed"`
	TailRate       int           `envconfig:"FANOUT_TAIL_RATE" default:"200" desc:"most live-tail events per second sent to one browser; the rest are counted as skipped"`
	FrameHz        int           `envconfig:"FANOUT_FRAME_HZ" default:"10" desc:"most tail frames per second sent to one browser (events are batched)"`
	WriteTimeout   time.Duration `envconfig:"FANOUT_WRITE_TIMEOUT" default:"10s" desc:"a browser that accepts no data for this long is disconnected"`
	Warmup         time.Duration `envconfig:"FANOUT_WARMUP" default:"5m" desc:"on start, replay each partition from this far back so charts are full at once (0 = start at the end)"`
	SnapshotHz     int           `envconfig:"FANOUT_SNAPSHOT_HZ" default:"4" desc:"snapshots per second, encoded once and shared by all browsers"`
	MaxConnections int           `envconfig:"FANOUT_MAX_CONNECTIONS" default:"10000" desc:"most concurrent WebSocket clients; more are answered 503"`
}

// Validate checks values beyond their types.
func (c *Config) Validate() error {
	if err := c.Config.Validate(); err != nil {
		return err
	}
	if err := c.Logging.Validate(); err != nil {
		return err
	}
	if len(c.Topics) == 0 {
		return envconf.Invalid("FANOUT_TOPICS", "must list at least one topic")
	}
	for _, t := range c.Topics {
		if strings.TrimSpace(t) == "" {
			return envconf.Invalid("FANOUT_TOPICS", "contains an empty topic name")
		}
	}
	for _, o := range c.AllowedOrigins {
		u, err := url.Parse(o)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return envconf.Invalid("FANOUT_ALLOWED_ORIGINS", "%q is not scheme://host[:port]", o)
		}
	}
	if c.TailRate < 1 {
		return envconf.Invalid("FANOUT_TAIL_RATE", "must be at least 1, got %d", c.TailRate)
	}
	if c.FrameHz < 1 || c.FrameHz > 60 {
		return envconf.Invalid("FANOUT_FRAME_HZ", "must be between 1 and 60, got %d", c.FrameHz)
	}
	if c.WriteTimeout < time.Second {
		return envconf.Invalid("FANOUT_WRITE_TIMEOUT", "must be at least 1s, got %s", c.WriteTimeout)
	}
	if c.Warmup < 0 {
		return envconf.Invalid("FANOUT_WARMUP", "must not be negative, got %s", c.Warmup)
	}
	if c.SnapshotHz < 1 || c.SnapshotHz > 20 {
		return envconf.Invalid("FANOUT_SNAPSHOT_HZ", "must be between 1 and 20, got %d", c.SnapshotHz)
	}
	if c.MaxConnections < 1 {
		return envconf.Invalid("FANOUT_MAX_CONNECTIONS", "must be at least 1, got %d", c.MaxConnections)
	}
	return nil
}
