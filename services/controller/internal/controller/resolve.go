// Package controller reconciles PlaybackStreams. One small reconciler per
// concern, called in order by StreamReconciler:
//
//   - the topic reconciler (topic_strimzi.go or topic_kafka.go) makes the
//     Kafka topic exist with the asked partitions and settings, and applies
//     the deletion policy on deletion;
//   - the producer reconciler (producer.go) applies the producer Deployment;
//   - the status computation (status.go) turns what both observed into the
//     stream's conditions, a pure function tested with an injected clock.
//
// Everything is applied with server-side apply under one field manager, so
// applying the same spec twice changes nothing and causes no events.
package controller

import (
	"strconv"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"playpulse.dev/services/controller/api/v1alpha1"
	"playpulse.dev/services/playback/sim"
)

// FieldManager is the server-side apply field manager of everything the
// controller writes.
const FieldManager = "playpulse-controller"

// Options are the controller-wide settings a reconcile needs (from the
// controller's config).
type Options struct {
	// KafkaCluster is the Strimzi cluster of streams that name none.
	KafkaCluster string
	// DefaultBrokers are the bootstrap brokers in Kafka admin mode for
	// streams that name none (the controller's KAFKA_BROKERS).
	DefaultBrokers []string
	// ProducerImage is the image of streams that name none.
	ProducerImage string
	// MaxRatePerReplica is the most events/s one producer pod is given.
	MaxRatePerReplica int
	// TopicReadyTimeout is how long to wait for the Topic Operator.
	TopicReadyTimeout time.Duration
	// Explain turns a Kafka connection error into one that names its cause
	// and the setting to fix (kafkacfg.Config.Explain), for the stream's
	// TopicReady message in Kafka mode; nil: errors as they are.
	Explain func(error) error
}

// Common labels of everything the controller makes.
const (
	labelName      = "app.kubernetes.io/name"
	labelComponent = "app.kubernetes.io/component"
	labelManagedBy = "app.kubernetes.io/managed-by"
	labelPartOf    = "app.kubernetes.io/part-of"

	componentProducer = "producer"
	managedBy         = "playpulse-controller"
)

// effective is a stream's spec with every default resolved: what the
// reconcilers act on.
type effective struct {
	Stream    string
	Namespace string

	TopicName         string
	KafkaTopic        string // the KafkaTopic resource's name (Strimzi mode)
	Cluster           string
	Brokers           string // for the producers (and the admin client)
	Partitions        int32
	ReplicationFactor *int32
	RetentionMs       *int64
	DeletionPolicy    v1alpha1.DeletionPolicy

	Rate     int64
	Replicas int32
	Share    float64 // events/s per replica

	Deployment string
	Image      string

	// Incidents with absolute windows; the producer reconciler resolves
	// them, since an incident without a start keeps the one the running
	// producers have.
	Incidents []sim.Incident
}

// resolve applies the defaults the CRD cannot know (they depend on the
// stream's name or the controller's config).
func resolve(s *v1alpha1.PlaybackStream, mode v1alpha1.TopicMode, o Options) effective {
	e := effective{
		Stream:            s.Name,
		Namespace:         s.Namespace,
		TopicName:         s.Spec.Topic.Name,
		Cluster:           s.Spec.Kafka.Cluster,
		Brokers:           s.Spec.Kafka.BootstrapServers,
		Partitions:        s.Spec.Topic.Partitions,
		ReplicationFactor: s.Spec.Topic.ReplicationFactor,
		DeletionPolicy:    s.Spec.Topic.DeletionPolicy,
		Rate:              s.Spec.EventsPerSecond,
		Replicas:          s.Spec.Replicas,
		Deployment:        DeploymentName(s.Name),
		Image:             s.Spec.Producer.Image,
	}
	if e.TopicName == "" {
		e.TopicName = DefaultTopicName(s.Name)
	}
	e.KafkaTopic = KafkaTopicName(s.Name, e.TopicName)
	if e.Cluster == "" {
		e.Cluster = o.KafkaCluster
	}
	if e.Brokers == "" {
		if mode == v1alpha1.TopicModeStrimzi {
			// Strimzi's conventional listeners: plain on 9092, TLS on 9093.
			port := "9092"
			if s.Spec.Kafka.TLS != nil {
				port = "9093"
			}
			e.Brokers = e.Cluster + "-kafka-bootstrap:" + port
		} else {
			e.Brokers = strings.Join(o.DefaultBrokers, ",")
		}
	}
	if e.Partitions < 1 {
		e.Partitions = 3
	}
	if r := s.Spec.Topic.Retention; r != nil && r.Duration > 0 {
		ms := r.Milliseconds()
		e.RetentionMs = &ms
	}
	if e.DeletionPolicy == "" {
		e.DeletionPolicy = v1alpha1.DeletionPolicyRetain
	}
	if e.Replicas > 0 {
		e.Share = float64(e.Rate) / float64(e.Replicas)
	}
	if e.Image == "" {
		e.Image = o.ProducerImage
	}
	return e
}

// DefaultTopicName is the topic of a stream that names none. The fan-out
// serves every topic matching ^playback-.* by default, so a new stream
// appears on the dashboard without configuration.
func DefaultTopicName(stream string) string { return "playback-" + stream }

// DeploymentName is the name of a stream's producer Deployment.
func DeploymentName(stream string) string { return stream + "-producer" }

// KafkaTopicName is the name of a stream's KafkaTopic resource: the topic's
// own name when it is a valid resource name (Strimzi's convention), else one
// derived from the stream (spec.topicName then carries the real name).
func KafkaTopicName(stream, topic string) string {
	if isDNSSubdomain(topic) {
		return topic
	}
	return stream + "-topic"
}

func isDNSSubdomain(s string) bool {
	if len(s) == 0 || len(s) > 253 {
		return false
	}
	for i, r := range s {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
		case r == '-' || r == '.':
			if i == 0 || i == len(s)-1 {
				return false
			}
		default:
			return false
		}
	}
	return !strings.Contains(s, "..") && !strings.Contains(s, ".-") && !strings.Contains(s, "-.")
}

// selectorLabels select a stream's producer pods; they never change (a
// Deployment's selector is immutable).
func selectorLabels(stream string) map[string]string {
	return map[string]string{
		labelComponent:       componentProducer,
		v1alpha1.LabelStream: stream,
	}
}

// SelectorString is the producer pods' selector in string form
// (status.selector, for the scale subresource).
func SelectorString(stream string) string {
	return labels.SelectorFromSet(selectorLabels(stream)).String()
}

// objectLabels are the labels of the Deployment, the pods and the KafkaTopic.
func objectLabels(stream, component string) map[string]string {
	l := map[string]string{
		labelName:            "playpulse",
		labelManagedBy:       managedBy,
		labelPartOf:          "playpulse",
		v1alpha1.LabelStream: stream,
	}
	if component != "" {
		l[labelComponent] = component
	}
	return l
}

// formatRate renders events/s the way the producer parses PRODUCER_RATE.
func formatRate(r float64) string { return strconv.FormatFloat(r, 'f', -1, 64) }
