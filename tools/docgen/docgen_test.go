package docgen

import (
	"strings"
	"testing"
)

func TestConfigTables(t *testing.T) {
	var in strings.Builder
	for _, name := range []string{"producer", "fanout", "controller", "collector"} {
		in.WriteString("## " + name + "\n<!-- config:" + name + " -->\nold table\n<!-- /config:" + name + " -->\n")
	}
	out, err := ConfigTables([]byte(in.String()))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| `PRODUCER_RATE` | `100` | 0 to 1000000 |", "| `FANOUT_ADDR` | `:8080` |", "| `CONTROLLER_ADDR` |", "| `COLLECTOR_INACTIVITY_TIMEOUT` | `45s` | 1s to 15m |"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("rendered README lacks %q", want)
		}
	}
	if strings.Contains(string(out), "old table") {
		t.Error("the old table is still there")
	}
	if _, err := ConfigTables([]byte("<!-- config:producer -->\n<!-- /config:producer -->\n")); err == nil || !strings.Contains(err.Error(), "no <!-- config:") {
		t.Errorf("a README without every service's block: %v", err)
	}
	if _, err := ConfigTables([]byte("<!-- config:nosuch -->\n<!-- /config:nosuch -->\n")); err == nil {
		t.Error("an unknown block was accepted")
	}
}

func TestValuesTable(t *testing.T) {
	table, undocumented, err := ValuesTable([]byte(`# -- The name.
name: ""
image:
  # -- Pull policy.
  pullPolicy: IfNotPresent
  tag: v1
# -- Extra labels.
labels: {}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| `name` | string | `\"\"` | The name. |", "| `image.pullPolicy` | string | `\"IfNotPresent\"` | Pull policy. |", "| `labels` | object | `{}` | Extra labels. |"} {
		if !strings.Contains(table, want) {
			t.Errorf("table lacks %q:\n%s", want, table)
		}
	}
	if strings.Join(undocumented, ",") != "image.tag" {
		t.Errorf("undocumented %v, want [image.tag]", undocumented)
	}
}
