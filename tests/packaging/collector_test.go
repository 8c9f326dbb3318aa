package packaging

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"playpulse.dev/services/playback/envconf"
)

// containerEnv is the literal environment of the Deployment's container of
// component comp (the container is named after it).
func containerEnv(t *testing.T, objs []*unstructured.Unstructured, comp string) map[string]string {
	t.Helper()
	for _, d := range find(objs, "Deployment") {
		if component(d) != comp {
			continue
		}
		env := map[string]string{}
		for _, c := range containers(t, d) {
			list, _ := c["env"].([]any)
			for _, e := range list {
				em := e.(map[string]any)
				env[fmt.Sprint(em["name"])] = fmt.Sprint(em["value"])
			}
		}
		return env
	}
	t.Fatalf("no %s Deployment rendered", comp)
	return nil
}

// serves reports whether a fan-out with this environment reads topic: it
// is in FANOUT_TOPICS or matches FANOUT_TOPIC_PATTERN, anchored as the
// fan-out anchors it.
func serves(t *testing.T, fanoutEnv map[string]string, topic string) bool {
	t.Helper()
	if slices.Contains(strings.Split(fanoutEnv["FANOUT_TOPICS"], ","), topic) {
		return true
	}
	p := fanoutEnv["FANOUT_TOPIC_PATTERN"]
	if p == "" {
		return false
	}
	re, err := regexp.Compile("^(?:" + p + ")$")
	if err != nil {
		t.Fatalf("FANOUT_TOPIC_PATTERN %q: %v", p, err)
	}
	return re.MatchString(topic)
}

// serviceDefault is the default of a service's variable, from its config
// struct.
func serviceDefault(t *testing.T, service, name string) string {
	t.Helper()
	vars, err := envconf.Vars(services[service])
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vars {
		if v.Name == name {
			return v.Default
		}
	}
	t.Fatalf("the %s has no variable %s", service, name)
	return ""
}

// TestCollectorDefaultsAgree: the chart's default topic names are the
// collector's own defaults, and the fan-out serves the collector's events
// topic by default, both as the services are (their config structs) and as
// the chart renders them.
func TestCollectorDefaultsAgree(t *testing.T) {
	intake, events := serviceDefault(t, "collector", "COLLECTOR_INTAKE_TOPIC"), serviceDefault(t, "collector", "COLLECTOR_EVENTS_TOPIC")
	if !serves(t, map[string]string{"FANOUT_TOPIC_PATTERN": serviceDefault(t, "fanout", "FANOUT_TOPIC_PATTERN")}, events) {
		t.Errorf("the fan-out's default FANOUT_TOPIC_PATTERN does not match the collector's default events topic %q", events)
	}
	objs := render(t, testNamespace, "--set", "collector.enabled=true")
	env := containerEnv(t, objs, "collector")
	if env["COLLECTOR_INTAKE_TOPIC"] != intake || env["COLLECTOR_EVENTS_TOPIC"] != events {
		t.Errorf("the chart gives the collector topics %q and %q; the collector's defaults are %q and %q",
			env["COLLECTOR_INTAKE_TOPIC"], env["COLLECTOR_EVENTS_TOPIC"], intake, events)
	}
	if !serves(t, containerEnv(t, objs, "fanout"), events) {
		t.Errorf("the chart's fan-out does not serve the collector's events topic %q", events)
	}
	// Off by default: a plain install opens no endpoint to the internet.
	for _, o := range render(t, testNamespace) {
		if component(o) == "collector" {
			t.Errorf("the defaults render %s", id(o))
		}
	}
}

// TestCollectorRender checks the collector's objects with the collector
// on and nothing else changed: a Deployment and a Service, a PDB, a
// NetworkPolicy that lets anyone reach the http port and the pods reach
// only DNS and Kafka, and no KafkaTopic (helm template sees no Strimzi).
func TestCollectorRender(t *testing.T) {
	objs := render(t, testNamespace, "--set", "collector.enabled=true")
	var got []string
	for _, o := range objs {
		if component(o) == "collector" {
			got = append(got, o.GetKind()+"/"+o.GetName())
		}
	}
	slices.Sort(got)
	want := []string{"Deployment/playpulse-collector", "NetworkPolicy/playpulse-collector", "PodDisruptionBudget/playpulse-collector", "Service/playpulse-collector"}
	if !slices.Equal(got, want) {
		t.Errorf("collector objects %v, want %v", got, want)
	}

	var np *unstructured.Unstructured
	for _, o := range find(objs, "NetworkPolicy") {
		if component(o) == "collector" {
			np = o
		}
	}
	if np == nil {
		t.Fatal("no collector NetworkPolicy")
	}
	sel, _, _ := unstructured.NestedStringMap(np.Object, "spec", "podSelector", "matchLabels")
	if sel["app.kubernetes.io/component"] != "collector" || sel["app.kubernetes.io/instance"] != releaseName {
		t.Errorf("the NetworkPolicy selects %v", sel)
	}
	in, _, _ := unstructured.NestedSlice(np.Object, "spec", "ingress")
	if len(in) != 1 {
		t.Fatalf("ingress rules %v, want one", in)
	}
	rule := in[0].(map[string]any)
	if _, ok := rule["from"]; ok {
		t.Errorf("the ingress rule has from %v; players reach the collector from anywhere", rule["from"])
	}
	if ports, _, _ := unstructured.NestedSlice(rule, "ports"); len(ports) != 1 || fmt.Sprint(ports[0].(map[string]any)["port"]) != "http" {
		t.Errorf("ingress ports %v, want the http port only", ports)
	}
	var egress []string
	out, _, _ := unstructured.NestedSlice(np.Object, "spec", "egress")
	for _, r := range out {
		rm := r.(map[string]any)
		if _, ok := rm["to"]; ok {
			t.Errorf("egress rule with to %v by default", rm["to"])
		}
		ports, _, _ := unstructured.NestedSlice(rm, "ports")
		for _, p := range ports {
			pm := p.(map[string]any)
			egress = append(egress, fmt.Sprintf("%v/%v", pm["port"], pm["protocol"]))
		}
	}
	slices.Sort(egress)
	if want := []string{"53/TCP", "53/UDP", "9092/TCP"}; !slices.Equal(egress, want) {
		t.Errorf("egress %v, want DNS and Kafka only: %v", egress, want)
	}

	for _, d := range find(objs, "Deployment") {
		if component(d) != "collector" {
			continue
		}
		c := containers(t, d)[0]
		if s := num(c, "lifecycle", "preStop", "sleep", "seconds"); s < 1 {
			t.Errorf("%s: no preStop sleep; a terminating pod would refuse reports while it still gets them", id(d))
		}
		grace := num(d.Object, "spec", "template", "spec", "terminationGracePeriodSeconds")
		if grace < 16 {
			t.Errorf("%s: terminationGracePeriodSeconds %d leaves no time for the 5 s preStop and the 10 s shutdown", id(d), grace)
		}
	}
}

// TestCollectorTopics: who creates the collector's topics. With Strimzi
// (kafka.create, or a cluster that serves KafkaTopics, or
// collector.topics.create=strimzi) the chart renders one KafkaTopic per
// topic, for the cluster, kept on uninstall, with the names the collector
// is given; otherwise none (the notes say how to create them).
func TestCollectorTopics(t *testing.T) {
	for _, tc := range []struct {
		name   string
		args   []string
		topics bool
	}{
		{"no Strimzi seen", nil, false},
		{"kafka.create", []string{"--set", "kafka.create=true"}, true},
		{"the cluster serves KafkaTopics", []string{"--api-versions", "kafka.strimzi.io/v1/KafkaTopic"}, true},
		{"strimzi asked", []string{"--set", "collector.topics.create=strimzi"}, true},
		{"none asked", []string{"--set", "kafka.create=true", "--set", "collector.topics.create=none"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			objs := render(t, testNamespace, append([]string{"--set", "collector.enabled=true", "--set", "kafka.clusterName=events"}, tc.args...)...)
			kts := find(objs, "KafkaTopic")
			if !tc.topics {
				if len(kts) != 0 {
					t.Fatalf("%d KafkaTopics rendered", len(kts))
				}
				return
			}
			env := containerEnv(t, objs, "collector")
			names := map[string]*unstructured.Unstructured{}
			for _, kt := range kts {
				names[str(kt.Object, "spec", "topicName")] = kt
				if kt.GetLabels()["strimzi.io/cluster"] != "events" {
					t.Errorf("%s: strimzi.io/cluster %q, want kafka.clusterName", id(kt), kt.GetLabels()["strimzi.io/cluster"])
				}
				if kt.GetAnnotations()["helm.sh/resource-policy"] != "keep" {
					t.Errorf("%s: helm uninstall would delete it, and Strimzi the topic with its events", id(kt))
				}
				if kt.GetAPIVersion() != "kafka.strimzi.io/v1" {
					t.Errorf("%s: %s", id(kt), kt.GetAPIVersion())
				}
			}
			intake, events := names[env["COLLECTOR_INTAKE_TOPIC"]], names[env["COLLECTOR_EVENTS_TOPIC"]]
			if len(kts) != 2 || intake == nil || events == nil {
				t.Fatalf("KafkaTopics for %v; the collector uses %q and %q", slices.Collect(maps.Keys(names)), env["COLLECTOR_INTAKE_TOPIC"], env["COLLECTOR_EVENTS_TOPIC"])
			}
			// The intake topic must keep its records far beyond the
			// rebuild look-back that a new owner replays.
			lookback, err := time.ParseDuration(serviceDefault(t, "collector", "COLLECTOR_REBUILD_LOOKBACK"))
			if err != nil {
				t.Fatal(err)
			}
			ret := time.Duration(num(intake.Object, "spec", "config", "retention.ms")) * time.Millisecond
			if ret < 10*lookback {
				t.Errorf("intake retention %v, not well above the %v look-back", ret, lookback)
			}
			if p := num(intake.Object, "spec", "partitions"); p < 1 {
				t.Errorf("intake partitions %d", p)
			}
			if _, ok, _ := unstructured.NestedFieldNoCopy(events.Object, "spec", "config"); ok {
				t.Errorf("the events topic sets config %v; by default it takes the broker's retention", events.Object["spec"])
			}
		})
	}
}

// TestCollectorEventsMustBeServed: the chart refuses a collector whose
// events topic the fan-out would not read (a custom topicPattern), and
// accepts it once fanout.topics lists it or the fan-out is not deployed.
func TestCollectorEventsMustBeServed(t *testing.T) {
	base := []string{"template", releaseName, chartDir, "--namespace", testNamespace, "--set", "collector.enabled=true"}
	for _, args := range [][]string{
		{"--set", "fanout.topicPattern=playback-(quiet|spike)"},
		{"--set", "fanout.topicPattern=", "--set", "fanout.topics={playback-events}"},
		{"--set", "collector.topics.events.name=players-events"},
	} {
		_, stderr, err := runHelm(t, append(base, args...)...)
		if err == nil || !strings.Contains(stderr, "is not served by the fan-out") || !strings.Contains(stderr, "fanout.topics") {
			t.Errorf("helm template %v: %v\n%s", args, err, stderr)
		}
	}
	for _, args := range [][]string{
		{"--set", "fanout.topicPattern=playback-(quiet|spike)", "--set", "fanout.topics={playback-players}"},
		{"--set", "fanout.enabled=false", "--set", "fanout.topicPattern=playback-(quiet|spike)"},
	} {
		mustHelm(t, append(base, args...)...)
	}
}

// TestDevValuesRunTheCollector: the Tilt dev loop runs the collector, its
// topics KafkaTopics of the dev Kafka, any local page allowed to post.
func TestDevValuesRunTheCollector(t *testing.T) {
	objs := render(t, testNamespace, "--values", devValues)
	if n := len(find(objs, "KafkaTopic")); n != 2 {
		t.Errorf("dev values: %d KafkaTopics, want the collector's two", n)
	}
	if o := containerEnv(t, objs, "collector")["COLLECTOR_ALLOWED_ORIGINS"]; o != "*" {
		t.Errorf("dev collector COLLECTOR_ALLOWED_ORIGINS %q, want *", o)
	}
}
