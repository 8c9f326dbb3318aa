package controller

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"playpulse.dev/services/controller/api/v1alpha1"
	"playpulse.dev/tests/harness"
)

// alertRulesCM is the controller's default rules ConfigMap.
const alertRulesCM = "playpulse-alert-rules"

// rulesOf returns the rules file the controller rendered into ns.
func rulesOf(p *plane, ns string) (string, error) {
	var cm corev1.ConfigMap
	if err := p.c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: alertRulesCM}, &cm); err != nil {
		return "", err
	}
	if cm.Labels["app.kubernetes.io/managed-by"] != "playpulse-controller" {
		return "", fmt.Errorf("ConfigMap labels %v", cm.Labels)
	}
	return cm.Data["rules.yaml"], nil
}

func getQoEAlert(p *plane, ns, name string) (*v1alpha1.QoEAlert, error) {
	var a v1alpha1.QoEAlert
	err := p.c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &a)
	return &a, err
}

// alertStateIs checks a QoEAlert's status: its state, for the current
// generation, with a transition time and a message containing msg.
func alertStateIs(p *plane, ns, name, state, msg string) (*v1alpha1.QoEAlert, error) {
	a, err := getQoEAlert(p, ns, name)
	if err != nil {
		return nil, err
	}
	st := a.Status
	switch {
	case st.State != state:
		return nil, fmt.Errorf("%s: state %q (%s), want %s", name, st.State, st.Message, state)
	case st.ObservedGeneration != a.Generation:
		return nil, fmt.Errorf("%s: observedGeneration %d, generation %d", name, st.ObservedGeneration, a.Generation)
	case st.LastTransitionTime == nil:
		return nil, fmt.Errorf("%s: no lastTransitionTime", name)
	case !strings.Contains(st.Message, msg):
		return nil, fmt.Errorf("%s: message %q, want it to contain %q", name, st.Message, msg)
	}
	return a, nil
}

// TestQoEAlerts: the real controller, as its RBAC-limited user, renders a
// namespace's QoEAlerts into one ConfigMap, re-renders on an edit, writes
// each QoEAlert's status from a fan-out's /api/alerts (an httptest server
// answering what a fan-out answers), says Unknown when the fan-out is down,
// and leaves `rules: []` when the QoEAlerts are gone.
func TestQoEAlerts(t *testing.T) {
	// The Strimzi plane: the controller needs no Kafka for that.
	p := controlPlane(t, true)
	ns := p.namespace(t)
	ctx := context.Background()

	var body atomic.Value
	body.Store(`{"alerts":[]}`)
	fan := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/api/alerts" || r.Header.Get("Authorization") != "Bearer t0ken" {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, body.Load())
	}))
	defer fan.Close()
	token := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(token, []byte("t0ken\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	startController(t, p, ns, map[string]string{
		"CONTROLLER_FANOUT_URL":            fan.URL,
		"CONTROLLER_FANOUT_NAMESPACE":      ns,
		"CONTROLLER_FANOUT_TOKEN_FILE":     token,
		"CONTROLLER_ALERT_STATUS_INTERVAL": "1s",
	})

	// The fan-out's namespace has its (empty) rules before any QoEAlert,
	// so that fan-outs mounting it can start.
	waitFor(t, 30*time.Second, "rules: [] in the fan-out's namespace", func() error {
		rules, err := rulesOf(p, ns)
		if err == nil && !strings.HasSuffix(rules, "\nrules: []\n") {
			err = fmt.Errorf("rules.yaml:\n%s", rules)
		}
		return err
	})

	p.kubectl(t, `apiVersion: playpulse.dev/v1alpha1
kind: QoEAlert
metadata:
  name: playback-failures
  namespace: `+ns+`
spec:
  metric: playback_failure_pct
  condition: Above
  threshold: 5
  window: 1m
  minSample: 50
  for: 30s
  explain: [cdn, device]
---
apiVersion: playpulse.dev/v1alpha1
kind: QoEAlert
metadata:
  name: audience-drop
  namespace: `+ns+`
spec:
  metric: concurrent_viewers
  overall: true
  condition: Below
  threshold: 500m
  baseline: 10m
`, "apply", "-f", "-")

	waitFor(t, 30*time.Second, "the rules ConfigMap with both rules", func() error {
		rules, err := rulesOf(p, ns)
		if err != nil {
			return err
		}
		for _, want := range []string{
			"- baseline: 10m0s\n  condition: below\n  metric: concurrent_viewers\n  name: audience-drop\n  overall: true\n  severity: warning\n  threshold: 0.5\n",
			"- condition: above\n  explain:\n  - cdn\n  - device\n  for: 30s\n  metric: playback_failure_pct\n  minSample: 50\n  name: playback-failures\n  severity: warning\n  threshold: 5\n  window: 1m0s\n",
		} {
			if !strings.Contains(rules, want) {
				return fmt.Errorf("rules.yaml lacks\n%s\nin\n%s", want, rules)
			}
		}
		return nil
	})
	waitFor(t, 30*time.Second, "both QoEAlerts Inactive", func() error {
		for _, name := range []string{"playback-failures", "audience-drop"} {
			if _, err := alertStateIs(p, ns, name, v1alpha1.AlertInactive, ""); err != nil {
				return err
			}
		}
		return nil
	})

	t.Run("an edit re-renders", func(t *testing.T) {
		p.kubectl(t, "", "-n", ns, "patch", "qoealert/playback-failures", "--type=merge", "-p", `{"spec":{"threshold":"2.5"}}`)
		waitFor(t, 30*time.Second, "threshold 2.5 in the ConfigMap", func() error {
			rules, err := rulesOf(p, ns)
			if err == nil && !strings.Contains(rules, "name: playback-failures\n  severity: warning\n  threshold: 2.5\n") {
				err = fmt.Errorf("rules.yaml:\n%s", rules)
			}
			return err
		})
	})

	t.Run("status from the fan-out", func(t *testing.T) {
		const msg = "playback failures 9.8% (threshold 2.5%) on live; cdn=fastly accounts for 82% of the failures"
		body.Store(`{"alerts":[` +
			`{"rule":"playback-failures","metric":"playback_failure_pct","stream":"live","severity":"warning","state":"firing","since":"2026-12-06T04:00:00Z","active_at":"2026-12-06T04:00:30Z","value":9.8,"threshold":2.5,"explained":{"dim":"cdn","value":"fastly","share":0.82,"figure":31},"message":"` + msg + `"},` +
			`{"rule":"playback-failures","metric":"playback_failure_pct","stream":"vod","severity":"warning","state":"pending","since":"2026-12-06T04:00:20Z","active_at":"0001-01-01T00:00:00Z","value":3.1,"threshold":2.5,"message":"pending"}]}`)
		var fired *v1alpha1.QoEAlert
		waitFor(t, 30*time.Second, "playback-failures Firing", func() error {
			a, err := alertStateIs(p, ns, "playback-failures", v1alpha1.AlertFiring, msg)
			if err == nil && (len(a.Status.Firing) != 1 || a.Status.Firing[0] != "live") {
				err = fmt.Errorf("status.firing %v, want [live]", a.Status.Firing)
			}
			fired = a
			return err
		})
		if _, err := alertStateIs(p, ns, "audience-drop", v1alpha1.AlertInactive, ""); err != nil {
			t.Error(err)
		}
		out := p.kubectl(t, "", "-n", ns, "get", "qoealerts")
		for _, want := range []string{"playback-failures", "Firing", "2.5", "audience-drop", "Inactive"} {
			if !strings.Contains(out, want) {
				t.Errorf("kubectl get qoealerts lacks %q:\n%s", want, out)
			}
		}

		// Firing on one more stream: the status follows, the transition
		// time stays.
		body.Store(strings.Replace(body.Load().(string), `"state":"pending"`, `"state":"firing"`, 1))
		waitFor(t, 30*time.Second, "playback-failures firing on live and vod", func() error {
			a, err := alertStateIs(p, ns, "playback-failures", v1alpha1.AlertFiring, msg)
			switch {
			case err != nil:
				return err
			case len(a.Status.Firing) != 2 || a.Status.Firing[1] != "vod":
				return fmt.Errorf("status.firing %v, want [live vod]", a.Status.Firing)
			case !a.Status.LastTransitionTime.Equal(fired.Status.LastTransitionTime):
				t.Errorf("lastTransitionTime moved from %v to %v while the state stayed Firing", fired.Status.LastTransitionTime, a.Status.LastTransitionTime)
			}
			return nil
		})
	})

	t.Run("fan-out down: Unknown", func(t *testing.T) {
		fan.Close()
		waitFor(t, 30*time.Second, "both QoEAlerts Unknown", func() error {
			for _, name := range []string{"playback-failures", "audience-drop"} {
				if _, err := alertStateIs(p, ns, name, v1alpha1.AlertUnknown, "no answer from the fan-out"); err != nil {
					return err
				}
			}
			return nil
		})
	})

	t.Run("the last QoEAlert gone: rules: []", func(t *testing.T) {
		for _, name := range []string{"playback-failures", "audience-drop"} {
			if err := p.c.Delete(ctx, &v1alpha1.QoEAlert{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}); err != nil {
				t.Fatal(err)
			}
		}
		waitFor(t, 30*time.Second, "rules: [] in the ConfigMap", func() error {
			rules, err := rulesOf(p, ns)
			if err == nil && !strings.HasSuffix(rules, "\nrules: []\n") {
				err = fmt.Errorf("rules.yaml:\n%s", rules)
			}
			return err
		})
	})
}

// TestQoEAlertsInRealFanout: the rendered rules are what a real fan-out
// reads. bin/fanout starts on the controller's rendering (it exits 2 on a
// rules file it cannot parse), reads an edited rendering again, and the
// controller writes the QoEAlerts' status from its /api/alerts, fed by a
// real producer through a real Kafka broker. The test plays the kubelet:
// it copies the ConfigMap's rules.yaml into the file the fan-out reads.
func TestQoEAlertsInRealFanout(t *testing.T) {
	b := kafka(t)
	p := controlPlane(t, true) // the controller needs no Kafka: only the fan-out and the producer do
	ns := p.namespace(t)
	const topic, stream = "playback-qoealerts", "qoe-live"
	b.CreateTopic(t, topic, 1)

	fanAddr := harness.FreeAddr(t)
	startController(t, p, ns, map[string]string{
		"CONTROLLER_FANOUT_URL":            "http://" + fanAddr,
		"CONTROLLER_FANOUT_NAMESPACE":      ns,
		"CONTROLLER_ALERT_STATUS_INTERVAL": "1s",
	})
	// viewers fires as soon as there is an audience; failures never does.
	p.kubectl(t, `apiVersion: playpulse.dev/v1alpha1
kind: QoEAlert
metadata:
  name: viewers
  namespace: `+ns+`
spec:
  metric: concurrent_viewers
  condition: Above
  threshold: 0
  window: 10s
  explain: [cdn]
---
apiVersion: playpulse.dev/v1alpha1
kind: QoEAlert
metadata:
  name: failures
  namespace: `+ns+`
spec:
  metric: playback_failure_pct
  condition: Above
  threshold: 100
  for: 10s
  resolveAfter: 0s
`, "apply", "-f", "-")

	rulesFile := filepath.Join(t.TempDir(), "rules.yaml")
	// kubelet copies the rendered rules into the fan-out's file once they
	// contain want, and returns them.
	kubelet := func(want string) string {
		t.Helper()
		var rules string
		waitFor(t, 30*time.Second, "rules.yaml with "+want, func() error {
			var err error
			if rules, err = rulesOf(p, ns); err == nil && !strings.Contains(rules, want) {
				err = fmt.Errorf("rules.yaml:\n%s", rules)
			}
			return err
		})
		// Written aside and renamed, as the kubelet swaps a ConfigMap's files.
		tmp := rulesFile + ".new"
		if err := os.WriteFile(tmp, []byte(rules), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(tmp, rulesFile); err != nil {
			t.Fatal(err)
		}
		return rules
	}
	// The fan-out starts before its rules file exists, as a pod may on a
	// fresh install (the kubelet mounts the ConfigMap's directory empty),
	// and loads it when it appears.
	fan := harness.StartFrom(t, harness.FastBin(t), "fanout", map[string]string{
		"KAFKA_BROKERS": b.Addr(), "FANOUT_ADDR": fanAddr, "FANOUT_TOPICS": topic, "FANOUT_TOPIC_PATTERN": "",
		"FANOUT_WARMUP": "0s", "FANOUT_ALERT_RULES": rulesFile, "FANOUT_ALERT_INTERVAL": "1s",
	})
	harness.WaitReady(t, "http://"+fanAddr+"/healthz", 30*time.Second)
	kubelet("  threshold: 0\n  window: 10s\n")
	harness.StartFrom(t, harness.FastBin(t), "producer", map[string]string{
		"KAFKA_BROKERS": b.Addr(), "PRODUCER_TOPIC": topic, "PRODUCER_STREAM": stream, "PRODUCER_RATE": "200",
		"PRODUCER_ADDR": harness.FreeAddr(t),
	})

	var fired *v1alpha1.QoEAlert
	waitFor(t, 90*time.Second, "viewers Firing on "+stream+" from the real fan-out", func() error {
		a, err := alertStateIs(p, ns, "viewers", v1alpha1.AlertFiring, "concurrent viewers")
		if err == nil && (len(a.Status.Firing) != 1 || a.Status.Firing[0] != stream) {
			err = fmt.Errorf("status.firing %v, want [%s]", a.Status.Firing, stream)
		}
		fired = a
		return err
	})
	t.Logf("viewers: %s since %s: %s", fired.Status.State, fired.Status.LastTransitionTime, fired.Status.Message)
	if _, err := alertStateIs(p, ns, "failures", v1alpha1.AlertInactive, ""); err != nil {
		t.Error(err)
	}

	// An edit reaches the running fan-out: a threshold no audience reaches
	// ends the alert at the reload (a changed rule starts afresh).
	p.kubectl(t, "", "-n", ns, "patch", "qoealert/viewers", "--type=merge", "-p", `{"spec":{"threshold":"1G"}}`)
	kubelet("  threshold: 1000000000\n  window: 10s\n")
	waitFor(t, 60*time.Second, "viewers Inactive after the reload", func() error {
		_, err := alertStateIs(p, ns, "viewers", v1alpha1.AlertInactive, "")
		return err
	})
	if out := fan.Output(); !strings.Contains(out, "alert rules reloaded") {
		t.Errorf("the fan-out did not log a reload:\n%s", out)
	}
}
