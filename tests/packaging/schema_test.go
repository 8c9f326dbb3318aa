package packaging

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestValuesSchemaRefusesBadValues feeds helm values that values.schema.json
// must refuse: wrong types and unknown keys, at every level. Each case must
// fail with helm's schema error, not later in a template.
func TestValuesSchemaRefusesBadValues(t *testing.T) {
	cases := []struct {
		name   string
		values string // a values file
		want   string // part of helm's message
	}{
		{"unknown top-level key", "replicaCount: 3\n", "replicaCount"},
		{"unknown nested key (typo)", "fanout:\n  replica: 3\n", "replica"},
		{"unknown deeply nested key", "fanout:\n  ingress:\n    hosts: [a.example.com]\n", "hosts"},
		{"unknown key in resources", "controller:\n  resources:\n    limit:\n      cpu: 1\n", "limit"},
		{"string for an integer", "fanout:\n  replicas: two\n", "replicas"},
		{"number as a string", "fanout:\n  replicas: \"2\"\n", "replicas"},
		{"string for a boolean", "kafka:\n  create: \"yes\"\n", "create"},
		{"object for a list", "fanout:\n  topics:\n    name: playback-events\n", "topics"},
		{"no topics and no pattern", "fanout:\n  topics: []\n  topicPattern: \"\"\n", "topicPattern"},
		{"bad enum", "logLevel: verbose\n", "logLevel"},
		{"bad duration", "fanout:\n  config:\n    FANOUT_WARMUP: 5 minutes\n", "FANOUT_WARMUP"},
		{"unknown service variable", "fanout:\n  config:\n    FANOUT_WARM_UP: 1m\n", "FANOUT_WARM_UP"},
		{"variable the chart sets itself", "fanout:\n  config:\n    FANOUT_ADDR: \":9000\"\n", "FANOUT_ADDR"},
		{"secret as a plain variable", "fanout:\n  config:\n    FANOUT_AUTH_TOKEN: hunter2\n", "FANOUT_AUTH_TOKEN"},
		{"string for an integer variable", "fanout:\n  config:\n    FANOUT_MAX_CONNECTIONS: many\n", "FANOUT_MAX_CONNECTIONS"},
		{"bad digest", "controller:\n  image:\n    digest: latest\n", "digest"},
		{"bad port", "fanout:\n  port: 70000\n", "port"},
		{"bad quantity", "fanout:\n  resources:\n    limits:\n      memory: lots\n", "memory"},
		{"bad SASL mechanism", "kafka:\n  sasl:\n    mechanism: GSSAPI\n", "mechanism"},
		{"bad Kafka version for Strimzi 1.2", "kafka:\n  dev:\n    version: 3.9.0\n", "version"},
		{"unknown PlaybackStream field", "defaultStream:\n  spec:\n    eventsPerSec: 10\n", "eventsPerSec"},
		{"PlaybackStream rate out of range", "defaultStream:\n  spec:\n    eventsPerSecond: -1\n", "eventsPerSecond"},
		{"bad cluster name", "kafka:\n  clusterName: My_Cluster\n", "clusterName"},
		{"unknown collector key", "collector:\n  allowedOrigin: [\"*\"]\n", "allowedOrigin"},
		{"origin with a path", "collector:\n  allowedOrigins: [https://player.example.com/app]\n", "allowedOrigins"},
		{"trusted proxy not an address", "collector:\n  trustedProxies: [ingress-nginx]\n", "trustedProxies"},
		{"country header not a header name", "collector:\n  countryHeader: \"Viewer Country\"\n", "countryHeader"},
		{"unknown topic mode", "collector:\n  topics:\n    create: kafka\n", "create"},
		{"intake retention below the look-back's margin", "collector:\n  topics:\n    intake:\n      retentionMs: 600000\n", "retentionMs"},
		{"bad topic name", "collector:\n  topics:\n    events:\n      name: \"players events\"\n", "name"},
		{"collector variable the chart sets itself", "collector:\n  config:\n    COLLECTOR_INTAKE_TOPIC: x\n", "COLLECTOR_INTAKE_TOPIC"},
		{"unknown collector variable", "collector:\n  config:\n    COLLECTOR_RATELIMIT: 5\n", "COLLECTOR_RATELIMIT"},
		{"collector variable out of range", "collector:\n  config:\n    COLLECTOR_MAX_LINES: 0\n", "COLLECTOR_MAX_LINES"},
		{"collector grace period too short", "collector:\n  terminationGracePeriodSeconds: 10\n", "terminationGracePeriodSeconds"},
		{"unknown aggregation key", "aggregation:\n  enable: true\n", "enable"},
		{"bad aggregator replay", "aggregation:\n  replay: six minutes\n", "replay"},
		{"aggregates history below an hour", "aggregation:\n  topic:\n    retentionMs: 60000\n", "retentionMs"},
		{"unknown tail key", "aggregation:\n  tail:\n    topics: playpulse-tail\n", "topics"},
		{"bad tail topic name", "aggregation:\n  tail:\n    topic: \"live tail\"\n", "topic"},
		{"empty filters topic", "aggregation:\n  tail:\n    filtersTopic: \"\"\n", "filtersTopic"},
		{"tail sample rate zero", "aggregation:\n  tail:\n    sampleRate: 0\n", "sampleRate"},
		{"tail retention below the resume window's maximum", "aggregation:\n  tail:\n    retentionMs: 60000\n", "retentionMs"},
		{"tail partitions as a string", "aggregation:\n  tail:\n    partitions: \"3\"\n", "partitions"},
		{"tail topic the chart sets itself", "aggregation:\n  config:\n    FANOUT_TAIL_TOPIC: x\n", "FANOUT_TAIL_TOPIC"},
		{"unknown rollups key", "aggregation:\n  rollups:\n    name: playpulse-rollups\n", "name"},
		{"bad rollups topic name", "aggregation:\n  rollups:\n    topic: \"day rollups\"\n", "topic"},
		{"rollups retention below the day view", "aggregation:\n  rollups:\n    retentionMs: 3600000\n", "retentionMs"},
		{"rollups partitions zero", "aggregation:\n  rollups:\n    partitions: 0\n", "partitions"},
		{"rollups topic the chart sets itself", "fanout:\n  config:\n    FANOUT_ROLLUPS_TOPIC: x\n", "FANOUT_ROLLUPS_TOPIC"},
		{"lag threshold as a string", "aggregation:\n  autoscaling:\n    lagThreshold: \"10000\"\n", "lagThreshold"},
		{"bad externalTrafficPolicy", "collector:\n  service:\n    externalTrafficPolicy: local\n", "externalTrafficPolicy"},
	}
	dir := t.TempDir()
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "-")+".yaml")
			if err := os.WriteFile(f, []byte(c.values), 0o644); err != nil {
				t.Fatal(err)
			}
			_ = i
			out, stderr, err := runHelm(t, "template", releaseName, chartDir, "--namespace", testNamespace, "--values", f)
			if err == nil {
				t.Fatalf("helm template accepted\n%s\nand rendered %d bytes", c.values, len(out))
			}
			if !strings.Contains(stderr, "values don't meet the specifications of the schema") {
				t.Errorf("helm failed, but not on the schema:\n%s", stderr)
			}
			if !strings.Contains(stderr, c.want) {
				t.Errorf("the schema error does not name %q:\n%s", c.want, stderr)
			}
		})
	}
}

// TestValuesSchemaAcceptsTheShippedValues: the defaults, the dev values and
// the all-on values pass the schema (helm template would fail otherwise),
// and --set with the documented keys works.
func TestValuesSchemaAcceptsTheShippedValues(t *testing.T) {
	for _, vs := range valueSets {
		mustHelm(t, append([]string{"template", releaseName, chartDir, "--namespace", testNamespace}, vs.args...)...)
	}
	mustHelm(t, "template", releaseName, chartDir, "--namespace", testNamespace,
		"--set", "fanout.replicas=3", "--set", "fanout.ingress.enabled=true", "--set", "kafka.create=true",
		"--set-string", "fanout.config.FANOUT_WARMUP=90s", "--set", "fanout.config.FANOUT_MAX_STREAMS=5", "--set", "fanout.topics={playback-events,playback-prime-time}",
		"--set", "collector.enabled=true", "--set", "collector.allowedOrigins={https://a.example.com,https://b.example.com:8443}",
		"--set", "collector.trustedProxies={10.0.0.0/8,192.0.2.7}", "--set-string", "collector.config.COLLECTOR_INACTIVITY_TIMEOUT=40s",
		"--set", "aggregation.enabled=true", "--set", "aggregation.autoscaling.lagThreshold=20000", "--set", "aggregation.topic.partitions=12")
}
