package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"playpulse.dev/services/controller/api/v1alpha1"
	"playpulse.dev/tests/harness"
)

// kafkaAdmin opens an admin client on the test broker.
func kafkaAdmin(t *testing.T, addr string) sarama.ClusterAdmin {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_9_0_0
	admin, err := sarama.NewClusterAdmin([]string{addr}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { admin.Close() })
	return admin
}

// topicInKafka returns the partitions and the retention.ms override of a
// topic, or an error if Kafka does not know it.
func topicInKafka(admin sarama.ClusterAdmin, topic string) (partitions int, retention string, err error) {
	mds, err := admin.DescribeTopics([]string{topic})
	if err != nil {
		return 0, "", err
	}
	if len(mds) != 1 || mds[0].Err != sarama.ErrNoError {
		return 0, "", fmt.Errorf("topic %s: %v", topic, mds[0].Err)
	}
	res, err := admin.DescribeConfigs([]*sarama.ConfigResource{{Type: sarama.TopicResource, Name: topic, ConfigNames: []string{"retention.ms"}}}, sarama.DescribeConfigsOptions{})
	if err != nil {
		return 0, "", err
	}
	for _, r := range res {
		if r.ErrorCode != sarama.ErrNoError {
			return 0, "", fmt.Errorf("topic %s: %s", topic, r.ErrorMsg)
		}
		for _, e := range r.Configs {
			if e.Name == "retention.ms" && e.Source == sarama.SourceTopic {
				retention = e.Value
			}
		}
	}
	return len(mds[0].Partitions), retention, nil
}

// TestKafkaModeTopics: without the KafkaTopic CRD the controller creates
// and grows topics in a real Kafka itself, and applies each deletion policy.
func TestKafkaModeTopics(t *testing.T) {
	b := kafka(t)
	p := controlPlane(t, false)
	ns := p.namespace(t)
	admin := kafkaAdmin(t, b.Addr())
	startController(t, p, ns, map[string]string{"KAFKA_BROKERS": b.Addr()}) // auto: no KafkaTopic CRD

	topic := "playback-plain-" + ns
	p.kubectl(t, `apiVersion: playpulse.dev/v1alpha1
kind: PlaybackStream
metadata:
  name: plain
  namespace: `+ns+`
spec:
  eventsPerSecond: 50
  topic:
    name: `+topic+`
    partitions: 4
    retention: 2h
    deletionPolicy: Delete
`, "apply", "-f", "-")
	waitFor(t, 60*time.Second, "topic ready", func() error {
		return conditionIs(p, ns, "plain", v1alpha1.ConditionTopicReady, metav1.ConditionTrue, v1alpha1.ReasonTopicReady)
	})
	n, retention, err := topicInKafka(admin, topic)
	if err != nil || n != 4 || retention != "7200000" {
		t.Fatalf("topic in Kafka: %d partitions, retention.ms %q, err %v; want 4, 7200000", n, retention, err)
	}
	s := getStream(t, p, ns, "plain")
	if s.Status.TopicMode != v1alpha1.TopicModeKafka || s.Status.TopicName != topic || s.Status.KafkaTopic != "" {
		t.Errorf("status %+v", s.Status)
	}
	waitFor(t, 30*time.Second, "producer Deployment", func() error {
		d, err := getDeployment(p, ns, "plain-producer")
		if err != nil {
			return err
		}
		if got := envOf(t, d)["KAFKA_BROKERS"]; got != b.Addr() {
			return fmt.Errorf("KAFKA_BROKERS=%q, want the controller's %s", got, b.Addr())
		}
		return nil
	})

	// Partitions grow; the retention override goes when the spec drops it.
	p.kubectl(t, "", "-n", ns, "patch", "playbackstream/plain", "--type=merge", "-p", `{"spec":{"topic":{"partitions":6,"retention":null}}}`)
	waitFor(t, 60*time.Second, "6 partitions in Kafka", func() error {
		n, retention, err := topicInKafka(admin, topic)
		if err != nil {
			return err
		}
		if n != 6 || retention != "" {
			return fmt.Errorf("%d partitions, retention.ms override %q", n, retention)
		}
		return conditionIs(p, ns, "plain", v1alpha1.ConditionTopicReady, metav1.ConditionTrue, v1alpha1.ReasonTopicReady)
	})
	if ev := strings.Join(eventsOf(t, p, ns, "plain"), "\n"); !strings.Contains(ev, "TopicCreated") || !strings.Contains(ev, "PartitionsIncreased: grew topic "+topic+" from 4 to 6 partitions") {
		t.Errorf("events:\n%s", ev)
	}

	// A Retain stream on the same cluster.
	kept := "playback-kept-" + ns
	if err := p.c.Create(context.Background(), stream(ns, "kept", func(s *v1alpha1.PlaybackStream) { s.Spec.Topic.Name = kept })); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "kept topic ready", func() error {
		return conditionIs(p, ns, "kept", v1alpha1.ConditionTopicReady, metav1.ConditionTrue, v1alpha1.ReasonTopicReady)
	})

	// Delete: the topic goes. Retain: it stays.
	p.kubectl(t, "", "-n", ns, "delete", "playbackstream", "plain", "kept", "--wait=true", "--timeout=60s")
	waitFor(t, 60*time.Second, "topic deleted from Kafka", func() error {
		_, _, err := topicInKafka(admin, topic)
		if err == nil {
			return errors.New("still there")
		}
		return nil
	})
	if n, _, err := topicInKafka(admin, kept); err != nil || n != 3 {
		t.Errorf("Retain: topic %s after deletion: %d partitions, err %v", kept, n, err)
	}
	for _, d := range []string{"plain-producer", "kept-producer"} {
		if _, err := getDeployment(p, ns, d); !apierrors.IsNotFound(err) {
			t.Errorf("deployment %s not deleted: %v", d, err)
		}
	}
}

// TestKafkaUnreachable: a bootstrap address where no Kafka listens gives a
// False TopicReady that names the address, no producers, and retries with
// backoff; pointing the stream at the real broker recovers.
func TestKafkaUnreachable(t *testing.T) {
	b := kafka(t)
	p := controlPlane(t, false)
	ns := p.namespace(t)
	startController(t, p, ns, map[string]string{"KAFKA_BROKERS": b.Addr(), "CONTROLLER_TOPIC_MODE": "kafka"})
	dead := harness.FreeAddr(t)
	if err := p.c.Create(context.Background(), stream(ns, "lost", func(s *v1alpha1.PlaybackStream) {
		s.Spec.Kafka.BootstrapServers = dead
		s.Spec.Topic.Name = "playback-lost-" + ns
	})); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "KafkaUnreachable", func() error {
		if err := conditionIs(p, ns, "lost", v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonKafkaUnreachable); err != nil {
			return err
		}
		return conditionIs(p, ns, "lost", v1alpha1.ConditionProducerReady, metav1.ConditionFalse, v1alpha1.ReasonWaitingForTopic)
	})
	if c := findCondition(getStream(t, p, ns, "lost"), v1alpha1.ConditionTopicReady); !strings.Contains(c.Message, dead) {
		t.Errorf("message %q does not name %s", c.Message, dead)
	}
	var s v1alpha1.PlaybackStream
	if err := p.c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "lost"}, &s); err != nil {
		t.Fatal(err)
	}
	s.Spec.Kafka.BootstrapServers = b.Addr()
	if err := p.c.Update(context.Background(), &s); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "recovered", func() error {
		return conditionIs(p, ns, "lost", v1alpha1.ConditionTopicReady, metav1.ConditionTrue, v1alpha1.ReasonTopicReady)
	})
}
