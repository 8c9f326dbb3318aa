package packaging

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"

	"playpulse.dev/services/playback/envconf"
)

const schemaFile = "charts/playpulse/values.schema.json"

// configSchema derives the schema of <service>.config: every variable with
// the service's prefix that the chart does not set itself (those it sets are
// found by rendering every optional part on with the config maps empty),
// except secrets, which the chart only takes from mounted files.
func configSchema(t *testing.T) map[string]map[string]any {
	t.Helper()
	managed := map[string]map[string]bool{}
	objs := render(t, testNamespace, "--values", allOnValues, "--set", "fanout.config=null", "--set", "controller.config=null")
	for _, d := range find(objs, "Deployment") {
		for _, c := range containers(t, d) {
			svc := fmt.Sprint(c["name"])
			if managed[svc] == nil {
				managed[svc] = map[string]bool{}
			}
			env, _ := c["env"].([]any)
			for _, e := range env {
				managed[svc][fmt.Sprint(e.(map[string]any)["name"])] = true
			}
		}
	}
	out := map[string]map[string]any{}
	for _, svc := range []string{"fanout", "controller"} {
		vars, err := envconf.Vars(services[svc])
		if err != nil {
			t.Fatal(err)
		}
		prefix := strings.ToUpper(svc) + "_"
		props := map[string]any{}
		for _, v := range vars {
			if !strings.HasPrefix(v.Name, prefix) || managed[svc][v.Name] ||
				strings.HasSuffix(v.Name, "_TOKEN") || strings.HasSuffix(v.Name, "_PASSWORD") {
				continue
			}
			p := map[string]any{"description": v.Description}
			if v.Default != "" {
				p["description"] = fmt.Sprintf("%s (default %s)", v.Description, v.Default)
			}
			switch v.Type {
			case "Integer":
				p["type"] = "integer"
			case "Float":
				p["type"] = "number"
			case "True or False":
				p["type"] = "boolean"
			case "Duration":
				p["type"] = "string"
				p["pattern"] = `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$|^0$`
			default:
				p["type"] = "string"
			}
			props[v.Name] = p
		}
		out[svc] = props
	}
	return out
}

// TestValuesSchemaConfigKeys: fanout.config and controller.config accept
// exactly the service's other variables, with their types; regenerate with
// go test ./tests/packaging -run SchemaConfigKeys -update.
func TestValuesSchemaConfigKeys(t *testing.T) {
	want := configSchema(t)
	raw, err := os.ReadFile(repoPath(schemaFile))
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	stale := false
	for svc, props := range want {
		cfg := schema["properties"].(map[string]any)[svc].(map[string]any)["properties"].(map[string]any)["config"].(map[string]any)
		got, _ := json.Marshal(cfg["properties"])
		w, _ := json.Marshal(props)
		if !bytes.Equal(got, w) {
			stale = true
			cfg["properties"] = props
		}
		names := make([]string, 0, len(props))
		for n := range props {
			names = append(names, n)
		}
		sort.Strings(names)
		t.Logf("%s.config accepts %v", svc, names)
	}
	if !stale {
		return
	}
	if !*update {
		t.Fatalf("%s: the config keys are stale (a service's config struct changed); run: go test ./tests/packaging -run SchemaConfigKeys -update", schemaFile)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(schema); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(repoPath(schemaFile), b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}
