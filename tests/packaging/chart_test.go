package packaging

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

func TestHelmLintStrict(t *testing.T) {
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			out, stderr, err := runHelm(t, append([]string{"lint", "--strict", chartDir}, vs.args...)...)
			if err != nil {
				t.Fatalf("helm lint --strict: %v\n%s%s", err, out, stderr)
			}
			// --strict turns warnings into failures; make sure none slipped
			// through as text either.
			if strings.Contains(out, "[WARNING]") || strings.Contains(out, "[ERROR]") {
				t.Errorf("helm lint reported problems:\n%s", out)
			}
		})
	}
}

// TestRenderDefaults checks what a plain `helm install` creates.
func TestRenderDefaults(t *testing.T) {
	start := time.Now()
	objs := render(t, testNamespace)
	t.Logf("helm template (defaults): %d objects in %s", len(objs), time.Since(start).Round(time.Millisecond))

	want := []string{"ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition", "Deployment",
		"NetworkPolicy", "PodDisruptionBudget", "Role", "RoleBinding", "Service", "ServiceAccount"}
	if got := kinds(objs); !slices.Equal(got, want) {
		t.Errorf("kinds = %v, want %v", got, want)
	}
	for _, o := range objs {
		if o.GetKind() == "CustomResourceDefinition" || strings.HasPrefix(o.GetKind(), "Cluster") {
			continue
		}
		if o.GetNamespace() != testNamespace {
			t.Errorf("%s: namespace %q, want the release namespace %q", id(o), o.GetNamespace(), testNamespace)
		}
	}
	deps := find(objs, "Deployment")
	var comps []string
	for _, d := range deps {
		comps = append(comps, component(d))
	}
	slices.Sort(comps)
	if !slices.Equal(comps, []string{"controller", "fanout"}) {
		t.Errorf("Deployments for components %v, want controller and fanout", comps)
	}
}

// TestRenderAllOptionalParts switches every optional part on.
func TestRenderAllOptionalParts(t *testing.T) {
	start := time.Now()
	objs := render(t, testNamespace, "--values", allOnValues)
	t.Logf("helm template (all-on): %d objects in %s", len(objs), time.Since(start).Round(time.Millisecond))

	for k, n := range map[string]int{"HorizontalPodAutoscaler": 3, "Ingress": 1, "PodDisruptionBudget": 3, "NetworkPolicy": 3,
		"ServiceMonitor": 1, "PrometheusRule": 1, "Kafka": 1, "KafkaNodePool": 1, "KafkaTopic": 6, "PlaybackStream": 1} {
		if len(find(objs, k)) != n {
			t.Errorf("want %d %s, got %d", n, k, len(find(objs, k)))
		}
	}
	// One of each per-component object for the aggregator, the fan-out and
	// the collector.
	for _, k := range []string{"HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy"} {
		var comps []string
		for _, o := range find(objs, k) {
			comps = append(comps, component(o))
			if o.GetName() != releaseName+"-"+component(o) {
				t.Errorf("%s: named %q for component %q", id(o), o.GetName(), component(o))
			}
		}
		slices.Sort(comps)
		if !slices.Equal(comps, []string{"aggregator", "collector", "fanout"}) {
			t.Errorf("%s for components %v, want aggregator, collector and fanout", k, comps)
		}
	}

	ing := find(objs, "Ingress")[0]
	if c := str(ing.Object, "spec", "ingressClassName"); c != "cloud-provider-kind" {
		t.Errorf("Ingress ingressClassName = %q", c)
	}
	ann := ing.GetAnnotations()
	for _, k := range []string{"nginx.ingress.kubernetes.io/proxy-read-timeout", "nginx.ingress.kubernetes.io/proxy-send-timeout"} {
		if ann[k] != "3600" {
			t.Errorf("Ingress annotation %s = %q, want the WebSocket timeout 3600", k, ann[k])
		}
	}
	// The dashboard at /, the collector beside it at /v1/, one host.
	if got := ingressPaths(t, ing); !maps.Equal(got, map[string]string{"/": releaseName + "-fanout", "/v1/": releaseName + "-collector"}) {
		t.Errorf("Ingress paths %v, want / to the fan-out and /v1/ to the collector", got)
	}

	for _, d := range find(objs, "Deployment") {
		if c := component(d); c != "fanout" && c != "collector" && c != "aggregator" {
			continue
		}
		if _, ok, _ := unstructured.NestedFieldNoCopy(d.Object, "spec", "replicas"); ok {
			t.Errorf("%s sets spec.replicas although the HPA owns them", id(d))
		}
	}
	for _, hpa := range find(objs, "HorizontalPodAutoscaler") {
		if n := str(hpa.Object, "spec", "scaleTargetRef", "name"); n != releaseName+"-"+component(hpa) {
			t.Errorf("%s targets %q", id(hpa), n)
		}
	}

	k := find(objs, "Kafka")[0]
	np := find(objs, "KafkaNodePool")[0]
	if np.GetLabels()["strimzi.io/cluster"] != k.GetName() {
		t.Errorf("KafkaNodePool label strimzi.io/cluster = %q, want the Kafka's name %q", np.GetLabels()["strimzi.io/cluster"], k.GetName())
	}
	if r := num(np.Object, "spec", "replicas"); r != 1 {
		t.Errorf("dev KafkaNodePool replicas = %d, want 1", r)
	}
	roles, _, _ := unstructured.NestedStringSlice(np.Object, "spec", "roles")
	if !slices.Equal(roles, []string{"controller", "broker"}) {
		t.Errorf("dev KafkaNodePool roles = %v, want controller and broker (single-node KRaft)", roles)
	}
	if k.GetAPIVersion() != "kafka.strimzi.io/v1" || np.GetAPIVersion() != "kafka.strimzi.io/v1" {
		t.Errorf("Strimzi objects use %s and %s, want kafka.strimzi.io/v1", k.GetAPIVersion(), np.GetAPIVersion())
	}
}

// TestPodsAreHardened checks every pod of every value set: non-root,
// read-only root filesystem, no capabilities, RuntimeDefault seccomp,
// requests and limits, probes on the services' real endpoints and ports,
// Prometheus scrape annotations.
func TestPodsAreHardened(t *testing.T) {
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			objs := render(t, testNamespace, vs.args...)
			deps := find(objs, "Deployment")
			if len(deps) == 0 {
				t.Fatal("no Deployments rendered")
			}
			for _, d := range deps {
				checkPod(t, d, vs.name != "dev")
			}
		})
	}
}

func checkPod(t *testing.T, d *unstructured.Unstructured, readOnlyRoot bool) {
	t.Helper()
	ps := podSpec(t, d)
	if v, _, _ := unstructured.NestedBool(ps, "securityContext", "runAsNonRoot"); !v {
		t.Errorf("%s: pod securityContext.runAsNonRoot is not true", id(d))
	}
	if u := num(ps, "securityContext", "runAsUser"); u <= 0 {
		t.Errorf("%s: pod runs as uid 0 or sets no runAsUser", id(d))
	}
	if s := str(ps, "securityContext", "seccompProfile", "type"); s != "RuntimeDefault" {
		t.Errorf("%s: pod seccompProfile %q, want RuntimeDefault", id(d), s)
	}
	ann, _, _ := unstructured.NestedStringMap(d.Object, "spec", "template", "metadata", "annotations")
	if ann["prometheus.io/scrape"] != "true" || ann["prometheus.io/path"] != "/metrics" {
		t.Errorf("%s: scrape annotations missing: %v", id(d), ann)
	}
	for _, c := range containers(t, d) {
		name := fmt.Sprintf("%s container %s", id(d), c["name"])
		sc, _ := c["securityContext"].(map[string]any)
		if v, _, _ := unstructured.NestedBool(sc, "readOnlyRootFilesystem"); v != readOnlyRoot {
			t.Errorf("%s: readOnlyRootFilesystem = %v, want %v", name, v, readOnlyRoot)
		}
		if v, ok, _ := unstructured.NestedBool(sc, "allowPrivilegeEscalation"); !ok || v {
			t.Errorf("%s: allowPrivilegeEscalation is not false", name)
		}
		if drop, _, _ := unstructured.NestedStringSlice(sc, "capabilities", "drop"); !slices.Equal(drop, []string{"ALL"}) {
			t.Errorf("%s: capabilities.drop = %v, want [ALL]", name, drop)
		}
		if v, _, _ := unstructured.NestedBool(sc, "runAsNonRoot"); !v {
			t.Errorf("%s: container runAsNonRoot is not true", name)
		}
		for _, kind := range []string{"requests", "limits"} {
			for _, r := range []string{"cpu", "memory"} {
				if _, ok, _ := unstructured.NestedFieldNoCopy(c, "resources", kind, r); !ok {
					t.Errorf("%s: no resources.%s.%s", name, kind, r)
				}
			}
		}
		// The probes hit /healthz and /readyz on the port the service
		// listens on, which its *_ADDR variable sets.
		addrPort := ""
		env, _ := c["env"].([]any)
		for _, e := range env {
			em := e.(map[string]any)
			if n, _ := em["name"].(string); strings.HasSuffix(n, "_ADDR") {
				v, _ := em["value"].(string)
				_, addrPort, _ = strings.Cut(v, ":")
			}
		}
		ports, _ := c["ports"].([]any)
		httpPort := ""
		for _, p := range ports {
			pm := p.(map[string]any)
			if pm["name"] == "http" {
				httpPort = fmt.Sprint(pm["containerPort"])
			}
		}
		if addrPort == "" || httpPort != addrPort {
			t.Errorf("%s: container port http = %q, but the service listens on %q", name, httpPort, addrPort)
		}
		if ann["prometheus.io/port"] != addrPort {
			t.Errorf("%s: prometheus.io/port = %q, want %q", name, ann["prometheus.io/port"], addrPort)
		}
		for probe, path := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz"} {
			if p := str(c, probe, "httpGet", "path"); p != path {
				t.Errorf("%s: %s path %q, want %q", name, probe, p, path)
			}
			port, _, _ := unstructured.NestedFieldNoCopy(c, probe, "httpGet", "port")
			if fmt.Sprint(port) != "http" && fmt.Sprint(port) != httpPort {
				t.Errorf("%s: %s port %v, want http", name, probe, port)
			}
		}
		if _, err := strconv.Atoi(httpPort); err != nil {
			t.Errorf("%s: http port %q", name, httpPort)
		}
	}
}

// ingressPaths maps each path of an Ingress's rules to its backend Service.
func ingressPaths(t *testing.T, ing *unstructured.Unstructured) map[string]string {
	t.Helper()
	out := map[string]string{}
	rules, _, _ := unstructured.NestedSlice(ing.Object, "spec", "rules")
	for _, r := range rules {
		paths, _, _ := unstructured.NestedSlice(r.(map[string]any), "http", "paths")
		for _, p := range paths {
			pm := p.(map[string]any)
			if pt := str(pm, "pathType"); pt != "Prefix" {
				t.Errorf("%s: path %v has pathType %q, want Prefix", id(ing), pm["path"], pt)
			}
			out[str(pm, "path")] = str(pm, "backend", "service", "name")
		}
	}
	return out
}
