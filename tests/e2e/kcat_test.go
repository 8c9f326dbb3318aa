package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"playpulse.dev/services/playback/event"
	"playpulse.dev/services/playback/event/eventtest"
	"playpulse.dev/tests/harness"
)

// TestKcatReadsValidEvents reads what the producer wrote with an
// independent client, kcat, and validates every record against the JSON
// Schema file: key = session_id, record timestamp = ts, schema header set.
func TestKcatReadsValidEvents(t *testing.T) {
	s := startStack(t, stackOpts{rate: "500"})
	schema := eventtest.Schema(t)

	const want = 500
	var lines []string
	harness.Eventually(t, 30*time.Second, fmt.Sprintf("%d records readable by kcat", want), func() error {
		out, err := kcat(t, "-C", "-b", broker.Addr(), "-t", s.topic, "-J", "-e", "-q", "-o", "beginning", "-c", fmt.Sprint(want))
		if err != nil {
			return err
		}
		lines = strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) < want {
			return fmt.Errorf("%d records so far", len(lines))
		}
		return nil
	})
	for _, line := range lines {
		var rec struct {
			Key       string   `json:"key"`
			Payload   string   `json:"payload"`
			Timestamp int64    `json:"ts"`
			Headers   []string `json:"headers"`
			Partition int32    `json:"partition"`
		}
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Fatalf("kcat output %q: %v", line, err)
		}
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

func kcat(t *testing.T, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Fatal("kcat is not installed: run `make deps` (apt-get install kcat)")
	}
	cmd := exec.Command("kcat", args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("kcat %v: %v: %s", args, err, errb.String())
	}
	return out.String(), nil
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
