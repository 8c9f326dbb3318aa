package ingest

import (
	"time"

	"github.com/IBM/sarama"

	"playpulse.dev/services/collector/internal/cmcd"
	"playpulse.dev/services/collector/internal/intake"
)

// sessionRecords gathers the accepted reports of one request into intake
// records: one record per session (sid) of the request, its lines in the
// order they came, so that a request of ten reports of one player is one
// Kafka record rather than ten. The producer's cost is per record (sarama
// passes each through four goroutines, encodes its headers and tracks its
// acknowledgement: a third of the edge's CPU at one record per report),
// while the records of one sid go to one partition, in order, either way.
// A record holds at most intake.MaxValue bytes; a session with more
// reports in one request continues in another record.
type sessionRecords struct {
	topic     string
	userIDKey string
	headers   []sarama.RecordHeader // the request's, shared by its records
	msgs      []*sarama.ProducerMessage
	sids      []string       // by record
	values    [][]byte       // by record: its lines so far
	counts    []int          // by record: its reports
	byID      map[string]int // sid → its latest record, beyond linearScan records
	reports   int
}

// linearScan is how many records a request may have before a map finds a
// session's record: most requests hold one session.
const linearScan = 8

// reset empties r for a request whose records get headers.
func (r *sessionRecords) reset(topic, userIDKey string, headers []sarama.RecordHeader) {
	r.topic, r.userIDKey, r.headers = topic, userIDKey, headers
	// The messages and their values now belong to the producer: forget
	// them, keep the slices.
	clear(r.msgs)
	clear(r.values)
	r.msgs, r.sids, r.values, r.counts = r.msgs[:0], r.sids[:0], r.values[:0], r.counts[:0]
	r.byID = nil
	r.reports = 0
}

// add appends a report whose ts is final (clamped); sizeHint is the room
// to give a new record's value (the body's size: most requests hold one
// session).
func (r *sessionRecords) add(rep *cmcd.Report, sizeHint int) {
	r.reports++
	if i := r.find(rep.SID); i >= 0 {
		v := r.values[i]
		n := len(v)
		v = rep.AppendLine(append(v, '\n'), r.userIDKey)
		if len(v) <= intake.MaxValue {
			r.values[i] = v
			r.counts[i]++
			// A record's timestamp is its earliest report's: a look-back
			// by time (the sessionizer's rebuild) finds all of them.
			if rep.TS < r.msgs[i].Timestamp.UnixMilli() {
				r.msgs[i].Timestamp = time.UnixMilli(rep.TS)
			}
			return
		}
		r.values[i] = v[:n] // full: the report starts the session's next record
	}
	i := len(r.msgs)
	r.msgs = append(r.msgs, &sarama.ProducerMessage{
		Topic: r.topic, Key: sarama.StringEncoder(rep.SID), Headers: r.headers, Timestamp: time.UnixMilli(rep.TS),
	})
	r.sids = append(r.sids, rep.SID)
	r.values = append(r.values, rep.AppendLine(make([]byte, 0, min(sizeHint, intake.MaxValue)), r.userIDKey))
	r.counts = append(r.counts, 1)
	switch {
	case i == linearScan:
		r.byID = make(map[string]int, 2*linearScan)
		for j, sid := range r.sids {
			r.byID[sid] = j // later records overwrite earlier ones
		}
	case i > linearScan:
		r.byID[rep.SID] = i
	}
}

// find returns the index of sid's latest record, -1 when it has none.
func (r *sessionRecords) find(sid string) int {
	if r.byID != nil {
		if i, ok := r.byID[sid]; ok {
			return i
		}
		return -1
	}
	for i := len(r.sids) - 1; i >= 0; i-- {
		if r.sids[i] == sid {
			return i
		}
	}
	return -1
}

// records returns the finished records. Metadata holds the number of
// reports in each: the producer counts its buffer in reports.
func (r *sessionRecords) records() []*sarama.ProducerMessage {
	for i, m := range r.msgs {
		m.Value = sarama.ByteEncoder(r.values[i])
		m.Metadata = r.counts[i]
	}
	return r.msgs
}
