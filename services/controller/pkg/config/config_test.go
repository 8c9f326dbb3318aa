package config

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"playpulse.dev/services/controller/api/v1alpha1"
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
		{"CONTROLLER_ADDR", "not-an-address"},
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
		{"CONTROLLER_ALERT_RULES_CONFIGMAP", "Rules"},
		{"CONTROLLER_FANOUT_URL", "playpulse-fanout:8080"},
		{"CONTROLLER_FANOUT_URL", "ftp://fanout"},
		{"CONTROLLER_FANOUT_NAMESPACE", "Bad_Ns"},
		{"CONTROLLER_ALERT_STATUS_INTERVAL", "100ms"},
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

// TestMaxRateIsTheCRDLimit: the bound -h prints is the per-pod limit the
// CRD enforces.
func TestMaxRateIsTheCRDLimit(t *testing.T) {
	vars, err := envconf.Vars(&Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vars {
		if v.Name == "CONTROLLER_MAX_RATE_PER_REPLICA" {
			if v.Max != strconv.Itoa(v1alpha1.MaxEventsPerSecondPerReplica) {
				t.Fatalf("max tag %q, the CRD's limit is %d", v.Max, v1alpha1.MaxEventsPerSecondPerReplica)
			}
			return
		}
	}
	t.Fatal("no CONTROLLER_MAX_RATE_PER_REPLICA")
}

func TestNamespacesAreTrimmed(t *testing.T) {
	t.Setenv("CONTROLLER_NAMESPACES", " a, b ,,")
	var c Config
	if err := envconf.Load(&c); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Namespaces, "|"); got != "a|b" {
		t.Errorf("%q", got)
	}
}

const kubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:6443"}
users:
- name: u
  user: {token: t}
contexts:
- name: x
  context: {cluster: c, user: u}
current-context: x
`

// TestResolveReadsKubeconfigOnce: KUBECONFIG comes from the struct; the
// environment variable is not consulted again, and a bad file or a missing
// Lease namespace outside a cluster is a configuration error at start.
func TestResolveReadsKubeconfigOnce(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(good, []byte(kubeconfig), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", good)
	t.Setenv("CONTROLLER_LEADER_ELECTION_NAMESPACE", "playpulse")
	var c Config
	if err := envconf.Load(&c); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", filepath.Join(dir, "elsewhere")) // changed after loading: ignored
	r, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	if r.Rest.Host != "https://127.0.0.1:6443" || r.Rest.UserAgent != "playpulse-controller" || r.LeaseNamespace != "playpulse" {
		t.Fatalf("resolved %+v, lease namespace %q", r.Rest, r.LeaseNamespace)
	}

	c.Kubeconfig = filepath.Join(dir, "missing")
	if _, err := c.Resolve(); err == nil || !strings.HasPrefix(err.Error(), "KUBECONFIG: ") {
		t.Errorf("missing kubeconfig: %v", err)
	}
	c.Kubeconfig, c.LeaderElectionNamespace = good, ""
	if _, err := c.Resolve(); err == nil || !strings.HasPrefix(err.Error(), "CONTROLLER_LEADER_ELECTION_NAMESPACE: ") {
		t.Errorf("no Lease namespace outside a cluster: %v", err)
	}
	c.LeaderElect = false
	if r, err := c.Resolve(); err != nil || r.LeaseNamespace != "" {
		t.Errorf("without leader election: %v, %q", err, r.LeaseNamespace)
	}

	c.FanoutURL = "http://playpulse-fanout:8080"
	if _, err := c.Resolve(); err == nil || !strings.HasPrefix(err.Error(), "CONTROLLER_FANOUT_NAMESPACE: ") {
		t.Errorf("no fan-out namespace outside a cluster: %v", err)
	}
	c.FanoutNamespace, c.Namespaces = "playpulse", []string{"streams"}
	if _, err := c.Resolve(); err == nil || !strings.HasPrefix(err.Error(), "CONTROLLER_FANOUT_NAMESPACE: ") {
		t.Errorf("fan-out namespace not watched: %v", err)
	}
	c.Namespaces = []string{"streams", "playpulse"}
	c.FanoutTokenFile = filepath.Join(dir, "no-token")
	if _, err := c.Resolve(); err == nil || !strings.HasPrefix(err.Error(), "CONTROLLER_FANOUT_TOKEN_FILE: ") {
		t.Errorf("missing token file: %v", err)
	}
	if err := os.WriteFile(c.FanoutTokenFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r, err := c.Resolve(); err != nil || r.FanoutNamespace != "playpulse" || r.FanoutToken != "s3cret" {
		t.Errorf("fan-out: %v, namespace %q, token %q", err, r.FanoutNamespace, r.FanoutToken)
	}
}
