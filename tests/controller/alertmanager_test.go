package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"playpulse.dev/services/controller/api/v1alpha1"
	"playpulse.dev/tests/harness"
)

// ppAlerts are the QoEAlerts the fan-out evaluates itself in
// TestIncidentsFireAlerts (the controller renders them into its rules
// file), the Playpulse side of the chart's rules in testRuleValues: the
// same 30 s window, for: and minimum samples, but each over the whole
// stream, with the dimension that explains it searched among cdn, device
// and country (the default), where Prometheus' rules are per CDN or per
// device.
//
// The thresholds are the stream's, so lower than the per-CDN ones. With
// the test's audience (measured with the simulator at 600 events/s, a 30 s
// window): healthy, the stream's failures stay under 1%, its rebuffering
// under 0.7% and its startup p95 under 8.5 s; during the incidents they
// reach 9.7%, 1.4% and 17 s, the failures passing 5% some 20 s in, the
// rebuffering 0.9% some 25 s in and the p95 10.5 s some 30 s in.
const ppAlerts = `apiVersion: playpulse.dev/v1alpha1
kind: QoEAlert
metadata: {name: failures}
spec: {metric: playback_failure_pct, condition: Above, threshold: 5, window: 30s, minSample: 100, for: 10s, resolveAfter: 10s, severity: critical}
---
apiVersion: playpulse.dev/v1alpha1
kind: QoEAlert
metadata: {name: rebuffering}
spec: {metric: rebuffer_pct, condition: Above, threshold: "0.9", window: 30s, minSample: 3000, for: 10s, resolveAfter: 10s}
---
apiVersion: playpulse.dev/v1alpha1
kind: QoEAlert
metadata: {name: startup}
spec: {metric: startup_p95_s, condition: Above, threshold: "10.5", window: 30s, minSample: 50, for: 10s, resolveAfter: 10s}
`

// playpulseAlerts reads the fan-out's /api/alerts as alerts: the rule as
// alertname, the stream as a label, the explanation as a label that
// alertKey leaves out of the key (it may change while the alert fires).
func playpulseAlerts(fanAddr string) func() ([]alert, error) {
	return func() ([]alert, error) {
		var r struct {
			Alerts []struct {
				Rule, Stream, State, Message string
				Explained                    *struct{ Dim, Value string }
			} `json:"alerts"`
		}
		if err := harness.GetJSON("http://"+fanAddr+"/api/alerts", &r); err != nil {
			return nil, err
		}
		var out []alert
		for _, a := range r.Alerts {
			l := map[string]string{"alertname": a.Rule, "stream": a.Stream}
			if x := a.Explained; x != nil {
				l["explained"] = x.Dim + "=" + x.Value
			}
			out = append(out, alert{Labels: l, State: a.State})
		}
		return out, nil
	}
}

// explainedIn finds the explaining dimension in an alert's message
// ("...; device=tv accounts for 97% of the failures").
var explainedIn = regexp.MustCompile(`; ([a-z]+=\S+) (accounts for|has) `)

// qoeAlertStates reads the QoEAlerts' status as alerts: the QoEAlert as
// alertname, the streams it fires for as a label, the dimension its
// message names as the explanation.
func qoeAlertStates(p *plane, ns string) func() ([]alert, error) {
	return func() ([]alert, error) {
		var list v1alpha1.QoEAlertList
		if err := p.c.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
			return nil, err
		}
		var out []alert
		for _, a := range list.Items {
			l := map[string]string{"alertname": a.Name, "stream": strings.Join(a.Status.Firing, ",")}
			if m := explainedIn.FindStringSubmatch(a.Status.Message); m != nil {
				l["explained"] = m[1]
			}
			out = append(out, alert{Labels: l, State: strings.ToLower(a.Status.State)})
		}
		return out, nil
	}
}

// alertmanager is Debian's prometheus-alertmanager, routing every alert
// at once to a webhook the test records.
type alertmanager struct {
	url string // the API: the fan-out posts to url + "/api/v2/alerts"

	mu    sync.Mutex
	notes []amNotification // what Alertmanager sent its receiver
}

// amNotification is Alertmanager's webhook payload, the fields checked.
type amNotification struct {
	Status string `json:"status"`
	Alerts []struct {
		Status      string            `json:"status"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	} `json:"alerts"`
}

func startAlertmanager(t *testing.T) *alertmanager {
	t.Helper()
	bin, err := exec.LookPath("prometheus-alertmanager")
	if err != nil {
		t.Fatal("prometheus-alertmanager not found: install Debian's prometheus-alertmanager (hack/deps.sh does, as root)")
	}
	am := &alertmanager{}
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var n amNotification
		if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
			t.Errorf("alertmanager's webhook payload: %v", err)
			return
		}
		am.mu.Lock()
		am.notes = append(am.notes, n)
		am.mu.Unlock()
	}))
	t.Cleanup(hook.Close)
	dir := t.TempDir()
	// Group waits of a second so that the test sees each notification
	// within seconds of the fan-out's post (the defaults are 30 s and 5 m).
	cfg := fmt.Sprintf(`route:
  receiver: hook
  group_by: [alertname, stream]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: %q
        send_resolved: true
`, hook.URL)
	if err := os.WriteFile(filepath.Join(dir, "alertmanager.yml"), []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := harness.FreeAddr(t)
	am.url = "http://" + addr
	out := &bytes.Buffer{}
	// --cluster.listen-address= turns the gossip off: no port beyond the
	// API, nothing sent off the machine.
	cmd := exec.Command(bin, "--config.file="+filepath.Join(dir, "alertmanager.yml"), "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--cluster.listen-address=", "--log.level=warn")
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("--- alertmanager output ---\n%s", out.String())
		}
	})
	harness.WaitReady(t, am.url+"/-/ready", 30*time.Second)
	return am
}

// notified says whether Alertmanager's receiver was told of the rule's
// alert on the stream in the status ("firing" or "resolved"), and returns
// its summary.
func (am *alertmanager) notified(rule, stream, status string) (string, bool) {
	am.mu.Lock()
	defer am.mu.Unlock()
	for _, n := range am.notes {
		for _, a := range n.Alerts {
			if a.Status == status && a.Labels["alertname"] == rule && a.Labels["stream"] == stream {
				return a.Annotations["summary"], true
			}
		}
	}
	return "", false
}
