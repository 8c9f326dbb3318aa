package e2e

import (
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"playpulse.dev/services/playback/event"
	"playpulse.dev/services/playback/event/eventtest"
	"playpulse.dev/tests/harness"
	"playpulse.dev/tests/kcat"
)

// TestKcatReadsValidEvents reads what the producer wrote with an
// independent client, kcat, and validates every record against the JSON
// Schema file: key = session_id, record timestamp = ts, schema header set.
func TestKcatReadsValidEvents(t *testing.T) {
	s := startStack(t, stackOpts{rate: "500"})
	schema := eventtest.Schema(t)

	const want = 500
	var recs []kcat.Record
	harness.Eventually(t, 30*time.Second, fmt.Sprintf("%d records readable by kcat", want), func() error {
		var err error
		if recs, err = kcat.ReadFirst(t, broker.Addr(), s.topic, want); err != nil {
			return err
		}
		if len(recs) < want {
			return fmt.Errorf("%d records so far", len(recs))
		}
		return nil
	})
	for _, rec := range recs {
		doc, err := jsonschema.UnmarshalJSON(strings.NewReader(rec.Payload))
		if err != nil {
			t.Fatalf("payload is not JSON: %q", rec.Payload)
		}
		if err := schema.Validate(doc); err != nil {
			t.Fatalf("payload fails the schema: %v\n%s", err, rec.Payload)
		}
		var e event.Event
		if err := event.Decode([]byte(rec.Payload), &e); err != nil {
			t.Fatal(err)
		}
		if rec.Key != e.SessionID {
			t.Fatalf("record key %q, session_id %q", rec.Key, e.SessionID)
		}
		if rec.Timestamp != e.TS.UnixMilli() {
			t.Fatalf("record timestamp %d, ts %d", rec.Timestamp, e.TS.UnixMilli())
		}
		if len(rec.Headers) != 2 || rec.Headers[0] != event.HeaderSchema || rec.Headers[1] != "1" {
			t.Fatalf("headers %v, want [%s 1]", rec.Headers, event.HeaderSchema)
		}
	}
}

// kcatProduce writes one record per line of values with kcat.
func kcatProduce(t *testing.T, topic string, values ...string) {
	t.Helper()
	cmd := exec.Command("kcat", "-P", "-b", broker.Addr(), "-t", topic, "-D", "\x1e")
	cmd.Stdin = strings.NewReader(strings.Join(values, "\x1e"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kcat -P: %v: %s", err, out)
	}
}
