package controller

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"playpulse.dev/services/controller/api/v1alpha1"
)

func TestBuildKafkaTopic(t *testing.T) {
	rf := int32(3)
	s := testStream(func(s *v1alpha1.PlaybackStream) {
		s.Spec.Topic.ReplicationFactor = &rf
		s.Spec.Topic.Retention = &metav1.Duration{Duration: 24 * time.Hour}
		s.Spec.Kafka.Cluster = "events"
	})
	kt := buildKafkaTopic(s, resolve(s, v1alpha1.TopicModeStrimzi, opts))
	if kt.GetAPIVersion() != "kafka.strimzi.io/v1" || kt.GetKind() != "KafkaTopic" || kt.GetName() != "playback-prime" || kt.GetNamespace() != "tv" {
		t.Errorf("identity %s %s %s/%s", kt.GetAPIVersion(), kt.GetKind(), kt.GetNamespace(), kt.GetName())
	}
	if kt.GetLabels()["strimzi.io/cluster"] != "events" || kt.GetLabels()[v1alpha1.LabelStream] != "prime" {
		t.Errorf("labels %v", kt.GetLabels())
	}
	want := map[string]any{"topicName": "playback-prime", "partitions": int64(3), "replicas": int64(3), "config": map[string]any{"retention.ms": int64(86_400_000)}}
	if !reflect.DeepEqual(kt.Object["spec"], want) {
		t.Errorf("spec %v, want %v", kt.Object["spec"], want)
	}
	if refs := kt.GetOwnerReferences(); len(refs) != 1 || refs[0].UID != "u-1" || !*refs[0].Controller || !*refs[0].BlockOwnerDeletion {
		t.Errorf("owner references %+v", refs)
	}
}

func TestObserveKafkaTopic(t *testing.T) {
	kt := func(gen, observed int64, conds ...map[string]any) *unstructured.Unstructured {
		u := NewKafkaTopic()
		u.SetGeneration(gen)
		status := map[string]any{"topicName": "real-name"}
		if observed > 0 {
			status["observedGeneration"] = observed
		}
		if conds != nil {
			list := []any{}
			for _, c := range conds {
				list = append(list, c)
			}
			status["conditions"] = list
		}
		u.Object["status"] = status
		return u
	}
	tests := []struct {
		name    string
		kt      *unstructured.Unstructured
		status  metav1.ConditionStatus
		reason  string
		waiting bool
		msg     string
	}{
		{"no status yet", kt(1, 0), metav1.ConditionUnknown, v1alpha1.ReasonWaitingForTopicOperator, true, `Kafka cluster "c"`},
		{"old generation", kt(2, 1, map[string]any{"type": "Ready", "status": "True"}), metav1.ConditionUnknown, v1alpha1.ReasonWaitingForTopicOperator, true, "generation 2"},
		{"ready", kt(2, 2, map[string]any{"type": "Ready", "status": "True"}), metav1.ConditionTrue, v1alpha1.ReasonTopicReady, false, "topic real-name is ready"},
		{"strimzi error", kt(3, 3, map[string]any{"type": "Ready", "status": "False", "reason": "PartitionDecreaseException", "message": "Number of partitions cannot be decreased"}),
			metav1.ConditionFalse, "PartitionDecreaseException", false, "ref: Number of partitions cannot be decreased"},
		{"strimzi error without a usable reason", kt(3, 3, map[string]any{"type": "Ready", "status": "False", "reason": "not camel case!"}),
			metav1.ConditionFalse, v1alpha1.ReasonKafkaTopicNotReady, false, "without a message"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			st := topicState{Name: "playback-prime"}
			observeKafkaTopic(&st, tt.kt, "ref", "c")
			if st.Status != tt.status || st.Reason != tt.reason || st.Waiting != tt.waiting || !strings.Contains(st.Message, tt.msg) {
				t.Errorf("got %s/%s waiting=%v %q", st.Status, st.Reason, st.Waiting, st.Message)
			}
			if st.Name != "real-name" {
				t.Errorf("topic name %q, want status.topicName", st.Name)
			}
		})
	}
}

// fakeAdmin is the part of sarama.ClusterAdmin the Kafka mode uses, over an
// in-memory cluster.
type fakeAdmin struct {
	sarama.ClusterAdmin // nil: any other method panics
	topics              map[string]*fakeTopic
	failCreate          error
	calls               []string
}

type fakeTopic struct {
	partitions int
	rf         int
	retention  string // "" = no override
}

func (f *fakeAdmin) DescribeTopics(names []string) ([]*sarama.TopicMetadata, error) {
	var out []*sarama.TopicMetadata
	for _, n := range names {
		tp, ok := f.topics[n]
		if !ok {
			out = append(out, &sarama.TopicMetadata{Name: n, Err: sarama.ErrUnknownTopicOrPartition})
			continue
		}
		md := &sarama.TopicMetadata{Name: n}
		for i := 0; i < tp.partitions; i++ {
			md.Partitions = append(md.Partitions, &sarama.PartitionMetadata{ID: int32(i), Leader: 1, Replicas: make([]int32, tp.rf)})
		}
		out = append(out, md)
	}
	return out, nil
}

func (f *fakeAdmin) CreateTopic(name string, d *sarama.TopicDetail, _ bool) error {
	f.calls = append(f.calls, "create")
	if f.failCreate != nil {
		return f.failCreate
	}
	rf := int(d.ReplicationFactor)
	if rf < 0 {
		rf = 1
	}
	tp := &fakeTopic{partitions: int(d.NumPartitions), rf: rf}
	if v := d.ConfigEntries["retention.ms"]; v != nil {
		tp.retention = *v
	}
	f.topics[name] = tp
	return nil
}

func (f *fakeAdmin) CreatePartitions(name string, count int32, _ [][]int32, _ bool) error {
	f.calls = append(f.calls, "grow")
	f.topics[name].partitions = int(count)
	return nil
}

func (f *fakeAdmin) DescribeConfigs(rs []*sarama.ConfigResource, _ sarama.DescribeConfigsOptions) ([]*sarama.ConfigResourceResult, error) {
	var out []*sarama.ConfigResourceResult
	for _, r := range rs {
		entry := sarama.ConfigEntry{Name: "retention.ms", Value: "604800000", Source: sarama.SourceDefault, Default: true}
		if tp := f.topics[r.Name]; tp.retention != "" {
			entry = sarama.ConfigEntry{Name: "retention.ms", Value: tp.retention, Source: sarama.SourceTopic}
		}
		out = append(out, &sarama.ConfigResourceResult{Type: r.Type, Name: r.Name, Configs: []sarama.ConfigEntry{entry}})
	}
	return out, nil
}

func (f *fakeAdmin) IncrementalAlterConfig(_ sarama.ConfigResourceType, name string, entries map[string]sarama.IncrementalAlterConfigsEntry, _ bool) error {
	e := entries["retention.ms"]
	if e.Operation == sarama.IncrementalAlterConfigsOperationDelete {
		f.calls = append(f.calls, "unset-retention")
		f.topics[name].retention = ""
	} else {
		f.calls = append(f.calls, "set-retention")
		f.topics[name].retention = *e.Value
	}
	return nil
}

func (f *fakeAdmin) DeleteTopic(name string) error {
	f.calls = append(f.calls, "delete")
	if _, ok := f.topics[name]; !ok {
		return sarama.ErrUnknownTopicOrPartition
	}
	delete(f.topics, name)
	return nil
}

func (f *fakeAdmin) Close() error { return nil }

func TestKafkaTopics(t *testing.T) {
	rf := func(v int32) *int32 { return &v }
	tests := []struct {
		name     string
		existing *fakeTopic
		mutate   func(*v1alpha1.PlaybackStream)
		connErr  error
		status   metav1.ConditionStatus
		reason   string
		calls    string
		after    *fakeTopic
		wantErr  bool
	}{
		{name: "creates", status: metav1.ConditionTrue, reason: v1alpha1.ReasonTopicReady, calls: "create", after: &fakeTopic{3, 1, ""}},
		{name: "creates with retention and rf",
			mutate: func(s *v1alpha1.PlaybackStream) {
				s.Spec.Topic.Retention = &metav1.Duration{Duration: time.Hour}
				s.Spec.Topic.ReplicationFactor = rf(3)
			},
			status: metav1.ConditionTrue, reason: v1alpha1.ReasonTopicReady, calls: "create", after: &fakeTopic{3, 3, "3600000"}},
		{name: "up to date: no calls", existing: &fakeTopic{3, 1, ""}, status: metav1.ConditionTrue, reason: v1alpha1.ReasonTopicReady, after: &fakeTopic{3, 1, ""}},
		{name: "grows", existing: &fakeTopic{2, 1, ""}, status: metav1.ConditionTrue, reason: v1alpha1.ReasonTopicReady, calls: "grow", after: &fakeTopic{3, 1, ""}},
		{name: "never shrinks", existing: &fakeTopic{6, 1, ""}, status: metav1.ConditionFalse, reason: v1alpha1.ReasonPartitionDecrease, after: &fakeTopic{6, 1, ""}},
		{name: "replication factor mismatch", existing: &fakeTopic{3, 1, ""}, mutate: func(s *v1alpha1.PlaybackStream) { s.Spec.Topic.ReplicationFactor = rf(3) },
			status: metav1.ConditionFalse, reason: v1alpha1.ReasonReplicationFactorMismatch, after: &fakeTopic{3, 1, ""}},
		{name: "sets retention", existing: &fakeTopic{3, 1, "1"}, mutate: func(s *v1alpha1.PlaybackStream) { s.Spec.Topic.Retention = &metav1.Duration{Duration: time.Minute} },
			status: metav1.ConditionTrue, reason: v1alpha1.ReasonTopicReady, calls: "set-retention", after: &fakeTopic{3, 1, "60000"}},
		{name: "removes a retention override the spec dropped", existing: &fakeTopic{3, 1, "60000"},
			status: metav1.ConditionTrue, reason: v1alpha1.ReasonTopicReady, calls: "unset-retention", after: &fakeTopic{3, 1, ""}},
		{name: "unreachable", connErr: sarama.ErrOutOfBrokers, status: metav1.ConditionFalse, reason: v1alpha1.ReasonKafkaUnreachable, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := &fakeAdmin{topics: map[string]*fakeTopic{}}
			if tt.existing != nil {
				cp := *tt.existing
				f.topics["playback-prime"] = &cp
			}
			k := &kafkaTopics{settle: time.Second, newAdmin: func(b []string) (sarama.ClusterAdmin, error) {
				if strings.Join(b, ",") != "kafka-0:9092,kafka-1:9092" {
					t.Errorf("brokers %v", b)
				}
				if tt.connErr != nil {
					return nil, tt.connErr
				}
				return f, nil
			}}
			s := testStream(tt.mutate)
			st, err := k.ensure(context.Background(), s, resolve(s, v1alpha1.TopicModeKafka, opts))
			if (err != nil) != tt.wantErr {
				t.Errorf("err %v, wantErr %v", err, tt.wantErr)
			}
			if st.Status != tt.status || st.Reason != tt.reason || st.Message == "" {
				t.Errorf("%s/%s %q, want %s/%s", st.Status, st.Reason, st.Message, tt.status, tt.reason)
			}
			if got := strings.Join(f.calls, ","); got != tt.calls {
				t.Errorf("calls %q, want %q", got, tt.calls)
			}
			if tt.after != nil && !reflect.DeepEqual(f.topics["playback-prime"], tt.after) {
				t.Errorf("topic %+v, want %+v", f.topics["playback-prime"], tt.after)
			}
		})
	}
}

func TestKafkaTopicsFinalize(t *testing.T) {
	for _, policy := range []v1alpha1.DeletionPolicy{v1alpha1.DeletionPolicyRetain, v1alpha1.DeletionPolicyDelete} {
		f := &fakeAdmin{topics: map[string]*fakeTopic{"playback-prime": {3, 1, ""}}}
		k := &kafkaTopics{newAdmin: func([]string) (sarama.ClusterAdmin, error) { return f, nil }}
		s := testStream(func(s *v1alpha1.PlaybackStream) { s.Spec.Topic.DeletionPolicy = policy })
		done, msg, err := k.finalize(context.Background(), s, resolve(s, v1alpha1.TopicModeKafka, opts))
		_, exists := f.topics["playback-prime"]
		if !done || err != nil || exists != (policy == v1alpha1.DeletionPolicyRetain) || msg == "" {
			t.Errorf("%s: done %v err %v exists %v msg %q", policy, done, err, exists, msg)
		}
	}
	k := &kafkaTopics{newAdmin: func([]string) (sarama.ClusterAdmin, error) { return nil, errors.New("refused") }}
	s := testStream(func(s *v1alpha1.PlaybackStream) { s.Spec.Topic.DeletionPolicy = v1alpha1.DeletionPolicyDelete })
	if done, _, err := k.finalize(context.Background(), s, resolve(s, v1alpha1.TopicModeKafka, opts)); done || err == nil || !strings.Contains(err.Error(), v1alpha1.Finalizer) {
		t.Errorf("unreachable Kafka: done %v err %v (should say how to give up)", done, err)
	}
}
