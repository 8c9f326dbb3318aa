package cluster

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"playpulse.dev/tests/kafkatest"
)

// The secured release: its own namespace and name, next to (after) the
// chart test's.
const (
	securedNS      = "playpulse-secured-test"
	securedRelease = "secured"
)

// TestSecuredStreams is a user with a secured Strimzi cluster, on the test
// bed: the three-node cluster of hack/kafka.sh on the node's address (TLS,
// SCRAM-SHA-512 and mutual-TLS listeners), its Secrets created in the
// namespace exactly as Strimzi lays them out (the cluster CA's
// <cluster>-cluster-ca-cert, a scram-sha-512 KafkaUser's and a tls
// KafkaUser's). The chart is installed with kafka.tls and kafka.sasl, then
// upgraded to mutual TLS; each time a PlaybackStream with spec.kafka.tls
// and spec.kafka.authentication of that kind makes producer pods that
// connect from the pod network and produce (the records are counted in
// Kafka), and the controller (Kafka admin mode) and the fan-out, pods too,
// connect with the same kind of credentials.
func TestSecuredStreams(t *testing.T) {
	needBed(t)
	sc := bed.secured
	removeRelease(t, securedNS, securedRelease)
	t.Cleanup(func() { removeRelease(t, securedNS, securedRelease) })
	kubectl(t, "create", "namespace", securedNS)
	for _, s := range []string{kafkatest.ClusterCASecret, kafkatest.SCRAMUser, kafkatest.TLSUser} {
		createSecretFromDir(t, securedNS, s, sc.Secret(s))
	}
	client, err := sarama.NewClient(sc.Brokers(kafkatest.Plaintext), sc.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	scramValues, scramStream := scramOverTLS(sc)
	steps := []struct {
		name      string
		bootstrap string   // the listener's addresses
		values    []string // the chart's Kafka values
		stream    string   // spec.kafka of the stream
	}{
		{name: "scram-sha-512", bootstrap: sc.Bootstrap(kafkatest.SCRAM), values: scramValues, stream: scramStream},
		{
			name: "tls", bootstrap: sc.Bootstrap(kafkatest.MTLS),
			values: []string{
				"--set", "kafka.bootstrapServers=" + helmList(sc.Bootstrap(kafkatest.MTLS)),
				"--set", "kafka.tls.enabled=true", "--set", "kafka.tls.caSecret.name=" + kafkatest.ClusterCASecret,
				"--set", "kafka.tls.clientSecret.name=" + kafkatest.TLSUser,
			},
			stream: fmt.Sprintf(`    bootstrapServers: %q
    tls:
      trustedCertificates:
        - secretName: %s
          certificate: ca.crt
    authentication:
      type: tls
      certificateAndKey:
        secretName: %s
        certificate: user.crt
        key: user.key`, sc.Bootstrap(kafkatest.MTLS), kafkatest.ClusterCASecret, kafkatest.TLSUser),
		},
	}
	for i, step := range steps {
		ok := t.Run(step.name, func(t *testing.T) {
			t0 := time.Now()
			verb := "install"
			if i > 0 {
				verb = "upgrade"
			}
			values := append(securedValues(), step.values...)
			helm(t, append([]string{verb, securedRelease, filepath.Join(bed.root, "charts", "playpulse"), "--namespace", securedNS, "--wait", "--timeout", "120s"}, values...)...)
			// Ready: the controller's Kafka probe and the fan-out's
			// listing of the topics went through with these credentials.
			sel := "app.kubernetes.io/instance=" + securedRelease
			ps := readyPods(t, securedNS, sel+",app.kubernetes.io/component in (controller,fanout)", 2, 90*time.Second)
			for _, p := range ps {
				if env := containerEnv(p); env["KAFKA_BROKERS"] != step.bootstrap {
					t.Fatalf("%s runs with KAFKA_BROKERS=%q, want the %s listener's %s", p.Name, env["KAFKA_BROKERS"], step.name, step.bootstrap)
				}
			}
			t.Logf("helm %s with %s credentials: controller and fan-out Ready %v later", verb, step.name, time.Since(t0).Round(100*time.Millisecond))

			stream := "secured-" + step.name
			topic := "playback-" + stream
			applyIn(t, securedNS, fmt.Sprintf(`apiVersion: playpulse.dev/v1alpha1
kind: PlaybackStream
metadata:
  name: %s
spec:
  eventsPerSecond: 100
  replicas: 1
  topic:
    partitions: 3
  kafka:
%s
`, stream, step.stream))
			waitTopic(t, client, topic, 3, 60*time.Second)
			prods := readyPods(t, securedNS, "playpulse.dev/stream="+stream+",app.kubernetes.io/component=producer", 1, 90*time.Second)
			env := containerEnv(prods[0])
			for _, k := range []string{"KAFKA_TLS_CA_FILE"} {
				if env[k] == "" {
					t.Fatalf("the producer pod has no %s: %v", k, env)
				}
			}
			eventually(t, 60*time.Second, "records from the producer pod in Kafka", func() error {
				n, err := endOffsets(client, topic)
				if err != nil {
					return err
				}
				if n < 500 {
					return fmt.Errorf("%d records", n)
				}
				return nil
			})
			// The fan-out (a pod, the same credentials) serves them.
			fan := pods(t, securedNS, sel+",app.kubernetes.io/component=fanout")[0]
			eventually(t, 60*time.Second, "the fan-out pod consuming the stream", func() error {
				resp, err := http.Get("http://" + fan.Status.PodIP + ":8080/metrics")
				if err != nil {
					return err
				}
				for _, l := range strings.Split(readAll(t, resp), "\n") {
					if v, ok := strings.CutPrefix(l, "playpulse_fanout_events_total "); ok && v != "0" {
						return nil
					}
				}
				return fmt.Errorf("playpulse_fanout_events_total is 0")
			})
			n, _ := endOffsets(client, topic)
			t.Logf("%s: %d records in Kafka from the producer pod, %v after the install", step.name, n, time.Since(t0).Round(100*time.Millisecond))
			for _, p := range append(ps, prods...) {
				for _, l := range serviceLogs(t, securedNS, p.Name, p.Spec.Containers[0].Name) {
					if l.Level == "ERROR" {
						t.Errorf("%s logged an error: %s", p.Name, l.Msg)
					}
				}
			}
			// The next step's controller has other credentials: the
			// stream goes first (deletionPolicy Retain: no Kafka call).
			kubectl(t, "-n", securedNS, "delete", "playbackstream", stream, "--timeout=60s")
		})
		if !ok {
			t.Fatalf("step %s failed; the next builds on it", step.name)
		}
	}
}

// scramOverTLS is how a release and a stream reach sc's SCRAM-SHA-512
// listener over TLS, with the Secrets of the cluster CA and the SCRAM user
// in the namespace: the chart's kafka.* values and the stream's spec.kafka
// (indented 4).
func scramOverTLS(sc *kafkatest.Cluster) (values []string, stream string) {
	bootstrap := sc.Bootstrap(kafkatest.SCRAM)
	values = []string{
		"--set", "kafka.bootstrapServers=" + helmList(bootstrap),
		"--set", "kafka.tls.enabled=true", "--set", "kafka.tls.caSecret.name=" + kafkatest.ClusterCASecret,
		"--set", "kafka.sasl.mechanism=SCRAM-SHA-512", "--set", "kafka.sasl.username=" + kafkatest.SCRAMUser,
		"--set", "kafka.sasl.passwordSecret.name=" + kafkatest.SCRAMUser,
	}
	stream = fmt.Sprintf(`    bootstrapServers: %q
    tls:
      trustedCertificates:
        - secretName: %s
          certificate: ca.crt
    authentication:
      type: scram-sha-512
      username: %s
      passwordSecret:
        secretName: %s
        password: password`, bootstrap, kafkatest.ClusterCASecret, kafkatest.SCRAMUser, kafkatest.SCRAMUser)
	return values, stream
}

// securedValues are the chart's defaults with the bed's images, one
// fan-out replica (enough to see it connect) and a controller that watches
// only the secured namespace.
func securedValues() []string {
	return append(imageValues(),
		"--set", "fanout.replicas=1",
		// Only its own namespace: the chart test's release may be about.
		"--set", "controller.config.CONTROLLER_NAMESPACES="+securedNS,
	)
}

// helmList escapes the commas of a list for helm's --set, which would
// otherwise split the value there.
func helmList(s string) string { return strings.ReplaceAll(s, ",", `\,`) }

// createSecretFromDir creates a Secret whose keys are the files of dir,
// as Strimzi's Secrets hold them.
func createSecretFromDir(t *testing.T, ns, name, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	data := map[string][]byte{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		data[e.Name()] = b
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"strimzi.io/cluster": kafkatest.ClusterName}}, Data: data}
	if _, err := bed.kube.CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// containerEnv is the literal environment of a pod's first container.
func containerEnv(p corev1.Pod) map[string]string {
	env := map[string]string{}
	for _, e := range p.Spec.Containers[0].Env {
		env[e.Name] = e.Value
	}
	return env
}

// applyIn applies a manifest in namespace ns.
func applyIn(t *testing.T, ns, manifest string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := toolCmd(ctx, bed.env["KUBECTL"], "-n", ns, "apply", "-f", "-")
	cmd.Stdin = strings.NewReader(manifest)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
}

// removeRelease deletes a release's streams (while its controller runs),
// the release and the namespace.
func removeRelease(t *testing.T, namespace, rel string) {
	t.Helper()
	_, _ = runTool(bed.env["KUBECTL"], "-n", namespace, "delete", "playbackstreams", "--all", "--timeout", "60s", "--ignore-not-found")
	_, _ = runTool(bed.env["HELM"], "uninstall", rel, "-n", namespace, "--wait", "--timeout", "60s", "--ignore-not-found")
	if out, err := runTool(bed.env["KUBECTL"], "-n", namespace, "get", "playbackstreams", "-o", "name"); err == nil {
		for _, o := range strings.Fields(out) {
			_, _ = runTool(bed.env["KUBECTL"], "-n", namespace, "patch", o, "--type=merge", "-p", `{"metadata":{"finalizers":null}}`)
		}
	}
	if _, err := runTool(bed.env["KUBECTL"], "delete", "namespace", namespace, "--wait", "--timeout", "90s", "--ignore-not-found"); err != nil {
		t.Errorf("removing namespace %s: %v", namespace, err)
	}
}
