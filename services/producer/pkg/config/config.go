// Package config is the producer's one configuration struct and its
// resolve step. It is public (pkg/, not internal/) so that the tests and
// tools modules can read the variables it declares: the chart and
// controller contract tests, -h tests, and the README tables.
package config

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"os"
	"time"

	"github.com/IBM/sarama"

	"playpulse.dev/services/playback/envconf"
	"playpulse.dev/services/playback/kafkacfg"
	"playpulse.dev/services/playback/ops"
	"playpulse.dev/services/playback/sim"
)

// MaxRate is the highest PRODUCER_RATE one process accepts (the max tag on
// Rate says the same; a test keeps them equal). What one process sustains
// depends on the machine (make bench measures it; 200,000 events/s is the
// target); beyond it the achieved rate falls short of the target, which
// playpulse_producer_achieved_rate shows.
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
	Rate   float64 `envconfig:"PRODUCER_RATE" default:"100" min:"0" max:"1000000" desc:"target events per second for this process; 0 pauses (stays connected, sends nothing)"`
	Stream string  `envconfig:"PRODUCER_STREAM" default:"default" desc:"stream name written into every event (the PlaybackStream's name)"`
	Addr   string  `envconfig:"PRODUCER_ADDR" default:":8081" format:"listen" desc:"listen address of /healthz, /readyz and /metrics"`
	ID     string  `envconfig:"PRODUCER_ID" desc:"instance id that prefixes session ids and is mixed into PRODUCER_SEED (replicas sharing a seed simulate different viewers); it must differ between processes writing the same topic, restarts included, so leave it empty except to reproduce a run; default: host name plus a random suffix, unique per process"`

	// Sim holds the simulator knobs, read as PRODUCER_<knob>.
	Sim sim.Config `envconfig:"PRODUCER"`

	MaxBuffered int `envconfig:"PRODUCER_MAX_BUFFERED" default:"200000" min:"1" desc:"events generated but not yet acknowledged before the producer stops generating (backpressure while Kafka is slow or down)"`

	Compression string        `envconfig:"PRODUCER_COMPRESSION" default:"lz4" desc:"record batch compression: none, snappy, lz4 or zstd (lz4: the highest throughput in make bench, 4.6x smaller than none)"`
	Linger      time.Duration `envconfig:"PRODUCER_LINGER" default:"5ms" min:"0" max:"1s" desc:"longest time an event waits for more to share its batch; not used when PRODUCER_RATE × linger < 1 (no other event would come), so low rates add no latency (0: send each event at once)"`
}

// Validate checks what the tags cannot (envconf has validated the embedded
// Kafka and logging settings first).
func (c *Config) Validate() error {
	if c.Topic == "" {
		return envconf.Invalid("PRODUCER_TOPIC", "must not be empty")
	}
	if c.Stream == "" {
		return envconf.Invalid("PRODUCER_STREAM", "must not be empty")
	}
	if _, err := sim.ParseDeviceMix(c.Sim.DeviceMix); err != nil {
		return envconf.Invalid("PRODUCER_DEVICE_MIX", "%v", err)
	}
	if _, err := sim.ParseIncidents(c.Sim.Incidents); err != nil {
		return envconf.Invalid("PRODUCER_INCIDENTS", "%v", err)
	}
	if _, ok := Compressions[c.Compression]; !ok {
		return envconf.Invalid("PRODUCER_COMPRESSION", "%q is not one of none, snappy, lz4, zstd", c.Compression)
	}
	return nil
}

// Resolved is what the producer is built from: the configuration as loaded
// and checked, and what is derived from it once, at start.
type Resolved struct {
	Config
	Log    *slog.Logger
	Sarama *sarama.Config // the connection settings, files read (kafkacfg)
	Codec  sarama.CompressionCodec
	// Instance is PRODUCER_ID or, when empty, the host name (the pod name
	// in Kubernetes) with a random suffix, so session ids never collide
	// across replicas or restarts.
	Instance string
}

// Resolve builds the logger and the Kafka client settings (reading the TLS
// and SASL files) and picks the instance id.
func (c *Config) Resolve() (Resolved, error) {
	sc, err := c.Config.Sarama()
	if err != nil {
		return Resolved{}, err
	}
	r := Resolved{Config: *c, Log: c.Logger("producer"), Sarama: sc, Codec: Compressions[c.Compression], Instance: c.ID}
	if r.Instance == "" {
		host, err := os.Hostname()
		if err != nil || host == "" {
			host = "producer"
		}
		var b [4]byte
		_, _ = rand.Read(b[:])
		r.Instance = host + "-" + hex.EncodeToString(b[:])
	}
	return r, nil
}
