package packaging

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

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
			// Types only: descriptions live in the README's configuration
			// tables and change too often to copy here.
			p := map[string]any{}
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

// streamSpecSchema converts the PlaybackStream CRD's spec schema (the chart's
// copy) to JSON Schema for defaultStream.spec: the same properties, types,
// bounds, patterns and enums; objects closed to unknown keys; Kubernetes
// extensions and CEL rules left to the API server.
func streamSpecSchema(t *testing.T) map[string]any {
	t.Helper()
	files, _ := filepath.Glob(repoPath(chartCRDDir + "/*.yaml"))
	for _, f := range files {
		for _, o := range decodeFile(t, strings.TrimPrefix(f, repoRoot+"/")) {
			if str(o.Object, "spec", "names", "kind") != "PlaybackStream" {
				continue
			}
			versions, _, _ := unstructured.NestedSlice(o.Object, "spec", "versions")
			for _, v := range versions {
				vm := v.(map[string]any)
				if vm["storage"] == true {
					spec, _, _ := unstructured.NestedMap(vm, "schema", "openAPIV3Schema", "properties", "spec")
					return toJSONSchema(spec)
				}
			}
		}
	}
	t.Fatalf("no PlaybackStream CRD in %s", chartCRDDir)
	return nil
}

func toJSONSchema(in map[string]any) map[string]any {
	out := map[string]any{}
	for _, k := range []string{"type", "enum", "minimum", "maximum",
		"minLength", "maxLength", "pattern", "minItems", "maxItems", "required"} {
		if v, ok := in[k]; ok {
			out[k] = v
		}
	}
	// OpenAPI 3.0's boolean exclusiveMinimum/Maximum are numbers in draft-07.
	if in["exclusiveMinimum"] == true {
		out["exclusiveMinimum"] = out["minimum"]
		delete(out, "minimum")
	}
	if in["exclusiveMaximum"] == true {
		out["exclusiveMaximum"] = out["maximum"]
		delete(out, "maximum")
	}
	if in["x-kubernetes-int-or-string"] == true {
		delete(out, "type")
		out["type"] = []any{"integer", "string"}
	}
	if props, ok := in["properties"].(map[string]any); ok {
		p := map[string]any{}
		for k, v := range props {
			p[k] = toJSONSchema(v.(map[string]any))
		}
		out["properties"] = p
	}
	switch ap := in["additionalProperties"].(type) {
	case map[string]any:
		out["additionalProperties"] = toJSONSchema(ap)
	case bool:
		out["additionalProperties"] = ap
	default:
		if out["type"] == "object" && in["x-kubernetes-preserve-unknown-fields"] != true {
			out["additionalProperties"] = false
		}
	}
	if items, ok := in["items"].(map[string]any); ok {
		out["items"] = toJSONSchema(items)
	}
	if anyOf, ok := in["anyOf"].([]any); ok {
		var list []any
		for _, a := range anyOf {
			list = append(list, toJSONSchema(a.(map[string]any)))
		}
		out["anyOf"] = list
	}
	return out
}

// TestValuesSchemaConfigKeys: fanout.config and controller.config accept
// exactly the service's other variables, with their types, and
// defaultStream.spec is the PlaybackStream CRD's spec schema; regenerate
// with go test ./tests/packaging -run SchemaConfigKeys -update.
func TestValuesSchemaConfigKeys(t *testing.T) {
	raw, err := os.ReadFile(repoPath(schemaFile))
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatal(err)
	}
	stale := false
	write := func() {
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

	// defaultStream.spec first: it needs no helm, so -update can repair a
	// schema that helm would refuse.
	ds := schema["properties"].(map[string]any)["defaultStream"].(map[string]any)["properties"].(map[string]any)
	spec := streamSpecSchema(t)
	spec["description"] = "generated from the PlaybackStream CRD (spec)"
	got, _ := json.Marshal(ds["spec"])
	w, _ := json.Marshal(spec)
	if !bytes.Equal(got, w) {
		stale = true
		ds["spec"] = spec
		if *update {
			write()
		}
	}

	want := configSchema(t)
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
		t.Fatalf("%s: the config keys or defaultStream.spec are stale (a config struct or the CRD changed); run: go test ./tests/packaging -run SchemaConfigKeys -update", schemaFile)
	}
	write()
}
