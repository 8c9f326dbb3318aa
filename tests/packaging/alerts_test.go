package packaging

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"sigs.k8s.io/yaml"
)

// promtool is Debian's (package prometheus, which hack/deps.sh installs).
func promtool(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatal("promtool not found: install Debian's prometheus package (hack/deps.sh does, as root)")
	}
	return p
}

// renderRules renders the chart's PrometheusRule with the given values and
// returns its spec as a Prometheus rule file.
func renderRules(t *testing.T, args ...string) []byte {
	t.Helper()
	objs := render(t, testNamespace, append([]string{"--set", "metrics.prometheusRule.enabled=true"}, args...)...)
	rules := find(objs, "PrometheusRule")
	if len(rules) != 1 {
		t.Fatalf("%d PrometheusRules rendered, want 1", len(rules))
	}
	b, err := yaml.Marshal(rules[0].Object["spec"])
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestPrometheusRules: the QoE alerts as the chart renders them with its
// defaults pass promtool check rules and the unit tests in
// testdata/qoe-rules.test.yaml (firing, labels, annotations, thresholds,
// guards, replicas, recovery: see that file).
func TestPrometheusRules(t *testing.T) {
	bin := promtool(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), renderRules(t), 0o644); err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile(repoPath("tests/packaging/testdata/qoe-rules.test.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "qoe-rules.test.yaml"), tests, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"check", "rules", "rules.yaml"}, {"test", "rules", "qoe-rules.test.yaml"}} {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		t.Logf("promtool %s:\n%s", strings.Join(args, " "), bytes.TrimSpace(out))
	}
	// Every alert of the chart is unit-tested.
	var file struct {
		Groups []struct {
			Rules []struct {
				Alert string `json:"alert"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.Unmarshal(renderRules(t), &file); err != nil {
		t.Fatal(err)
	}
	for _, g := range file.Groups {
		for _, r := range g.Rules {
			if !bytes.Contains(tests, []byte("alertname: "+r.Alert)) {
				t.Errorf("alert %s has no promtool test in testdata/qoe-rules.test.yaml", r.Alert)
			}
		}
	}
}

// TestPrometheusRuleValues: the values reach the rules (window, for,
// thresholds, guards, the replica labels, the grouping, extra labels), a
// disabled alert is left out, and the result is still valid for promtool.
func TestPrometheusRuleValues(t *testing.T) {
	bin := promtool(t)
	b := renderRules(t,
		"--set", "metrics.prometheusRule.window=30s",
		"--set", "metrics.prometheusRule.replicaLabels={replica}",
		"--set", "metrics.prometheusRule.alertLabels.team=video",
		"--set", "metrics.prometheusRule.playbackFailures.for=15s",
		"--set", "metrics.prometheusRule.playbackFailures.by={stream,cdn}",
		"--set", "metrics.prometheusRule.viewerDrop.offset=1m",
		"--set-json", "metrics.prometheusRule.viewerDrop.drop=0.5",
		"--set", "metrics.prometheusRule.rebuffering.enabled=false",
	)
	s := string(b)
	for _, want := range []string{
		"rate(playpulse_qoe_playback_failures_total[30s])", "max without (replica)", "sum by (stream, cdn)",
		"for: 15s", "team: video", "playpulse_qoe_viewers offset 1m", "< 0.5 * sum by (stream)",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("rules lack %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "PlaypulseRebufferingHigh") || strings.Contains(s, "instance, pod") {
		t.Errorf("disabled alert or default replica labels left in:\n%s", s)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "check", "rules", filepath.Join(dir, "rules.yaml")).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	// The schema refuses a grouping the startup histogram cannot have.
	if _, stderr, err := runHelm(t, "template", releaseName, chartDir, "--set", "metrics.prometheusRule.startupTime.by={stream,country}"); err == nil || !strings.Contains(stderr, "startupTime") {
		t.Errorf("startupTime.by=country accepted (err %v): %s", err, stderr)
	}
}

// dashboardFile is the Grafana dashboard the chart ships.
const dashboardFile = "charts/playpulse/files/grafana-dashboard.json"

// DashboardSchemaVersion is the Grafana dashboard schema the chart's
// dashboard follows: the one of the grafana-foundation-sdk types it is
// checked against (v0.0.22, generated from Grafana's dashboard kind).
const DashboardSchemaVersion = 42

// TestGrafanaDashboard validates the dashboard against the Grafana
// dashboard schema version 42, as grafana-foundation-sdk v0.0.22 encodes
// it in Go (types generated from Grafana's CUE dashboard kind): a strict
// decode (unknown fields, missing required fields and wrong types fail),
// with every panel's options and every Prometheus query decoded strictly
// by its plugin's schema, then the schema's validation rules. It also
// checks what the schema cannot: unique panel ids, panels inside the
// 24-column grid without overlap, every query aggregating over the fan-out
// replicas with max (never a bare sum), and the ConfigMap carrying the
// file as it is, labelled for Grafana's sidecar.
func TestGrafanaDashboard(t *testing.T) {
	raw, err := os.ReadFile(repoPath(dashboardFile))
	if err != nil {
		t.Fatal(err)
	}
	plugins.RegisterDefaultPlugins()
	// The classic (v1) dashboard JSON is what the Grafana sidecar of
	// kube-prometheus-stack loads; dashboardv2 is a different resource.
	//lint:ignore SA1019 the chart ships a v1 dashboard on purpose
	var d dashboard.Dashboard
	if err := schemaErr(d.UnmarshalJSONStrict(raw)); err != nil {
		t.Fatalf("%s does not follow the dashboard schema: %v", dashboardFile, err)
	}
	if err := schemaErr(d.Validate()); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.SchemaVersion != DashboardSchemaVersion {
		t.Errorf("schemaVersion %d, want %d (the version it is validated against)", d.SchemaVersion, DashboardSchemaVersion)
	}
	// A field the schema does not know fails: the check can fail.
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	m["panelz"] = []any{}
	bad, _ := json.Marshal(m)
	//lint:ignore SA1019 the v1 dashboard, as above
	if err := schemaErr(new(dashboard.Dashboard).UnmarshalJSONStrict(bad)); err == nil {
		t.Error("the strict decode accepted an unknown field")
	}

	queries := DashboardQueries(t, raw)
	if len(queries) < 10 {
		t.Fatalf("%d queries in the dashboard", len(queries))
	}
	for _, q := range queries {
		if !strings.Contains(q, "max without (instance, pod)") || !strings.Contains(q, "playpulse_qoe_") {
			t.Errorf("query does not take the max over the fan-out replicas of playpulse_qoe_ metrics: %s", q)
		}
	}
	type box struct{ x, y, w, h int }
	var boxes []box
	ids := map[float64]bool{}
	for _, p := range m["panels"].([]any) {
		p := p.(map[string]any)
		id := p["id"].(float64)
		if ids[id] {
			t.Errorf("panel id %v twice", id)
		}
		ids[id] = true
		g := p["gridPos"].(map[string]any)
		b := box{int(g["x"].(float64)), int(g["y"].(float64)), int(g["w"].(float64)), int(g["h"].(float64))}
		if b.x < 0 || b.w <= 0 || b.x+b.w > 24 {
			t.Errorf("panel %q outside the 24 columns: %+v", p["title"], b)
		}
		for _, o := range boxes {
			if b.x < o.x+o.w && o.x < b.x+b.w && b.y < o.y+o.h && o.y < b.y+b.h {
				t.Errorf("panel %q overlaps another: %+v, %+v", p["title"], b, o)
			}
		}
		boxes = append(boxes, b)
	}

	objs := render(t, testNamespace, "--values", allOnValues)
	var cm map[string]any
	for _, o := range find(objs, "ConfigMap") {
		if strings.HasSuffix(o.GetName(), "-grafana-dashboard") {
			cm = o.Object
			if o.GetLabels()["grafana_dashboard"] != "1" || o.GetAnnotations()["grafana_folder"] != "Video" {
				t.Errorf("dashboard ConfigMap labels %v, annotations %v", o.GetLabels(), o.GetAnnotations())
			}
		}
	}
	if cm == nil {
		t.Fatal("no dashboard ConfigMap with metrics.grafanaDashboard.enabled")
	}
	if got := cm["data"].(map[string]any)["playpulse-qoe.json"]; got != strings.TrimSuffix(string(raw), "\n") {
		t.Error("the ConfigMap's playpulse-qoe.json differs from " + dashboardFile)
	}
}

// schemaErr is err, or nil for an empty cog.BuildErrors: the SDK returns
// its error list typed, so "no error" is a non-nil error holding a nil
// slice.
func schemaErr(err error) error {
	var be cog.BuildErrors
	if errors.As(err, &be) && len(be) == 0 {
		return nil
	}
	return err
}

// DashboardQueries returns the PromQL of every panel target and template
// variable of a dashboard, as written (with Grafana's $variables).
func DashboardQueries(t testing.TB, raw []byte) []string {
	t.Helper()
	var d struct {
		Panels []struct {
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range d.Panels {
		for _, tg := range p.Targets {
			out = append(out, tg.Expr)
		}
	}
	return slices.Compact(out)
}
