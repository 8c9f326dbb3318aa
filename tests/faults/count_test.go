package faults

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"playpulse.dev/tests/harness"
	"playpulse.dev/tests/kafkatest"
	"playpulse.dev/tests/kcat"
)

// record is what the checks need of one record read back.
type record struct {
	ID   string `json:"event_id"`
	Type string `json:"event_type"`
}

// readEvents reads every record of topic with kcat, an independent
// client, on the plaintext listener (no proxy), in the order read.
func readEvents(t testing.TB, topic string) []record {
	t.Helper()
	krs := kcat.Read(t, cluster.Bootstrap(kafkatest.Plaintext), topic)
	recs := make([]record, 0, len(krs))
	for _, kr := range krs {
		var r record
		if err := json.Unmarshal([]byte(kr.Payload), &r); err != nil || r.ID == "" || r.Type == "" {
			t.Fatalf("kcat read a record that is not an event (%v): %q", err, kr.Payload)
		}
		recs = append(recs, r)
	}
	return recs
}

// checkExactlyOnce: the topic holds want events, none twice. With one
// producer writing the topic, want distinct ids among want records means
// every acknowledged event is there once.
func checkExactlyOnce(t testing.TB, recs []record, want int64) {
	t.Helper()
	seen := make(map[string]struct{}, len(recs))
	dups := 0
	for _, r := range recs {
		id := r.ID
		if _, ok := seen[id]; ok {
			if dups++; dups <= 5 {
				t.Errorf("event %s is in the topic twice", id)
			}
		}
		seen[id] = struct{}{}
	}
	if dups > 0 || int64(len(seen)) != want {
		t.Fatalf("the topic holds %d records, %d distinct events, %d duplicated; the producer acknowledged %d", len(recs), len(seen), dups, want)
	}
}

// waitFanoutCount waits until the fan-out has counted exactly n valid
// events, and fails if it counts more.
func waitFanoutCount(t testing.TB, f *service, n int64) {
	t.Helper()
	harness.Eventually(t, 60*time.Second, fmt.Sprintf("the fan-out counting %d events", n), func() error {
		got := int64(f.metrics(t).Sum("playpulse_fanout_events_total"))
		if got > n {
			t.Fatalf("the fan-out counted %d events; the topic holds %d: some were counted twice", got, n)
		}
		if got != n {
			return fmt.Errorf("%d", got)
		}
		return nil
	})
}

// clusterTLS trusts the cluster CA.
func clusterTLS() *tls.Config {
	pool := x509.NewCertPool()
	ca, _ := os.ReadFile(filepath.Join(cluster.Secret(kafkatest.ClusterCASecret), "ca.crt")) // none: every handshake fails, visibly
	pool.AppendCertsFromPEM(ca)
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}
