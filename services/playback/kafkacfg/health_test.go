package kafkacfg

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus"
)

// counted is playpulse_kafka_errors_total{reason} as reg exports it.
func counted(t *testing.T, reg *prometheus.Registry, reason string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "playpulse_kafka_errors_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "reason" && l.GetValue() == reason {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	t.Fatalf("no playpulse_kafka_errors_total{reason=%q}", reason)
	return 0
}

// TestHealth: a failure is explained, kept for readiness until a success,
// counted by reason and logged once per place and reason however often it
// repeats; a nil Health only passes errors through.
func TestHealth(t *testing.T) {
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	c := Config{SASLMechanism: "SCRAM-SHA-512", SASLUsername: "u", SASLPasswordFile: "/run/secrets/password"}
	h := c.NewHealth(slog.New(slog.NewJSONHandler(&logs, nil)), reg)
	if h.Err() != nil {
		t.Fatal("a new Health has a failure")
	}
	refused := sarama.Wrap(sarama.ErrOutOfBrokers, fmt.Errorf("%w: invalid credentials", sarama.ErrSASLAuthenticationFailed))
	for range 5 {
		h.Failed("connect", "cannot reach Kafka", refused, "brokers", "b:9093")
	}
	err := h.Err()
	if ReasonOf(err) != ReasonSASLAuthentication || !strings.Contains(err.Error(), "/run/secrets/password") {
		t.Fatalf("Err() = %v", err)
	}
	if n := counted(t, reg, ReasonSASLAuthentication); n != 5 {
		t.Fatalf("counted %v failures, want 5", n)
	}
	if n := strings.Count(logs.String(), `"reason":"sasl_authentication_failed"`); n != 1 {
		t.Fatalf("%d log lines for 5 failures within 10 s, want 1:\n%s", n, logs.String())
	}
	h.OK()
	if h.Err() != nil {
		t.Fatal("a success did not clear the failure")
	}
	var none *Health
	if got := none.Failed("connect", "x", refused); !errors.Is(got, refused) || none.Err() != nil {
		t.Fatalf("a nil Health: %v, %v", got, none.Err())
	}
}
