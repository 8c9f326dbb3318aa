package v1alpha1

import (
	"os"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

// TestCRDCarriesThePerReplicaLimit: the generated CRD's CEL rule repeats
// MaxEventsPerSecondPerReplica by hand (markers cannot name Go constants),
// so check the number there is this one.
func TestCRDCarriesThePerReplicaLimit(t *testing.T) {
	b, err := os.ReadFile("../../config/crd/bases/playpulse.dev_playbackstreams.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var crd struct {
		Spec struct {
			Versions []struct {
				Schema struct {
					OpenAPIV3Schema struct {
						Properties map[string]struct {
							XValidations []struct {
								Rule              string `json:"rule"`
								MessageExpression string `json:"messageExpression"`
							} `json:"x-kubernetes-validations"`
							Properties map[string]struct {
								Maximum int64 `json:"maximum"`
							} `json:"properties"`
						} `json:"properties"`
					} `json:"openAPIV3Schema"`
				} `json:"schema"`
			} `json:"versions"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(b, &crd); err != nil {
		t.Fatal(err)
	}
	spec := crd.Spec.Versions[0].Schema.OpenAPIV3Schema.Properties["spec"]
	// The per-replica rule is the one with a message expression (the other
	// rule on spec bounds the flash crowds' rate; tests/controller runs it).
	var rule struct{ Rule, MessageExpression string }
	for _, r := range spec.XValidations {
		if r.MessageExpression != "" {
			rule.Rule, rule.MessageExpression = r.Rule, r.MessageExpression
		}
	}
	for _, want := range []string{
		"* 50000",
	} {
		if !strings.Contains(rule.Rule, want) {
			t.Errorf("rule %q lacks %q", rule.Rule, want)
		}
	}
	for _, want := range []string{"+ 49999) / 50000", "at most 50000 events/s"} {
		if !strings.Contains(rule.MessageExpression, want) {
			t.Errorf("messageExpression %q lacks %q", rule.MessageExpression, want)
		}
	}
	if MaxEventsPerSecondPerReplica != 50000 {
		t.Errorf("MaxEventsPerSecondPerReplica is %d: update the CEL rule on PlaybackStreamSpec, this test, and run make generate", MaxEventsPerSecondPerReplica)
	}
	if got, want := spec.Properties["eventsPerSecond"].Maximum, int64(MaxEventsPerSecondPerReplica*MaxReplicas); got != want {
		t.Errorf("eventsPerSecond maximum %d, want replicas × per-replica limit = %d", got, want)
	}
	if got := spec.Properties["replicas"].Maximum; got != MaxReplicas {
		t.Errorf("replicas maximum %d, want %d", got, MaxReplicas)
	}
}
