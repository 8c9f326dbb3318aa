package kafkacfg

import (
	"fmt"

	"github.com/IBM/sarama"
)

// CheckTopics asks Kafka for the topics' metadata and requires each to have
// partitions, every one with a leader: what a producer needs before its
// first send (a partition without a leader would hold its records until the
// send times out), and what its readiness probe asks again. The error names
// the topic and partition and wraps Kafka's, so ReasonOf can tell why.
func CheckTopics(client sarama.Client, topics ...string) error {
	if err := client.RefreshMetadata(topics...); err != nil {
		return err
	}
	for _, t := range topics {
		parts, err := client.Partitions(t)
		if err == nil && len(parts) == 0 {
			err = sarama.ErrUnknownTopicOrPartition
		}
		if err != nil {
			return fmt.Errorf("topic %s: %w", t, err)
		}
		for _, id := range parts {
			if _, err := client.Leader(t, id); err != nil {
				return fmt.Errorf("topic %s partition %d: %w", t, id, err)
			}
		}
	}
	return nil
}
