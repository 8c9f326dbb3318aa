package cluster

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// kafkaClient is a client of the bed's broker, closed when the test ends.
func kafkaClient(t *testing.T) sarama.Client {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Net.DialTimeout = 5 * time.Second
	c, err := sarama.NewClient([]string{bed.broker.Addr()}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// topics lists the broker's topics.
func topics(t *testing.T, c sarama.Client) []string {
	t.Helper()
	if err := c.RefreshMetadata(); err != nil {
		t.Fatal(err)
	}
	ts, err := c.Topics()
	if err != nil {
		t.Fatal(err)
	}
	return ts
}

// waitTopic waits until the broker has topic with n partitions.
func waitTopic(t *testing.T, c sarama.Client, topic string, n int, d time.Duration) {
	t.Helper()
	eventually(t, d, "topic "+topic, func() error {
		if err := c.RefreshMetadata(topic); err != nil {
			return err
		}
		ps, err := c.Partitions(topic)
		if err != nil {
			return err
		}
		if len(ps) != n {
			return fmt.Errorf("%d partitions, want %d", len(ps), n)
		}
		return nil
	})
}

// waitNoTopic waits until the broker has no topic of that name.
func waitNoTopic(t *testing.T, c sarama.Client, topic string, d time.Duration) {
	t.Helper()
	eventually(t, d, "topic "+topic+" deleted", func() error {
		if slices.Contains(topics(t, c), topic) {
			return errors.New("still there")
		}
		return nil
	})
}

// endOffsets is the sum of the topic's partitions' end offsets: how many
// records were ever written to it.
func endOffsets(c sarama.Client, topic string) (int64, error) {
	ps, err := c.Partitions(topic)
	if err != nil {
		return 0, err
	}
	var sum int64
	for _, p := range ps {
		o, err := c.GetOffset(topic, p, sarama.OffsetNewest)
		if err != nil {
			return 0, err
		}
		sum += o
	}
	return sum, nil
}

// sample is the topic's record count at a time.
type sample struct {
	at time.Time
	n  int64
}

func takeSample(t *testing.T, c sarama.Client, topic string) sample {
	t.Helper()
	n, err := endOffsets(c, topic)
	if err != nil {
		t.Fatal(err)
	}
	return sample{time.Now(), n}
}

func rate(a, b sample) float64 { return float64(b.n-a.n) / b.at.Sub(a.at).Seconds() }

// waitRate samples the topic's record count every half second from now on
// and returns once the rate over the last window is want within tol
// (relative), counting only windows that start after now; it fails the
// test when no such window has ended by the deadline.
func waitRate(t *testing.T, c sarama.Client, topic string, want, tol float64, window, within time.Duration) (float64, time.Duration) {
	t.Helper()
	start := time.Now()
	samples := []sample{takeSample(t, c, topic)}
	var seen []string
	for {
		time.Sleep(500 * time.Millisecond) // the sampling period of the measurement
		s := takeSample(t, c, topic)
		samples = append(samples, s)
		for i := len(samples) - 2; i >= 0; i-- {
			if s.at.Sub(samples[i].at) >= window {
				r := rate(samples[i], s)
				if math.Abs(r-want) <= tol*want {
					return r, s.at.Sub(start)
				}
				seen = append(seen, fmt.Sprintf("%.0f", r))
				break
			}
		}
		if s.at.Sub(start) > within {
			t.Log(rolloutReport())
			t.Fatalf("topic %s: no %v window within %v of the change shows %.0f events/s ±%.0f%%; the windows showed %v", topic, window, within, want, tol*100, seen)
		}
	}
}
