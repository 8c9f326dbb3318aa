// Package collector tests the CMCD collector the way it runs: the real
// collector and fan-out binaries, a real Apache Kafka broker, real HTTP, and
// kcat reading back what reached Kafka.
package collector

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"playpulse.dev/tests/harness"
	"playpulse.dev/tests/kafkatest"
)

var broker *kafkatest.Broker

func TestMain(m *testing.M) {
	b, stop, err := kafkatest.StartMain()
	if err != nil {
		fmt.Fprintln(os.Stderr, "collector tests: cannot start Kafka:", err)
		os.Exit(1)
	}
	broker = b
	code := m.Run()
	stop()
	os.Exit(code)
}

var seq atomic.Int64

// topics creates a fresh intake and events topic pair (and names a fresh
// consumer group), so tests do not see each other's records.
func topics(t *testing.T, b *kafkatest.Broker, intakeParts, eventParts int32) (intake, events, group string) {
	t.Helper()
	n := seq.Add(1)
	intake = fmt.Sprintf("playpulse-cmcd-t%d", n)
	events = fmt.Sprintf("playback-players-t%d", n)
	b.CreateTopic(t, intake, intakeParts)
	b.CreateTopic(t, events, eventParts)
	return intake, events, fmt.Sprintf("collector-t%d", n)
}

// collector is one collector process.
type collector struct {
	addr string
	proc *harness.Proc
}

func (c *collector) url(path string) string { return "http://" + c.addr + path }

// startCollector runs a collector with the test defaults plus env and waits
// until it is ready (unless env sets WAIT=no).
func startCollector(t *testing.T, b *kafkatest.Broker, intake, events, group string, env map[string]string) *collector {
	t.Helper()
	c := &collector{addr: harness.FreeAddr(t)}
	e := map[string]string{
		"KAFKA_BROKERS":          b.Addr(),
		"COLLECTOR_ADDR":         c.addr,
		"COLLECTOR_INTAKE_TOPIC": intake,
		"COLLECTOR_EVENTS_TOPIC": events,
		"COLLECTOR_GROUP":        group,
		"LOG_LEVEL":              "warn",
	}
	wait := true
	for k, v := range env {
		if k == "WAIT" {
			wait = v != "no"
			continue
		}
		e[k] = v
	}
	c.proc = harness.Start(t, "collector", e)
	if wait {
		harness.WaitReady(t, c.url("/readyz"), 60*time.Second)
	}
	return c
}

// post sends body to the collector and returns the status, the headers and
// the body of the answer.
func post(t *testing.T, url, contentType, body string, header map[string]string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", contentType)
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

// metric reads one sample of the collector's /metrics (the first line
// starting with name, labels included).
func metric(t *testing.T, url, name string) float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, name+" ") {
			var v float64
			fmt.Sscanf(strings.TrimPrefix(line, name+" "), "%g", &v)
			return v
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// overall is the part of the fan-out's /api/snapshot the tests check.
type overall struct {
	Attempts     uint64  `json:"attempts"`
	Plays        uint64  `json:"plays"`
	Stalls       uint64  `json:"stalls"`
	ViewsEnded   uint64  `json:"views_ended"`
	StartupP50MS float64 `json:"startup_p50_ms"`
	RebufferPct  float64 `json:"rebuffer_pct"`
	StallTimeS   float64 `json:"stall_time_s"`
}

// overallOf reads the fan-out's overall figures.
func overallOf(f *fanout) (overall, error) {
	var s struct {
		Overall overall `json:"overall"`
	}
	err := harness.GetJSON(f.url("/api/snapshot"), &s)
	return s.Overall, err
}
