package controller

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"sigs.k8s.io/yaml"

	"playpulse.dev/tests/harness"
)

// Debian's Prometheus (package prometheus, 2.42 on bookworm; hack/deps.sh
// installs it) scraping the real fan-out, with the chart's rules loaded.

// chartRules renders the chart's PrometheusRule with the given --set
// values and returns its spec as a Prometheus rule file.
func chartRules(t *testing.T, sets ...string) []byte {
	t.Helper()
	helm := hackOutput(t, "hack/helm.sh", "--path")
	args := []string{"template", "rules", repoPath("charts/playpulse"), "--show-only", "templates/prometheusrule.yaml", "--set", "metrics.prometheusRule.enabled=true"}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	cmd := exec.Command(helm, args...)
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+t.TempDir(), "HELM_CONFIG_HOME="+t.TempDir(), "HELM_DATA_HOME="+t.TempDir())
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helm %s: %v", strings.Join(args, " "), err)
	}
	var obj struct {
		Spec any `json:"spec"`
	}
	if err := yaml.Unmarshal(out, &obj); err != nil {
		t.Fatal(err)
	}
	b, err := yaml.Marshal(obj.Spec)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// hackOutput runs a hack/ script and returns the last line it prints.
func hackOutput(t *testing.T, script string, args ...string) string {
	t.Helper()
	cmd := exec.Command(repoPath(script), args...)
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v", script, strings.Join(args, " "), err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

// prom is a running Prometheus.
type prom struct {
	url string
	cmd *exec.Cmd
	out *bytes.Buffer
}

// startPrometheus runs Prometheus scraping target (host:port, /metrics)
// every second, evaluating rules every second.
func startPrometheus(t *testing.T, target string, rules []byte) *prom {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus not found: install Debian's prometheus package (hack/deps.sh does, as root)")
	}
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  scrape_timeout: 900ms
  evaluation_interval: 1s
rule_files: [rules.yaml]
scrape_configs:
  - job_name: fanout
    static_configs:
      - targets: [%q]
        labels: {pod: fanout-0}
`, target)
	for name, b := range map[string][]byte{"prometheus.yml": []byte(cfg), "rules.yaml": rules} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	addr := harness.FreeAddr(t)
	p := &prom{url: "http://" + addr, out: &bytes.Buffer{}}
	p.cmd = exec.Command(bin, "--config.file="+filepath.Join(dir, "prometheus.yml"), "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--storage.tsdb.retention.time=1h", "--log.level=warn")
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = p.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		if t.Failed() {
			t.Logf("--- prometheus output ---\n%s", p.out.String())
		}
	})
	harness.WaitReady(t, p.url+"/-/ready", 30*time.Second)
	return p
}

// sample is one element of an instant vector.
type sample struct {
	Metric map[string]string `json:"metric"`
	Value  [2]any            `json:"value"`
}

func (s sample) value() float64 {
	v, _ := strconv.ParseFloat(s.Value[1].(string), 64)
	return v
}

// query evaluates expr at t (the zero time: now).
func (p *prom) query(expr string, at time.Time) ([]sample, error) {
	q := url.Values{"query": {expr}}
	if !at.IsZero() {
		q.Set("time", strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64))
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string   `json:"resultType"`
			Result     []sample `json:"result"`
		} `json:"data"`
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.url+"/api/v1/query?"+q.Encode(), nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		return nil, err
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("%s: %s", expr, r.Error)
	}
	return r.Data.Result, nil
}

// scalar evaluates an expression that must give one sample.
func (p *prom) scalar(t *testing.T, expr string, at time.Time) float64 {
	t.Helper()
	res, err := p.query(expr, at)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 1 {
		t.Fatalf("%d samples, want 1, from\n%s", len(res), expr)
	}
	return res[0].value()
}

// alert is one entry of /api/v1/alerts.
type alert struct {
	Labels   map[string]string `json:"labels"`
	State    string            `json:"state"` // pending or firing
	ActiveAt time.Time         `json:"activeAt"`
}

func (p *prom) alerts() ([]alert, error) {
	var r struct {
		Data struct {
			Alerts []alert `json:"alerts"`
		} `json:"data"`
	}
	err := harness.GetJSON(p.url+"/api/v1/alerts", &r)
	return r.Data.Alerts, err
}
