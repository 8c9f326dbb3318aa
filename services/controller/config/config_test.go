package config

import (
	"strings"
	"testing"

	"playpulse.dev/services/playback/envconf"
)

func TestDefaultsAreValid(t *testing.T) {
	var c Config
	if err := envconf.Load(&c); err != nil {
		t.Fatal(err)
	}
	if c.TopicMode != TopicModeAuto || !c.LeaderElect || c.MaxRatePerReplica != 50000 || c.KafkaCluster != "playpulse" {
		t.Errorf("defaults %+v", c)
	}
}

func TestBadValuesNameTheVariable(t *testing.T) {
	for _, tt := range []struct{ name, value string }{
		{"CONTROLLER_TOPIC_MODE", "zookeeper"},
		{"CONTROLLER_KAFKA_CLUSTER", ""},
		{"CONTROLLER_KAFKA_CLUSTER", "Not_A_Name"},
		{"CONTROLLER_MAX_RATE_PER_REPLICA", "0"},
		{"CONTROLLER_MAX_RATE_PER_REPLICA", "50001"},
		{"CONTROLLER_TOPIC_READY_TIMEOUT", "10ms"},
		{"CONTROLLER_TOPIC_READY_TIMEOUT", "soon"},
		{"CONTROLLER_NAMESPACES", "ok,Bad_Ns"},
		{"CONTROLLER_LEADER_ELECTION_NAMESPACE", "UPPER"},
		{"CONTROLLER_LEADER_ELECTION_ID", "no spaces"},
		{"CONTROLLER_LEADER_ELECT", "maybe"},
		{"CONTROLLER_MAX_CONCURRENT_RECONCILES", "0"},
		{"KAFKA_BROKERS", "no-port"},
	} {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			t.Setenv(tt.name, tt.value)
			var c Config
			err := envconf.Load(&c)
			if err == nil || !strings.Contains(err.Error(), tt.name) {
				t.Fatalf("err %v, want one naming %s", err, tt.name)
			}
		})
	}
}

func TestWatchedNamespaces(t *testing.T) {
	t.Setenv("CONTROLLER_NAMESPACES", " a, b ,,")
	var c Config
	if err := envconf.Load(&c); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.WatchedNamespaces(), "|"); got != "a|b" {
		t.Errorf("%q", got)
	}
}
