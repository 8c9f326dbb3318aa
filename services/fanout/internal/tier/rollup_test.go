package tier

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"playpulse.dev/services/fanout/internal/aggregate"
)

// sent is a SyncProducer that keeps the keys it is given, or fails.
type sent struct {
	sarama.SyncProducer
	keys []string
	fail bool
}

func (s *sent) SendMessages(msgs []*sarama.ProducerMessage) error {
	if s.fail {
		return errors.New("broker down")
	}
	for _, m := range msgs {
		k, _ := m.Key.Encode()
		s.keys = append(s.keys, string(k))
	}
	return nil
}

// TestRollupsWritten: which minutes the merge writes, look after look (an
// injected clock): only whole minutes Settle past their end that the
// fan-out read every partial of, each once, again when its record
// changes, and again after Kafka refused it.
func TestRollupsWritten(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0) // on the minute
	value := map[int64]string{}
	r := NewRollups(sarama.NewConfig(), nil, RollupOptions{
		Topic: "minutes", From: t0.Add(-90 * time.Second),
		Rollup: func(m int64) ([]byte, []byte, bool) {
			v, ok := value[m]
			return aggregate.RollupKey(m), []byte(v), ok
		},
	})
	m := func(i int64) int64 { return t0.Unix() + 60*i }
	for i := int64(-3); i <= 3; i++ {
		value[m(i)] = "v1"
	}
	p := &sent{}
	for _, step := range []struct {
		name    string
		now     time.Time
		change  int64 // minute index whose record changes first (0: none)
		fail    bool
		want    []int64 // minute indexes written
		written float64
		again   float64
	}{
		// From is 90 s before t0: minute −2 started before it, minute −1 is whole.
		{name: "minute −1 is 30 s past its end", now: t0.Add(30 * time.Second), want: []int64{-1}, written: 1},
		{name: "nothing new", now: t0.Add(50 * time.Second), written: 1},
		{name: "minute 0 settles", now: t0.Add(90 * time.Second), want: []int64{0}, written: 2},
		{name: "minute −1 changes", now: t0.Add(95 * time.Second), change: -1, want: []int64{-1}, written: 2, again: 1},
		{name: "Kafka refuses minute 1", now: t0.Add(150 * time.Second), fail: true, written: 2, again: 1},
		{name: "minute 1 at the next look", now: t0.Add(160 * time.Second), want: []int64{1}, written: 3, again: 1},
	} {
		if step.change != 0 {
			value[m(step.change)] = "v2"
		}
		p.fail, p.keys = step.fail, nil
		err := r.Once(step.now, p)
		if (err != nil) != step.fail {
			t.Errorf("%s: %v", step.name, err)
		}
		var want []string
		for _, i := range step.want {
			want = append(want, string(aggregate.RollupKey(m(i))))
		}
		if !slices.Equal(p.keys, want) {
			t.Errorf("%s: wrote %v, want %v", step.name, p.keys, want)
		}
		if n := testutil.ToFloat64(r.records.WithLabelValues("written")); n != step.written {
			t.Errorf("%s: written %v, want %v", step.name, n, step.written)
		}
		if n := testutil.ToFloat64(r.records.WithLabelValues("rewritten")); n != step.again {
			t.Errorf("%s: rewritten %v, want %v", step.name, n, step.again)
		}
	}
	if n := testutil.ToFloat64(r.records.WithLabelValues("error")); n != 1 {
		t.Errorf("errors %v, want 1", n)
	}
}
