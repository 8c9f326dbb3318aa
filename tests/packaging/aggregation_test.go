package packaging

import (
	"maps"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// The aggregation tier in the chart (issue 17): aggregation.enabled adds
// the aggregator Deployment, the aggregates topic and its scaler, and turns
// the fan-outs to merge mode. These checks are static (helm template); the
// tier's behaviour on a real cluster is the fan-out's own tests' business.

const kedaAPI = "keda.sh/v1alpha1/ScaledObject"

// ofComponent returns the objects of a kind with the component label.
func ofComponent(objs []*unstructured.Unstructured, kind, comp string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range find(objs, kind) {
		if component(o) == comp {
			out = append(out, o)
		}
	}
	return out
}

// topicsByName returns the aggregator's KafkaTopics by spec.topicName.
func topicsByName(t *testing.T, objs []*unstructured.Unstructured) map[string]*unstructured.Unstructured {
	t.Helper()
	out := map[string]*unstructured.Unstructured{}
	for _, kt := range ofComponent(objs, "KafkaTopic", "aggregator") {
		n := str(kt.Object, "spec", "topicName")
		if out[n] != nil {
			t.Errorf("two aggregator KafkaTopics for the topic %q", n)
		}
		out[n] = kt
	}
	return out
}

// TestAggregationOffByDefault: a plain install (and one where the chart
// manages topics) runs today's single-process fan-out and nothing of the
// tier.
func TestAggregationOffByDefault(t *testing.T) {
	for _, vs := range append(valueSets[:0:0], valueSets[0], valueSet{"kafka.create, KEDA served", []string{"--set", "kafka.create=true", "--api-versions", kedaAPI}}) {
		t.Run(vs.name, func(t *testing.T) {
			objs := render(t, testNamespace, vs.args...)
			for _, o := range objs {
				if component(o) == "aggregator" {
					t.Errorf("%s rendered with aggregation off", id(o))
				}
			}
			for _, k := range []string{"ScaledObject", "TriggerAuthentication"} {
				if n := len(find(objs, k)); n != 0 {
					t.Errorf("%d %s rendered with aggregation off", n, k)
				}
			}
			if role, ok := containerEnv(t, objs, "fanout")["FANOUT_ROLE"]; ok && role != "single" {
				t.Errorf("fan-out FANOUT_ROLE = %q with aggregation off, want unset or single", role)
			}
			if v, ok := containerEnv(t, objs, "fanout")["FANOUT_ROLLUPS_TOPIC"]; ok {
				t.Errorf("fan-out FANOUT_ROLLUPS_TOPIC = %q with aggregation off: only the merge role writes rollups", v)
			}
		})
	}
	// Without the fan-outs nobody would merge the partials: nothing of the
	// tier either.
	objs := render(t, testNamespace, "--set", "aggregation.enabled=true", "--set", "fanout.enabled=false")
	if n := len(ofComponent(objs, "Deployment", "aggregator")); n != 0 {
		t.Errorf("%d aggregator Deployments without the fan-out", n)
	}
}

// TestAggregationRender: with aggregation.enabled the aggregators run the
// fan-out's image in the aggregator role with the fan-out's Kafka
// connection (TLS and SASL of the all-on values), hardened, and the
// fan-outs merge what they publish.
func TestAggregationRender(t *testing.T) {
	objs := render(t, testNamespace, "--values", allOnValues)
	deps := ofComponent(objs, "Deployment", "aggregator")
	if len(deps) != 1 {
		t.Fatalf("%d aggregator Deployments, want 1", len(deps))
	}
	agg := deps[0]
	if agg.GetName() != releaseName+"-aggregator" {
		t.Errorf("aggregator Deployment named %q", agg.GetName())
	}
	checkPod(t, agg, true)
	ps := podSpec(t, agg)
	if v, ok, _ := unstructured.NestedBool(ps, "automountServiceAccountToken"); !ok || v {
		t.Errorf("%s mounts a service account token; it talks to Kafka only", id(agg))
	}
	if sel, _, _ := unstructured.NestedStringMap(agg.Object, "spec", "selector", "matchLabels"); sel["app.kubernetes.io/component"] != "aggregator" {
		t.Errorf("%s selects %v", id(agg), sel)
	}

	aggEnv := containerEnv(t, objs, "aggregator")
	fanEnv := containerEnv(t, objs, "fanout")
	if aggEnv["FANOUT_ROLE"] != "aggregator" {
		t.Errorf("aggregator FANOUT_ROLE = %q", aggEnv["FANOUT_ROLE"])
	}
	if fanEnv["FANOUT_ROLE"] != "merge" {
		t.Errorf("fan-out FANOUT_ROLE = %q, want merge", fanEnv["FANOUT_ROLE"])
	}
	if aggEnv["FANOUT_GROUP"] != "playpulse-ci-aggregators" || aggEnv["FANOUT_AGGREGATOR_REPLAY"] != "10m" {
		t.Errorf("aggregator FANOUT_GROUP %q, FANOUT_AGGREGATOR_REPLAY %q: not aggregation.group and .replay", aggEnv["FANOUT_GROUP"], aggEnv["FANOUT_AGGREGATOR_REPLAY"])
	}
	// aggregation.config reaches the aggregators, and fanout.config does
	// not (its FANOUT_WARMUP is the fan-outs').
	if aggEnv["FANOUT_MAX_SESSIONS"] != "2000000" || fanEnv["FANOUT_MAX_SESSIONS"] != "" {
		t.Errorf("FANOUT_MAX_SESSIONS: aggregator %q, fan-out %q; want aggregation.config's on the aggregator only", aggEnv["FANOUT_MAX_SESSIONS"], fanEnv["FANOUT_MAX_SESSIONS"])
	}
	if _, ok := aggEnv["FANOUT_WARMUP"]; ok {
		t.Error("fanout.config's FANOUT_WARMUP reached the aggregator")
	}
	if aggEnv["FANOUT_AGGREGATES_TOPIC"] == "" || aggEnv["FANOUT_AGGREGATES_TOPIC"] != fanEnv["FANOUT_AGGREGATES_TOPIC"] {
		t.Errorf("aggregates topic: aggregators publish to %q, fan-outs read %q", aggEnv["FANOUT_AGGREGATES_TOPIC"], fanEnv["FANOUT_AGGREGATES_TOPIC"])
	}
	// The same raw topics and the same Kafka connection as the fan-out.
	for name, v := range fanEnv {
		if name == "FANOUT_TOPICS" || name == "FANOUT_TOPIC_PATTERN" || name == "LOG_LEVEL" || (len(name) > 6 && name[:6] == "KAFKA_") {
			if aggEnv[name] != v {
				t.Errorf("aggregator %s = %q, fan-out %q", name, aggEnv[name], v)
			}
		}
	}
	for name := range aggEnv {
		if len(name) > 6 && name[:6] == "KAFKA_" {
			if _, ok := fanEnv[name]; !ok {
				t.Errorf("aggregator sets %s, the fan-out does not", name)
			}
		}
	}
	if aggEnv["KAFKA_TLS"] != "true" || aggEnv["KAFKA_SASL_MECHANISM"] == "" {
		t.Errorf("the all-on values connect with TLS and SASL; the aggregator env %v", aggEnv)
	}
	secrets := func(d *unstructured.Unstructured) []string {
		vols, _, _ := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "volumes")
		var out []string
		for _, v := range vols {
			if n := str(v.(map[string]any), "secret", "secretName"); n != "" {
				out = append(out, n)
			}
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	fan := ofComponent(objs, "Deployment", "fanout")[0]
	if got := secrets(agg); len(got) == 0 || !slices.Equal(got, slices.DeleteFunc(secrets(fan), func(s string) bool { return s == "playpulse-dashboard-token" })) {
		t.Errorf("aggregator mounts secrets %v, fan-out (but for its dashboard token) %v", got, secrets(fan))
	}

	// Its metrics Service is not the fan-out's: browsers never reach an
	// aggregator.
	for _, svc := range find(objs, "Service") {
		sel, _, _ := unstructured.NestedStringMap(svc.Object, "spec", "selector")
		if sel["app.kubernetes.io/component"] == "aggregator" && svc.GetName() != releaseName+"-aggregator-metrics" {
			t.Errorf("%s selects the aggregators", id(svc))
		}
	}
	if len(ofComponent(objs, "Service", "aggregator")) != 1 {
		t.Error("no aggregator metrics Service (the ServiceMonitor scrapes Services)")
	}

	// PodDisruptionBudget and NetworkPolicy: the aggregators' own.
	if pdbs := ofComponent(objs, "PodDisruptionBudget", "aggregator"); len(pdbs) != 1 {
		t.Errorf("%d aggregator PodDisruptionBudgets", len(pdbs))
	}
	nps := ofComponent(objs, "NetworkPolicy", "aggregator")
	if len(nps) != 1 {
		t.Fatalf("%d aggregator NetworkPolicies", len(nps))
	}
	np := nps[0]
	if sel, _, _ := unstructured.NestedStringMap(np.Object, "spec", "podSelector", "matchLabels"); sel["app.kubernetes.io/component"] != "aggregator" {
		t.Errorf("%s selects %v", id(np), sel)
	}
	ingress, _, _ := unstructured.NestedSlice(np.Object, "spec", "ingress")
	if len(ingress) != 1 {
		t.Fatalf("%s: %d ingress rules, want the metrics port only", id(np), len(ingress))
	}
	ports, _, _ := unstructured.NestedSlice(ingress[0].(map[string]any), "ports")
	if len(ports) != 1 || ports[0].(map[string]any)["port"] != "http" {
		t.Errorf("%s: ingress ports %v, want http only", id(np), ports)
	}

	// The aggregates topic: compacted and deleted, 7 days by default.
	kts := topicsByName(t, objs)
	if len(kts) != 4 {
		t.Fatalf("%d aggregator KafkaTopics, want the aggregates, tail, filters and rollups topics", len(kts))
	}
	kt := kts[aggEnv["FANOUT_AGGREGATES_TOPIC"]]
	if kt == nil {
		t.Fatalf("no KafkaTopic for the aggregates topic %q the aggregators publish to", aggEnv["FANOUT_AGGREGATES_TOPIC"])
	}
	if kt.GetName() != releaseName+"-aggregator-aggregates" {
		t.Errorf("aggregates KafkaTopic named %q", kt.GetName())
	}
	if p := str(kt.Object, "spec", "config", "cleanup.policy"); p != "compact,delete" {
		t.Errorf("%s: cleanup.policy %q, want compact,delete", id(kt), p)
	}
	if r := num(kt.Object, "spec", "config", "retention.ms"); r != 7*24*3600*1000 {
		t.Errorf("%s: retention.ms %d, want 7 days", id(kt), r)
	}
	if p, r := num(kt.Object, "spec", "partitions"), num(kt.Object, "spec", "replicas"); p != 3 || r != 3 {
		t.Errorf("%s: %d partitions, %d replicas; the all-on values say 3 and 3", id(kt), p, r)
	}
	for _, kt := range kts {
		if kt.GetAnnotations()["helm.sh/resource-policy"] != "keep" || kt.GetLabels()["strimzi.io/cluster"] != "playpulse" {
			t.Errorf("%s: annotations %v, labels %v", id(kt), kt.GetAnnotations(), kt.GetLabels())
		}
		if r := num(kt.Object, "spec", "replicas"); r != 3 {
			t.Errorf("%s: %d replicas; the all-on values' aggregation.topic.replicas says 3", id(kt), r)
		}
	}

	// The live tail: the aggregators forward to the topic the fan-outs
	// read, and follow the filters topic the fan-outs announce on.
	for name, want := range map[string]string{"FANOUT_TAIL_TOPIC": "playpulse-tail", "FANOUT_FILTERS_TOPIC": "playpulse-tail-filters"} {
		if aggEnv[name] != want || fanEnv[name] != want {
			t.Errorf("%s: aggregator %q, fan-out %q; want %q on both", name, aggEnv[name], fanEnv[name], want)
		}
	}
	if aggEnv["FANOUT_TAIL_SAMPLE_RATE"] != "100" {
		t.Errorf("aggregator FANOUT_TAIL_SAMPLE_RATE %q, want the default 100", aggEnv["FANOUT_TAIL_SAMPLE_RATE"])
	}
	if _, ok := fanEnv["FANOUT_TAIL_SAMPLE_RATE"]; ok {
		t.Error("the fan-out sets FANOUT_TAIL_SAMPLE_RATE, which only the aggregators use")
	}
	checkTailTopics(t, kts, aggEnv["FANOUT_TAIL_TOPIC"], aggEnv["FANOUT_FILTERS_TOPIC"], 3, 3600000)

	// The minute rollups: the fan-outs write and read them, the
	// aggregators have nothing to do with them.
	if fanEnv["FANOUT_ROLLUPS_TOPIC"] != "playpulse-rollups" {
		t.Errorf("fan-out FANOUT_ROLLUPS_TOPIC %q, want playpulse-rollups", fanEnv["FANOUT_ROLLUPS_TOPIC"])
	}
	if _, ok := aggEnv["FANOUT_ROLLUPS_TOPIC"]; ok {
		t.Error("the aggregator sets FANOUT_ROLLUPS_TOPIC, which only the merge-mode fan-outs use")
	}
	checkRollupsTopic(t, kts, fanEnv["FANOUT_ROLLUPS_TOPIC"], 1, 604800000)
}

// TestAggregationTail: aggregation.tail sets the live tail's topics and
// sample rate on both roles and in the KafkaTopics; an empty tail topic
// turns the tail off; a tail or filters topic the aggregators would read
// back as a raw topic, or that is another of the tier's topics, is refused.
func TestAggregationTail(t *testing.T) {
	on := []string{"--set", "aggregation.enabled=true", "--set", "kafka.create=true"}

	t.Run("custom", func(t *testing.T) {
		objs := render(t, testNamespace, append(on, "--set", "aggregation.tail.topic=live-tail", "--set", "aggregation.tail.filtersTopic=live-filters",
			"--set", "aggregation.tail.sampleRate=250", "--set", "aggregation.tail.retentionMs=7200000", "--set", "aggregation.tail.partitions=12")...)
		aggEnv, fanEnv := containerEnv(t, objs, "aggregator"), containerEnv(t, objs, "fanout")
		if aggEnv["FANOUT_TAIL_TOPIC"] != "live-tail" || fanEnv["FANOUT_TAIL_TOPIC"] != "live-tail" {
			t.Errorf("FANOUT_TAIL_TOPIC: aggregator %q, fan-out %q; want live-tail", aggEnv["FANOUT_TAIL_TOPIC"], fanEnv["FANOUT_TAIL_TOPIC"])
		}
		if aggEnv["FANOUT_FILTERS_TOPIC"] != "live-filters" || fanEnv["FANOUT_FILTERS_TOPIC"] != "live-filters" {
			t.Errorf("FANOUT_FILTERS_TOPIC: aggregator %q, fan-out %q; want live-filters", aggEnv["FANOUT_FILTERS_TOPIC"], fanEnv["FANOUT_FILTERS_TOPIC"])
		}
		if aggEnv["FANOUT_TAIL_SAMPLE_RATE"] != "250" {
			t.Errorf("aggregator FANOUT_TAIL_SAMPLE_RATE %q, want 250", aggEnv["FANOUT_TAIL_SAMPLE_RATE"])
		}
		kts := topicsByName(t, objs)
		checkTailTopics(t, kts, "live-tail", "live-filters", 12, 7200000)
		for _, n := range []string{"live-tail", "live-filters"} {
			if kt := kts[n]; kt != nil {
				if _, ok, _ := unstructured.NestedFieldNoCopy(kt.Object, "spec", "replicas"); ok {
					t.Errorf("%s sets replicas although aggregation.topic.replicas is 0 (the broker's default)", id(kt))
				}
			}
		}
	})

	t.Run("off", func(t *testing.T) {
		objs := render(t, testNamespace, append(on, "--set", "aggregation.tail.topic=")...)
		aggEnv, fanEnv := containerEnv(t, objs, "aggregator"), containerEnv(t, objs, "fanout")
		for name, env := range map[string]map[string]string{"aggregator": aggEnv, "fan-out": fanEnv} {
			// Set and empty: unset would fall back to the default topic.
			if v, ok := env["FANOUT_TAIL_TOPIC"]; !ok || v != "" {
				t.Errorf("%s FANOUT_TAIL_TOPIC %q (set: %v), want set to \"\"", name, v, ok)
			}
		}
		kts := topicsByName(t, objs)
		if len(kts) != 2 || kts["playpulse-aggregates"] == nil || kts["playpulse-rollups"] == nil {
			t.Errorf("aggregator KafkaTopics %v with the tail off, want the aggregates and rollups topics only", slices.Sorted(maps.Keys(kts)))
		}
	})

	t.Run("refused", func(t *testing.T) {
		base := append([]string{"template", releaseName, chartDir, "--namespace", testNamespace}, on...)
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"--set", "fanout.topicPattern=playpulse-.*"}, "one of the raw topics"},
			{[]string{"--set", "fanout.topics={playpulse-tail}"}, "one of the raw topics"},
			{[]string{"--set", "aggregation.tail.filtersTopic=playpulse-aggregates"}, "is the aggregates topic"},
			{[]string{"--set", "aggregation.tail.filtersTopic=playpulse-tail"}, "different names"},
		} {
			_, stderr, err := runHelm(t, append(base, tc.args...)...)
			if err == nil || !strings.Contains(stderr, tc.want) {
				t.Errorf("helm template %v: %v, want an error saying %q\n%s", tc.args, err, tc.want, stderr)
			}
		}
		// With the tail off its name clashes with nothing (the rollups
		// topic, playpulse-rollups, would: off too).
		mustHelm(t, append(base, "--set", "fanout.topicPattern=playpulse-.*", "--set", "aggregation.tail.topic=", "--set", "aggregation.tail.filtersTopic=x-filters", "--set", "aggregation.rollups.topic=")...)
	})
}

// TestAggregationRollups: aggregation.rollups sets the merge-mode fan-outs'
// rollups topic and its KafkaTopic; an empty topic turns the rollups off
// (set and empty on the fan-out, no KafkaTopic); a rollups topic the
// aggregators would read back as a raw topic, or that is another of the
// tier's topics, is refused.
func TestAggregationRollups(t *testing.T) {
	on := []string{"--set", "aggregation.enabled=true", "--set", "kafka.create=true"}

	t.Run("default", func(t *testing.T) {
		objs := render(t, testNamespace, on...)
		if v := containerEnv(t, objs, "fanout")["FANOUT_ROLLUPS_TOPIC"]; v != "playpulse-rollups" {
			t.Errorf("fan-out FANOUT_ROLLUPS_TOPIC %q, want playpulse-rollups", v)
		}
		kts := topicsByName(t, objs)
		checkRollupsTopic(t, kts, "playpulse-rollups", 1, 604800000)
		if kt := kts["playpulse-rollups"]; kt != nil {
			if kt.GetAnnotations()["helm.sh/resource-policy"] != "keep" {
				t.Errorf("%s: annotations %v, want helm.sh/resource-policy keep", id(kt), kt.GetAnnotations())
			}
			if _, ok, _ := unstructured.NestedFieldNoCopy(kt.Object, "spec", "replicas"); ok {
				t.Errorf("%s sets replicas although aggregation.topic.replicas is 0 (the broker's default)", id(kt))
			}
		}
	})

	t.Run("custom", func(t *testing.T) {
		objs := render(t, testNamespace, append(on, "--set", "aggregation.rollups.topic=day-rollups", "--set", "aggregation.rollups.retentionMs=1209600000",
			"--set", "aggregation.rollups.partitions=2", "--set", "aggregation.topic.replicas=3")...)
		if v := containerEnv(t, objs, "fanout")["FANOUT_ROLLUPS_TOPIC"]; v != "day-rollups" {
			t.Errorf("fan-out FANOUT_ROLLUPS_TOPIC %q, want day-rollups", v)
		}
		kts := topicsByName(t, objs)
		checkRollupsTopic(t, kts, "day-rollups", 2, 1209600000)
		if kt := kts["day-rollups"]; kt != nil {
			if r := num(kt.Object, "spec", "replicas"); r != 3 {
				t.Errorf("%s: %d replicas, want aggregation.topic.replicas 3", id(kt), r)
			}
		}
	})

	t.Run("off", func(t *testing.T) {
		objs := render(t, testNamespace, append(on, "--set", "aggregation.rollups.topic=")...)
		// Set and empty: the fan-out's own default is empty too, but the
		// chart says so rather than rely on it.
		if v, ok := containerEnv(t, objs, "fanout")["FANOUT_ROLLUPS_TOPIC"]; !ok || v != "" {
			t.Errorf("fan-out FANOUT_ROLLUPS_TOPIC %q (set: %v), want set to \"\"", v, ok)
		}
		kts := topicsByName(t, objs)
		for _, kt := range kts {
			if strings.HasSuffix(kt.GetName(), "-rollups") {
				t.Errorf("%s rendered with the rollups off", id(kt))
			}
		}
		if len(kts) != 3 {
			t.Errorf("aggregator KafkaTopics %v with the rollups off, want the aggregates, tail and filters topics", slices.Sorted(maps.Keys(kts)))
		}
	})

	t.Run("none", func(t *testing.T) {
		// aggregation.topic.create=none: no KafkaTopic, the fan-outs still
		// write to the topic created by hand.
		objs := render(t, testNamespace, append(on, "--set", "aggregation.topic.create=none")...)
		if n := len(topicsByName(t, objs)); n != 0 {
			t.Errorf("%d aggregator KafkaTopics with aggregation.topic.create=none", n)
		}
		if v := containerEnv(t, objs, "fanout")["FANOUT_ROLLUPS_TOPIC"]; v != "playpulse-rollups" {
			t.Errorf("fan-out FANOUT_ROLLUPS_TOPIC %q, want playpulse-rollups", v)
		}
	})

	t.Run("refused", func(t *testing.T) {
		base := append([]string{"template", releaseName, chartDir, "--namespace", testNamespace}, on...)
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"--set", "aggregation.rollups.topic=playback-rollups"}, "one of the raw topics"},
			{[]string{"--set", "aggregation.rollups.topic=playpulse-aggregates"}, "is the aggregates topic"},
			{[]string{"--set", "aggregation.rollups.topic=playpulse-tail"}, "different names"},
			{[]string{"--set", "aggregation.rollups.topic=playpulse-tail-filters"}, "different names"},
		} {
			_, stderr, err := runHelm(t, append(base, tc.args...)...)
			if err == nil || !strings.Contains(stderr, tc.want) {
				t.Errorf("helm template %v: %v, want an error saying %q\n%s", tc.args, err, tc.want, stderr)
			}
		}
		// With the rollups off their name clashes with nothing.
		mustHelm(t, append(base, "--set", "aggregation.rollups.topic=", "--set", "aggregation.tail.topic=")...)
	})
}

// TestAggregationTopic: the aggregates topic follows aggregation.topic.create
// as the collector's topics follow theirs.
func TestAggregationTopic(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		topic bool
	}{
		{"no Strimzi seen", nil, false},
		{"kafka.create", []string{"--set", "kafka.create=true"}, true},
		{"the cluster serves KafkaTopics", []string{"--api-versions", "kafka.strimzi.io/v1/KafkaTopic"}, true},
		{"none asked", []string{"--set", "kafka.create=true", "--set", "aggregation.topic.create=none"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := render(t, testNamespace, append([]string{"--set", "aggregation.enabled=true"}, tc.args...)...)
			kts := topicsByName(t, objs)
			want := 0
			if tc.topic {
				want = 4 // the aggregates, the tail, the filters and the rollups topics
			}
			if len(kts) != want {
				t.Fatalf("%d aggregator KafkaTopics rendered, want %d", len(kts), want)
			}
			if tc.topic {
				agg := kts["playpulse-aggregates"]
				if agg == nil {
					t.Fatal("no KafkaTopic for playpulse-aggregates")
				}
				if r := num(agg.Object, "spec", "config", "retention.ms"); r != 604800000 {
					t.Errorf("default retention.ms %d, want 604800000 (7 days)", r)
				}
				if p := num(agg.Object, "spec", "partitions"); p != 6 {
					t.Errorf("default partitions %d, want 6", p)
				}
				// The tail and rollups topics' defaults.
				checkTailTopics(t, kts, "playpulse-tail", "playpulse-tail-filters", 3, 3600000)
				checkRollupsTopic(t, kts, "playpulse-rollups", 1, 604800000)
			}
		})
	}
}

// TestAggregationScaling: a KEDA ScaledObject on the group's lag where the
// cluster serves KEDA, an HPA on playpulse_aggregator_lag otherwise, fixed
// replicas with autoscaling off.
func TestAggregationScaling(t *testing.T) {
	on := []string{"--set", "aggregation.enabled=true"}

	t.Run("KEDA", func(t *testing.T) {
		objs := render(t, testNamespace, append(on, "--api-versions", kedaAPI)...)
		if n := len(ofComponent(objs, "HorizontalPodAutoscaler", "aggregator")); n != 0 {
			t.Errorf("%d aggregator HPAs beside the ScaledObject (KEDA makes its own)", n)
		}
		if n := len(find(objs, "TriggerAuthentication")); n != 0 {
			t.Errorf("%d TriggerAuthentications for a plain connection", n)
		}
		sos := find(objs, "ScaledObject")
		if len(sos) != 1 {
			t.Fatalf("%d ScaledObjects", len(sos))
		}
		so := sos[0]
		env := containerEnv(t, objs, "aggregator")
		if n := str(so.Object, "spec", "scaleTargetRef", "name"); n != releaseName+"-aggregator" {
			t.Errorf("%s scales %q", id(so), n)
		}
		if lo, hi := num(so.Object, "spec", "minReplicaCount"), num(so.Object, "spec", "maxReplicaCount"); lo != 2 || hi != 12 {
			t.Errorf("%s: %d to %d replicas, want the defaults 2 to 12", id(so), lo, hi)
		}
		if _, ok, _ := unstructured.NestedFieldNoCopy(ofComponent(objs, "Deployment", "aggregator")[0].Object, "spec", "replicas"); ok {
			t.Error("the aggregator Deployment sets spec.replicas although KEDA owns them")
		}
		trig := kafkaTrigger(t, so)
		md, _ := trig["metadata"].(map[string]any)
		for k, want := range map[string]string{"bootstrapServers": env["KAFKA_BROKERS"], "consumerGroup": env["FANOUT_GROUP"], "lagThreshold": "10000"} {
			if md[k] != want {
				t.Errorf("%s: kafka trigger %s = %v, want %q", id(so), k, md[k], want)
			}
		}
	})

	t.Run("KEDA with TLS and SASL", func(t *testing.T) {
		objs := render(t, testNamespace, "--values", allOnValues, "--api-versions", kedaAPI)
		so := find(objs, "ScaledObject")[0]
		trig := kafkaTrigger(t, so)
		md, _ := trig["metadata"].(map[string]any)
		if md["sasl"] != "scram_sha512" || md["tls"] != "enable" {
			t.Errorf("%s: sasl %v, tls %v; want scram_sha512 and enable", id(so), md["sasl"], md["tls"])
		}
		tas := find(objs, "TriggerAuthentication")
		if len(tas) != 1 {
			t.Fatalf("%d TriggerAuthentications", len(tas))
		}
		if ref := str(trig, "authenticationRef", "name"); ref != tas[0].GetName() {
			t.Errorf("the trigger's authenticationRef %q, the TriggerAuthentication %q", ref, tas[0].GetName())
		}
		refs, _, _ := unstructured.NestedSlice(tas[0].Object, "spec", "secretTargetRef")
		got := map[string]string{}
		for _, r := range refs {
			rm := r.(map[string]any)
			got[str(rm, "parameter")] = str(rm, "name") + "/" + str(rm, "key")
		}
		want := map[string]string{"password": "playpulse-user/password", "ca": "playpulse-cluster-ca-cert/ca.crt",
			"cert": "playpulse-user/user.crt", "key": "playpulse-user/user.key"}
		for p, w := range want {
			if got[p] != w {
				t.Errorf("TriggerAuthentication %s from %q, want %q (the aggregators' secret)", p, got[p], w)
			}
		}
		envRefs, _, _ := unstructured.NestedSlice(tas[0].Object, "spec", "env")
		if len(envRefs) != 1 || str(envRefs[0].(map[string]any), "name") != "KAFKA_SASL_USERNAME" {
			t.Errorf("TriggerAuthentication env %v, want the user name from KAFKA_SASL_USERNAME", envRefs)
		}
	})

	t.Run("HPA without KEDA", func(t *testing.T) {
		objs := render(t, testNamespace, on...)
		if n := len(find(objs, "ScaledObject")); n != 0 {
			t.Errorf("%d ScaledObjects without KEDA", n)
		}
		hpas := ofComponent(objs, "HorizontalPodAutoscaler", "aggregator")
		if len(hpas) != 1 {
			t.Fatalf("%d aggregator HPAs", len(hpas))
		}
		hpa := hpas[0]
		if n := str(hpa.Object, "spec", "scaleTargetRef", "name"); n != releaseName+"-aggregator" {
			t.Errorf("%s scales %q", id(hpa), n)
		}
		metrics, _, _ := unstructured.NestedSlice(hpa.Object, "spec", "metrics")
		if len(metrics) != 1 {
			t.Fatalf("%s: %d metrics", id(hpa), len(metrics))
		}
		m := metrics[0].(map[string]any)
		if str(m, "type") != "External" || str(m, "external", "metric", "name") != "playpulse_aggregator_lag" {
			t.Errorf("%s: metric %v, want the external playpulse_aggregator_lag", id(hpa), m)
		}
		if str(m, "external", "target", "type") != "AverageValue" || str(m, "external", "target", "averageValue") != "10000" {
			t.Errorf("%s: target %v, want AverageValue 10000", id(hpa), m["external"])
		}
	})

	t.Run("fixed replicas", func(t *testing.T) {
		objs := render(t, testNamespace, append(on, "--set", "aggregation.autoscaling.enabled=false", "--api-versions", kedaAPI)...)
		if n := len(find(objs, "ScaledObject")) + len(ofComponent(objs, "HorizontalPodAutoscaler", "aggregator")); n != 0 {
			t.Errorf("%d scalers with autoscaling off", n)
		}
		if r := num(ofComponent(objs, "Deployment", "aggregator")[0].Object, "spec", "replicas"); r != 3 {
			t.Errorf("aggregator replicas %d, want aggregation.replicas 3", r)
		}
	})
}

// checkTailTopics: the tail topic is deleted after retentionMs and has
// partitions; the filters topic is compacted, one partition, with segments
// short enough for compaction to run and tombstones dropped within an hour.
func checkTailTopics(t *testing.T, kts map[string]*unstructured.Unstructured, tail, filters string, partitions, retentionMs int64) {
	t.Helper()
	kt := kts[tail]
	if kt == nil {
		t.Errorf("no KafkaTopic for the tail topic %q", tail)
	} else {
		if kt.GetName() != releaseName+"-aggregator-tail" {
			t.Errorf("tail KafkaTopic named %q", kt.GetName())
		}
		if p := str(kt.Object, "spec", "config", "cleanup.policy"); p != "delete" {
			t.Errorf("%s: cleanup.policy %q, want delete", id(kt), p)
		}
		if r := num(kt.Object, "spec", "config", "retention.ms"); r != retentionMs {
			t.Errorf("%s: retention.ms %d, want %d", id(kt), r, retentionMs)
		}
		if p := num(kt.Object, "spec", "partitions"); p != partitions {
			t.Errorf("%s: %d partitions, want %d", id(kt), p, partitions)
		}
	}
	kt = kts[filters]
	if kt == nil {
		t.Errorf("no KafkaTopic for the filters topic %q", filters)
		return
	}
	if kt.GetName() != releaseName+"-aggregator-tail-filters" {
		t.Errorf("filters KafkaTopic named %q", kt.GetName())
	}
	if p := str(kt.Object, "spec", "config", "cleanup.policy"); p != "compact,delete" {
		t.Errorf("%s: cleanup.policy %q, want compact,delete", id(kt), p)
	}
	if p := num(kt.Object, "spec", "partitions"); p != 1 {
		t.Errorf("%s: %d partitions, want 1", id(kt), p)
	}
	// An active segment is never compacted: it must roll, and a record must
	// become compactable, within the hour.
	for _, k := range []string{"segment.ms", "delete.retention.ms"} {
		if v := num(kt.Object, "spec", "config", k); v <= 0 || v > 3600000 {
			t.Errorf("%s: %s %d, want at most an hour", id(kt), k, v)
		}
	}
	if v := num(kt.Object, "spec", "config", "min.compaction.lag.ms"); v < 0 || v > 3600000 {
		t.Errorf("%s: min.compaction.lag.ms %d, want set and at most an hour", id(kt), v)
	}
}

// checkRollupsTopic: the rollups topic is compacted (every merge-mode
// fan-out writes the same key each minute; the newest wins) and deleted
// after retentionMs, with partitions.
func checkRollupsTopic(t *testing.T, kts map[string]*unstructured.Unstructured, topic string, partitions, retentionMs int64) {
	t.Helper()
	kt := kts[topic]
	if kt == nil {
		t.Errorf("no KafkaTopic for the rollups topic %q", topic)
		return
	}
	if kt.GetName() != releaseName+"-aggregator-rollups" {
		t.Errorf("rollups KafkaTopic named %q", kt.GetName())
	}
	if p := str(kt.Object, "spec", "config", "cleanup.policy"); p != "compact,delete" {
		t.Errorf("%s: cleanup.policy %q, want compact,delete", id(kt), p)
	}
	if r := num(kt.Object, "spec", "config", "retention.ms"); r != retentionMs {
		t.Errorf("%s: retention.ms %d, want %d", id(kt), r, retentionMs)
	}
	if p := num(kt.Object, "spec", "partitions"); p != partitions {
		t.Errorf("%s: %d partitions, want %d", id(kt), p, partitions)
	}
}

func kafkaTrigger(t *testing.T, so *unstructured.Unstructured) map[string]any {
	t.Helper()
	trigs, _, _ := unstructured.NestedSlice(so.Object, "spec", "triggers")
	if len(trigs) != 1 || str(trigs[0].(map[string]any), "type") != "kafka" {
		t.Fatalf("%s: triggers %v, want one kafka trigger", id(so), trigs)
	}
	return trigs[0].(map[string]any)
}
