// Package kcat reads Kafka topics with kcat (librdkafka), a client
// independent of the services' own (sarama), so that what a test reads back
// is what any consumer sees: keys, record timestamps, headers, and only
// committed transactions.
//
//	for _, r := range kcat.Read(t, broker.Addr(), "playback-players") {
//		if r.Key == sid && r.Header(event.HeaderSchema) == "1" { … }
//	}
package kcat

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Record is one record as kcat -J prints it.
type Record struct {
	Key       string   `json:"key"`
	Payload   string   `json:"payload"`
	Timestamp int64    `json:"ts"` // Unix ms
	Headers   []string `json:"headers"`
	Partition int32    `json:"partition"`
	Offset    int64    `json:"offset"`
}

// Header is the value of the record's header name, "" without one.
func (r Record) Header(name string) string {
	for i := 0; i+1 < len(r.Headers); i += 2 {
		if r.Headers[i] == name {
			return r.Headers[i+1]
		}
	}
	return ""
}

// Read reads every record of topic from brokers (host:port, comma
// separated), from the beginning to the end as it is now, read_committed
// (as the fan-out reads): records of aborted or open transactions are not
// returned. A missing kcat fails the test; it is never skipped. Any error,
// a kcat that does not reach the end within 30 s included, fails the
// test: use ReadE to poll.
func Read(t testing.TB, brokers, topic string) []Record {
	t.Helper()
	recs, err := ReadE(t, brokers, topic)
	if err != nil {
		t.Fatal(err)
	}
	return recs
}

// timeout bounds one read: kcat -e once waited minutes for a topic created
// a moment before (its partitions' end-of-partition never came).
const timeout = 30 * time.Second

// ReadE is Read returning its error, for a test that polls until the
// records are there.
func ReadE(t testing.TB, brokers, topic string) ([]Record, error) {
	t.Helper()
	return read(t, brokers, topic, "-e", "-X", "isolation.level=read_committed")
}

// ReadFirst returns the first n records of a topic written without
// transactions (the producer's), or an error when kcat has not read that
// many within 30 s. It stops at the n-th record rather than at the end:
// on a topic created a moment before, kcat -e has waited minutes for an
// end-of-partition that did not come, with the records there.
func ReadFirst(t testing.TB, brokers, topic string, n int) ([]Record, error) {
	t.Helper()
	return read(t, brokers, topic, "-c", strconv.Itoa(n))
}

func read(t testing.TB, brokers, topic string, args ...string) ([]Record, error) {
	t.Helper()
	if _, err := exec.LookPath("kcat"); err != nil {
		t.Fatal("kcat is not installed: run `make deps` (apt-get install kcat)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "kcat", append([]string{"-C", "-b", brokers, "-t", topic, "-J", "-q", "-o", "beginning"}, args...)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("kcat -C -t %s: not at the end of the topic after %v", topic, timeout)
		}
		return nil, fmt.Errorf("kcat -C -t %s: %v: %s", topic, err, errb.String())
	}
	var recs []Record
	for _, line := range strings.Split(out.String(), "\n") {
		if line == "" {
			continue
		}
		var r Record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return nil, fmt.Errorf("kcat output %q: %v", line, err)
		}
		recs = append(recs, r)
	}
	return recs, nil
}
