package faults

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"playpulse.dev/tests/benchproducer"
	"playpulse.dev/tests/harness"
	"playpulse.dev/tests/kafkatest"
)

// service is one running Playpulse binary.
type service struct {
	*harness.Proc
	addr string
}

func (s *service) url(path string) string { return "http://" + s.addr + path }

func (s *service) metrics(t testing.TB) benchproducer.Metrics {
	t.Helper()
	m, err := benchproducer.Scrape(s.url("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// readiness is GET /readyz: the status and, when not ready, the failing
// checks.
func (s *service) readiness() (int, map[string]string, error) {
	resp, err := http.Get(s.url("/readyz"))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	var body struct {
		Failing map[string]string `json:"failing"`
	}
	b, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(b, &body); err != nil {
		return resp.StatusCode, nil, fmt.Errorf("/readyz: %v: %s", err, b)
	}
	return resp.StatusCode, body.Failing, nil
}

func (s *service) waitReady(t testing.TB, d time.Duration) {
	t.Helper()
	harness.Eventually(t, d, s.Name+" ready", func() error {
		code, failing, err := s.readiness()
		if err != nil {
			return err
		}
		if code != http.StatusOK {
			return fmt.Errorf("%d %v", code, failing)
		}
		return nil
	})
}

// plain is the environment of a client of a listener bootstrapped at
// brokers with no security.
func plain(brokers string) map[string]string { return map[string]string{"KAFKA_BROKERS": brokers} }

// scramEnv is the environment of a client of the SCRAM listener (or a
// proxied one at brokers) with the files of Strimzi's Secrets: the cluster
// CA's ca.crt and the KafkaUser's password.
func scramEnv(brokers string) map[string]string {
	return map[string]string{
		"KAFKA_BROKERS":            brokers,
		"KAFKA_TLS_CA_FILE":        filepath.Join(cluster.Secret(kafkatest.ClusterCASecret), "ca.crt"),
		"KAFKA_SASL_MECHANISM":     "SCRAM-SHA-512",
		"KAFKA_SASL_USERNAME":      kafkatest.SCRAMUser,
		"KAFKA_SASL_PASSWORD_FILE": filepath.Join(cluster.Secret(kafkatest.SCRAMUser), "password"),
	}
}

// mtlsEnv is the environment of a client of the mutual-TLS listener with
// the files of Strimzi's Secrets: the cluster CA's ca.crt and the tls
// KafkaUser's user.crt and user.key.
func mtlsEnv() map[string]string {
	user := cluster.Secret(kafkatest.TLSUser)
	return map[string]string{
		"KAFKA_BROKERS":       cluster.Bootstrap(kafkatest.MTLS),
		"KAFKA_TLS_CA_FILE":   filepath.Join(cluster.Secret(kafkatest.ClusterCASecret), "ca.crt"),
		"KAFKA_TLS_CERT_FILE": filepath.Join(user, "user.crt"),
		"KAFKA_TLS_KEY_FILE":  filepath.Join(user, "user.key"),
	}
}

// startProducer runs bin/producer (from dir: harness.Bin or FastBin) on
// topic at rate with the connection settings kafka.
func startProducer(t testing.TB, dir string, kafka map[string]string, topic string, rate int, extra map[string]string) *service {
	t.Helper()
	addr := harness.FreeAddr(t)
	env := map[string]string{
		"PRODUCER_TOPIC": topic, "PRODUCER_RATE": fmt.Sprint(rate), "PRODUCER_ADDR": addr,
		"PRODUCER_STREAM": "faults", "LOG_LEVEL": "info",
	}
	maps.Copy(env, kafka)
	maps.Copy(env, extra)
	return &service{Proc: harness.StartFrom(t, dir, "producer", env), addr: addr}
}

// startFanout runs bin/fanout serving topic with the connection settings
// kafka; it replays the whole topic (FANOUT_WARMUP 1h).
func startFanout(t testing.TB, dir string, kafka map[string]string, topic string, extra map[string]string) *service {
	t.Helper()
	addr := harness.FreeAddr(t)
	env := map[string]string{
		"FANOUT_ADDR": addr, "FANOUT_TOPICS": topic, "FANOUT_TOPIC_PATTERN": "", "FANOUT_WARMUP": "1h",
		"FANOUT_TAIL_RATE": "100000", "FANOUT_FRAME_HZ": "20", "LOG_LEVEL": "info",
	}
	maps.Copy(env, kafka)
	maps.Copy(env, extra)
	return &service{Proc: harness.StartFrom(t, dir, "fanout", env), addr: addr}
}

// counts is the producer's last log line, "producer stopped".
type counts struct {
	Generated    int64 `json:"generated"`
	Acknowledged int64 `json:"acknowledged"`
	Failed       int64 `json:"failed"`
}

// stopProducer sends SIGTERM, requires exit 0 within 10 s and acknowledged
// + failed = generated, and returns the counts the producer logged.
func stopProducer(t testing.TB, p *service) counts {
	t.Helper()
	if err := p.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, err := p.Wait(10 * time.Second); err != nil || code != 0 {
		t.Fatalf("producer: exit %d, %v after SIGTERM", code, err)
	}
	for _, line := range strings.Split(p.Output(), "\n") {
		if !strings.Contains(line, `"msg":"producer stopped"`) {
			continue
		}
		var c counts
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			t.Fatalf("final log line %q: %v", line, err)
		}
		if c.Acknowledged+c.Failed != c.Generated {
			t.Fatalf("acknowledged %d + failed %d != generated %d", c.Acknowledged, c.Failed, c.Generated)
		}
		return c
	}
	t.Fatalf("no \"producer stopped\" line in the output:\n%s", p.Output())
	return counts{}
}

// logLines are the JSON log lines of a process that have msg.
func logLines(p *service, msg string) []map[string]any {
	var out []map[string]any
	for _, line := range strings.Split(p.Output(), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(line), &m) == nil && m["msg"] == msg {
			out = append(out, m)
		}
	}
	return out
}
