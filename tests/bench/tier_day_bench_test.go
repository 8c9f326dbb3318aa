package bench

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"playpulse.dev/services/playback/sim"
	"playpulse.dev/tests/browsertest"
	"playpulse.dev/tests/harness"
)

// BenchmarkTierDay: /api/history?resolution=60 of the last 24 hours, one
// point a minute, read back from the rollups topic by a merge-role fan-out
// (target: within 1 s), and the page's "last 24 hours" drawn (target: 1 s).
// A workload of 20 streams, 500 events a second in all over 6 raw
// partitions, aggregated for a few minutes gives real rollups: the
// largest is written again under the key of every minute of the last day,
// twice (two merge replicas write each minute), with the time a merge
// writes it (30 s after the minute), into the rollups topic a second
// merge fan-out reads. Reports the request's wall time (best of 3 after
// one that makes the Kafka client), the bytes read and answered, and the
// page's time from request to six charts drawn (best of 3).
func BenchmarkTierDay(b *testing.B) {
	runOnce(b, func(b *testing.B) {
		const (
			streams = 20
			rate    = 500.0
			span    = 6 * time.Minute
		)
		raw := "bench-tier-day"
		aggTopic, rollTopic, dayTopic := raw+"-aggregates", raw+"-rollups", raw+"-rollups-day"
		broker.CreateTopic(b, raw, 6)
		broker.CreateTopic(b, aggTopic, 3)
		broker.CreateTopic(b, rollTopic, 1)
		broker.CreateTopic(b, dayTopic, 1)
		begin := time.Now().Add(-span - 10*time.Second).Truncate(time.Second)
		n := 0
		for i := range streams {
			cfg := sim.DefaultConfig()
			cfg.Seed = uint64(100 + i)
			s, err := sim.New(cfg, "stream-"+strconv.Itoa(i), "s"+strconv.Itoa(i))
			if err != nil {
				b.Fatal(err)
			}
			n += fastWrite(b, raw, s, rate/streams, begin, span, 0)
		}
		b.Logf("%d events of %d streams written", n, streams)

		_, aggAddr := startFanout(b, raw, map[string]string{
			"FANOUT_WARMUP": "10m", "FANOUT_ROLE": "aggregator", "FANOUT_AGGREGATES_TOPIC": aggTopic, "FANOUT_GROUP": raw,
		})
		harness.Eventually(b, 3*time.Minute, "the aggregator has read every event", func() error {
			if v := metric("http://"+aggAddr+"/metrics", "playpulse_fanout_events_total"); v < float64(n) {
				return fmt.Errorf("%v of %d events", v, n)
			}
			return nil
		})
		_, m1 := startFanout(b, raw, map[string]string{"FANOUT_ROLE": "merge", "FANOUT_AGGREGATES_TOPIC": aggTopic, "FANOUT_ROLLUPS_TOPIC": rollTopic, "FANOUT_MAX_STREAMS": "50"})
		harness.Eventually(b, 2*time.Minute, "the merge has written rollups of the workload's minutes", func() error {
			if v := metric("http://"+m1+"/metrics", `playpulse_fanout_rollups_total{outcome="written"}`); !(v >= 4) {
				return fmt.Errorf("%v rollups written", v)
			}
			return nil
		})
		sample := largestRecord(b, rollTopic)
		b.Logf("the largest rollup: %d bytes", len(sample))

		// The last 24 hours, each minute written twice, in time order.
		to := time.Now().Unix()/60*60 - 1
		from := to + 1 - 86400
		cfg := sarama.NewConfig()
		cfg.Producer.Return.Successes = true
		p, err := sarama.NewSyncProducer([]string{broker.Addr()}, cfg)
		if err != nil {
			b.Fatal(err)
		}
		var msgs []*sarama.ProducerMessage
		for m := from; m < to; m += 60 {
			for range 2 {
				msgs = append(msgs, &sarama.ProducerMessage{Topic: dayTopic, Key: sarama.StringEncoder("minute/" + strconv.FormatInt(m, 10)),
					Value: sarama.ByteEncoder(sample), Timestamp: time.Unix(m+90, 0)})
			}
		}
		if err := p.SendMessages(msgs); err != nil {
			b.Fatal(err)
		}
		p.Close()

		_, maddr := startFanout(b, raw, map[string]string{"FANOUT_ROLE": "merge", "FANOUT_AGGREGATES_TOPIC": aggTopic, "FANOUT_ROLLUPS_TOPIC": dayTopic, "FANOUT_MAX_STREAMS": "50"})
		url := fmt.Sprintf("http://%s/api/history?from=%d&to=%d&resolution=60", maddr, from, to)
		get := func() (time.Duration, int) {
			t0 := time.Now()
			resp, err := http.Get(url)
			if err != nil {
				b.Fatal(err)
			}
			defer resp.Body.Close()
			var body struct {
				Series struct {
					Length  int                        `json:"length"`
					Streams map[string]json.RawMessage `json:"streams"`
					Overall struct {
						SPS []*float64 `json:"sps"`
					} `json:"overall"`
				} `json:"series"`
			}
			cr := &countingReader{r: resp.Body}
			if resp.StatusCode != http.StatusOK {
				b.Fatalf("%s", resp.Status)
			}
			if err := json.NewDecoder(cr).Decode(&body); err != nil {
				b.Fatal(err)
			}
			d := time.Since(t0)
			points := 0
			for _, v := range body.Series.Overall.SPS {
				if v != nil {
					points++
				}
			}
			if body.Series.Length != 1440 || points < 1439 || len(body.Series.Streams) != streams {
				b.Fatalf("a day of %d points, %d with a value, %d streams: want 1440, all, %d", body.Series.Length, points, len(body.Series.Streams), streams)
			}
			return d, cr.n
		}
		best, size, read := bestHistory(maddr, get)
		b.ReportMetric(best.Seconds(), "s")
		report("tier: /api/history of the last 24 hours, one-minute points (20 streams, 2 merge replicas)", fmt.Sprintf("%.2f s", best.Seconds()), "≤ 1 s", pass(best <= time.Second))
		report("tier: /api/history of a day, rollups read / answer", fmt.Sprintf("%.1f MB / %.1f MB", read/1e6, float64(size)/1e6), "", nil)

		br := browsertest.New(b)
		br.Open("http://" + maddr + "/")
		br.Wait(30*time.Second, `document.getElementById("status").dataset.state === "live"`)
		drawn := bestDrawn(b, br, "the day", `(() => {
				const sel = document.getElementById("range");
				delete document.getElementById("charts-section").dataset.drawnMs;
				if (sel.value !== "day") { sel.value = "day"; sel.dispatchEvent(new Event("change")); }
				else document.getElementById("range-form").requestSubmit();
				return true;
			})()`,
			`(s => s.dataset.range === "day" && s.dataset.drawnMs !== undefined)(document.getElementById("charts-section"))`,
			`Number(document.getElementById("chart-events").dataset.points) >= 1439`)
		report("tier: the last 24 hours drawn on the page (request → six charts drawn), best of 3", fmt.Sprintf("%.2f s", drawn/1000), "≤ 1 s", pass(drawn <= 1000))
	})
}

// largestRecord is the largest value of a topic's partition 0.
func largestRecord(b *testing.B, topic string) []byte {
	b.Helper()
	c, err := sarama.NewConsumer([]string{broker.Addr()}, sarama.NewConfig())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	pc, err := c.ConsumePartition(topic, 0, sarama.OffsetOldest)
	if err != nil {
		b.Fatal(err)
	}
	defer pc.Close()
	var largest []byte
	for {
		select {
		case m := <-pc.Messages():
			if len(m.Value) > len(largest) {
				largest = m.Value
			}
			if m.Offset+1 >= pc.HighWaterMarkOffset() {
				return largest
			}
		case <-time.After(10 * time.Second):
			b.Fatalf("%s: no record in 10 s", topic)
		}
	}
}
