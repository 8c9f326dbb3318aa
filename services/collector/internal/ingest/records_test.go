package ingest

import (
	"fmt"
	"strings"
	"testing"

	"github.com/IBM/sarama"

	"playpulse.dev/services/collector/internal/cmcd"
	"playpulse.dev/services/collector/internal/intake"
)

// TestSessionRecords: a request's reports become one record per session,
// each holding its session's canonical lines in request order, timestamped
// with its earliest report, counting its reports; past linearScan sessions
// a map finds them; a full record continues in another; records handed
// over are not touched by the next request.
func TestSessionRecords(t *testing.T) {
	rep := func(sid string, sn, ts int) cmcd.Report {
		r, err := cmcd.ParseString(fmt.Sprintf(`e=t,sid="%s",sn=%d,ts=%d,v=2`, sid, sn, ts), cmcd.Options{MaxLine: 4096})
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	type want struct {
		sid   string
		sns   []int
		ts    int64
		count int
	}
	check := func(t *testing.T, msgs []*sarama.ProducerMessage, ws []want) {
		t.Helper()
		if len(msgs) != len(ws) {
			t.Fatalf("%d records, want %d", len(msgs), len(ws))
		}
		for i, w := range ws {
			m := msgs[i]
			lines := strings.Split(string(m.Value.(sarama.ByteEncoder)), "\n")
			var sns []int
			for _, l := range lines {
				r, err := cmcd.ParseString(l, cmcd.Options{MaxLine: 4096})
				if err != nil || r.SID != w.sid {
					t.Fatalf("record %d line %q: %v (want sid %s)", i, l, err, w.sid)
				}
				sns = append(sns, int(r.SN))
			}
			if string(m.Key.(sarama.StringEncoder)) != w.sid || fmt.Sprint(sns) != fmt.Sprint(w.sns) || m.Timestamp.UnixMilli() != w.ts ||
				reportsIn(m) != w.count || len(m.Headers) != 1 || m.Topic != "intake" {
				t.Errorf("record %d: key %v, sn %v, ts %d, %d reports, headers %v; want %+v", i, m.Key, sns, m.Timestamp.UnixMilli(), reportsIn(m), m.Headers, w)
			}
		}
	}
	headers := []sarama.RecordHeader{{Key: []byte("h"), Value: []byte("1")}}
	var r sessionRecords
	add := func(reps ...cmcd.Report) []*sarama.ProducerMessage {
		r.reset("intake", "", headers)
		for i := range reps {
			r.add(&reps[i], 256)
		}
		if r.reports != len(reps) {
			t.Fatalf("%d reports counted, want %d", r.reports, len(reps))
		}
		return r.records()
	}

	t.Run("one session", func(t *testing.T) {
		check(t, add(rep("a", 0, 1000), rep("a", 1, 990), rep("a", 2, 1010)), []want{{"a", []int{0, 1, 2}, 990, 3}})
	})
	t.Run("interleaved sessions", func(t *testing.T) {
		check(t, add(rep("a", 0, 1000), rep("b", 0, 1001), rep("a", 1, 1002), rep("c", 0, 1003), rep("b", 1, 1004)),
			[]want{{"a", []int{0, 1}, 1000, 2}, {"b", []int{0, 1}, 1001, 2}, {"c", []int{0}, 1003, 1}})
	})
	t.Run("more sessions than the linear scan", func(t *testing.T) {
		var reps []cmcd.Report
		var ws []want
		for i := range 2*linearScan + 3 {
			sid := fmt.Sprint("s", i)
			reps = append(reps, rep(sid, 0, 1000+i))
			ws = append(ws, want{sid, []int{0, 1}, int64(1000 + i), 2})
		}
		for i := range 2*linearScan + 3 {
			reps = append(reps, rep(fmt.Sprint("s", i), 1, 2000))
		}
		check(t, add(reps...), ws)
	})
	t.Run("a full record continues in another", func(t *testing.T) {
		r0 := rep("a", 100000, 1000)
		line := len(r0.AppendLine(nil, "")) + 1
		perRecord := intake.MaxValue / line
		var reps []cmcd.Report
		for sn := range perRecord + 5 {
			reps = append(reps, rep("a", 100000+sn, 1000))
		}
		reps = append(reps, rep("b", 0, 1000), rep("a", 100000+perRecord+5, 1000))
		msgs := add(reps...)
		if len(msgs) != 3 || reportsIn(msgs[0]) != perRecord || reportsIn(msgs[1]) != 6 || reportsIn(msgs[2]) != 1 || len(msgs[0].Value.(sarama.ByteEncoder)) > intake.MaxValue {
			t.Fatalf("records of %d, %d, %d reports (%d bytes first), want %d, 6, 1", reportsIn(msgs[0]), reportsIn(msgs[1]), reportsIn(msgs[2]), len(msgs[0].Value.(sarama.ByteEncoder)), perRecord)
		}
		if string(msgs[1].Key.(sarama.StringEncoder)) != "a" || string(msgs[2].Key.(sarama.StringEncoder)) != "b" {
			t.Fatalf("keys %v %v", msgs[1].Key, msgs[2].Key)
		}
	})
	t.Run("records handed over stay as they were", func(t *testing.T) {
		first := add(rep("a", 0, 1000), rep("a", 1, 1000))
		m, v := first[0], string(first[0].Value.(sarama.ByteEncoder))
		add(rep("a", 2, 1000), rep("z", 0, 1000))
		if string(m.Value.(sarama.ByteEncoder)) != v || string(m.Key.(sarama.StringEncoder)) != "a" || reportsIn(m) != 2 {
			t.Fatalf("a record sent earlier changed: %+v", m)
		}
	})
}
