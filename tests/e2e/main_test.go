// Package e2e tests the pipeline the way users run it: the real producer
// and fan-out binaries, a real Apache Kafka broker, real WebSocket clients,
// kcat and headless Chromium.
package e2e

import (
	"fmt"
	"os"
	"sync/atomic"
	"testing"

	"playpulse.dev/tests/kafkatest"
)

var broker *kafkatest.Broker

func TestMain(m *testing.M) {
	b, stop, err := kafkatest.StartMain()
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: cannot start Kafka:", err)
		os.Exit(1)
	}
	broker = b
	code := m.Run()
	stop()
	os.Exit(code)
}

var topicSeq atomic.Int64

// newTopic creates a fresh topic so tests do not see each other's events.
func newTopic(t *testing.T, partitions int32) string {
	t.Helper()
	name := fmt.Sprintf("playback-e2e-%d", topicSeq.Add(1))
	broker.CreateTopic(t, name, partitions)
	return name
}
