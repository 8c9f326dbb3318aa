package kafkacfg

import (
	"errors"
	"strings"
	"testing"

	"github.com/IBM/sarama"
)

// metadata is the part of a sarama.Client that CheckTopics reads: the
// partitions of each topic and which of them have no leader. (The real
// client's side is tested against a real broker by tests/e2e and
// tests/faults, whose readiness depends on it.)
type metadata struct {
	sarama.Client
	refresh    error
	partitions map[string][]int32
	leaderless map[string]int32
}

func (m *metadata) RefreshMetadata(...string) error { return m.refresh }

func (m *metadata) Partitions(t string) ([]int32, error) {
	p, ok := m.partitions[t]
	if !ok {
		return nil, sarama.ErrUnknownTopicOrPartition
	}
	return p, nil
}

func (m *metadata) Leader(t string, id int32) (*sarama.Broker, error) {
	if l, ok := m.leaderless[t]; ok && l == id {
		return nil, sarama.ErrLeaderNotAvailable
	}
	return &sarama.Broker{}, nil
}

func TestCheckTopics(t *testing.T) {
	three := []int32{0, 1, 2}
	for _, c := range []struct {
		name   string
		m      metadata
		topics []string
		is     error  // the Kafka error wrapped, nil for none
		says   string // in the message
	}{
		{"every partition led", metadata{partitions: map[string][]int32{"a": three, "b": {0}}}, []string{"a", "b"}, nil, ""},
		{"metadata refused", metadata{refresh: sarama.ErrTopicAuthorizationFailed}, []string{"a"}, sarama.ErrTopicAuthorizationFailed, ""},
		{"unknown topic", metadata{partitions: map[string][]int32{"a": three}}, []string{"a", "b"}, sarama.ErrUnknownTopicOrPartition, "topic b"},
		{"no partitions", metadata{partitions: map[string][]int32{"a": {}}}, []string{"a"}, sarama.ErrUnknownTopicOrPartition, "topic a"},
		{"a partition without a leader", metadata{partitions: map[string][]int32{"a": three, "b": three}, leaderless: map[string]int32{"b": 2}}, []string{"a", "b"}, sarama.ErrLeaderNotAvailable, "topic b partition 2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := CheckTopics(&c.m, c.topics...)
			if c.is == nil {
				if err != nil {
					t.Fatalf("CheckTopics = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, c.is) || !strings.Contains(err.Error(), c.says) {
				t.Fatalf("CheckTopics = %v, want %v naming %q", err, c.is, c.says)
			}
		})
	}
}
