package cluster

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/gorilla/websocket"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"playpulse.dev/tests/browsertest"
)

// The release the chart tests install: release "playpulse" names the
// objects playpulse-controller and playpulse-fanout.
const (
	ns          = "playpulse-cluster-test"
	release     = "playpulse"
	fanoutName  = release + "-fanout"
	instanceSel = "app.kubernetes.io/instance=" + release
	fanoutSel   = instanceSel + ",app.kubernetes.io/component=fanout"
	ctrlSel     = instanceSel + ",app.kubernetes.io/component=controller"
	quietSel    = "playpulse.dev/stream=quiet,app.kubernetes.io/component=producer"
)

// chartState is what the steps of TestChart hand to each other.
type chartState struct {
	browser *browsertest.Browser // opened on the fan-out's ClusterIP by "dashboard"
}

// TestChart is the user's path with the chart: helm install with the
// defaults and the bed's Kafka, kubectl apply of a sample stream, the
// dashboard, changing and scaling the stream, losing a fan-out pod, helm
// upgrade, deleting the stream and helm uninstall. One release serves every
// step, in this order, as it would a user: a step that fails stops the
// rest, which would only fail for the same reason.
func TestChart(t *testing.T) {
	needBed(t)
	removeNamespace(t, ns)
	t.Cleanup(func() { removeNamespace(t, ns) })
	c := kafkaClient(t)
	// The browser the later steps keep open (it lives as long as this test).
	st := &chartState{browser: browsertest.New(t)}
	steps := []struct {
		name string
		fn   func(t *testing.T)
	}{
		{"install", func(t *testing.T) { testInstall(t, c) }},
		{"collector", testCollector},
		{"stream", func(t *testing.T) { testStream(t, c) }},
		{"dashboard", func(t *testing.T) { testDashboard(t, st) }},
		{"patch-rate", func(t *testing.T) { testPatchRate(t, c) }},
		{"scale", func(t *testing.T) { testScale(t, c) }},
		{"fanout-pod-deleted", func(t *testing.T) { testFanoutPodDeleted(t, st) }},
		{"pdb", testPDB},
		{"upgrade", func(t *testing.T) { testUpgrade(t, st) }},
		{"delete-stream", func(t *testing.T) { testDeleteStream(t, c) }},
		{"uninstall", func(t *testing.T) { testUninstall(t, c) }},
	}
	for _, s := range steps {
		if !t.Run(s.name, s.fn) {
			t.Fatalf("step %s failed; the later steps build on it", s.name)
		}
	}
}

// testInstall: every pod Running and Ready within 60 s of helm install,
// running with the chart's security context for real (as the kernel sees
// the processes), its resources enforced, its logs free of errors. The
// collector's topics are created on the way, as the install notes say
// (collectorTopics).
func testInstall(t *testing.T, c sarama.Client) {
	t0 := time.Now()
	notes := helm(t, append([]string{"install", release, filepath.Join(bed.root, "charts", "playpulse"),
		"--namespace", ns, "--create-namespace"}, installValues()...)...)
	collectorTopics(t, c, notes)
	ps := readyPods(t, ns, instanceSel, 4, 60*time.Second-time.Since(t0))
	t.Logf("helm install: %d pods Running and Ready %v after the install started", len(ps), time.Since(t0).Round(100*time.Millisecond))

	want := map[string]string{ // container → image the chart must run
		"controller": bed.images["controller"].ref,
		"fanout":     bed.images["fanout"].ref,
		"collector":  bed.images["collector"].ref,
	}
	for _, p := range ps {
		for _, cs := range p.Status.ContainerStatuses {
			checkContainer(t, p, cs, want[cs.Name])
		}
	}
	// The controller found no KafkaTopic CRD here, so it manages topics
	// through the Kafka admin API (CONTROLLER_TOPIC_MODE=auto).
	ctrl := pods(t, ns, ctrlSel)[0]
	var mode string
	for _, l := range serviceLogsRaw(t, ctrl.Name, "controller") {
		if l["msg"] == "topic mode" {
			mode, _ = l["mode"].(string)
		}
	}
	if !strings.EqualFold(mode, "kafka") {
		t.Errorf("the controller's topic mode is %q, want kafka (no Strimzi here)", mode)
	}
	checkLogs(t, ps)
}

// removeNamespace leaves no trace of a run, finished or failed: the
// streams are deleted while the controller still runs (each has a
// finalizer the controller removes once it has applied the topic's
// deletion policy: with the controller gone, it would keep the namespace
// Terminating), then the release, then the namespace.
func removeNamespace(t *testing.T, namespace string) {
	t.Helper()
	removeRelease(t, namespace, release)
}

// installValues are the chart's defaults plus the bed's Kafka and images
// (the images under localhost/ as they were imported, never pulled) and the
// collector switched on.
func installValues() []string {
	return append(append([]string{"--set", "kafka.bootstrapServers=" + bed.broker.Addr()}, imageValues()...), collectorValues()...)
}

// imageValues make the chart run the bed's images: under localhost/ as they
// were imported, never pulled.
func imageValues() []string {
	return []string{
		"--set", "image.registry=localhost",
		"--set", "image.pullPolicy=Never",
		"--set", "controller.image.tag=" + bed.images["controller"].tag,
		"--set", "fanout.image.tag=" + bed.images["fanout"].tag,
		"--set", "controller.producerImage.tag=" + bed.images["producer"].tag,
	}
}

// checkContainer checks a running container as the kernel sees it: the
// image, the user, no capabilities, no privilege escalation, seccomp, a
// read-only root filesystem and the memory limit.
func checkContainer(t *testing.T, p corev1.Pod, cs corev1.ContainerStatus, image string) {
	t.Helper()
	what := p.Name + "/" + cs.Name
	if image != "" && cs.Image != image {
		t.Errorf("%s runs image %s, want %s", what, cs.Image, image)
	}
	if cs.RestartCount != 0 {
		t.Errorf("%s restarted %d times", what, cs.RestartCount)
	}
	pid := containerPID(t, cs.ContainerID)
	s := procStatus(t, pid)
	if s["Uid"] != "65532 65532 65532 65532" || s["Gid"] != "65532 65532 65532 65532" {
		t.Errorf("%s runs as uid %q gid %q, want 65532 (the images' USER)", what, s["Uid"], s["Gid"])
	}
	if s["CapEff"] != "0000000000000000" || s["CapPrm"] != "0000000000000000" || s["CapBnd"] != "0000000000000000" {
		t.Errorf("%s has capabilities: effective %s permitted %s bounding %s", what, s["CapEff"], s["CapPrm"], s["CapBnd"])
	}
	if s["NoNewPrivs"] != "1" {
		t.Errorf("%s may gain privileges (NoNewPrivs %q)", what, s["NoNewPrivs"])
	}
	if s["Seccomp"] != "2" {
		t.Errorf("%s runs without a seccomp filter (Seccomp %q)", what, s["Seccomp"])
	}
	if !rootReadOnly(t, pid) {
		t.Errorf("%s has a writable root filesystem", what)
	}
	for _, c := range p.Spec.Containers {
		if c.Name != cs.Name {
			continue
		}
		if lim := c.Resources.Limits.Memory(); lim.IsZero() || memoryLimit(t, pid) != lim.Value() {
			t.Errorf("%s: the kernel's memory limit is %d, the pod's %s", what, memoryLimit(t, pid), lim)
		}
		if c.ReadinessProbe == nil || c.LivenessProbe == nil {
			t.Errorf("%s has no readiness or liveness probe", what)
		}
	}
}

// clientGoTransient is what client-go's REST client logs at error level
// when the API server's answer breaks off mid-body (seen once in a test
// run, on this 2-core node under a full make test); its callers (the
// informers, the leader election) try again, so it says nothing about our
// code.
const clientGoTransient = "Unexpected error when reading response body"

// checkLogs fails on any log line of the pods' containers at level ERROR
// but client-go's transient above, which it only reports.
func checkLogs(t *testing.T, ps []corev1.Pod) {
	t.Helper()
	checkLogsIn(t, ns, ps)
}

// checkLogsIn is checkLogs for pods of another namespace than the chart
// test's.
func checkLogsIn(t *testing.T, namespace string, ps []corev1.Pod) {
	t.Helper()
	for _, p := range ps {
		for _, c := range p.Spec.Containers {
			for _, l := range serviceLogs(t, namespace, p.Name, c.Name) {
				if l.Level == "ERROR" && l.Msg == clientGoTransient {
					t.Logf("%s/%s: client-go: %s (tried again)", p.Name, c.Name, l.Msg)
					continue
				}
				if l.Level == "ERROR" {
					t.Errorf("%s/%s logged an error: %s", p.Name, c.Name, l.Msg)
				}
			}
		}
	}
}

// serviceLogsRaw is a container's JSON log lines as maps.
func serviceLogsRaw(t *testing.T, pod, container string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, l := range strings.Split(kubectl(t, "-n", ns, "logs", pod, "-c", container), "\n") {
		var m map[string]any
		if json.Unmarshal([]byte(l), &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// testStream applies the quiet sample: the controller creates the topic and
// the producer Deployment, real producer pods start, and the rate measured
// in Kafka over 20 s is the stream's eventsPerSecond (50) within 5%.
func testStream(t *testing.T, c sarama.Client) {
	kubectl(t, "-n", ns, "apply", "-f", filepath.Join(bed.root, "k8s", "samples", "quiet.yaml"))
	waitTopic(t, c, "playback-quiet", 3, 30*time.Second)
	ps := readyPods(t, ns, quietSel, 1, 60*time.Second)
	for _, p := range ps {
		checkContainer(t, p, p.Status.ContainerStatuses[0], bed.images["producer"].ref)
	}
	// A 20 s window at 50 ±5%, the first within a minute: one window alone
	// can miss by a few events when this 2-core node is busy with the other
	// lanes of make test (the samples' round trips, the producer's batches).
	r, after := waitRate(t, c, "playback-quiet", 50, 0.05, 20*time.Second, 60*time.Second)
	t.Logf("quiet: %.1f events/s measured in Kafka over 20 s (eventsPerSecond 50), %v after the pod was ready", r, after.Round(100*time.Millisecond))
	checkLogs(t, ps)
}

// testPatchRate: kubectl patch the rate, and Kafka shows the new rate
// within 15 s.
func testPatchRate(t *testing.T, c sarama.Client) {
	kubectl(t, "-n", ns, "patch", "playbackstream", "quiet", "--type=merge", "-p", `{"spec":{"eventsPerSecond":150}}`)
	r, after := waitRate(t, c, "playback-quiet", 150, 0.05, 5*time.Second, 15*time.Second)
	t.Logf("after kubectl patch 50 → 150: %.1f events/s over 5 s, %v after the patch", r, after.Round(100*time.Millisecond))
}

// testScale: three producer pods share the same total rate.
func testScale(t *testing.T, c sarama.Client) {
	kubectl(t, "-n", ns, "scale", "playbackstream/quiet", "--replicas=3")
	readyPods(t, ns, quietSel, 3, 60*time.Second)
	r, after := waitRate(t, c, "playback-quiet", 150, 0.05, 10*time.Second, 30*time.Second)
	t.Logf("3 producers: %.1f events/s in total over 10 s, %v after the scale", r, after.Round(100*time.Millisecond))
}

// fanoutClusterIP is the fan-out Service's address inside the cluster,
// which this machine reaches through kube-proxy's rules like a pod would.
func fanoutClusterIP(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	svc, err := bed.kube.CoreV1().Services(ns).Get(ctx, fanoutName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("%s:%d", svc.Spec.ClusterIP, svc.Spec.Ports[0].Port)
}

// testDashboard: the dashboard through the fan-out Service, by kubectl
// port-forward as the chart's NOTES say, and through its ClusterIP (every
// replica behind it); headless Chromium sees the quiet stream appear with
// live figures.
func testDashboard(t *testing.T, st *chartState) {
	addr := portForward(t, ns, "svc/"+fanoutName, 80)
	b := browsertest.New(t)
	b.Open("http://" + addr + "/")
	liveStream(t, b, "quiet")
	b.AssertClean()

	// The browser the later steps keep open: on the ClusterIP, so that
	// losing one fan-out pod leaves the other to reconnect to.
	st.browser.SetT(t)
	st.browser.Open("http://" + fanoutClusterIP(t) + "/")
	liveStream(t, st.browser, "quiet")
}

// liveStream waits until the page is live, lists the stream, shows it when
// chosen, and its figures move.
func liveStream(t *testing.T, b *browsertest.Browser, stream string) {
	t.Helper()
	b.SetT(t)
	b.Wait(30*time.Second, `document.getElementById("status").dataset.state === "live"`)
	b.Wait(30*time.Second, fmt.Sprintf(`[...document.getElementById("stream").options].some(o => o.value === %q)`, stream))
	b.Wait(10*time.Second, fmt.Sprintf(`(s => { s.value = %q; s.dispatchEvent(new Event("change")); return s.value === %q; })(document.getElementById("stream"))`, stream, stream))
	b.Wait(30*time.Second, `Number(document.getElementById("kpi-rate").dataset.value) > 0 && Number(document.getElementById("kpi-ccv").dataset.value) > 0`)
	b.Wait(30*time.Second, `document.querySelectorAll("#tail tr.ev").length >= 5`)
	first := browsertest.Eval[int](b, `Number(document.getElementById("tail-stats").dataset.received)`)
	b.Wait(20*time.Second, fmt.Sprintf(`Number(document.getElementById("tail-stats").dataset.received) > %d`, first+20))
}

// fanoutClients is the number of WebSocket clients of each fan-out pod
// (playpulse_fanout_clients, read from its /metrics on its pod IP).
func fanoutClients(t *testing.T) map[string]int {
	t.Helper()
	out := map[string]int{}
	for _, p := range pods(t, ns, fanoutSel) {
		if p.Status.PodIP == "" || p.DeletionTimestamp != nil {
			continue
		}
		resp, err := http.Get("http://" + p.Status.PodIP + ":8080/metrics")
		if err != nil {
			t.Fatal(err)
		}
		var n int
		for _, l := range strings.Split(readAll(t, resp), "\n") {
			if v, ok := strings.CutPrefix(l, "playpulse_fanout_clients "); ok {
				fmt.Sscan(v, &n)
			}
		}
		out[p.Name] = n
	}
	return out
}

// testFanoutPodDeleted deletes the fan-out pod that serves the browser
// while the stream flows (raised to 1,500 events/s): a WebSocket client
// held on the other replica keeps receiving throughout, and the browser
// reconnects, to the other replica, and resumes its tail.
func testFanoutPodDeleted(t *testing.T, st *chartState) {
	kubectl(t, "-n", ns, "patch", "playbackstream", "quiet", "--type=merge", "-p", `{"spec":{"eventsPerSecond":1500}}`)
	b := st.browser
	b.SetT(t)
	b.Wait(30*time.Second, `document.getElementById("status").dataset.state === "live"`)
	var victim, other corev1.Pod
	eventually(t, 10*time.Second, "the browser's fan-out pod", func() error {
		clients := fanoutClients(t)
		for _, p := range pods(t, ns, fanoutSel) {
			switch clients[p.Name] {
			case 1:
				victim = p
			case 0:
				other = p
			}
		}
		if victim.Name == "" || other.Name == "" {
			return fmt.Errorf("clients per pod: %v", clients)
		}
		return nil
	})
	held := holdWebSocket(t, "ws://"+other.Status.PodIP+":8080/ws")
	before := browsertest.Eval[int](b, `Number(document.getElementById("tail-stats").dataset.received)`)

	kubectl(t, "-n", ns, "delete", "pod", victim.Name, "--wait=false")
	b.Wait(20*time.Second, `document.getElementById("status").dataset.state !== "live"`)
	b.Wait(20*time.Second, `document.getElementById("status").dataset.state === "live"`)
	// Resumed: the tail says what happened to the events of the outage,
	// and goes on.
	b.Wait(20*time.Second, `[...document.querySelectorAll("#tail tr.marker")].some(r => /^Reconnected/.test(r.textContent))`)
	b.Wait(20*time.Second, fmt.Sprintf(`Number(document.getElementById("tail-stats").dataset.received) > %d`, before+100))
	// The browser is back on a replica that runs (the survivor, or the
	// victim's replacement if it was ready first), next to the held client.
	eventually(t, 10*time.Second, "the browser's WebSocket on a running replica", func() error {
		clients := fanoutClients(t)
		total := 0
		for _, n := range clients {
			total += n
		}
		if _, ok := clients[victim.Name]; ok || total != 2 || clients[other.Name] < 1 {
			return fmt.Errorf("clients per pod %v; want the held one on %s and the browser's, none on %s", clients, other.Name, victim.Name)
		}
		return nil
	})
	gap, frames, err := held.stop()
	if err != nil {
		t.Fatalf("the WebSocket held on %s broke while the other pod went: %v", other.Name, err)
	}
	t.Logf("the held WebSocket on %s received %d frames, longest silence %v", other.Name, frames, gap.Round(10*time.Millisecond))
	if gap > 2*time.Second {
		t.Errorf("the surviving replica's client waited %v for a frame; it must keep serving", gap)
	}
	readyPods(t, ns, fanoutSel, 2, 90*time.Second)
	b.AssertClean()
}

// heldSocket is a WebSocket client reading frames in the background.
type heldSocket struct {
	conn   *websocket.Conn
	mu     sync.Mutex
	last   time.Time
	gap    time.Duration
	frames int
	err    error
	done   chan struct{}
}

func holdWebSocket(t *testing.T, url string) *heldSocket {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 10 * time.Second}
	conn, resp, err := d.Dial(url, nil)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	resp.Body.Close()
	h := &heldSocket{conn: conn, last: time.Now(), done: make(chan struct{})}
	go func() {
		defer close(h.done)
		for {
			_, _, err := conn.ReadMessage()
			h.mu.Lock()
			if err != nil {
				if h.err == nil {
					h.err = err
				}
				h.mu.Unlock()
				return
			}
			now := time.Now()
			h.gap = max(h.gap, now.Sub(h.last))
			h.last = now
			h.frames++
			h.mu.Unlock()
		}
	}()
	t.Cleanup(func() { conn.Close(); <-h.done })
	return h
}

// stop closes the socket and reports the longest silence, the frames read
// and the error that ended it before stop did, if any.
func (h *heldSocket) stop() (time.Duration, int, error) {
	h.mu.Lock()
	err := h.err
	gap := max(h.gap, time.Since(h.last))
	n := h.frames
	h.err = fmt.Errorf("stopped") // what the read loop sees from here on is ours
	h.mu.Unlock()
	h.conn.Close()
	<-h.done
	return gap, n, err
}

// testPDB: the PodDisruptionBudget lets one fan-out pod be evicted at a
// time: a second eviction is refused while the first pod's replacement is
// not ready.
func testPDB(t *testing.T) {
	ps := readyPods(t, ns, fanoutSel, 2, 60*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	evict := func(p corev1.Pod) error {
		return bed.kube.PolicyV1().Evictions(ns).Evict(ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: ns}})
	}
	// The disruption controller must have counted the healthy pods first.
	eventually(t, 30*time.Second, "the PDB allows one disruption", func() error {
		pdb, err := bed.kube.PolicyV1().PodDisruptionBudgets(ns).Get(ctx, fanoutName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if pdb.Status.DisruptionsAllowed != 1 {
			return fmt.Errorf("disruptionsAllowed %d", pdb.Status.DisruptionsAllowed)
		}
		return nil
	})
	if err := evict(ps[0]); err != nil {
		t.Fatalf("evicting the first fan-out pod: %v", err)
	}
	err := evict(ps[1])
	if !apierrors.IsTooManyRequests(err) {
		t.Fatalf("evicting the second fan-out pod at once: %v; the PDB must refuse it (429)", err)
	}
	t.Logf("second eviction refused: %v", err)
	readyPods(t, ns, fanoutSel, 2, 90*time.Second)
}

// statusRecorder records every change of the page's connection state with
// its time.
const statusRecorder = `(() => { window.__states = [[performance.now(), document.getElementById("status").dataset.state]];
	new MutationObserver(() => window.__states.push([performance.now(), document.getElementById("status").dataset.state]))
		.observe(document.getElementById("status"), {attributes: true, attributeFilter: ["data-state"]}); return true; })()`

// longestOutage is the longest time the page was not live, in ms, from
// the recorded states (and, if it is not live now, until now).
const longestOutage = `(() => { let worst = 0, since = null;
	for (const [t, s] of window.__states) { if (s !== "live" && since === null) since = t; if (s === "live" && since !== null) { worst = Math.max(worst, t - since); since = null; } }
	if (since !== null) worst = Math.max(worst, performance.now() - since); return worst; })()`

// testUpgrade: helm upgrade with a changed value rolls the fan-out pods one
// at a time (maxUnavailable 0): a ready replica serves throughout, and the
// page's WebSocket is never down for longer than a reconnect takes.
func testUpgrade(t *testing.T, st *chartState) {
	b := st.browser
	b.SetT(t)
	b.Wait(30*time.Second, `document.getElementById("status").dataset.state === "live"`)
	b.Wait(5*time.Second, statusRecorder)
	old := map[string]bool{}
	for _, p := range pods(t, ns, fanoutSel) {
		old[p.Name] = true
	}
	// Count the ready fan-out pods while they roll.
	stop := make(chan struct{})
	minReady := make(chan int, 1)
	go func() {
		least := 99
		for {
			select {
			case <-stop:
				minReady <- least
				return
			case <-time.After(200 * time.Millisecond): // the sampling period
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			l, err := bed.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: fanoutSel})
			cancel()
			if err != nil {
				continue // a slow API server is not a missing pod
			}
			n := 0
			for _, p := range l.Items {
				if podReady(p) == nil {
					n++
				}
			}
			least = min(least, n)
		}
	}()
	helm(t, append([]string{"upgrade", release, filepath.Join(bed.root, "charts", "playpulse"), "--namespace", ns},
		append(installValues(), "--set", "fanout.config.FANOUT_TAIL_RATE=150")...)...)
	eventually(t, 3*time.Minute, "the fan-out pods replaced", func() error {
		ps := pods(t, ns, fanoutSel)
		for _, p := range ps {
			if old[p.Name] || podReady(p) != nil {
				return fmt.Errorf("rolling:%s", podSummary(ps))
			}
		}
		if len(ps) != 2 {
			return fmt.Errorf("%d pods:%s", len(ps), podSummary(ps))
		}
		return nil
	})
	close(stop)
	if n := <-minReady; n < 1 {
		t.Errorf("during the upgrade the fan-out had %d ready pods at one point", n)
	}
	for _, p := range pods(t, ns, fanoutSel) {
		var env []string
		for _, e := range p.Spec.Containers[0].Env {
			env = append(env, e.Name+"="+e.Value)
		}
		if !slices.Contains(env, "FANOUT_TAIL_RATE=150") {
			t.Errorf("%s does not have the upgraded value: %v", p.Name, env)
		}
	}
	b.Wait(30*time.Second, `document.getElementById("status").dataset.state === "live"`)
	worst := browsertest.Eval[float64](b, longestOutage)
	states := browsertest.Eval[[][]any](b, `window.__states`)
	t.Logf("the page's states during the upgrade: %v; longest outage %.0f ms", states, worst)
	// A pod going away closes the page's socket (1001); the page tries
	// again after 0.25-0.5 s (docs/protocol.md) and a ready replica answers.
	if worst > 3000 {
		t.Errorf("the page was not live for %.0f ms at once during the upgrade; a reconnect takes under 3 s", worst)
	}
	checkLogs(t, pods(t, ns, instanceSel))
	b.AssertClean()
}

// testDeleteStream: kubectl delete removes the producers and, as quiet's
// topic.deletionPolicy is Delete, its topic.
func testDeleteStream(t *testing.T, c sarama.Client) {
	kubectl(t, "-n", ns, "delete", "playbackstream", "quiet", "--timeout=60s")
	eventually(t, 60*time.Second, "the quiet producers gone", func() error {
		if ps := pods(t, ns, quietSel); len(ps) > 0 {
			return fmt.Errorf("%d producer pods left", len(ps))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := bed.kube.AppsV1().Deployments(ns).Get(ctx, "quiet-producer", metav1.GetOptions{})
		if !apierrors.IsNotFound(err) {
			return fmt.Errorf("the producer Deployment: %v", err)
		}
		return nil
	})
	waitNoTopic(t, c, "playback-quiet", 30*time.Second)
}

// keptStream is a stream whose topic outlives it (deletionPolicy Retain,
// the default).
const keptStream = `apiVersion: playpulse.dev/v1alpha1
kind: PlaybackStream
metadata:
  name: kept
spec:
  eventsPerSecond: 20
  replicas: 1
  topic:
    partitions: 1
    deletionPolicy: Retain
`

// testUninstall: a stream with deletionPolicy Retain keeps its topic when
// deleted; helm uninstall then leaves only what docs/kubernetes.md says
// stays: the CRDs, retained topics, the controller's leader-election
// Lease, its rendering of the QoEAlerts and the Events, and nothing runs
// in the namespace.
func testUninstall(t *testing.T, c sarama.Client) {
	applyStdin(t, keptStream)
	waitTopic(t, c, "playback-kept", 1, 30*time.Second)
	readyPods(t, ns, "playpulse.dev/stream=kept", 1, 60*time.Second)
	kubectl(t, "-n", ns, "delete", "playbackstream", "kept", "--timeout=60s")
	if !slices.Contains(topics(t, c), "playback-kept") {
		t.Errorf("deleting a stream with deletionPolicy Retain deleted its topic")
	}

	helm(t, "uninstall", release, "--namespace", ns, "--wait", "--timeout", "120s")
	eventually(t, 60*time.Second, "no pod left in "+ns, func() error {
		if ps := pods(t, ns, ""); len(ps) > 0 {
			return fmt.Errorf("pods left:%s", podSummary(ps))
		}
		return nil
	})
	kinds := strings.Fields(kubectl(t, "api-resources", "--verbs=list", "--namespaced", "-o", "name"))
	allowed := []string{
		"configmap/kube-root-ca.crt", // every namespace has these two
		"serviceaccount/default",
		"lease.coordination.k8s.io/playpulse-controller", // the controller's leader election
		"configmap/playpulse-alert-rules",                // the controller's rendering of the QoEAlerts
	}
	// What helm deleted takes its dependents with it (the Service its
	// EndpointSlices, the Deployments their ReplicaSets) through the
	// garbage collector, shortly after.
	eventually(t, 60*time.Second, "nothing but what the docs say stays in "+ns, func() error {
		var extra []string
		for _, o := range strings.Fields(kubectl(t, "-n", ns, "get", strings.Join(kinds, ","), "-o", "name", "--ignore-not-found")) {
			if !slices.Contains(allowed, o) && !strings.HasPrefix(o, "event.") && !strings.HasPrefix(o, "event/") {
				extra = append(extra, o)
			}
		}
		if len(extra) > 0 {
			return fmt.Errorf("helm uninstall left %v", extra)
		}
		return nil
	})
	for _, o := range []string{"clusterrole/" + release + "-controller", "clusterrolebinding/" + release + "-controller"} {
		if out, _ := runTool(bed.env["KUBECTL"], "get", o, "-o", "name", "--ignore-not-found"); strings.TrimSpace(out) != "" {
			t.Errorf("helm uninstall left %s", o)
		}
	}
	kubectl(t, "get", "crd", "playbackstreams.playpulse.dev") // stays, as the chart's README says
	if !slices.Contains(topics(t, c), "playback-kept") {
		t.Errorf("the retained topic playback-kept is gone after helm uninstall")
	}
}

// applyStdin applies a manifest with kubectl apply -f -.
func applyStdin(t *testing.T, manifest string) {
	t.Helper()
	applyIn(t, ns, manifest)
}
