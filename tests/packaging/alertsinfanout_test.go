package packaging

import (
	"fmt"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// envMap is a container's literal environment.
func envMap(c map[string]any) map[string]string {
	out := map[string]string{}
	list, _ := c["env"].([]any)
	for _, e := range list {
		m := e.(map[string]any)
		out[fmt.Sprint(m["name"])] = fmt.Sprint(m["value"])
	}
	return out
}

func deploymentOf(t *testing.T, objs []*unstructured.Unstructured, comp string) *unstructured.Unstructured {
	t.Helper()
	for _, d := range find(objs, "Deployment") {
		if component(d) == comp {
			return d
		}
	}
	t.Fatalf("no %s Deployment", comp)
	return nil
}

// TestAlertsInFanout: by default the fan-outs mount the controller's rules
// ConfigMap as a directory (so the kubelet updates it), optional (it may
// not exist yet), and the controller asks the fan-out Service for the
// alerts; without the controller, or with alerts.inFanout off, neither.
func TestAlertsInFanout(t *testing.T) {
	objs := render(t, testNamespace, "--set", "fanout.auth.existingSecret=fanout-token")
	fan := deploymentOf(t, objs, "fanout")
	if got := envMap(containers(t, fan)[0])["FANOUT_ALERT_RULES"]; got != "/etc/playpulse/alerts/rules.yaml" {
		t.Errorf("FANOUT_ALERT_RULES = %q", got)
	}
	var mounted bool
	mounts, _ := containers(t, fan)[0]["volumeMounts"].([]any)
	for _, m := range mounts {
		m := m.(map[string]any)
		if m["name"] == "alert-rules" {
			mounted = true
			if m["mountPath"] != "/etc/playpulse/alerts" || m["subPath"] != nil {
				t.Errorf("alert-rules mounted as %v: want the directory /etc/playpulse/alerts, no subPath", m)
			}
		}
	}
	if !mounted {
		t.Error("the fan-out does not mount alert-rules")
	}
	vols, _ := podSpec(t, fan)["volumes"].([]any)
	var found bool
	for _, v := range vols {
		v := v.(map[string]any)
		if v["name"] != "alert-rules" {
			continue
		}
		found = true
		cm, _ := v["configMap"].(map[string]any)
		if cm["name"] != "playpulse-alert-rules" || cm["optional"] != true {
			t.Errorf("alert-rules volume %v: want ConfigMap playpulse-alert-rules, optional", v)
		}
	}
	if !found {
		t.Error("no alert-rules volume")
	}

	ctl := envMap(containers(t, deploymentOf(t, objs, "controller"))[0])
	svc := find(objs, "Service")
	var url string
	for _, s := range svc {
		if component(s) == "fanout" {
			ports, _, _ := unstructured.NestedSlice(s.Object, "spec", "ports")
			url = fmt.Sprintf("http://%s.%s.svc:%d", s.GetName(), testNamespace, num(ports[0].(map[string]any), "port"))
		}
	}
	for k, want := range map[string]string{
		"CONTROLLER_ALERT_RULES_CONFIGMAP": "playpulse-alert-rules",
		"CONTROLLER_FANOUT_NAMESPACE":      testNamespace,
		"CONTROLLER_FANOUT_TOKEN_FILE":     "/etc/playpulse/fanout-auth/token",
	} {
		if ctl[k] != want {
			t.Errorf("controller %s = %q, want %q", k, ctl[k], want)
		}
	}
	if url == "" || ctl["CONTROLLER_FANOUT_URL"] != url {
		t.Errorf("CONTROLLER_FANOUT_URL = %q, want the fan-out Service %q", ctl["CONTROLLER_FANOUT_URL"], url)
	}

	for _, args := range [][]string{{"--set", "alerts.inFanout.enabled=false"}, {"--set", "controller.enabled=false"}} {
		objs := render(t, testNamespace, args...)
		if v, ok := envMap(containers(t, deploymentOf(t, objs, "fanout"))[0])["FANOUT_ALERT_RULES"]; ok {
			t.Errorf("%v: FANOUT_ALERT_RULES = %q: the fan-out would wait for a file nobody writes", args, v)
		}
	}
}
