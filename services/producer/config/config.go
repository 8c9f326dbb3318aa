// Package config is the producer's one configuration struct. It is a public
// package so the chart and controller contract tests can check every
// variable they set against what the producer reads.
package config

import (
	"crypto/rand"
	"encoding/hex"
	"os"
	"strings"
	"time"

	"github.com/IBM/sarama"

	"playpulse.dev/services/playback/envconf"
	"playpulse.dev/services/playback/kafkacfg"
	"playpulse.dev/services/playback/ops"
	"playpulse.dev/services/playback/sim"
)

// MaxRate is the highest PRODUCER_RATE one process accepts. What one
// process sustains depends on the machine (make bench measures it; 200,000
// events/s is the target); beyond it the achieved rate falls short of the
// target, which playpulse_producer_achieved_rate shows.
const MaxRate = 1_000_000

// AccurateRate is the highest rate per process at which the rate is proven
// accurate to ±2% (tests/e2e); the controller should spread higher stream
// rates over replicas so that each gets at most this much.
const AccurateRate = 50_000

// Compressions are the accepted values of PRODUCER_COMPRESSION.
var Compressions = map[string]sarama.CompressionCodec{
	"none":   sarama.CompressionNone,
	"snappy": sarama.CompressionSnappy,
	"lz4":    sarama.CompressionLZ4,
	"zstd":   sarama.CompressionZSTD,
}

// Config is everything the producer reads from the environment.
type Config struct {
	kafkacfg.Config
	ops.Logging

	Topic  string  `envconfig:"PRODUCER_TOPIC" default:"playback-events" desc:"Kafka topic to write events to"`
	Rate   float64 `envconfig:"PRODUCER_RATE" default:"100" desc:"target events per second for this process; 0 pauses (stays connected, sends nothing)"`
	Stream string  `envconfig:"PRODUCER_STREAM" default:"default" desc:"stream name written into every event (the PlaybackStream's name)"`
	Addr   string  `envconfig:"PRODUCER_ADDR" default:":8081" desc:"listen address of /healthz, /readyz and /metrics"`
	ID     string  `envconfig:"PRODUCER_ID" desc:"instance id that prefixes session ids and is mixed into PRODUCER_SEED (replicas sharing a seed simulate different viewers); it must differ between processes writing the same topic, restarts included, so leave it empty except to reproduce a run; default: host name plus a random suffix, unique per process"`

	// Sim holds the simulator knobs, read as PRODUCER_<knob>.
	Sim sim.Config `envconfig:"PRODUCER"`

	MaxBuffered int `envconfig:"PRODUCER_MAX_BUFFERED" default:"200000" desc:"events generated but not yet acknowledged before the producer stops generating (backpressure while Kafka is slow or down)"`

	Compression string        `envconfig:"PRODUCER_COMPRESSION" default:"lz4" desc:"record batch compression: none, snappy, lz4 or zstd (lz4: the highest throughput in make bench, 4.6x smaller than none)"`
	Linger      time.Duration `envconfig:"PRODUCER_LINGER" default:"5ms" desc:"longest time an event waits for more to share its batch; not used when PRODUCER_RATE × linger < 1 (no other event would come), so low rates add no latency (0: send each event at once)"`
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
	if _, ok := Compressions[c.Compression]; !ok {
		return envconf.Invalid("PRODUCER_COMPRESSION", "%q is not one of none, snappy, lz4, zstd", c.Compression)
	}
	if c.Linger < 0 || c.Linger > time.Second {
		return envconf.Invalid("PRODUCER_LINGER", "must be between 0 and 1s, got %s", c.Linger)
	}
	return nil
}

// Codec returns the sarama codec of PRODUCER_COMPRESSION.
func (c *Config) Codec() sarama.CompressionCodec { return Compressions[c.Compression] }

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
