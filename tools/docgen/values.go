package docgen

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

const (
	chartDir    = "charts/playpulse"
	chartReadme = chartDir + "/README.md"
)

var valuesBlock = regexp.MustCompile(`(?s)(<!-- values:begin -->\n).*?(<!-- values:end -->)`)

// valuesTable returns the chart's README with its values table rendered
// from values.yaml: every leaf with its type, default and the "# -- "
// comment above it (the helm-docs convention). A value without a
// description is an error.
func valuesTable(root string, readme []byte) ([]byte, error) {
	src, err := os.ReadFile(filepath.Join(root, chartDir, "values.yaml"))
	if err != nil {
		return nil, err
	}
	table, undocumented, err := ValuesTable(src)
	if err != nil {
		return nil, err
	}
	if len(undocumented) > 0 {
		return nil, fmt.Errorf("values.yaml has no \"# -- \" description for %s", strings.Join(undocumented, ", "))
	}
	if !valuesBlock.Match(readme) {
		return nil, fmt.Errorf("no <!-- values:begin --> ... <!-- values:end --> block")
	}
	return valuesBlock.ReplaceAllLiteral(readme, []byte("<!-- values:begin -->\n"+table+"<!-- values:end -->")), nil
}

// ValuesTable renders values.yaml as a Markdown table and lists the keys
// that have no description.
func ValuesTable(valuesYAML []byte) (table string, undocumented []string, err error) {
	var doc yaml.Node
	if err := yaml.Unmarshal(valuesYAML, &doc); err != nil {
		return "", nil, err
	}
	var b strings.Builder
	b.WriteString("| Key | Type | Default | Description |\n|---|---|---|---|\n")
	var walk func(prefix string, n *yaml.Node, inherited string)
	walk = func(prefix string, n *yaml.Node, inherited string) {
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
			if v.Kind == yaml.MappingNode && len(v.Content) > 0 && desc == "" {
				walk(key, v, "")
				continue
			}
			typ, def := "", ""
			switch v.Kind {
			case yaml.MappingNode, yaml.SequenceNode:
				typ = "object"
				if v.Kind == yaml.SequenceNode {
					typ = "list"
				}
				out, _ := yaml.Marshal(v)
				def = strings.TrimSpace(string(out))
				if def != "{}" {
					def = strings.Join(strings.Fields(strings.ReplaceAll(def, "\n", " ")), " ")
				}
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
			if desc == "" {
				undocumented = append(undocumented, key)
			}
			fmt.Fprintf(&b, "| `%s` | %s | `%s` | %s |\n", key, typ, strings.ReplaceAll(def, "|", `\|`), desc)
		}
	}
	walk("", doc.Content[0], "")
	return b.String(), undocumented, nil
}
