package e2e

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"playpulse.dev/tests/benchproducer"
	"playpulse.dev/tests/harness"
	"playpulse.dev/tests/kafkatest"
)

// TestProducerKafkaOutage stops a broker of its own (the shared one is not
// disturbed) for 10 s under a producer sending 1,000 events/s, and starts it
// again on the same data directory and port:
//   - /readyz turns 503 during the outage and 200 again after it;
//   - events generated meanwhile wait in the bounded buffer;
//   - after a SIGTERM, the producer exits 0 within 10 s having failed
//     nothing (acknowledged = generated);
//   - the topic holds exactly the acknowledged events: as many records as
//     acknowledged, no event id twice, every session's events in order
//     with seq 1, 2, 3, ... Since only this producer wrote the topic, its
//     distinct event ids are a subset of the generated ones; as many as
//     generated, so the two sets are equal.
//
// Then, with the broker stopped again, a SIGTERM still ends the producer
// within 10 s with exit 0, the events it could not deliver counted as failed.
func TestProducerKafkaOutage(t *testing.T) {
	began := time.Now()
	phase := func(what string) { t.Logf("%6.1fs %s", time.Since(began).Seconds(), what) }
	b := kafkatest.Start(t)
	b.CreateTopic(t, "outage", 3)
	phase("broker started")
	p := runProducer(t, harness.Bin(t), b, "outage", "1000", nil)
	phase("producer ready")
	p.waitAcked(t, 2000, 30*time.Second)

	phase("stopping the broker")
	b.Stop(t)
	phase("broker stopped")
	down := time.Now()
	harness.Eventually(t, 9*time.Second, "not ready while Kafka is down", func() error {
		return wantStatus(p.readyURL(), http.StatusServiceUnavailable)
	})
	time.Sleep(time.Until(down.Add(10 * time.Second))) // the outage lasts 10 s
	m, err := benchproducer.Scrape(p.metricsURL())
	if err != nil {
		t.Fatal(err)
	}
	if buf := m.Sum("playpulse_producer_buffered_events"); buf < 1000 {
		t.Errorf("only %v events buffered after 10 s of outage at 1000/s", buf)
	}
	if f := m.Sum("playpulse_producer_events_failed_total"); f != 0 {
		t.Errorf("%v events failed during a 10 s outage", f)
	}
	t.Logf("after 10 s down: generated %v, acknowledged %v, buffered %v", m.Sum("playpulse_producer_events_generated_total"),
		m.Sum("playpulse_producer_events_total"), m.Sum("playpulse_producer_buffered_events"))

	phase("restarting the broker")
	b.Restart(t)
	phase("broker restarted")
	harness.Eventually(t, 30*time.Second, "ready again after the outage", func() error {
		return wantStatus(p.readyURL(), http.StatusOK)
	})
	generated := m.Sum("playpulse_producer_events_generated_total")
	p.waitAcked(t, generated+2000, 60*time.Second) // the backlog and new events flow
	phase("backlog delivered")
	c := stopProducer(t, p)
	phase("producer stopped")
	if c.Failed != 0 {
		t.Errorf("%d events failed; a 10 s outage should fail none", c.Failed)
	}
	recs := readAll(t, b, "outage")
	sessions := checkExactlyOnce(t, recs)
	checkPartitionTimes(t, recs)
	if int64(len(recs)) != c.Acknowledged {
		t.Fatalf("the topic holds %d records, the producer acknowledged %d", len(recs), c.Acknowledged)
	}
	t.Logf("generated %d, acknowledged %d, failed %d; %d records, %d sessions, no duplicates or gaps",
		c.Generated, c.Acknowledged, c.Failed, len(recs), sessions)

	// SIGTERM while Kafka is down.
	b.CreateTopic(t, "outage-shutdown", 3)
	p2 := runProducer(t, harness.Bin(t), b, "outage-shutdown", "1000", nil)
	p2.waitAcked(t, 500, 30*time.Second)
	b.Stop(t)
	harness.Eventually(t, 9*time.Second, "not ready while Kafka is down", func() error {
		return wantStatus(p2.readyURL(), http.StatusServiceUnavailable)
	})
	c2 := stopProducer(t, p2)
	if c2.Failed == 0 {
		t.Errorf("nothing counted as failed after a shutdown with Kafka down: %+v", c2)
	}
	phase("second producer stopped")
	t.Logf("shutdown with Kafka down: %+v", c2)
}

func wantStatus(url string, code int) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != code {
		return fmt.Errorf("GET %s: %s, want %d", url, resp.Status, code)
	}
	return nil
}
