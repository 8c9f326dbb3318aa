// Package config is the controller's one configuration struct.
package config

import (
	"playpulse.dev/services/playback/envconf"
	"playpulse.dev/services/playback/kafkacfg"
	"playpulse.dev/services/playback/ops"
)

// Config is everything the controller reads from the environment.
type Config struct {
	kafkacfg.Config
	ops.Logging

	Addr          string `envconfig:"CONTROLLER_ADDR" default:":8082" desc:"listen address of /healthz, /readyz and /metrics"`
	KafkaCluster  string `envconfig:"CONTROLLER_KAFKA_CLUSTER" default:"playpulse" desc:"Strimzi Kafka cluster name used when a PlaybackStream names none"`
	ProducerImage string `envconfig:"CONTROLLER_PRODUCER_IMAGE" default:"playpulse/producer:dev" desc:"producer image for PlaybackStreams that do not override it"`
}

// Validate checks values beyond their types.
func (c *Config) Validate() error {
	if err := c.Config.Validate(); err != nil {
		return err
	}
	if err := c.Logging.Validate(); err != nil {
		return err
	}
	if c.KafkaCluster == "" {
		return envconf.Invalid("CONTROLLER_KAFKA_CLUSTER", "must not be empty")
	}
	if c.ProducerImage == "" {
		return envconf.Invalid("CONTROLLER_PRODUCER_IMAGE", "must not be empty")
	}
	return nil
}
