package packaging

import (
	"flag"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"

	yamlv3 "go.yaml.in/yaml/v3"
)

var update = flag.Bool("update", false, "rewrite the values table in charts/playpulse/README.md")

const chartReadme = "charts/playpulse/README.md"

// valuesTable renders every leaf of values.yaml with its default and the
// "# -- " comment above it (the helm-docs convention).
func valuesTable(t *testing.T) string {
	t.Helper()
	src, err := os.ReadFile(repoPath(chartDir + "/values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc yamlv3.Node
	if err := yamlv3.Unmarshal(src, &doc); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("| Key | Type | Default | Description |\n|---|---|---|---|\n")
	var walk func(prefix string, n *yamlv3.Node, inherited string)
	walk = func(prefix string, n *yamlv3.Node, inherited string) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := k.Value
			if prefix != "" {
				key = prefix + "." + k.Value
			}
			desc := ""
			for _, l := range strings.Split(k.HeadComment, "\n") {
				l = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "#"))
				if after, ok := strings.CutPrefix(l, "-- "); ok {
					desc = after
				} else if desc != "" && l != "" {
					desc += " " + l
				}
			}
			if v.Kind == yamlv3.MappingNode && len(v.Content) > 0 && desc == "" {
				walk(key, v, "")
				continue
			}
			typ, def := "", ""
			switch v.Kind {
			case yamlv3.MappingNode:
				typ = "object"
				out, _ := yamlv3.Marshal(v)
				def = strings.TrimSpace(string(out))
				if def == "{}" {
					def = "{}"
				} else {
					def = strings.Join(strings.Fields(strings.ReplaceAll(def, "\n", " ")), " ")
				}
			case yamlv3.SequenceNode:
				typ = "list"
				out, _ := yamlv3.Marshal(v)
				def = strings.TrimSpace(string(out))
				def = strings.Join(strings.Fields(strings.ReplaceAll(def, "\n", " ")), " ")
			default:
				switch v.Tag {
				case "!!bool":
					typ = "bool"
				case "!!int":
					typ = "int"
				default:
					typ = "string"
				}
				def = v.Value
				if typ == "string" {
					def = fmt.Sprintf("%q", v.Value)
				}
			}
			if desc == "" {
				desc = inherited
			}
			fmt.Fprintf(&b, "| `%s` | %s | `%s` | %s |\n", key, typ, strings.ReplaceAll(def, "|", `\|`), desc)
		}
	}
	walk("", doc.Content[0], "")
	return b.String()
}

var tableBlock = regexp.MustCompile(`(?s)(<!-- values:begin -->\n).*?(<!-- values:end -->)`)

// TestChartReadmeValuesTable: the README's values table is generated from
// values.yaml (go test ./tests/packaging -run ChartReadme -update), and every
// value is described.
func TestChartReadmeValuesTable(t *testing.T) {
	table := valuesTable(t)
	for _, line := range strings.Split(strings.TrimSpace(table), "\n")[2:] {
		if strings.HasSuffix(line, "|  |") {
			t.Errorf("values.yaml has no \"# -- \" description for %s", strings.Split(line, "|")[1])
		}
	}
	readme, err := os.ReadFile(repoPath(chartReadme))
	if err != nil {
		t.Fatal(err)
	}
	if !tableBlock.Match(readme) {
		t.Fatalf("%s has no <!-- values:begin --> ... <!-- values:end --> block", chartReadme)
	}
	want := tableBlock.ReplaceAllLiteral(readme, []byte("<!-- values:begin -->\n"+table+"<!-- values:end -->"))
	if *update {
		if err := os.WriteFile(repoPath(chartReadme), want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if string(want) != string(readme) {
		t.Errorf("%s: the values table is stale; run: go test ./tests/packaging -run ChartReadme -update", chartReadme)
	}
}
