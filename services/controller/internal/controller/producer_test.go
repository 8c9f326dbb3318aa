package controller

import (
	"encoding/json"
	"math"
	"strconv"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"playpulse.dev/services/controller/api/v1alpha1"
)

var opts = Options{
	KafkaCluster: "playpulse", DefaultBrokers: []string{"kafka-0:9092", "kafka-1:9092"}, ProducerImage: "playpulse/producer:1.0",
	MaxRatePerReplica: v1alpha1.MaxEventsPerSecondPerReplica, TopicReadyTimeout: time.Minute,
}

func testStream(mutate func(*v1alpha1.PlaybackStream)) *v1alpha1.PlaybackStream {
	f := func(v float64) *float64 { return &v }
	s := &v1alpha1.PlaybackStream{
		ObjectMeta: metav1.ObjectMeta{Name: "prime", Namespace: "tv", UID: "u-1", Generation: 1},
		Spec: v1alpha1.PlaybackStreamSpec{
			EventsPerSecond: 2000, Replicas: 3,
			Topic: v1alpha1.TopicSpec{Partitions: 3, DeletionPolicy: v1alpha1.DeletionPolicyRetain},
			Profile: v1alpha1.ProfileSpec{
				CatalogSize: 2000, ZipfAlpha: 0.9, StallIntensity: f(0.005), StartFailureRate: f(0.02),
				DeviceMix: &v1alpha1.DeviceMix{TV: 72, Mobile: 12, Desktop: 11, Tablet: 5},
			},
		},
	}
	if mutate != nil {
		mutate(s)
	}
	return s
}

func deployment(t *testing.T, s *v1alpha1.PlaybackStream, mode v1alpha1.TopicMode) *appsv1.Deployment {
	t.Helper()
	var d appsv1.Deployment
	if err := convert(buildDeployment(s, resolve(s, mode, opts)), &d); err != nil {
		t.Fatal(err)
	}
	return &d
}

func env(d *appsv1.Deployment) map[string]string {
	m := map[string]string{}
	for _, e := range d.Spec.Template.Spec.Containers[0].Env {
		m[e.Name] = e.Value
	}
	return m
}

func TestProducerEnv(t *testing.T) {
	d := deployment(t, testStream(nil), v1alpha1.TopicModeStrimzi)
	want := map[string]string{
		"KAFKA_BROKERS":               "playpulse-kafka-bootstrap:9092",
		"PRODUCER_TOPIC":              "playback-prime",
		"PRODUCER_RATE":               "666.6666666666666",
		"PRODUCER_STREAM":             "prime",
		"PRODUCER_ADDR":               ":8081",
		"PRODUCER_CATALOG_SIZE":       "2000",
		"PRODUCER_ZIPF_ALPHA":         "0.9",
		"PRODUCER_DEVICE_MIX":         "tv:72,mobile:12,desktop:11,tablet:5",
		"PRODUCER_REBUFFER_RATIO":     "0.005",
		"PRODUCER_START_FAILURE_RATE": "0.02",
		"PRODUCER_SEED":               "5847149694768934564", // from the UID: see TestStreamSeed
	}
	got := env(d)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("env %v has extra variables", got)
	}

	// Kafka admin mode: the controller's brokers; a stream's own win.
	if got := env(deployment(t, testStream(nil), v1alpha1.TopicModeKafka))["KAFKA_BROKERS"]; got != "kafka-0:9092,kafka-1:9092" {
		t.Errorf("Kafka mode KAFKA_BROKERS %q", got)
	}
	own := testStream(func(s *v1alpha1.PlaybackStream) { s.Spec.Kafka.BootstrapServers = "b:9093" })
	if got := env(deployment(t, own, v1alpha1.TopicModeStrimzi))["KAFKA_BROKERS"]; got != "b:9093" {
		t.Errorf("own bootstrap KAFKA_BROKERS %q", got)
	}
}

// TestStreamSeed: every stream gets a seed ("a seed per stream"): its own
// when spec.profile.seed is set, else one derived from its UID, which is the
// same on every reconcile (so it never rolls the producers by itself) and
// differs between streams.
func TestStreamSeed(t *testing.T) {
	seed := func(v int64) func(*v1alpha1.PlaybackStream) {
		return func(s *v1alpha1.PlaybackStream) { s.Spec.Profile.Seed = &v }
	}
	uid := func(u types.UID) func(*v1alpha1.PlaybackStream) {
		return func(s *v1alpha1.PlaybackStream) { s.UID = u }
	}
	tests := []struct {
		name   string
		mutate func(*v1alpha1.PlaybackStream)
		want   string
	}{
		{"given", seed(42), "42"},
		{"given, largest", seed(math.MaxInt64), "9223372036854775807"},
		// A change of the derivation would roll every stream's producers
		// on upgrade: these values are part of the contract.
		{"unset: from the UID", nil, "5847149694768934564"},
		{"0: from the UID", seed(0), "5847149694768934564"},
		{"another stream", uid("u-2"), "1148757337810897386"},
		{"a real UID", uid("9f1c2d3e-0000-4000-8000-000000000001"), "1272161144580120466"},
		{"same UID, other name and namespace", func(s *v1alpha1.PlaybackStream) { s.Name, s.Namespace = "late", "radio" }, "5847149694768934564"},
		{"same UID, other rate, replicas and profile", func(s *v1alpha1.PlaybackStream) {
			s.Spec.EventsPerSecond, s.Spec.Replicas, s.Spec.Profile.ZipfAlpha = 9000, 5, 1.3
		}, "5847149694768934564"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := testStream(tt.mutate)
			got := env(deployment(t, s, v1alpha1.TopicModeStrimzi))["PRODUCER_SEED"]
			if got != tt.want {
				t.Errorf("PRODUCER_SEED %q, want %q", got, tt.want)
			}
			again := env(deployment(t, s.DeepCopy(), v1alpha1.TopicModeKafka))["PRODUCER_SEED"]
			if again != got {
				t.Errorf("PRODUCER_SEED %q on a second reconcile (Kafka mode), first %q", again, got)
			}
			if n, err := strconv.ParseInt(got, 10, 64); err != nil || n <= 0 {
				t.Errorf("PRODUCER_SEED %q is not a seed spec.profile.seed accepts (> 0): %v", got, err)
			}
		})
	}
}

func TestDeploymentShape(t *testing.T) {
	s := testStream(nil)
	d := deployment(t, s, v1alpha1.TopicModeStrimzi)
	if d.Name != "prime-producer" || d.Namespace != "tv" || *d.Spec.Replicas != 3 {
		t.Errorf("name %s/%s replicas %d", d.Namespace, d.Name, *d.Spec.Replicas)
	}
	if refs := d.OwnerReferences; len(refs) != 1 || refs[0].UID != "u-1" || !*refs[0].Controller {
		t.Errorf("owner references %+v", refs)
	}
	sel := d.Spec.Selector.MatchLabels
	for k, v := range sel {
		if d.Spec.Template.Labels[k] != v {
			t.Errorf("selector %s=%s does not match the template labels %v", k, v, d.Spec.Template.Labels)
		}
	}
	if d.Spec.Strategy.RollingUpdate.MaxSurge.String() != "100%" || d.Spec.Strategy.RollingUpdate.MaxUnavailable.String() != "100%" {
		t.Errorf("strategy %+v", d.Spec.Strategy)
	}
	c := d.Spec.Template.Spec.Containers[0]
	if c.Image != "playpulse/producer:1.0" || c.Resources.Requests.Cpu().String() != "100m" || c.Resources.Limits.Memory().String() != "512Mi" {
		t.Errorf("image %s resources %+v", c.Image, c.Resources)
	}
	if !*c.SecurityContext.ReadOnlyRootFilesystem || !*c.SecurityContext.RunAsNonRoot || *c.SecurityContext.AllowPrivilegeEscalation {
		t.Errorf("security context %+v", c.SecurityContext)
	}
	if *d.Spec.Template.Spec.SecurityContext.RunAsUser != 65532 || *d.Spec.Template.Spec.AutomountServiceAccountToken {
		t.Errorf("pod security %+v", d.Spec.Template.Spec.SecurityContext)
	}
	custom := testStream(func(s *v1alpha1.PlaybackStream) {
		s.Spec.Producer.Image = "mine:2"
		s.Spec.Producer.Resources = &corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")}}
	})
	c = deployment(t, custom, v1alpha1.TopicModeStrimzi).Spec.Template.Spec.Containers[0]
	if c.Image != "mine:2" || c.Resources.Limits.Cpu().String() != "2" || len(c.Resources.Requests) != 0 {
		t.Errorf("override: image %s resources %+v", c.Image, c.Resources)
	}
}

// TestConfigHash: the same stream gives byte-identical output; every change
// that reaches the pods changes the hash; a pure replica change of a paused
// stream (same pods) does not.
func TestConfigHash(t *testing.T) {
	hash := func(s *v1alpha1.PlaybackStream) string {
		return deployment(t, s, v1alpha1.TopicModeStrimzi).Spec.Template.Annotations[v1alpha1.AnnotationConfigHash]
	}
	base := hash(testStream(nil))
	a, _ := json.Marshal(buildDeployment(testStream(nil), resolve(testStream(nil), v1alpha1.TopicModeStrimzi, opts)))
	b, _ := json.Marshal(buildDeployment(testStream(nil), resolve(testStream(nil), v1alpha1.TopicModeStrimzi, opts)))
	if string(a) != string(b) || base == "" {
		t.Fatal("buildDeployment is not deterministic")
	}
	for name, m := range map[string]func(*v1alpha1.PlaybackStream){
		"rate":     func(s *v1alpha1.PlaybackStream) { s.Spec.EventsPerSecond = 2001 },
		"replicas": func(s *v1alpha1.PlaybackStream) { s.Spec.Replicas = 4 },
		"zipf":     func(s *v1alpha1.PlaybackStream) { s.Spec.Profile.ZipfAlpha = 1.1 },
		"devices":  func(s *v1alpha1.PlaybackStream) { s.Spec.Profile.DeviceMix.Mobile = 50 },
		"image":    func(s *v1alpha1.PlaybackStream) { s.Spec.Producer.Image = "x:1" },
		"brokers":  func(s *v1alpha1.PlaybackStream) { s.Spec.Kafka.BootstrapServers = "b:1" },
	} {
		if hash(testStream(m)) == base {
			t.Errorf("changing %s does not change the config hash", name)
		}
	}
	p1 := testStream(func(s *v1alpha1.PlaybackStream) { s.Spec.EventsPerSecond = 0 })
	p2 := testStream(func(s *v1alpha1.PlaybackStream) { s.Spec.EventsPerSecond, s.Spec.Replicas = 0, 5 })
	if hash(p1) != hash(p2) {
		t.Errorf("scaling a paused stream changes its pods' hash")
	}
	if hash(testStream(func(s *v1alpha1.PlaybackStream) { s.Spec.Topic.Partitions = 12 })) != base {
		t.Errorf("a partition change rolls the producers")
	}
}

func TestResolve(t *testing.T) {
	e := resolve(testStream(func(s *v1alpha1.PlaybackStream) {
		s.Spec.Topic = v1alpha1.TopicSpec{Retention: &metav1.Duration{Duration: 2 * time.Hour}}
		s.Spec.Replicas = 0
	}), v1alpha1.TopicModeStrimzi, opts)
	if e.TopicName != "playback-prime" || e.KafkaTopic != "playback-prime" || e.Partitions != 3 || e.DeletionPolicy != v1alpha1.DeletionPolicyRetain ||
		*e.RetentionMs != 7_200_000 || e.Share != 0 || e.Cluster != "playpulse" || e.Image != "playpulse/producer:1.0" {
		t.Errorf("%+v", e)
	}
	for topic, kt := range map[string]string{
		"playback-prime": "playback-prime",
		"Playback_Prime": "prime-topic",
		"a..b":           "prime-topic",
		"-a":             "prime-topic",
		"a.b-c":          "a.b-c",
	} {
		if got := KafkaTopicName("prime", topic); got != kt {
			t.Errorf("KafkaTopicName(%q) = %q, want %q", topic, got, kt)
		}
	}
}

// TestKafkaSecurity: spec.kafka.tls and spec.kafka.authentication become
// kafkacfg variables pointing into read-only secret volumes that project
// only the named keys; without them the pod template is unchanged.
func TestKafkaSecurity(t *testing.T) {
	ca := &v1alpha1.KafkaTLS{TrustedCertificates: []v1alpha1.CertSecretSource{{SecretName: "playpulse-cluster-ca-cert", Certificate: "ca.crt"}}}
	for _, tc := range []struct {
		name    string
		kafka   v1alpha1.KafkaSpec
		brokers string
		env     map[string]string
		volumes map[string][]string // secret volume name → secret name, then its keys
	}{
		{name: "plain", brokers: "playpulse-kafka-bootstrap:9092"},
		{name: "tls", kafka: v1alpha1.KafkaSpec{TLS: ca}, brokers: "playpulse-kafka-bootstrap:9093",
			env:     map[string]string{"KAFKA_TLS": "true", "KAFKA_TLS_CA_FILE": "/etc/playpulse/kafka/ca/ca.crt"},
			volumes: map[string][]string{"kafka-ca": {"playpulse-cluster-ca-cert", "ca.crt"}}},
		{name: "mutual tls", brokers: "playpulse-kafka-bootstrap:9093",
			kafka: v1alpha1.KafkaSpec{TLS: ca, Authentication: &v1alpha1.KafkaAuthentication{Type: "tls",
				CertificateAndKey: &v1alpha1.CertAndKeySecretSource{SecretName: "viewer", Certificate: "user.crt", Key: "user.key"}}},
			env: map[string]string{"KAFKA_TLS": "true", "KAFKA_TLS_CA_FILE": "/etc/playpulse/kafka/ca/ca.crt",
				"KAFKA_TLS_CERT_FILE": "/etc/playpulse/kafka/user/user.crt", "KAFKA_TLS_KEY_FILE": "/etc/playpulse/kafka/user/user.key"},
			volumes: map[string][]string{"kafka-ca": {"playpulse-cluster-ca-cert", "ca.crt"}, "kafka-user": {"viewer", "user.crt", "user.key"}}},
		{name: "scram over plain", brokers: "playpulse-kafka-bootstrap:9092",
			kafka: v1alpha1.KafkaSpec{Authentication: &v1alpha1.KafkaAuthentication{Type: "scram-sha-512", Username: "viewer",
				PasswordSecret: &v1alpha1.PasswordSecretSource{SecretName: "viewer", Password: "password"}}},
			env: map[string]string{"KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "KAFKA_SASL_USERNAME": "viewer",
				"KAFKA_SASL_PASSWORD_FILE": "/etc/playpulse/kafka/password/password"},
			volumes: map[string][]string{"kafka-password": {"viewer", "password"}}},
		{name: "plain sasl, given address", brokers: "kafka.example:9095",
			kafka: v1alpha1.KafkaSpec{BootstrapServers: "kafka.example:9095", TLS: ca, Authentication: &v1alpha1.KafkaAuthentication{Type: "plain", Username: "u",
				PasswordSecret: &v1alpha1.PasswordSecretSource{SecretName: "s", Password: "p"}}},
			env: map[string]string{"KAFKA_TLS": "true", "KAFKA_TLS_CA_FILE": "/etc/playpulse/kafka/ca/ca.crt",
				"KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD_FILE": "/etc/playpulse/kafka/password/p"},
			volumes: map[string][]string{"kafka-ca": {"playpulse-cluster-ca-cert", "ca.crt"}, "kafka-password": {"s", "p"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := deployment(t, testStream(func(s *v1alpha1.PlaybackStream) { s.Spec.Kafka = tc.kafka }), v1alpha1.TopicModeStrimzi)
			got := env(d)
			if got["KAFKA_BROKERS"] != tc.brokers {
				t.Errorf("KAFKA_BROKERS = %q, want %q", got["KAFKA_BROKERS"], tc.brokers)
			}
			for k, v := range got {
				if len(k) > 6 && k[:6] == "KAFKA_" && k != "KAFKA_BROKERS" && tc.env[k] != v {
					t.Errorf("%s = %q, want %q", k, v, tc.env[k])
				}
			}
			for k, v := range tc.env {
				if got[k] != v {
					t.Errorf("%s = %q, want %q", k, got[k], v)
				}
			}
			pod := d.Spec.Template.Spec
			mounts := map[string]corev1.VolumeMount{}
			for _, m := range pod.Containers[0].VolumeMounts {
				mounts[m.Name] = m
			}
			if len(pod.Volumes) != len(tc.volumes) || len(mounts) != len(tc.volumes) {
				t.Fatalf("volumes %+v, mounts %+v; want %v", pod.Volumes, mounts, tc.volumes)
			}
			for _, v := range pod.Volumes {
				want := tc.volumes[v.Name]
				if v.Secret == nil || v.Secret.SecretName != want[0] || len(v.Secret.Items) != len(want)-1 || *v.Secret.DefaultMode != 0o440 {
					t.Fatalf("volume %s: %+v, want secret %v mode 0440", v.Name, v.Secret, want)
				}
				for i, it := range v.Secret.Items {
					if it.Key != want[i+1] || it.Path != want[i+1] {
						t.Errorf("volume %s item %d: %+v, want key %s", v.Name, i, it, want[i+1])
					}
				}
				if m := mounts[v.Name]; !m.ReadOnly {
					t.Errorf("mount %s is not read-only", v.Name)
				}
			}
			fs := pod.SecurityContext.FSGroup
			if (len(tc.volumes) > 0) != (fs != nil) || (fs != nil && *fs != producerUID) {
				t.Errorf("fsGroup %v with %d secret volumes", fs, len(tc.volumes))
			}
		})
	}
}
