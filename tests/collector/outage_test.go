package collector

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"playpulse.dev/tests/harness"
	"playpulse.dev/tests/kafkatest"
	"playpulse.dev/tests/kcat"
)

// TestBrokerKilledMidFlood: clients flood the edge while the broker is
// stopped and started again. Every report answered 2xx is in the intake
// topic exactly once afterwards (counted by sid and sn with kcat); every
// other report was refused (503 while Kafka was away), and none of those
// reached Kafka: nothing accepted was dropped, nothing refused was kept.
func TestBrokerKilledMidFlood(t *testing.T) {
	b := kafkatest.Start(t)
	intake, events, group := topics(t, b, 3, 1)
	c := startCollector(t, b, intake, events, group, map[string]string{
		"COLLECTOR_ROLES":      "ingest",
		"COLLECTOR_RATE_LIMIT": "0",
	})

	var (
		mu       sync.Mutex
		accepted = map[string]bool{} // sid/sn answered 2xx
		refused  = map[string]int{}  // sid/sn -> status
		stop     atomic.Bool
		wg       sync.WaitGroup
	)
	client := &http.Client{Timeout: 30 * time.Second}
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sid := fmt.Sprintf("flood-%d", w)
			for sn := 0; !stop.Load() && sn < 1_000_000; sn++ {
				line := fmt.Sprintf(`e=t,sid="%s",sn=%d,ts=%d,v=2`, sid, sn, time.Now().UnixMilli())
				resp, err := client.Post(c.url("/v1/cmcd"), "application/cmcd", strings.NewReader(line))
				key := fmt.Sprintf("%s/%d", sid, sn)
				if err != nil {
					t.Errorf("POST: %v", err) // the edge must always answer
					return
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				mu.Lock()
				if resp.StatusCode/100 == 2 {
					accepted[key] = true
				} else {
					refused[key] = resp.StatusCode
				}
				mu.Unlock()
				if resp.StatusCode == http.StatusServiceUnavailable {
					time.Sleep(20 * time.Millisecond) // as a player backs off
				}
			}
		}()
	}
	count := func() (int, int) {
		mu.Lock()
		defer mu.Unlock()
		return len(accepted), len(refused)
	}
	harness.Eventually(t, 30*time.Second, "a flood under way", func() error {
		if a, _ := count(); a < 2000 {
			return fmt.Errorf("%d accepted", a)
		}
		return nil
	})
	b.Stop(t)
	harness.Eventually(t, 30*time.Second, "refusals while the broker is down", func() error {
		if _, r := count(); r < 50 {
			return fmt.Errorf("%d refused", r)
		}
		return nil
	})
	b.Restart(t)
	a0, _ := count()
	harness.Eventually(t, 60*time.Second, "reports accepted again", func() error {
		if a, _ := count(); a < a0+2000 {
			return fmt.Errorf("%d accepted since the restart", a-a0)
		}
		return nil
	})
	stop.Store(true)
	wg.Wait()

	harness.Eventually(t, 60*time.Second, "every accepted report acknowledged", func() error {
		if v := metric(t, c.url("/metrics"), "playpulse_collector_buffered"); v != 0 {
			return fmt.Errorf("%v buffered", v)
		}
		if v := metric(t, c.url("/metrics"), "playpulse_collector_lost_total"); v != 0 {
			t.Fatalf("%v reports counted as lost", v)
		}
		return nil
	})
	found := map[string]int{}
	re := regexp.MustCompile(`sid="([^"]+)",sn=(\d+)`)
	harness.Eventually(t, 30*time.Second, "every accepted report in Kafka", func() error {
		found = map[string]int{}
		for _, r := range kcat.Read(t, b.Addr(), intake) {
			for _, line := range strings.Split(r.Payload, "\n") {
				m := re.FindStringSubmatch(line)
				if m == nil {
					t.Fatalf("intake record %q", r.Payload)
				}
				found[m[1]+"/"+m[2]]++
			}
		}
		for k := range accepted {
			if found[k] == 0 {
				return fmt.Errorf("%s (answered 2xx) not in Kafka; %d records, %d accepted", k, len(found), len(accepted))
			}
		}
		return nil
	})
	for k, n := range found {
		if n != 1 {
			t.Errorf("%s is in Kafka %d times", k, n)
		}
		if !accepted[k] {
			t.Errorf("%s is in Kafka but was answered %d", k, refused[k])
		}
	}
	codes := map[int]int{}
	for _, code := range refused {
		codes[code]++
	}
	if len(codes) != 1 || codes[http.StatusServiceUnavailable] == 0 {
		t.Errorf("refusals by status: %v, want 503 only", codes)
	}
	t.Logf("%d reports accepted, all in Kafka exactly once; %d refused with 503 while the broker was away", len(accepted), len(refused))
}
