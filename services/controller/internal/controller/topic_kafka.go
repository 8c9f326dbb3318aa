package controller

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"playpulse.dev/services/controller/api/v1alpha1"
)

// AdminFactory opens a Kafka admin client for a list of bootstrap brokers.
type AdminFactory func(brokers []string) (sarama.ClusterAdmin, error)

// NewAdminFactory returns an AdminFactory with the connection settings of
// base (TLS, SASL, client id, version: the controller's KAFKA_* variables)
// and short timeouts, so an unreachable cluster costs a reconcile seconds,
// not minutes.
func NewAdminFactory(base *sarama.Config) AdminFactory {
	return func(brokers []string) (sarama.ClusterAdmin, error) {
		c := *base
		c.Net.DialTimeout = 5 * time.Second
		c.Net.ReadTimeout = 10 * time.Second
		c.Net.WriteTimeout = 10 * time.Second
		c.Metadata.Retry.Max = 1
		c.Metadata.Retry.Backoff = 250 * time.Millisecond
		c.Admin.Timeout = 10 * time.Second
		c.Admin.Retry.Max = 2
		c.Admin.Retry.Backoff = 250 * time.Millisecond
		return sarama.NewClusterAdmin(brokers, &c)
	}
}

// kafkaTopics manages topics directly through the Kafka admin API, for
// clusters without Strimzi (plain Kafka, Redpanda, a managed service).
type kafkaTopics struct {
	newAdmin AdminFactory
	// settle bounds how long ensure waits for Kafka's metadata to show a
	// topic or partitions it just created before it polls again later.
	settle time.Duration
	// explain names the cause of a connection error (Options.Explain).
	explain func(error) error
}

// why is err explained, when an explainer is set.
func (k *kafkaTopics) why(err error) error {
	if k.explain == nil {
		return err
	}
	return k.explain(err)
}

func (*kafkaTopics) mode() v1alpha1.TopicMode { return v1alpha1.TopicModeKafka }

func splitBrokers(s string) []string {
	var out []string
	for _, b := range strings.Split(s, ",") {
		if b = strings.TrimSpace(b); b != "" {
			out = append(out, b)
		}
	}
	return out
}

func (k *kafkaTopics) ensure(ctx context.Context, s *v1alpha1.PlaybackStream, e effective) (topicState, error) {
	st := topicState{Mode: v1alpha1.TopicModeKafka, Name: e.TopicName}
	fail := func(reason, format string, args ...any) (topicState, error) {
		st.Status, st.Reason, st.Message = metav1.ConditionFalse, reason, fmt.Sprintf(format, args...)
		return st, errors.New(st.Message)
	}
	admin, err := k.newAdmin(splitBrokers(e.Brokers))
	if err != nil {
		return fail(v1alpha1.ReasonKafkaUnreachable, "cannot connect to Kafka at %s: %v; check spec.kafka.bootstrapServers or the controller's KAFKA_BROKERS and KAFKA_TLS_*/KAFKA_SASL_* settings", e.Brokers, k.why(err))
	}
	defer admin.Close()

	md, err := describeTopic(admin, e.TopicName)
	if err != nil {
		return fail(v1alpha1.ReasonKafkaUnreachable, "cannot read the metadata of topic %s from Kafka at %s: %v", e.TopicName, e.Brokers, k.why(err))
	}
	if errors.Is(md.Err, sarama.ErrUnknownTopicOrPartition) {
		detail := &sarama.TopicDetail{NumPartitions: e.Partitions, ReplicationFactor: -1}
		if e.ReplicationFactor != nil {
			detail.ReplicationFactor = int16(*e.ReplicationFactor)
		}
		if e.RetentionMs != nil {
			v := strconv.FormatInt(*e.RetentionMs, 10)
			detail.ConfigEntries = map[string]*string{"retention.ms": &v}
		}
		err := admin.CreateTopic(e.TopicName, detail, false)
		if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
			return fail(v1alpha1.ReasonKafkaError, "Kafka at %s refused to create topic %s with %d partitions: %v", e.Brokers, e.TopicName, e.Partitions, err)
		}
		st.Done = append(st.Done, note{"TopicCreated", "Create", fmt.Sprintf("created topic %s with %d partitions in Kafka at %s", e.TopicName, e.Partitions, e.Brokers)})
		if md, err = k.waitFor(ctx, admin, e.TopicName, e.Partitions); err != nil {
			return k.creating(st, e, err)
		}
	} else if md.Err != sarama.ErrNoError {
		return fail(v1alpha1.ReasonKafkaError, "Kafka at %s reports topic %s: %v", e.Brokers, e.TopicName, md.Err)
	}

	have := int32(len(md.Partitions))
	switch {
	case have < e.Partitions:
		if err := admin.CreatePartitions(e.TopicName, e.Partitions, nil, false); err != nil && !errors.Is(err, sarama.ErrInvalidPartitions) {
			return fail(v1alpha1.ReasonKafkaError, "Kafka at %s refused to grow topic %s from %d to %d partitions: %v", e.Brokers, e.TopicName, have, e.Partitions, err)
		}
		st.Done = append(st.Done, note{"PartitionsIncreased", "Update", fmt.Sprintf("grew topic %s from %d to %d partitions", e.TopicName, have, e.Partitions)})
		if md, err = k.waitFor(ctx, admin, e.TopicName, e.Partitions); err != nil {
			return k.creating(st, e, err)
		}
		have = int32(len(md.Partitions))
	case have > e.Partitions:
		st.Status, st.Reason = metav1.ConditionFalse, v1alpha1.ReasonPartitionDecrease
		st.Message = fmt.Sprintf("topic %s already has %d partitions and spec.topic.partitions asks for %d; Kafka cannot remove partitions: set spec.topic.partitions to %d or more", e.TopicName, have, e.Partitions, have)
		return st, nil
	}
	if e.ReplicationFactor != nil && len(md.Partitions) > 0 && len(md.Partitions[0].Replicas) != int(*e.ReplicationFactor) {
		st.Status, st.Reason = metav1.ConditionFalse, v1alpha1.ReasonReplicationFactorMismatch
		st.Message = fmt.Sprintf("topic %s has replication factor %d and spec.topic.replicationFactor asks for %d; the controller does not reassign replicas: use Kafka's partition reassignment or leave replicationFactor out", e.TopicName, len(md.Partitions[0].Replicas), *e.ReplicationFactor)
		return st, nil
	}
	if msg, err := k.ensureRetention(admin, e); err != nil {
		return fail(v1alpha1.ReasonKafkaError, "%v", err)
	} else if msg != "" {
		st.Done = append(st.Done, note{"TopicConfigUpdated", "Update", msg})
	}
	for _, p := range md.Partitions {
		if p.Leader < 0 {
			return k.creating(st, e, fmt.Errorf("partition %d has no leader yet", p.ID))
		}
	}
	st.Status, st.Reason = metav1.ConditionTrue, v1alpha1.ReasonTopicReady
	st.Message = fmt.Sprintf("topic %s has %d partitions in Kafka at %s", e.TopicName, have, e.Brokers)
	return st, nil
}

// creating reports a topic Kafka accepted but does not show complete yet.
func (k *kafkaTopics) creating(st topicState, e effective, err error) (topicState, error) {
	st.Status, st.Reason = metav1.ConditionUnknown, v1alpha1.ReasonTopicCreating
	st.Message = fmt.Sprintf("Kafka at %s is still creating topic %s or its partitions: %v", e.Brokers, e.TopicName, err)
	st.Poll = time.Second
	return st, nil
}

// waitFor polls the metadata until the topic shows want partitions, each
// with a leader, for at most k.settle.
func (k *kafkaTopics) waitFor(ctx context.Context, admin sarama.ClusterAdmin, topic string, want int32) (*sarama.TopicMetadata, error) {
	deadline := time.Now().Add(k.settle)
	for {
		md, err := describeTopic(admin, topic)
		if err == nil && md.Err == sarama.ErrNoError && int32(len(md.Partitions)) >= want && allLed(md) {
			return md, nil
		}
		if err == nil {
			err = fmt.Errorf("metadata shows %d of %d partitions (%v)", len(md.Partitions), want, md.Err)
		}
		if time.Now().After(deadline) {
			return nil, err
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func allLed(md *sarama.TopicMetadata) bool {
	for _, p := range md.Partitions {
		if p.Leader < 0 {
			return false
		}
	}
	return true
}

func describeTopic(admin sarama.ClusterAdmin, topic string) (*sarama.TopicMetadata, error) {
	mds, err := admin.DescribeTopics([]string{topic})
	if err != nil {
		return nil, err
	}
	for _, md := range mds {
		if md.Name == topic {
			return md, nil
		}
	}
	return nil, fmt.Errorf("no metadata for topic %s", topic)
}

// topicConfig reads the named configuration entries of a topic.
func topicConfig(admin sarama.ClusterAdmin, topic string, names ...string) ([]sarama.ConfigEntry, error) {
	res, err := admin.DescribeConfigs([]*sarama.ConfigResource{{Type: sarama.TopicResource, Name: topic, ConfigNames: names}}, sarama.DescribeConfigsOptions{})
	if err != nil {
		return nil, err
	}
	for _, r := range res {
		if r.Name != topic {
			continue
		}
		if r.ErrorCode != sarama.ErrNoError {
			return nil, &sarama.DescribeConfigError{Err: r.ErrorCode, ErrMsg: r.ErrorMsg}
		}
		return r.Configs, nil
	}
	return nil, fmt.Errorf("no configuration for topic %s in the answer", topic)
}

// ensureRetention makes the topic's retention.ms override match the spec: set
// when given, removed (back to the broker default) when not, like Strimzi
// does with a KafkaTopic's spec.config.
func (k *kafkaTopics) ensureRetention(admin sarama.ClusterAdmin, e effective) (string, error) {
	entries, err := topicConfig(admin, e.TopicName, "retention.ms")
	if err != nil {
		return "", fmt.Errorf("cannot read the configuration of topic %s: %w", e.TopicName, err)
	}
	var cur *sarama.ConfigEntry
	for i := range entries {
		if entries[i].Name == "retention.ms" {
			cur = &entries[i]
		}
	}
	override := cur != nil && cur.Source == sarama.SourceTopic
	switch {
	case e.RetentionMs != nil:
		want := strconv.FormatInt(*e.RetentionMs, 10)
		if override && cur.Value == want {
			return "", nil
		}
		err := admin.IncrementalAlterConfig(sarama.TopicResource, e.TopicName, map[string]sarama.IncrementalAlterConfigsEntry{
			"retention.ms": {Operation: sarama.IncrementalAlterConfigsOperationSet, Value: &want},
		}, false)
		if err != nil {
			return "", fmt.Errorf("Kafka refused retention.ms=%s on topic %s: %w", want, e.TopicName, err)
		}
		return fmt.Sprintf("set retention.ms=%s on topic %s", want, e.TopicName), nil
	case override:
		err := admin.IncrementalAlterConfig(sarama.TopicResource, e.TopicName, map[string]sarama.IncrementalAlterConfigsEntry{
			"retention.ms": {Operation: sarama.IncrementalAlterConfigsOperationDelete},
		}, false)
		if err != nil {
			return "", fmt.Errorf("Kafka refused to remove the retention.ms override of topic %s: %w", e.TopicName, err)
		}
		return fmt.Sprintf("removed the retention.ms override of topic %s (broker default again)", e.TopicName), nil
	}
	return "", nil
}

func (k *kafkaTopics) finalize(ctx context.Context, s *v1alpha1.PlaybackStream, e effective) (bool, string, error) {
	if e.DeletionPolicy != v1alpha1.DeletionPolicyDelete {
		return true, fmt.Sprintf("topic %s stays in Kafka (deletionPolicy Retain)", e.TopicName), nil
	}
	admin, err := k.newAdmin(splitBrokers(e.Brokers))
	if err != nil {
		return false, "", fmt.Errorf("cannot connect to Kafka at %s to delete topic %s (deletionPolicy Delete): %w; the stream stays until it can, or remove the finalizer %s to give up", e.Brokers, e.TopicName, k.why(err), v1alpha1.Finalizer)
	}
	defer admin.Close()
	if err := admin.DeleteTopic(e.TopicName); err != nil && !errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
		return false, "", fmt.Errorf("Kafka at %s refused to delete topic %s: %w", e.Brokers, e.TopicName, err)
	}
	return true, fmt.Sprintf("deleted topic %s from Kafka at %s (deletionPolicy Delete)", e.TopicName, e.Brokers), nil
}
