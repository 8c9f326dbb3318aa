package alert

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const rulesYAML = `
rules:
  - name: playback-failures
    metric: playback_failure_pct
    condition: above
    threshold: 5
    minSample: 100
    for: 2m
    severity: critical
  - name: viewers-dropped
    metric: concurrent_viewers
    overall: true
    condition: below
    threshold: 0.5
    baseline: 10m
    minSample: 500
    explain: [country]
`

func TestParse(t *testing.T) {
	rules, err := Parse([]byte(rulesYAML))
	if err != nil {
		t.Fatal(err)
	}
	want := []Rule{
		{Name: "playback-failures", Metric: PlaybackFailurePct, Stream: "*", Above: true, Threshold: 5, MinSample: 100, For: 2 * time.Minute, Severity: "critical"},
		{Name: "viewers-dropped", Metric: ConcurrentViewers, Stream: "", Threshold: 0.5, Baseline: 10 * time.Minute, MinSample: 500, Explain: []Dim{DimCountry}},
	}
	if len(rules) != len(want) {
		t.Fatalf("%d rules", len(rules))
	}
	for i := range want {
		g, w := rules[i], want[i]
		if g.Name != w.Name || g.Metric != w.Metric || g.Stream != w.Stream || g.Above != w.Above || g.Threshold != w.Threshold ||
			g.MinSample != w.MinSample || g.For != w.For || g.Baseline != w.Baseline || g.Severity != w.Severity || len(g.Explain) != len(w.Explain) {
			t.Errorf("rule %d\n got %+v\nwant %+v", i, g, w)
		}
	}
	// JSON is YAML too.
	if _, err := Parse([]byte(`{"rules":[{"name":"x","metric":"rebuffer_pct","condition":"above","threshold":2}]}`)); err != nil {
		t.Errorf("JSON: %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	for _, c := range []struct{ file, says string }{
		{"rules:\n  - name: x\n    metric: rebuffer_pct\n    condition: above\n    treshold: 2\n", `unknown field "treshold"`},
		{"rules:\n  - name: x\n    metric: rebuffer_pct\n    condition: over\n", `rules[0]: rule "x": condition: "over" is neither above nor below`},
		{"rules:\n  - name: x\n    metric: rebuffer_pct\n    condition: above\n    for: 2 minutes\n", `for: "2 minutes" is not a duration`},
		{"rules:\n  - name: x\n    metric: mos\n    condition: above\n", `metric: "mos" is none of`},
		{"rules:\n  - {name: x, metric: rebuffer_pct, condition: above}\n  - {name: x, metric: rebuffer_pct, condition: above}\n", `rules[1]: name "x" is used twice`},
		{"rules: [", "yaml"},
		{"rules:\n  - {name: x, metric: rebuffer_pct, condition: above, stream: live, overall: true}\n", `stream: "live" with overall`},
	} {
		_, err := Parse([]byte(c.file))
		if err == nil || !strings.Contains(err.Error(), c.says) {
			t.Errorf("%q: %v, want %q", c.file, err, c.says)
		}
	}
}

func TestLoadBounded(t *testing.T) {
	p := filepath.Join(t.TempDir(), "rules.yaml")
	if err := os.WriteFile(p, []byte("# "+strings.Repeat("x", MaxFileBytes)+"\nrules: []\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "over") {
		t.Fatalf("a file over %d bytes: %v", MaxFileBytes, err)
	}
	if _, err := Load(filepath.Join(t.TempDir(), "none.yaml")); err == nil {
		t.Fatal("a missing file loaded")
	}
}

// TestDocsExamples parses the rules files docs/alerts.md shows, so that
// an example a user copies works.
func TestDocsExamples(t *testing.T) {
	md, err := os.ReadFile("../../../../docs/alerts.md")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, block := range strings.Split(string(md), "```yaml\n")[1:] {
		block = block[:strings.Index(block, "```")]
		if !strings.HasPrefix(block, "rules:") {
			continue
		}
		n++
		rules, err := Parse([]byte(block))
		if err != nil || len(rules) == 0 {
			t.Errorf("docs/alerts.md example %d: %v (%d rules)\n%s", n, err, len(rules), block)
		}
	}
	if n == 0 {
		t.Fatal("docs/alerts.md shows no rules file")
	}
}
