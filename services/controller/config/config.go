// Package config is the controller's one configuration struct.
package config

import (
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"playpulse.dev/services/controller/api/v1alpha1"
	"playpulse.dev/services/playback/envconf"
	"playpulse.dev/services/playback/kafkacfg"
	"playpulse.dev/services/playback/ops"
)

// Topic modes (CONTROLLER_TOPIC_MODE).
const (
	TopicModeAuto    = "auto"
	TopicModeStrimzi = "strimzi"
	TopicModeKafka   = "kafka"
)

// Config is everything the controller reads from the environment. The Kafka
// client settings are used in Kafka admin mode, where the controller manages
// topics itself.
type Config struct {
	kafkacfg.Config
	ops.Logging

	Addr          string `envconfig:"CONTROLLER_ADDR" default:":8082" desc:"listen address of /healthz, /readyz and /metrics"`
	KafkaCluster  string `envconfig:"CONTROLLER_KAFKA_CLUSTER" default:"playpulse" desc:"Strimzi Kafka cluster name used when a PlaybackStream names none"`
	ProducerImage string `envconfig:"CONTROLLER_PRODUCER_IMAGE" default:"playpulse/producer:dev" desc:"producer image for PlaybackStreams that do not override it"`

	TopicMode         string        `envconfig:"CONTROLLER_TOPIC_MODE" default:"auto" desc:"how topics are made: strimzi (KafkaTopic resources), kafka (the Kafka admin API at KAFKA_BROKERS or the stream's bootstrapServers), auto (strimzi when the KafkaTopic CRD is installed at start, else kafka)"`
	TopicReadyTimeout time.Duration `envconfig:"CONTROLLER_TOPIC_READY_TIMEOUT" default:"2m" desc:"how long a KafkaTopic may wait for the Strimzi Topic Operator before TopicReady turns False with reason TopicOperatorNotResponding"`
	MaxRatePerReplica int           `envconfig:"CONTROLLER_MAX_RATE_PER_REPLICA" default:"50000" desc:"most events/s one producer pod is given; at most 50000, the per-pod limit the CRD enforces (the producer is proven accurate up to there); a stream whose share is higher is not rolled out and its status says how many replicas it needs"`
	Namespaces        []string      `envconfig:"CONTROLLER_NAMESPACES" desc:"comma-separated namespaces to watch; empty: all namespaces"`

	LeaderElect             bool   `envconfig:"CONTROLLER_LEADER_ELECT" default:"true" desc:"elect a leader through a Lease, so that extra replicas stand by"`
	LeaderElectionNamespace string `envconfig:"CONTROLLER_LEADER_ELECTION_NAMESPACE" desc:"namespace of the leader-election Lease; empty: the pod's own namespace (required outside a cluster)"`
	LeaderElectionID        string `envconfig:"CONTROLLER_LEADER_ELECTION_ID" default:"playpulse-controller" desc:"name of the leader-election Lease"`
	Kubeconfig              string `envconfig:"KUBECONFIG" desc:"kubeconfig file, for running outside a cluster; empty: the in-cluster service account (or ~/.kube/config)"`
	MaxConcurrentReconciles int    `envconfig:"CONTROLLER_MAX_CONCURRENT_RECONCILES" default:"4" desc:"PlaybackStreams reconciled in parallel"`
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
	if errs := validation.IsDNS1123Label(c.KafkaCluster); len(errs) > 0 {
		return envconf.Invalid("CONTROLLER_KAFKA_CLUSTER", "%q is not a Kubernetes name: %s", c.KafkaCluster, strings.Join(errs, "; "))
	}
	if c.ProducerImage == "" {
		return envconf.Invalid("CONTROLLER_PRODUCER_IMAGE", "must not be empty")
	}
	switch c.TopicMode {
	case TopicModeAuto, TopicModeStrimzi, TopicModeKafka:
	default:
		return envconf.Invalid("CONTROLLER_TOPIC_MODE", "%q is not auto, strimzi or kafka", c.TopicMode)
	}
	if c.TopicReadyTimeout < time.Second {
		return envconf.Invalid("CONTROLLER_TOPIC_READY_TIMEOUT", "must be at least 1s, got %s", c.TopicReadyTimeout)
	}
	if c.MaxRatePerReplica < 1 || c.MaxRatePerReplica > v1alpha1.MaxEventsPerSecondPerReplica {
		return envconf.Invalid("CONTROLLER_MAX_RATE_PER_REPLICA", "must be between 1 and %d (the limit the CRD enforces per producer pod), got %d", v1alpha1.MaxEventsPerSecondPerReplica, c.MaxRatePerReplica)
	}
	for _, ns := range c.WatchedNamespaces() {
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return envconf.Invalid("CONTROLLER_NAMESPACES", "%q is not a namespace name: %s", ns, strings.Join(errs, "; "))
		}
	}
	if c.LeaderElectionNamespace != "" {
		if errs := validation.IsDNS1123Label(c.LeaderElectionNamespace); len(errs) > 0 {
			return envconf.Invalid("CONTROLLER_LEADER_ELECTION_NAMESPACE", "%q is not a namespace name: %s", c.LeaderElectionNamespace, strings.Join(errs, "; "))
		}
	}
	if errs := validation.IsDNS1123Subdomain(c.LeaderElectionID); len(errs) > 0 {
		return envconf.Invalid("CONTROLLER_LEADER_ELECTION_ID", "%q is not a Kubernetes name: %s", c.LeaderElectionID, strings.Join(errs, "; "))
	}
	if c.MaxConcurrentReconciles < 1 || c.MaxConcurrentReconciles > 64 {
		return envconf.Invalid("CONTROLLER_MAX_CONCURRENT_RECONCILES", "must be between 1 and 64, got %d", c.MaxConcurrentReconciles)
	}
	return nil
}

// WatchedNamespaces returns CONTROLLER_NAMESPACES trimmed, without empties.
func (c *Config) WatchedNamespaces() []string {
	var out []string
	for _, ns := range c.Namespaces {
		if ns = strings.TrimSpace(ns); ns != "" {
			out = append(out, ns)
		}
	}
	return out
}
