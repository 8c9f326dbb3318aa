package cluster

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"playpulse.dev/services/playback/event"
	"playpulse.dev/tests/harness"
)

// The collector of the chart test's release: one replica, and a page origin
// whose players may post, to see the chart's value reach the process.
const (
	collectorName   = release + "-collector"
	collectorSel    = instanceSel + ",app.kubernetes.io/component=collector"
	collectorPort   = 8083 // the chart's collector.port
	playerOrigin    = "https://player.example"
	collectorStream = "bed" // /v1/cmcd/bed
)

// collectorValues switch the collector on in the chart test's release.
func collectorValues() []string {
	return []string{
		"--set", "collector.enabled=true",
		"--set", "collector.replicas=1",
		"--set", "collector.image.tag=" + bed.images["collector"].tag,
		"--set", "collector.allowedOrigins={" + playerOrigin + "}",
	}
}

// collectorTopics is the path of a user without Strimzi (the bed has none,
// so collector.topics.create=auto renders no KafkaTopic): the collector
// runs but is not ready, and its /readyz names the missing topic, until
// the topics exist; they are created exactly as the install notes say,
// through the Kafka admin API (the notes' kafka-topics.sh commands, whose
// arguments this reads and replays with sarama's admin client). The caller
// then waits for the collector to turn ready.
func collectorTopics(t *testing.T, c sarama.Client, notes string) {
	t.Helper()
	if strings.Contains(helm(t, "get", "manifest", release, "--namespace", ns), "kind: KafkaTopic") {
		t.Fatalf("the release has KafkaTopics, on a cluster without Strimzi")
	}
	cmds := notedTopic.FindAllStringSubmatch(notes, -1)
	if len(cmds) != 2 {
		t.Fatalf("the install notes do not give the two kafka-topics.sh commands:\n%s", notes)
	}
	// Not ready, and saying why.
	var why string
	eventually(t, 30*time.Second, "the collector's /readyz naming its missing topic", func() error {
		ps := pods(t, ns, collectorSel)
		if len(ps) != 1 || ps[0].Status.PodIP == "" {
			return fmt.Errorf("collector pods:%s", podSummary(ps))
		}
		code, body, err := get(fmt.Sprintf("http://%s:%d/readyz", ps[0].Status.PodIP, collectorPort))
		if err != nil {
			return err
		}
		if code != http.StatusServiceUnavailable || !strings.Contains(body, cmds[0][2]) && !strings.Contains(body, cmds[1][2]) {
			return fmt.Errorf("/readyz %d %s", code, body)
		}
		why = body
		return nil
	})
	t.Logf("before its topics exist, the collector's /readyz: %s", strings.TrimSpace(why))

	createNotedTopics(t, c, bed.broker.Addr(), notes, 2)
}

// get is an HTTP GET that returns the status and the body.
func get(url string) (int, string, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// testCollector: a batch of CMCD reports posted through the collector's
// Service (kubectl port-forward, as the install notes say) from an allowed
// page origin is accepted; the sessionizer writes the session's contract
// events into the events topic (read back from Kafka, committed only, as
// the fan-out reads), and the fan-out's /api/snapshot shows the session
// with source cmcd. It runs before any stream, so the fan-out sees this
// session alone.
func testCollector(t *testing.T) {
	addr := portForward(t, ns, "svc/"+collectorName, 80)
	sid := fmt.Sprintf("bed-%d", time.Now().UnixNano())
	cid := "bed-title-" + strconv.FormatInt(time.Now().Unix(), 36)
	t0 := time.Now().Add(-2 * time.Second).UnixMilli()
	// hls.js's first reports (services/collector/.../recorded/hlsjs.cmcd):
	// told to play, a bitrate, the first frame 420 ms later.
	body := strings.Join([]string{
		fmt.Sprintf(`cid="%s",e=ps,sf=h,sid="%s",sn=0,sta=s,ts=%d,v=2`, cid, sid, t0),
		fmt.Sprintf(`br=(2820),cid="%s",e=bc,sf=h,sid="%s",sn=1,sta=s,ts=%d,v=2`, cid, sid, t0+100),
		fmt.Sprintf(`br=(2820),cid="%s",e=ps,sf=h,sid="%s",sn=2,sta=p,ts=%d,v=2`, cid, sid, t0+420),
	}, "\n") + "\n"
	req, err := http.NewRequest(http.MethodPost, "http://"+addr+"/v1/cmcd/"+collectorStream, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/cmcd")
	req.Header.Set("Origin", playerOrigin)
	req.Header.Set("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0.0.0 Safari/537.36")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	answer, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || resp.Header.Get("Access-Control-Allow-Origin") != playerOrigin {
		t.Fatalf("POST /v1/cmcd/%s: %d %s (Access-Control-Allow-Origin %q)", collectorStream, resp.StatusCode, answer, resp.Header.Get("Access-Control-Allow-Origin"))
	}
	posted := time.Now()

	evs := sessionEvents(t, "playback-players", sid, 2, 30*time.Second)
	var types []string
	for _, e := range evs {
		types = append(types, e.Type.String())
	}
	t.Logf("the session's events %v in Kafka %v after the POST", types, time.Since(posted).Round(10*time.Millisecond))
	if !slices.Equal(types, []string{"start", "play"}) {
		t.Fatalf("events %v, want start then play", types)
	}
	for _, e := range evs {
		if e.Source != event.SourceCMCD || e.Stream != collectorStream || e.MovieID != cid || e.Device != "desktop" {
			t.Errorf("event %+v: want source cmcd, stream %s, movie %s, device desktop", e, collectorStream, cid)
		}
	}
	if evs[1].StartupMS != 420 || evs[1].Bitrate != 2820 {
		t.Errorf("play: startup %d ms at %d kbps, want 420 ms at 2820", evs[1].StartupMS, evs[1].Bitrate)
	}

	// The fan-out (the default topic pattern serves playback-players).
	fan := "http://" + fanoutClusterIP(t)
	var scoped snapshot
	eventually(t, 30*time.Second, "the session on the fan-out's /api/snapshot", func() error {
		var all snapshot
		if err := harness.GetJSON(fan+"/api/snapshot", &all); err != nil {
			return err
		}
		cm := all.BySource[event.SourceCMCD]
		if !slices.Contains(all.Sources, event.SourceCMCD) || cm.Attempts != 1 || cm.Plays != 1 ||
			!slices.Contains(all.Streams, collectorStream) || all.ByDevice["desktop"].Attempts != 1 ||
			!slices.ContainsFunc(all.TopTitles, func(tv titleViewers) bool { return tv.MovieID == cid }) {
			return fmt.Errorf("sources %v, by source cmcd %+v, streams %v, top titles %v", all.Sources, cm, all.Streams, all.TopTitles)
		}
		if err := harness.GetJSON(fan+"/api/snapshot?source=cmcd", &scoped); err != nil {
			return err
		}
		if scoped.Scope.Source != event.SourceCMCD || scoped.Overall.Attempts != 1 || scoped.Overall.StartupP50MS < 380 || scoped.Overall.StartupP50MS > 460 {
			return fmt.Errorf("scoped to cmcd: %+v", scoped)
		}
		return nil
	})
	t.Logf("on the fan-out %v after the POST: source cmcd, 1 attempt, 1 play, startup p50 %.0f ms", time.Since(posted).Round(10*time.Millisecond), scoped.Overall.StartupP50MS)
	ps := pods(t, ns, collectorSel)
	checkLogs(t, ps)
	if len(ps) == 1 && len(ps[0].Status.ContainerStatuses) == 1 {
		t.Logf("the collector's memory: VmRSS %s", procStatus(t, containerPID(t, ps[0].Status.ContainerStatuses[0].ContainerID))["VmRSS"])
	}
}

// snapshot is the part of the fan-out's /api/snapshot this test reads.
type snapshot struct {
	Scope struct {
		Source string `json:"source"`
	} `json:"scope"`
	Streams   []string       `json:"streams"`
	Sources   []string       `json:"sources"`
	Overall   qoe            `json:"overall"`
	BySource  map[string]qoe `json:"by_source"`
	ByDevice  map[string]qoe `json:"by_device"`
	TopTitles []titleViewers `json:"top_titles"`
}

type qoe struct {
	Attempts     uint64  `json:"attempts"`
	Plays        uint64  `json:"plays"`
	StartupP50MS float64 `json:"startup_p50_ms"`
}

type titleViewers struct {
	MovieID string `json:"movie_id"`
}

// sessionEvents reads topic from the start, committed records only (the
// sessionizer writes in transactions), until n events of session sid have
// come, and returns them in offset order per partition (a session is one
// partition: its key).
func sessionEvents(t *testing.T, topic, sid string, n int, d time.Duration) []event.Event {
	t.Helper()
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_9_0_0
	cfg.Consumer.IsolationLevel = sarama.ReadCommitted
	consumer, err := sarama.NewConsumer([]string{bed.broker.Addr()}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer consumer.Close()
	parts, err := consumer.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var evs []event.Event
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for _, p := range parts {
		pc, err := consumer.ConsumePartition(topic, p, sarama.OffsetOldest)
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer pc.Close()
			for {
				select {
				case <-ctx.Done():
					return
				case m := <-pc.Messages():
					var e event.Event
					if err := event.Decode(m.Value, &e); err != nil {
						t.Errorf("%s/%d@%d is not a contract event: %v", topic, p, m.Offset, err)
						continue
					}
					if e.SessionID == sid {
						mu.Lock()
						evs = append(evs, e)
						mu.Unlock()
					}
				}
			}
		}()
	}
	defer func() { cancel(); wg.Wait() }()
	var out []event.Event
	eventually(t, d, fmt.Sprintf("%d events of session %s in %s", n, sid, topic), func() error {
		mu.Lock()
		defer mu.Unlock()
		out = slices.Clone(evs)
		if len(out) < n {
			return fmt.Errorf("%d so far", len(out))
		}
		return nil
	})
	return out
}
