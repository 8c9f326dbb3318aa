// Package benchproducer measures the producer against a real Kafka broker:
// BenchmarkProducer (make bench) prints one table with the simulator's
// speed, the producer's maximum sustained rate with acks=all per codec, its
// rate accuracy and its added latency. The helpers here (Topic,
// MeasureRate, Scrape) are also used by the producer tests in tests/e2e.
//
// # How the rate is measured in Kafka
//
// The producer stamps every record with its due time on the pacing
// schedule, and writes each partition in order, so record timestamps never
// go backwards within a partition. For a window [T0, T0+W):
//
//  1. by timestamp: the records with T0 ≤ timestamp < T0+W, counted per
//     partition with ListOffsets by timestamp (the first offset at or after
//     a time), summed. This is exact: at rate 1 it is 10 in any 10 s window.
//  2. delivery kept up: that count is taken at T0+W+Deliver and again a
//     second later; the two must agree, so every record of the window was in
//     Kafka (acknowledged, below the high-water mark) within Deliver of the
//     window's end. A producer that fell behind or buffered would fail this.
//  3. in wall-clock time: the sum of the partitions' high-water marks read
//     at T0 and at T0+W (one ListOffsets request each); the difference is
//     what Kafka appended during the window, whatever the timestamps say.
package benchproducer

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/IBM/sarama"
)

// Topic reads offsets and sizes of one topic from a broker.
type Topic struct {
	Name   string
	client sarama.Client
	parts  []int32
}

// OpenTopic connects to addr and loads the topic's partitions.
func OpenTopic(addr, name string) (*Topic, error) {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_9_0_0
	cfg.Metadata.Full = false
	c, err := sarama.NewClient([]string{addr}, cfg)
	if err != nil {
		return nil, err
	}
	parts, err := c.Partitions(name)
	if err != nil {
		c.Close()
		return nil, err
	}
	return &Topic{Name: name, client: c, parts: parts}, nil
}

// Close closes the client.
func (t *Topic) Close() error { return t.client.Close() }

// Client is the underlying sarama client (for consumers).
func (t *Topic) Client() sarama.Client { return t.client }

// offsets sends one ListOffsets request for every partition with the given
// timestamp (or sarama.OffsetNewest) and returns the offsets by partition
// (-1 where no record is at or after the timestamp).
func (t *Topic) offsets(ts int64) (map[int32]int64, error) {
	// Single broker: every partition has the same leader.
	leader, err := t.client.Leader(t.Name, t.parts[0])
	if err != nil {
		return nil, err
	}
	req := sarama.NewOffsetRequest(t.client.Config().Version)
	for _, p := range t.parts {
		req.AddBlock(t.Name, p, ts, 1)
	}
	resp, err := leader.GetAvailableOffsets(req)
	if err != nil {
		return nil, err
	}
	out := make(map[int32]int64, len(t.parts))
	for _, p := range t.parts {
		b := resp.GetBlock(t.Name, p)
		if b == nil {
			return nil, fmt.Errorf("no offset for partition %d", p)
		}
		if b.Err != sarama.ErrNoError {
			return nil, fmt.Errorf("partition %d: %w", p, b.Err)
		}
		out[p] = b.Offset
	}
	return out, nil
}

// HighWater returns the sum of the partitions' high-water marks: the number
// of records in the topic (it is never compacted or truncated in tests).
func (t *Topic) HighWater() (int64, error) {
	hw, err := t.offsets(sarama.OffsetNewest)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, o := range hw {
		n += o
	}
	return n, nil
}

// CountBetween counts the records with from ≤ timestamp < to (millisecond
// timestamps), assuming timestamps never go backwards within a partition.
func (t *Topic) CountBetween(from, to time.Time) (int64, error) {
	hw, err := t.offsets(sarama.OffsetNewest)
	if err != nil {
		return 0, err
	}
	a, err := t.offsets(from.UnixMilli())
	if err != nil {
		return 0, err
	}
	b, err := t.offsets(to.UnixMilli())
	if err != nil {
		return 0, err
	}
	var n int64
	for _, p := range t.parts {
		lo, hi := a[p], b[p]
		if lo < 0 {
			lo = hw[p]
		}
		if hi < 0 {
			hi = hw[p]
		}
		n += hi - lo
	}
	return n, nil
}

// Bytes is the size of the topic's log segments on the broker.
func (t *Topic) Bytes(addr string) (int64, error) {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_9_0_0
	admin, err := sarama.NewClusterAdmin([]string{addr}, cfg)
	if err != nil {
		return 0, err
	}
	defer admin.Close()
	brokers, _, err := admin.DescribeCluster()
	if err != nil {
		return 0, err
	}
	ids := make([]int32, 0, len(brokers))
	for _, b := range brokers {
		ids = append(ids, b.ID())
	}
	dirs, err := admin.DescribeLogDirs(ids)
	if err != nil {
		return 0, err
	}
	var n int64
	for _, ds := range dirs {
		for _, d := range ds {
			for _, tp := range d.Topics {
				if tp.Topic != t.Name {
					continue
				}
				for _, p := range tp.Partitions {
					n += p.Size
				}
			}
		}
	}
	return n, nil
}

// RateResult is one MeasureRate.
type RateResult struct {
	Target      float64
	Window      time.Duration
	Deliver     time.Duration
	ByTimestamp int64 // records with a timestamp in the window, counted Deliver after its end
	Recount     int64 // the same count one second later
	HighWater   int64 // records appended during the window (wall clock)
}

// Expected is Target × Window.
func (r RateResult) Expected() float64 { return r.Target * r.Window.Seconds() }

// Err checks the result against the tolerance (a fraction, 0.02 for ±2%).
// The timestamp count must be within tol of the target, exactly the target
// when tol allows less than one event (rate 1 over 10 s: 10); the recount
// must equal it; the
// high-water delta must be within tol too, allowing one event at each end
// of the window, when checkHW is set (at rate 1 that slack is 20% of the
// count, so the test relies on the other two).
func (r RateResult) Err(tol float64, checkHW bool) error {
	want := r.Expected()
	var errs []error
	allowed := tol * want
	if allowed < 1 {
		allowed = 0.999 // exact when rate·window is whole
	}
	if d := math.Abs(float64(r.ByTimestamp) - want); d > allowed {
		errs = append(errs, fmt.Errorf("%d records with timestamps in the %s window, want %.0f ±%.0f%%", r.ByTimestamp, r.Window, want, tol*100))
	}
	if r.Recount != r.ByTimestamp {
		errs = append(errs, fmt.Errorf("%d more records with timestamps in the window arrived later than %s after it: delivery fell behind", r.Recount-r.ByTimestamp, r.Deliver))
	}
	if checkHW {
		if d := math.Abs(float64(r.HighWater) - want); d > tol*want+2 {
			errs = append(errs, fmt.Errorf("high-water mark grew by %d during the %s window, want %.0f ±%.0f%%", r.HighWater, r.Window, want, tol*100))
		}
	}
	return errors.Join(errs...)
}

func (r RateResult) String() string {
	return fmt.Sprintf("target %g/s over %s: %d by timestamp (%+.3f%%), recount %d, high-water delta %d (%+.3f%%)",
		r.Target, r.Window, r.ByTimestamp, 100*(float64(r.ByTimestamp)/r.Expected()-1), r.Recount,
		r.HighWater, 100*(float64(r.HighWater)/r.Expected()-1))
}

// MeasureRate waits until t0 and measures the window [t0, t0+window) as
// described in the package documentation. It returns after
// t0+window+deliver+1s.
func (t *Topic) MeasureRate(target float64, t0 time.Time, window, deliver time.Duration) (RateResult, error) {
	r := RateResult{Target: target, Window: window, Deliver: deliver}
	time.Sleep(time.Until(t0))
	hw0, err := t.HighWater()
	if err != nil {
		return r, err
	}
	t1 := t0.Add(window)
	time.Sleep(time.Until(t1))
	hw1, err := t.HighWater()
	if err != nil {
		return r, err
	}
	r.HighWater = hw1 - hw0
	time.Sleep(time.Until(t1.Add(deliver)))
	if r.ByTimestamp, err = t.CountBetween(t0, t1); err != nil {
		return r, err
	}
	time.Sleep(time.Until(t1.Add(deliver + time.Second)))
	if r.Recount, err = t.CountBetween(t0, t1); err != nil {
		return r, err
	}
	return r, nil
}

// NextWindow returns a window start at least lead from now, on a whole
// millisecond (record timestamps have millisecond precision).
func NextWindow(lead time.Duration) time.Time {
	return time.Now().Add(lead).Truncate(time.Millisecond)
}

// Metrics is one scrape of a Prometheus text endpoint: sample lines by
// their full name with labels, e.g. `x_total{reason="shutdown"}`.
type Metrics map[string]float64

// Scrape reads url.
func Scrape(url string) (Metrics, error) {
	resp, err := http.Get(url)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	m := Metrics{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			continue
		}
		m[line[:i]] = v
	}
	return m, sc.Err()
}

// Sum adds every sample of the family name (all label sets).
func (m Metrics) Sum(name string) float64 {
	var s float64
	for k, v := range m {
		if k == name || strings.HasPrefix(k, name+"{") {
			s += v
		}
	}
	return s
}

// Get returns one sample by its full name, e.g. `x_total{reason="shutdown"}`.
func (m Metrics) Get(key string) float64 { return m[key] }

// Histogram is the cumulative buckets of one histogram: upper bound → count.
type Histogram struct {
	Bounds []float64
	Counts []float64 // cumulative, as exported; the last bound is +Inf
}

// Histogram extracts the histogram family name.
func (m Metrics) Histogram(name string) Histogram {
	var h Histogram
	type b struct{ le, n float64 }
	var bs []b
	prefix := name + `_bucket{le="`
	for k, v := range m {
		rest, ok := strings.CutPrefix(k, prefix)
		if !ok {
			continue
		}
		le, _, _ := strings.Cut(rest, `"`)
		f, err := strconv.ParseFloat(le, 64)
		if err != nil {
			continue
		}
		bs = append(bs, b{f, v})
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].le < bs[j].le })
	for _, x := range bs {
		h.Bounds = append(h.Bounds, x.le)
		h.Counts = append(h.Counts, x.n)
	}
	return h
}

// Sub returns the observations made between two scrapes (h minus earlier).
func (h Histogram) Sub(earlier Histogram) Histogram {
	out := Histogram{Bounds: h.Bounds, Counts: make([]float64, len(h.Counts))}
	for i := range h.Counts {
		out.Counts[i] = h.Counts[i]
		if i < len(earlier.Counts) {
			out.Counts[i] -= earlier.Counts[i]
		}
	}
	return out
}

// Count is the number of observations.
func (h Histogram) Count() float64 {
	if len(h.Counts) == 0 {
		return 0
	}
	return h.Counts[len(h.Counts)-1]
}

// Quantile estimates the q-quantile by linear interpolation inside its
// bucket (as Prometheus' histogram_quantile does).
func (h Histogram) Quantile(q float64) float64 {
	n := h.Count()
	if n == 0 {
		return math.NaN()
	}
	rank := q * n
	prevBound, prevCount := 0.0, 0.0
	for i, c := range h.Counts {
		if c >= rank {
			if math.IsInf(h.Bounds[i], 1) {
				return prevBound
			}
			if c == prevCount {
				return h.Bounds[i]
			}
			return prevBound + (h.Bounds[i]-prevBound)*(rank-prevCount)/(c-prevCount)
		}
		prevBound, prevCount = h.Bounds[i], c
	}
	return prevBound
}

// FractionBelow is the share of observations at or below bound (which
// should be a bucket boundary).
func (h Histogram) FractionBelow(bound float64) float64 {
	n := h.Count()
	if n == 0 {
		return math.NaN()
	}
	for i, b := range h.Bounds {
		if b >= bound {
			return h.Counts[i] / n
		}
	}
	return 1
}
