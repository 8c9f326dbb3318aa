package docgen

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	yaml "go.yaml.in/yaml/v3"

	"playpulse.dev/services/playback/envconf"
)

const (
	schemaFile  = chartDir + "/values.schema.json"
	allOnValues = chartDir + "/ci/all-on-values.yaml"
	chartCRDs   = chartDir + "/crds"
)

// durationPattern is what time.ParseDuration takes, for JSON Schema.
const durationPattern = `^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$|^0$`

// valuesSchema returns values.schema.json with its generated parts
// rewritten: fanout.config, controller.config and collector.config accept
// exactly the service's other variables (with their types and ranges), and
// defaultStream.spec is the PlaybackStream CRD's spec schema.
func valuesSchema(root string, current []byte) ([]byte, error) {
	var schema map[string]any
	if err := json.Unmarshal(current, &schema); err != nil {
		return nil, err
	}
	props, _ := schema["properties"].(map[string]any)
	ds, ok := dig(props, "defaultStream", "properties")
	if !ok {
		return nil, errors.New("no properties.defaultStream.properties")
	}
	spec, err := streamSpecSchema(root)
	if err != nil {
		return nil, err
	}
	spec["description"] = "generated from the PlaybackStream CRD (spec)"
	ds["spec"] = spec

	want, err := configSchema(root)
	if err != nil {
		return nil, err
	}
	for svc, p := range want {
		cfg, ok := dig(props, svc, "properties", "config")
		if !ok {
			return nil, fmt.Errorf("no properties.%s.properties.config", svc)
		}
		cfg["properties"] = p
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(schema); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// dig walks nested objects.
func dig(m map[string]any, path ...string) (map[string]any, bool) {
	for _, k := range path {
		next, ok := m[k].(map[string]any)
		if !ok {
			return nil, false
		}
		m = next
	}
	return m, true
}

// configSchema derives the schema of <service>.config: every variable with
// the service's prefix that the chart does not set itself (those it sets
// are found by rendering every optional part on with the config maps
// empty), except secrets, which the chart only takes from mounted files.
// The aggregators run the fan-out's binary in a container named fanout, so
// what the chart sets on either counts for fanout.config, which
// aggregation.config refers to.
func configSchema(root string) (map[string]map[string]any, error) {
	objs, err := renderChart(root, "--values", allOnValues, "--set", "fanout.config=null", "--set", "controller.config=null", "--set", "collector.config=null", "--set", "aggregation.config=null")
	if err != nil {
		return nil, err
	}
	managed := map[string]map[string]bool{}
	for _, o := range objs {
		if o["kind"] != "Deployment" {
			continue
		}
		pod, _ := dig(o, "spec", "template", "spec")
		containers, _ := pod["containers"].([]any)
		for _, c := range containers {
			cm, _ := c.(map[string]any)
			svc := fmt.Sprint(cm["name"])
			if managed[svc] == nil {
				managed[svc] = map[string]bool{}
			}
			env, _ := cm["env"].([]any)
			for _, e := range env {
				em, _ := e.(map[string]any)
				managed[svc][fmt.Sprint(em["name"])] = true
			}
		}
	}
	out := map[string]map[string]any{}
	// Every service the chart runs a container of (the all-on values run
	// each) has a <service>.config.
	for svc := range managed {
		spec, ok := Configs[svc]
		if !ok {
			return nil, fmt.Errorf("the chart runs a container %q, which is no service docgen knows", svc)
		}
		vars, err := envconf.Vars(spec)
		if err != nil {
			return nil, err
		}
		prefix := strings.ToUpper(svc) + "_"
		props := map[string]any{}
		for _, v := range vars {
			if !strings.HasPrefix(v.Name, prefix) || managed[svc][v.Name] ||
				strings.HasSuffix(v.Name, "_TOKEN") || strings.HasSuffix(v.Name, "_PASSWORD") {
				continue
			}
			// Types and ranges only: descriptions live in the README's
			// configuration tables and change too often to copy here.
			p := map[string]any{}
			switch v.Type {
			case "Integer", "Float":
				p["type"] = "integer"
				parse := func(s string) (any, error) { return strconv.ParseInt(s, 10, 64) }
				if v.Type == "Float" {
					p["type"] = "number"
					parse = func(s string) (any, error) { return strconv.ParseFloat(s, 64) }
				}
				for key, bound := range map[string]string{"minimum": v.Min, "maximum": v.Max} {
					if bound == "" {
						continue
					}
					n, err := parse(bound)
					if err != nil {
						return nil, fmt.Errorf("%s: %s %q: %v", v.Name, key, bound, err)
					}
					p[key] = n
				}
			case "True or False":
				p["type"] = "boolean"
			case "Duration":
				p["type"] = "string"
				p["pattern"] = durationPattern
			default:
				p["type"] = "string"
			}
			props[v.Name] = p
		}
		out[svc] = props
	}
	return out, nil
}

// streamSpecSchema converts the PlaybackStream CRD's spec schema (the
// chart's copy) to JSON Schema for defaultStream.spec: the same properties,
// types, bounds, patterns and enums; objects closed to unknown keys;
// Kubernetes extensions and CEL rules left to the API server.
func streamSpecSchema(root string) (map[string]any, error) {
	files, _ := filepath.Glob(filepath.Join(root, chartCRDs, "*.yaml"))
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		objs, err := decodeYAML(bytes.NewReader(data))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		for _, o := range objs {
			names, _ := dig(o, "spec", "names")
			if names["kind"] != "PlaybackStream" {
				continue
			}
			crdSpec, _ := dig(o, "spec")
			versions, _ := crdSpec["versions"].([]any)
			for _, v := range versions {
				vm, _ := v.(map[string]any)
				if vm["storage"] == true {
					spec, ok := dig(vm, "schema", "openAPIV3Schema", "properties", "spec")
					if !ok {
						return nil, fmt.Errorf("%s: the storage version has no spec schema", f)
					}
					return toJSONSchema(spec), nil
				}
			}
		}
	}
	return nil, fmt.Errorf("no PlaybackStream CRD in %s: run make generate", chartCRDs)
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

// renderChart runs helm template (hack/helm.sh builds the pinned helm) with
// private helm directories, so the user's repositories and plugins play no
// part, and decodes the objects.
func renderChart(root string, args ...string) ([]map[string]any, error) {
	home, err := os.MkdirTemp("", "docgen-helm-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(home)
	cmd := exec.Command(filepath.Join(root, "hack/helm.sh"), append([]string{"template", "playpulse", chartDir, "--namespace", "playpulse"}, args...)...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+home+"/cache", "HELM_CONFIG_HOME="+home+"/config", "HELM_DATA_HOME="+home+"/data")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("hack/helm.sh template: %v\n%s", err, stderr.String())
	}
	return decodeYAML(bytes.NewReader(out))
}

// decodeYAML decodes a multi-document YAML stream, skipping empty documents.
func decodeYAML(r io.Reader) ([]map[string]any, error) {
	dec := yaml.NewDecoder(r)
	var out []map[string]any
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if len(m) > 0 {
			out = append(out, m)
		}
	}
}
