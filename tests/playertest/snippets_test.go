package playertest

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"playpulse.dev/tests/harness"
)

// TestConfigSnippets: the hls.js and Shaka Player configurations that
// docs/collector.md tells users to copy are exactly what the test pages
// configure, so what TestRealPlayers proves holds for the snippets. Both run
// in Node with stubbed players (testdata/stubs.js records every call): the
// snippet with the target URL, session and content ids it shows, the page
// with the same three in its query and its defaults for the rest. Their
// cmcd objects must be equal, and Shaka must be configured before attach().
func TestConfigSnippets(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(harness.MustRoot(), "docs", "collector.md"))
	if err != nil {
		t.Fatal(err)
	}
	snippets := regexp.MustCompile("(?s)```js\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	find := func(marker string) string {
		t.Helper()
		for _, s := range snippets {
			if strings.Contains(s[1], marker) {
				return s[1]
			}
		}
		t.Fatalf("docs/collector.md has no js snippet with %q", marker)
		return ""
	}
	// The snippets' target, session id (stubs.js's crypto.randomUUID) and
	// content id, given to the pages as their query.
	const target = "https://collector.example.com/v1/cmcd/web"
	query := "?" + PageOptions{Collector: target, SessionID: "00000000-0000-4000-8000-000000000000", ContentID: "title-1"}.Query("https://cdn.example.com/title-1/master.m3u8").Encode()
	if !strings.Contains(string(doc), `url: "`+target+`"`) {
		t.Fatalf("the snippets no longer post to %s: update this test", target)
	}

	for _, c := range []struct {
		player, marker, page string
		cmcdCall             string   // the call whose first argument holds cmcd
		order                []string // calls that must come in this order
	}{
		{"hls.js", "new Hls(", "hlsjs.js", "new Hls", nil},
		{"Shaka Player", "new shaka.Player(", "shaka.js", "new shaka.Player.configure",
			[]string{"new shaka.Player.configure", "new shaka.Player.attach", "new shaka.Player.load"}},
	} {
		t.Run(c.player, func(t *testing.T) {
			page, err := webFS.ReadFile("web/page.js")
			if err != nil {
				t.Fatal(err)
			}
			script, err := webFS.ReadFile("web/" + c.page)
			if err != nil {
				t.Fatal(err)
			}
			fromDoc := runStubbed(t, find(c.marker), "")
			fromPage := runStubbed(t, string(page)+"\n"+string(script), query)
			want, got := cmcdOf(t, fromDoc, c.cmcdCall), cmcdOf(t, fromPage, c.cmcdCall)
			if !reflect.DeepEqual(want, got) {
				w, _ := json.Marshal(want)
				g, _ := json.Marshal(got)
				t.Errorf("docs/collector.md configures\n  cmcd: %s\nweb/%s configures\n  cmcd: %s", w, c.page, g)
			}
			for name, calls := range map[string][]call{"docs/collector.md": fromDoc, "web/" + c.page: fromPage} {
				last := -1
				for _, o := range c.order {
					i := slices.IndexFunc(calls, func(c call) bool { return c.Call == o })
					if i <= last {
						t.Errorf("%s: %s is not called after %v", name, o, c.order)
					}
					last = i
				}
			}
		})
	}
}

// call is one call stubs.js recorded.
type call struct {
	Call string `json:"call"`
	Args []any  `json:"args"`
}

// runStubbed runs code in Node after testdata/stubs.js, with query as the
// page's location.search, and returns the calls it made.
func runStubbed(t *testing.T, code, query string) []call {
	t.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("node is not installed: run `make deps` (apt-get install nodejs npm)")
	}
	stubs, err := os.ReadFile(filepath.Join("testdata", "stubs.js"))
	if err != nil {
		t.Fatal(err)
	}
	// In a function body, so that the Shaka snippet's top-level await runs.
	src := string(stubs) + "\n(async () => {\n" + code + "\n})().then(report, (e) => { console.error(e && e.stack || e); process.exit(1); });\n"
	file := filepath.Join(t.TempDir(), "run.js")
	if err := os.WriteFile(file, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	cmd := exec.Command(node, file, query)
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("node: %v\n%s\n--- the code ---\n%s", err, errb.String(), code)
	}
	var calls []call
	if err := json.Unmarshal(out.Bytes(), &calls); err != nil {
		t.Fatalf("node printed %q: %v", out.String(), err)
	}
	return calls
}

// cmcdOf is the cmcd member of the first argument of the first call named
// name.
func cmcdOf(t *testing.T, calls []call, name string) any {
	t.Helper()
	for _, c := range calls {
		if c.Call != name || len(c.Args) == 0 {
			continue
		}
		if arg, ok := c.Args[0].(map[string]any); ok && arg["cmcd"] != nil {
			return arg["cmcd"]
		}
	}
	var names []string
	for _, c := range calls {
		names = append(names, c.Call)
	}
	t.Fatalf("no call %s with a cmcd configuration among %q", name, names)
	return nil
}
