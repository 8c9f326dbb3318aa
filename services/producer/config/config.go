// Package config is the producer's one configuration struct. It is a public
// package so the chart and controller contract tests can check every
// variable they set against what the producer reads.
package config

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"

	"playpulse.dev/services/playback/envconf"
	"playpulse.dev/services/playback/kafkacfg"
	"playpulse.dev/services/playback/ops"
	"playpulse.dev/services/playback/sim"
)

// MaxRate is the highest PRODUCER_RATE one process accepts; the controller
// spreads higher stream rates over replicas.
const MaxRate = 100_000

// Config is everything the producer reads from the environment.
type Config struct {
	kafkacfg.Config
	ops.Logging

	Topic  string  `envconfig:"PRODUCER_TOPIC" default:"playback-events" desc:"Kafka topic to write events to"`
	Rate   float64 `envconfig:"PRODUCER_RATE" default:"100" desc:"target events per second for this process; 0 pauses (stays connected, sends nothing)"`
	Stream string  `envconfig:"PRODUCER_STREAM" default:"default" desc:"stream name written into every event (the PlaybackStream's name)"`
	Addr   string  `envconfig:"PRODUCER_ADDR" default:":8081" desc:"listen address of /healthz, /readyz and /metrics"`
	ID     string  `envconfig:"PRODUCER_ID" desc:"instance id that prefixes session ids; default: host name plus a random suffix, unique per process"`

	// Sim holds the simulator knobs, read as PRODUCER_<knob>.
	Sim sim.Config `envconfig:"PRODUCER"`

	MaxBuffered int `envconfig:"PRODUCER_MAX_BUFFERED" default:"200000" desc:"events generated but not yet acknowledged before the producer stops generating (backpressure while Kafka is slow or down)"`
}

// Validate checks values beyond their types.
func (c *Config) Validate() error {
	if err := c.Config.Validate(); err != nil {
		return err
	}
	if err := c.Logging.Validate(); err != nil {
		return err
	}
	if c.Topic == "" {
		return envconf.Invalid("PRODUCER_TOPIC", "must not be empty")
	}
	if c.Rate < 0 || c.Rate > MaxRate || c.Rate != c.Rate {
		return envconf.Invalid("PRODUCER_RATE", "must be between 0 and %d events per second, got %v", MaxRate, c.Rate)
	}
	if c.Stream == "" {
		return envconf.Invalid("PRODUCER_STREAM", "must not be empty")
	}
	if err := c.Sim.Validate(); err != nil {
		return simError(err)
	}
	if c.MaxBuffered < 1 {
		return envconf.Invalid("PRODUCER_MAX_BUFFERED", "must be at least 1, got %d", c.MaxBuffered)
	}
	return nil
}

// InstanceID returns PRODUCER_ID or, when empty, the host name (the pod name
// in Kubernetes) with a random suffix, so session ids never collide across
// replicas or restarts.
func (c *Config) InstanceID() string {
	if c.ID != "" {
		return c.ID
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "producer"
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return host + "-" + hex.EncodeToString(b[:])
}

// simError turns the simulator's "KNOB must ..." messages into errors that
// name the producer's variable, PRODUCER_KNOB.
func simError(err error) error {
	lines := strings.Split(err.Error(), "\n")
	name, _, _ := strings.Cut(lines[0], " ")
	name = strings.TrimSuffix(name, ":")
	for i := range lines {
		lines[i] = "PRODUCER_" + lines[i]
	}
	return envconf.Invalid("PRODUCER_"+name, "%s", strings.TrimPrefix(strings.Join(lines, "; "), "PRODUCER_"+name+" "))
}
