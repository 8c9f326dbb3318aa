package packaging

import (
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"

	controllercfg "playpulse.dev/services/controller/config"
	fanoutcfg "playpulse.dev/services/fanout/config"
	"playpulse.dev/services/playback/envconf"
	producercfg "playpulse.dev/services/producer/config"
)

// services maps a container (component) name to the config struct of the
// binary it runs. The allowed variables come from envconf.Vars, so a
// variable added to or removed from a struct changes the contract at once.
var services = map[string]any{
	"controller": &controllercfg.Config{},
	"fanout":     &fanoutcfg.Config{},
	"producer":   &producercfg.Config{},
}

func serviceVars(t testing.TB, service string) (all map[string]bool, required []string) {
	t.Helper()
	spec, ok := services[service]
	if !ok {
		t.Fatalf("no config struct known for service %q", service)
	}
	vars, err := envconf.Vars(spec)
	if err != nil {
		t.Fatal(err)
	}
	all = map[string]bool{}
	for _, v := range vars {
		all[v.Name] = true
		if v.Required {
			required = append(required, v.Name)
		}
	}
	return all, required
}

// checkEnv compares one container's environment with its service's config
// struct: nothing unknown, nothing required missing, no duplicates.
func checkEnv(t *testing.T, where, service string, env []map[string]any) {
	t.Helper()
	allowed, required := serviceVars(t, service)
	set := map[string]bool{}
	for _, e := range env {
		name := fmt.Sprint(e["name"])
		if set[name] {
			t.Errorf("%s: %s is set twice", where, name)
		}
		set[name] = true
		if !allowed[name] {
			t.Errorf("%s sets %s, which the %s does not read (not in its config struct)", where, name, service)
		}
	}
	for _, r := range required {
		if !set[r] {
			t.Errorf("%s does not set %s, which the %s requires", where, r, service)
		}
	}
}

// TestChartEnvMatchesConfigStructs: every variable the chart sets on a pod
// is one that pod's service reads, and every required one is set, for every
// value set (the all-on values switch TLS, SASL and every optional knob on).
func TestChartEnvMatchesConfigStructs(t *testing.T) {
	checked := map[string]int{}
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			for _, d := range find(render(t, testNamespace, vs.args...), "Deployment") {
				for _, c := range containers(t, d) {
					service := fmt.Sprint(c["name"])
					var env []map[string]any
					list, _ := c["env"].([]any)
					for _, e := range list {
						env = append(env, e.(map[string]any))
					}
					where := fmt.Sprintf("%s container %s", id(d), service)
					checkEnv(t, where, service, env)
					validateEnv(t, where, service, env)
					checked[service] += len(env)
				}
			}
		})
	}
	var names []string
	for s := range checked {
		names = append(names, s)
	}
	sort.Strings(names)
	if !slices.Equal(names, []string{"controller", "fanout"}) {
		t.Errorf("checked containers %v, want controller and fanout", names)
	}
	t.Logf("variables checked per service: %v", checked)
}

// validateEnv loads the container's environment into a fresh copy of the
// service's config struct, exactly as the binary does at start (envconf.Load:
// types, then Validate), with every other variable unset. Files the chart
// mounts from secrets (/etc/playpulse/...) are stood in for by temporary
// files, since some services read them while validating.
func validateEnv(t *testing.T, where, service string, env []map[string]any) {
	t.Helper()
	all, _ := serviceVars(t, service)
	for name := range all {
		t.Setenv(name, "") // restores the outer value after the test
		os.Unsetenv(name)
	}
	dir := t.TempDir()
	for _, e := range env {
		v := fmt.Sprint(e["value"])
		if strings.HasPrefix(v, "/etc/playpulse/") {
			f := filepath.Join(dir, strings.ReplaceAll(strings.TrimPrefix(v, "/etc/playpulse/"), "/", "_"))
			if err := os.WriteFile(f, []byte("stand-in-secret\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			v = f
		}
		os.Setenv(fmt.Sprint(e["name"]), v)
	}
	spec := reflect.New(reflect.TypeOf(services[service]).Elem()).Interface()
	if err := envconf.Load(spec); err != nil {
		t.Errorf("%s: the %s refuses the environment the chart gives it: %v", where, service, err)
	}
}
