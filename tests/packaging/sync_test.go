package packaging

import (
	"os"
	"reflect"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// generatedRole is controller-gen's output, which make generate copies into
// the chart (tests/generated fails when the copy is stale).
const generatedRole = "services/controller/config/rbac/role.yaml"

// TestChartRBACIsCurrent: the ClusterRole the chart renders has exactly the
// rules controller-gen generates from the +kubebuilder:rbac markers.
func TestChartRBACIsCurrent(t *testing.T) {
	want, err := os.ReadFile(repoPath(generatedRole))
	if err != nil {
		t.Fatal(err)
	}
	var role struct{ Rules []any }
	if err := yaml.Unmarshal(want, &role); err != nil {
		t.Fatal(err)
	}
	crs := find(render(t, testNamespace), "ClusterRole")
	if len(crs) == 0 {
		t.Fatal("the chart renders no ClusterRole")
	}
	for _, cr := range crs {
		rules, _, _ := unstructured.NestedSlice(cr.Object, "rules")
		if !reflect.DeepEqual(normalise(t, rules), normalise(t, role.Rules)) {
			t.Errorf("rendered %s rules differ from %s", id(cr), generatedRole)
		}
	}
}

func normalise(t testing.TB, v any) any {
	b, err := yaml.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out any
	if err := yaml.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestKafkaManifestsMatchChart: k8s/kafka/kafka.yaml (for kubectl users) and
// the chart's kafka.create=true describe the same cluster.
func TestKafkaManifestsMatchChart(t *testing.T) {
	chart := render(t, testNamespace, "--set", "kafka.create=true")
	plain := decodeFile(t, "k8s/kafka/kafka.yaml")
	for _, kind := range []string{"Kafka", "KafkaNodePool"} {
		c, p := find(chart, kind), find(plain, kind)
		if len(c) != 1 || len(p) != 1 {
			t.Fatalf("%s: %d in the chart, %d in k8s/kafka/kafka.yaml", kind, len(c), len(p))
		}
		if c[0].GetName() != p[0].GetName() || c[0].GetNamespace() != p[0].GetNamespace() {
			t.Errorf("%s: chart %s, manifest %s", kind, id(c[0]), id(p[0]))
		}
		if !reflect.DeepEqual(normalise(t, c[0].Object["spec"]), normalise(t, p[0].Object["spec"])) {
			cs, _ := yaml.Marshal(c[0].Object["spec"])
			ps, _ := yaml.Marshal(p[0].Object["spec"])
			t.Errorf("%s spec differs:\nchart:\n%s\nk8s/kafka/kafka.yaml:\n%s", kind, cs, ps)
		}
		if c[0].GetLabels()["strimzi.io/cluster"] != p[0].GetLabels()["strimzi.io/cluster"] {
			t.Errorf("%s: strimzi.io/cluster label differs", kind)
		}
	}
}
