// Package config is the controller's one configuration struct and its
// resolve step. It is public (pkg/, not internal/) so that the tests and
// tools modules can read the variables it declares, and it is not config/,
// which holds the kubebuilder manifests (crd/, rbac/).
package config

import (
	"errors"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/IBM/sarama"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

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

	Addr          string `envconfig:"CONTROLLER_ADDR" default:":8082" format:"listen" desc:"listen address of /healthz, /readyz and /metrics"`
	KafkaCluster  string `envconfig:"CONTROLLER_KAFKA_CLUSTER" default:"playpulse" desc:"Strimzi Kafka cluster name used when a PlaybackStream names none"`
	ProducerImage string `envconfig:"CONTROLLER_PRODUCER_IMAGE" default:"playpulse/producer:dev" desc:"producer image for PlaybackStreams that do not override it"`

	TopicMode         string        `envconfig:"CONTROLLER_TOPIC_MODE" default:"auto" desc:"how topics are made: strimzi (KafkaTopic resources), kafka (the Kafka admin API at KAFKA_BROKERS or the stream's bootstrapServers), auto (strimzi when the KafkaTopic CRD is installed at start, else kafka)"`
	TopicReadyTimeout time.Duration `envconfig:"CONTROLLER_TOPIC_READY_TIMEOUT" default:"2m" min:"1s" desc:"how long a KafkaTopic may wait for the Strimzi Topic Operator before TopicReady turns False with reason TopicOperatorNotResponding"`
	MaxRatePerReplica int           `envconfig:"CONTROLLER_MAX_RATE_PER_REPLICA" default:"50000" min:"1" max:"50000" desc:"most events/s one producer pod is given; at most 50000, the per-pod limit the CRD enforces (the producer is proven accurate up to there); a stream whose share is higher is not rolled out and its status says how many replicas it needs"`
	Namespaces        []string      `envconfig:"CONTROLLER_NAMESPACES" desc:"comma-separated namespaces to watch; empty: all namespaces"`

	LeaderElect             bool   `envconfig:"CONTROLLER_LEADER_ELECT" default:"true" desc:"elect a leader through a Lease, so that extra replicas stand by"`
	LeaderElectionNamespace string `envconfig:"CONTROLLER_LEADER_ELECTION_NAMESPACE" desc:"namespace of the leader-election Lease; empty: the pod's own namespace (required outside a cluster)"`
	LeaderElectionID        string `envconfig:"CONTROLLER_LEADER_ELECTION_ID" default:"playpulse-controller" desc:"name of the leader-election Lease"`
	Kubeconfig              string `envconfig:"KUBECONFIG" desc:"kubeconfig file, for running outside a cluster; empty: the in-cluster service account (or ~/.kube/config)"`
	MaxConcurrentReconciles int    `envconfig:"CONTROLLER_MAX_CONCURRENT_RECONCILES" default:"4" min:"1" max:"64" desc:"PlaybackStreams reconciled in parallel"`

	AlertRulesConfigMap string        `envconfig:"CONTROLLER_ALERT_RULES_CONFIGMAP" default:"playpulse-alert-rules" desc:"ConfigMap (key rules.yaml) into which the QoEAlerts of each namespace are rendered, in the fan-out's FANOUT_ALERT_RULES format; the fan-outs of that namespace mount it"`
	FanoutURL           string        `envconfig:"CONTROLLER_FANOUT_URL" desc:"base URL of a fan-out (its Service, e.g. http://playpulse-fanout:8080) whose /api/alerts gives the QoEAlerts' status; empty: the status is not written"`
	FanoutNamespace     string        `envconfig:"CONTROLLER_FANOUT_NAMESPACE" desc:"namespace of the fan-out at CONTROLLER_FANOUT_URL: only its QoEAlerts get a status from it, and its rules ConfigMap is kept even without QoEAlerts so that its fan-outs have a file; empty: the pod's own namespace (required outside a cluster when CONTROLLER_FANOUT_URL is set)"`
	FanoutTokenFile     string        `envconfig:"CONTROLLER_FANOUT_TOKEN_FILE" desc:"file holding the fan-out's bearer token (its FANOUT_AUTH_TOKEN), read at start; empty: no token sent"`
	AlertStatusInterval time.Duration `envconfig:"CONTROLLER_ALERT_STATUS_INTERVAL" default:"10s" min:"1s" max:"10m" desc:"how often the QoEAlerts' status is refreshed from CONTROLLER_FANOUT_URL"`
}

// Validate checks what the tags cannot: names the API server would refuse
// (envconf has validated the embedded Kafka and logging settings first).
func (c *Config) Validate() error {
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
	for _, ns := range c.Namespaces {
		if errs := validation.IsDNS1123Label(ns); len(errs) > 0 {
			return envconf.Invalid("CONTROLLER_NAMESPACES", "%q is not a namespace name: %s", ns, strings.Join(errs, "; "))
		}
	}
	if c.LeaderElectionNamespace != "" {
		if errs := validation.IsDNS1123Label(c.LeaderElectionNamespace); len(errs) > 0 {
			return envconf.Invalid("CONTROLLER_LEADER_ELECTION_NAMESPACE", "%q is not a namespace name: %s", c.LeaderElectionNamespace, strings.Join(errs, "; "))
		}
	}
	if errs := validation.IsDNS1123Subdomain(c.AlertRulesConfigMap); len(errs) > 0 {
		return envconf.Invalid("CONTROLLER_ALERT_RULES_CONFIGMAP", "%q is not a ConfigMap name: %s", c.AlertRulesConfigMap, strings.Join(errs, "; "))
	}
	if c.FanoutURL != "" {
		if u, err := url.Parse(c.FanoutURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
			return envconf.Invalid("CONTROLLER_FANOUT_URL", "%q is not an http(s) URL without a query", c.FanoutURL)
		}
	}
	if c.FanoutNamespace != "" {
		if errs := validation.IsDNS1123Label(c.FanoutNamespace); len(errs) > 0 {
			return envconf.Invalid("CONTROLLER_FANOUT_NAMESPACE", "%q is not a namespace name: %s", c.FanoutNamespace, strings.Join(errs, "; "))
		}
	}
	if errs := validation.IsDNS1123Subdomain(c.LeaderElectionID); len(errs) > 0 {
		return envconf.Invalid("CONTROLLER_LEADER_ELECTION_ID", "%q is not a Kubernetes name: %s", c.LeaderElectionID, strings.Join(errs, "; "))
	}
	return nil
}

// Resolved is what the controller is built from: the configuration as
// loaded and checked, and what is derived from it once, at start.
type Resolved struct {
	Config
	Log    *slog.Logger
	Sarama *sarama.Config // Kafka admin mode's connection settings, files read (kafkacfg)
	// Rest is the connection to the API server: from KUBECONFIG, else the
	// in-cluster service account, else ~/.kube/config.
	Rest *rest.Config
	// LeaseNamespace is where the leader-election Lease lives:
	// CONTROLLER_LEADER_ELECTION_NAMESPACE or, when empty, the pod's own
	// namespace; empty without leader election.
	LeaseNamespace string
	// FanoutNamespace is CONTROLLER_FANOUT_NAMESPACE or, when empty, the
	// pod's own namespace; empty when CONTROLLER_FANOUT_URL is.
	FanoutNamespace string
	// FanoutToken is the content of CONTROLLER_FANOUT_TOKEN_FILE.
	FanoutToken string
}

// inClusterNamespaceFile holds the pod's namespace in a cluster.
const inClusterNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

// Resolve reads the kubeconfig (or the in-cluster service account) and the
// pod's namespace, and builds the logger and the Kafka client settings. It
// does not talk to the API server: whether Strimzi is installed (topic mode
// auto) is found out when the controller is built.
func (c *Config) Resolve() (Resolved, error) {
	r := Resolved{Config: *c, Log: c.Logger("controller")}
	var err error
	if r.Sarama, err = c.Config.Sarama(); err != nil {
		return Resolved{}, err
	}
	if r.Rest, err = restConfig(c.Kubeconfig); err != nil {
		return Resolved{}, err
	}
	r.Rest.UserAgent = "playpulse-controller"
	if r.Rest.QPS == 0 {
		// No client-side rate limit, as controller-runtime's own loader
		// sets: the API server's priority and fairness is the limit.
		r.Rest.QPS = -1
	}
	if c.LeaderElect {
		r.LeaseNamespace = c.LeaderElectionNamespace
		if r.LeaseNamespace == "" {
			b, err := os.ReadFile(inClusterNamespaceFile)
			if err != nil {
				return Resolved{}, envconf.Invalid("CONTROLLER_LEADER_ELECTION_NAMESPACE", "required outside a cluster when CONTROLLER_LEADER_ELECT is true (no %s)", inClusterNamespaceFile)
			}
			r.LeaseNamespace = strings.TrimSpace(string(b))
		}
	}
	if c.FanoutURL != "" {
		r.FanoutNamespace = c.FanoutNamespace
		if r.FanoutNamespace == "" {
			b, err := os.ReadFile(inClusterNamespaceFile)
			if err != nil {
				return Resolved{}, envconf.Invalid("CONTROLLER_FANOUT_NAMESPACE", "required outside a cluster when CONTROLLER_FANOUT_URL is set (no %s)", inClusterNamespaceFile)
			}
			r.FanoutNamespace = strings.TrimSpace(string(b))
		}
		if len(c.Namespaces) > 0 && !slices.Contains(c.Namespaces, r.FanoutNamespace) {
			// The caches hold the watched namespaces only: its QoEAlerts
			// and ConfigMap would be invisible.
			return Resolved{}, envconf.Invalid("CONTROLLER_FANOUT_NAMESPACE", "%s is not among CONTROLLER_NAMESPACES %s", r.FanoutNamespace, strings.Join(c.Namespaces, ","))
		}
	}
	if c.FanoutTokenFile != "" {
		b, err := os.ReadFile(c.FanoutTokenFile)
		if err != nil {
			return Resolved{}, envconf.Invalid("CONTROLLER_FANOUT_TOKEN_FILE", "%v", err)
		}
		if r.FanoutToken = strings.TrimRight(string(b), "\r\n"); r.FanoutToken == "" || strings.ContainsAny(r.FanoutToken, " \t\r\n") {
			return Resolved{}, envconf.Invalid("CONTROLLER_FANOUT_TOKEN_FILE", "%s is empty or holds white space", c.FanoutTokenFile)
		}
	}
	return r, nil
}

// restConfig loads the kubeconfig file named by KUBECONFIG; when empty, the
// in-cluster service account, or outside a cluster ~/.kube/config. Only the
// struct decides: client-go's own look-ups of the KUBECONFIG variable and
// the --kubeconfig flag are not used.
func restConfig(kubeconfig string) (*rest.Config, error) {
	if kubeconfig == "" {
		rc, err := rest.InClusterConfig()
		if err == nil {
			return rc, nil
		}
		if !errors.Is(err, rest.ErrNotInCluster) {
			return nil, envconf.Invalid("KUBECONFIG", "empty, and the in-cluster service account does not work: %v", err)
		}
		home, _ := os.UserHomeDir()
		kubeconfig = filepath.Join(home, ".kube", "config")
		if _, err := os.Stat(kubeconfig); home == "" || err != nil {
			return nil, envconf.Invalid("KUBECONFIG", "required outside a cluster (no in-cluster service account, no ~/.kube/config)")
		}
	}
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(
		&clientcmd.ClientConfigLoadingRules{ExplicitPath: kubeconfig}, &clientcmd.ConfigOverrides{}).ClientConfig()
	if err != nil {
		return nil, envconf.Invalid("KUBECONFIG", "%v", err)
	}
	return rc, nil
}
