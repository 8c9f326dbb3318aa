package controller

import (
	"context"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"playpulse.dev/services/controller/api/v1alpha1"
	"playpulse.dev/services/playback/envconf"
	producercfg "playpulse.dev/services/producer/pkg/config"
)

const topicOperatorFinalizer = "strimzi.io/topic-operator"

// playTopicOperator does what Strimzi's Topic Operator would: it takes the
// KafkaTopic (its finalizer) and reports the current generation with a Ready
// condition.
func playTopicOperator(t *testing.T, p *plane, ns, name, status, reason, message string) {
	t.Helper()
	waitFor(t, 10*time.Second, "topic operator status on KafkaTopic "+name, func() error {
		kt, err := p.kafkaTopic(t, ns, name)
		if err != nil {
			return err
		}
		if !slices.Contains(kt.GetFinalizers(), topicOperatorFinalizer) {
			kt.SetFinalizers(append(kt.GetFinalizers(), topicOperatorFinalizer))
			if err := p.c.Update(context.Background(), kt); err != nil {
				return err
			}
		}
		topicName, _, _ := unstructured.NestedString(kt.Object, "spec", "topicName")
		cond := map[string]any{"type": "Ready", "status": status, "lastTransitionTime": time.Now().UTC().Format(time.RFC3339)}
		if reason != "" {
			cond["reason"] = reason
			cond["message"] = message
		}
		kt.Object["status"] = map[string]any{
			"observedGeneration": kt.GetGeneration(),
			"topicName":          topicName,
			"conditions":         []any{cond},
		}
		return p.c.Status().Update(context.Background(), kt)
	})
}

// TestStrimziStream: a stream becomes a KafkaTopic and, once the Topic
// Operator reports it ready, a producer Deployment; rate, replicas (through
// /scale) and profile changes reach the Deployment and nothing else; the
// Topic Operator's errors show in the status; deletion keeps the topic.
func TestStrimziStream(t *testing.T) {
	p := controlPlane(t, true)
	ns := p.namespace(t)
	ctx := context.Background()
	ctl := startController(t, p, ns, nil) // CONTROLLER_TOPIC_MODE=auto: the KafkaTopic CRD is installed
	defer func() {
		// The happy path needs no retries: nothing conflicts, nothing fails.
		if out := ctl.Output(); strings.Contains(out, "Reconciler error") {
			t.Errorf("the controller logged reconcile errors:\n%s", out)
		}
	}()

	p.kubectl(t, `apiVersion: playpulse.dev/v1alpha1
kind: PlaybackStream
metadata:
  name: prime
  namespace: `+ns+`
spec:
  eventsPerSecond: 200
  replicas: 2
  topic:
    retention: 24h
  profile:
    catalogSize: 500
    seed: 42
`, "apply", "-f", "-")
	s := getStream(t, p, ns, "prime")

	// The KafkaTopic comes first; the producers wait for it.
	var kt *unstructured.Unstructured
	waitFor(t, 30*time.Second, "KafkaTopic playback-prime", func() (err error) {
		kt, err = p.kafkaTopic(t, ns, "playback-prime")
		return err
	})
	if got := kt.GetLabels()["strimzi.io/cluster"]; got != "playpulse" {
		t.Errorf("strimzi.io/cluster = %q, want the controller's default playpulse", got)
	}
	wantSpec := map[string]any{"topicName": "playback-prime", "partitions": int64(3), "config": map[string]any{"retention.ms": int64(86400000)}}
	if !reflect.DeepEqual(kt.Object["spec"], wantSpec) {
		t.Errorf("KafkaTopic spec = %v, want %v", kt.Object["spec"], wantSpec)
	}
	checkOwner(t, kt.GetOwnerReferences(), s)
	waitFor(t, 30*time.Second, "waiting for the Topic Operator", func() error {
		if err := conditionIs(p, ns, "prime", v1alpha1.ConditionTopicReady, metav1.ConditionUnknown, v1alpha1.ReasonWaitingForTopicOperator); err != nil {
			return err
		}
		return conditionIs(p, ns, "prime", v1alpha1.ConditionProducerReady, metav1.ConditionFalse, v1alpha1.ReasonWaitingForTopic)
	})
	if _, err := getDeployment(p, ns, "prime-producer"); !apierrors.IsNotFound(err) {
		t.Fatalf("deployment exists before the topic is ready: %v", err)
	}
	if s := getStream(t, p, ns, "prime"); !slices.Contains(s.Finalizers, v1alpha1.Finalizer) {
		t.Errorf("finalizers %v lack %s", s.Finalizers, v1alpha1.Finalizer)
	}

	playTopicOperator(t, p, ns, "playback-prime", "True", "", "")
	var dep *appsv1.Deployment
	waitFor(t, 30*time.Second, "producer Deployment", func() (err error) {
		dep, err = getDeployment(p, ns, "prime-producer")
		return err
	})
	checkOwner(t, dep.OwnerReferences, s)
	checkProducerPod(t, dep, 2, map[string]string{
		"KAFKA_BROKERS":         "playpulse-kafka-bootstrap:9092",
		"PRODUCER_TOPIC":        "playback-prime",
		"PRODUCER_RATE":         "100",
		"PRODUCER_STREAM":       "prime",
		"PRODUCER_CATALOG_SIZE": "500",
		"PRODUCER_SEED":         "42",
	})
	if img := dep.Spec.Template.Spec.Containers[0].Image; img != "registry.example/playpulse/producer:test" {
		t.Errorf("image %q, want CONTROLLER_PRODUCER_IMAGE", img)
	}
	waitFor(t, 30*time.Second, "producers rolling out", func() error {
		return conditionIs(p, ns, "prime", v1alpha1.ConditionProducerReady, metav1.ConditionFalse, v1alpha1.ReasonRollingOut)
	})
	markDeploymentReady(t, p, ns, "prime-producer")
	waitFor(t, 30*time.Second, "stream ready", func() error {
		return conditionIs(p, ns, "prime", v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonProducing)
	})
	s = getStream(t, p, ns, "prime")
	if st := s.Status; st.TopicName != "playback-prime" || st.TopicMode != v1alpha1.TopicModeStrimzi || st.KafkaTopic != "playback-prime" ||
		st.Replicas != 2 || st.ReadyReplicas != 2 || st.EventsPerSecondPerReplica != 100 ||
		st.Selector != "app.kubernetes.io/component=producer,playpulse.dev/stream=prime" {
		t.Errorf("status = %+v", st)
	}
	ktVersion := mustKafkaTopic(t, p, ns, "playback-prime").GetResourceVersion()

	// Rate change: only PRODUCER_RATE and the config hash change.
	prev := dep.DeepCopy()
	p.kubectl(t, "", "-n", ns, "patch", "playbackstream/prime", "--type=merge", "-p", `{"spec":{"eventsPerSecond":600}}`)
	dep = waitForEnv(t, p, ns, "prime-producer", "PRODUCER_RATE", "300")
	checkOnlyChanged(t, prev, dep, "PRODUCER_RATE")
	markDeploymentReady(t, p, ns, "prime-producer")
	waitFor(t, 30*time.Second, "ready at the new generation", func() error {
		return conditionIs(p, ns, "prime", v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonProducing)
	})
	if got := getStream(t, p, ns, "prime"); got.Generation != s.Generation+1 || got.Status.ObservedGeneration != got.Generation {
		t.Errorf("generation %d, observedGeneration %d; want %d", got.Generation, got.Status.ObservedGeneration, s.Generation+1)
	}

	// kubectl scale goes through the scale subresource.
	prev = dep.DeepCopy()
	p.kubectl(t, "", "-n", ns, "scale", "playbackstream/prime", "--replicas=3")
	dep = waitForEnv(t, p, ns, "prime-producer", "PRODUCER_RATE", "200")
	if *dep.Spec.Replicas != 3 {
		t.Errorf("deployment replicas %d, want 3", *dep.Spec.Replicas)
	}
	checkOnlyChanged(t, prev, dep, "PRODUCER_RATE", "replicas")
	if out := p.kubectl(t, "", "-n", ns, "get", "--raw", "/apis/playpulse.dev/v1alpha1/namespaces/"+ns+"/playbackstreams/prime/scale"); !strings.Contains(out, `"replicas":3`) {
		t.Errorf("scale subresource: %s", out)
	}

	// Profile change.
	prev = dep.DeepCopy()
	p.kubectl(t, "", "-n", ns, "patch", "playbackstream/prime", "--type=merge", "-p", `{"spec":{"profile":{"zipfAlpha":1.2}}}`)
	dep = waitForEnv(t, p, ns, "prime-producer", "PRODUCER_ZIPF_ALPHA", "1.2")
	checkOnlyChanged(t, prev, dep, "PRODUCER_ZIPF_ALPHA")
	markDeploymentReady(t, p, ns, "prime-producer")

	if got := mustKafkaTopic(t, p, ns, "playback-prime").GetResourceVersion(); got != ktVersion {
		t.Errorf("rate, replica and profile changes touched the KafkaTopic (resourceVersion %s -> %s)", ktVersion, got)
	}

	// More partitions: the KafkaTopic follows; the Topic Operator's error is
	// mirrored; the producers keep running.
	p.kubectl(t, "", "-n", ns, "patch", "playbackstream/prime", "--type=merge", "-p", `{"spec":{"topic":{"partitions":6}}}`)
	waitFor(t, 30*time.Second, "KafkaTopic with 6 partitions", func() error {
		n, _, _ := unstructured.NestedInt64(mustKafkaTopic(t, p, ns, "playback-prime").Object, "spec", "partitions")
		if n != 6 {
			return fmt.Errorf("partitions %d", n)
		}
		return nil
	})
	playTopicOperator(t, p, ns, "playback-prime", "False", "PartitionDecreaseException", "Number of partitions cannot be decreased")
	waitFor(t, 30*time.Second, "Topic Operator error mirrored", func() error {
		if err := conditionIs(p, ns, "prime", v1alpha1.ConditionTopicReady, metav1.ConditionFalse, "PartitionDecreaseException"); err != nil {
			return err
		}
		return conditionIs(p, ns, "prime", v1alpha1.ConditionReady, metav1.ConditionFalse, "PartitionDecreaseException")
	})
	if c := findCondition(getStream(t, p, ns, "prime"), v1alpha1.ConditionReady); !strings.Contains(c.Message, "Number of partitions cannot be decreased") {
		t.Errorf("Ready message %q does not carry the Topic Operator's message", c.Message)
	}
	if _, err := getDeployment(p, ns, "prime-producer"); err != nil {
		t.Errorf("producers gone after a topic error: %v", err)
	}
	playTopicOperator(t, p, ns, "playback-prime", "True", "", "")
	waitFor(t, 30*time.Second, "ready again", func() error {
		return conditionIs(p, ns, "prime", v1alpha1.ConditionReady, metav1.ConditionTrue, v1alpha1.ReasonProducing)
	})

	// kubectl describe tells the story.
	desc := p.kubectl(t, "", "-n", ns, "describe", "playbackstream", "prime")
	for _, want := range []string{"KafkaTopicCreated", "ProducersCreated", "ProducersUpdated", "PartitionDecreaseException", "Producing"} {
		if !strings.Contains(desc, want) {
			t.Errorf("kubectl describe lacks %q:\n%s", want, desc)
		}
	}
	get := p.kubectl(t, "", "-n", ns, "get", "pbs", "prime")
	for _, want := range []string{"RATE", "REPLICAS", "READY", "TOPIC", "STATUS", "AGE", "600", "playback-prime", "Producing"} {
		if !strings.Contains(get, want) {
			t.Errorf("kubectl get lacks %q:\n%s", want, get)
		}
	}

	// Idempotence: a new controller process (after a clean handover of the
	// lease) reconciles the ready stream and writes nothing.
	versions := func() string {
		d, err := getDeployment(p, ns, "prime-producer")
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join([]string{getStream(t, p, ns, "prime").ResourceVersion, d.ResourceVersion,
			mustKafkaTopic(t, p, ns, "playback-prime").GetResourceVersion()}, "/")
	}
	before := versions()
	if err := ctl.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code, err := ctl.Wait(10 * time.Second); err != nil || code != 0 {
		t.Errorf("controller on SIGTERM: exit %d, %v; want 0 within 10 s", code, err)
	}
	ctl2 := startController(t, p, ns, nil)
	waitFor(t, 60*time.Second, "the new controller reconciled the stream", func() error {
		n, err := ctl2.metric("controller_runtime_reconcile_total", `controller="playbackstream"`, `result="success"`)
		if err != nil {
			return err
		}
		if n < 1 {
			return fmt.Errorf("%v successful reconciles", n)
		}
		return nil
	})
	if after := versions(); after != before {
		t.Errorf("a reconcile of an up-to-date stream wrote something: resourceVersions (stream/Deployment/KafkaTopic) %s -> %s", before, after)
	}
	if out := ctl2.Output(); strings.Contains(out, "Reconciler error") {
		t.Errorf("the second controller logged reconcile errors:\n%s", out)
	}

	// Deletion with Retain: the producers go, the KafkaTopic is marked
	// unmanaged before it is deleted, so Strimzi keeps the topic.
	p.kubectl(t, "", "-n", ns, "delete", "playbackstream", "prime", "--wait=false")
	waitFor(t, 30*time.Second, "stream gone", func() error {
		var s v1alpha1.PlaybackStream
		if err := p.c.Get(ctx, client.ObjectKey{Namespace: ns, Name: "prime"}, &s); !apierrors.IsNotFound(err) {
			return fmt.Errorf("still there (err %v, finalizers %v)", err, s.Finalizers)
		}
		return nil
	})
	if _, err := getDeployment(p, ns, "prime-producer"); !apierrors.IsNotFound(err) {
		t.Errorf("producer Deployment not deleted: %v", err)
	}
	kt = mustKafkaTopic(t, p, ns, "playback-prime") // held by the Topic Operator's finalizer
	if kt.GetDeletionTimestamp() == nil {
		t.Errorf("KafkaTopic not being deleted")
	}
	if got := kt.GetAnnotations()["strimzi.io/managed"]; got != "false" {
		t.Errorf("KafkaTopic deleted without strimzi.io/managed=false (got %q): Strimzi would delete the topic", got)
	}
	releaseTopicOperatorFinalizer(t, p, kt)
}

// TestStrimziDeletePolicy: with deletionPolicy Delete the KafkaTopic goes
// without the unmanaged mark, so the Topic Operator deletes the topic.
func TestStrimziDeletePolicy(t *testing.T) {
	p := controlPlane(t, true)
	ns := p.namespace(t)
	startController(t, p, ns, map[string]string{"CONTROLLER_TOPIC_MODE": "strimzi", "CONTROLLER_KAFKA_CLUSTER": "events"})
	p.kubectl(t, `apiVersion: playpulse.dev/v1alpha1
kind: PlaybackStream
metadata:
  name: spike
  namespace: `+ns+`
spec:
  eventsPerSecond: 1000
  topic:
    name: Spike_Events
    deletionPolicy: Delete
`, "apply", "-f", "-")
	// Not a valid resource name: the KafkaTopic is named after the stream
	// and carries the topic name in spec.topicName.
	var kt *unstructured.Unstructured
	waitFor(t, 30*time.Second, "KafkaTopic spike-topic", func() (err error) {
		kt, err = p.kafkaTopic(t, ns, "spike-topic")
		return err
	})
	if name, _, _ := unstructured.NestedString(kt.Object, "spec", "topicName"); name != "Spike_Events" {
		t.Errorf("spec.topicName %q", name)
	}
	if got := kt.GetLabels()["strimzi.io/cluster"]; got != "events" {
		t.Errorf("strimzi.io/cluster = %q, want CONTROLLER_KAFKA_CLUSTER", got)
	}
	playTopicOperator(t, p, ns, "spike-topic", "True", "", "")
	waitFor(t, 30*time.Second, "producer Deployment", func() error {
		d, err := getDeployment(p, ns, "spike-producer")
		if err != nil {
			return err
		}
		if env := envOf(t, d); env["KAFKA_BROKERS"] != "events-kafka-bootstrap:9092" || env["PRODUCER_TOPIC"] != "Spike_Events" {
			return fmt.Errorf("env %v", env)
		}
		return nil
	})
	p.kubectl(t, "", "-n", ns, "delete", "playbackstream", "spike", "--wait=false")
	waitFor(t, 30*time.Second, "KafkaTopic being deleted", func() error {
		kt, err := p.kafkaTopic(t, ns, "spike-topic")
		if err != nil {
			return err
		}
		if kt.GetDeletionTimestamp() == nil {
			return fmt.Errorf("no deletionTimestamp")
		}
		if v, ok := kt.GetAnnotations()["strimzi.io/managed"]; ok {
			return fmt.Errorf("strimzi.io/managed=%q on a Delete-policy topic", v)
		}
		return nil
	})
	releaseTopicOperatorFinalizer(t, p, mustKafkaTopic(t, p, ns, "spike-topic"))
	waitFor(t, 30*time.Second, "stream and producers gone", func() error {
		if _, err := getDeployment(p, ns, "spike-producer"); !apierrors.IsNotFound(err) {
			return fmt.Errorf("deployment: %v", err)
		}
		var s v1alpha1.PlaybackStream
		if err := p.c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: "spike"}, &s); !apierrors.IsNotFound(err) {
			return fmt.Errorf("stream: %v", err)
		}
		return nil
	})
}

// TestStrimziUnhappyPaths: a KafkaTopic that belongs to something else is
// not taken over, and a Topic Operator that never answers ends in a clear
// False state instead of a stream stuck waiting.
func TestStrimziUnhappyPaths(t *testing.T) {
	p := controlPlane(t, true)
	ns := p.namespace(t)
	startController(t, p, ns, map[string]string{"CONTROLLER_TOPIC_READY_TIMEOUT": "3s"})

	taken := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kafka.strimzi.io/v1", "kind": "KafkaTopic",
		"metadata": map[string]any{"name": "playback-taken", "namespace": ns, "labels": map[string]any{"strimzi.io/cluster": "playpulse"}},
		"spec":     map[string]any{"partitions": int64(1)},
	}}
	if err := p.c.Create(context.Background(), taken); err != nil {
		t.Fatal(err)
	}
	if err := p.c.Create(context.Background(), stream(ns, "taken", nil)); err != nil {
		t.Fatal(err)
	}
	if err := p.c.Create(context.Background(), stream(ns, "orphan", nil)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 30*time.Second, "conflict reported", func() error {
		return conditionIs(p, ns, "taken", v1alpha1.ConditionReady, metav1.ConditionFalse, v1alpha1.ReasonTopicConflict)
	})
	if kt := mustKafkaTopic(t, p, ns, "playback-taken"); len(kt.GetOwnerReferences()) != 0 || kt.Object["spec"].(map[string]any)["partitions"] != int64(1) {
		t.Errorf("foreign KafkaTopic was modified: %v", kt.Object)
	}
	waitFor(t, 30*time.Second, "Topic Operator timeout", func() error {
		return conditionIs(p, ns, "orphan", v1alpha1.ConditionTopicReady, metav1.ConditionFalse, v1alpha1.ReasonTopicOperatorNotResponding)
	})
	if c := findCondition(getStream(t, p, ns, "orphan"), v1alpha1.ConditionReady); c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, `check that the Kafka "playpulse" exists`) {
		t.Errorf("Ready = %+v", c)
	}
}

func findCondition(s *v1alpha1.PlaybackStream, typ string) metav1.Condition {
	for _, c := range s.Status.Conditions {
		if c.Type == typ {
			return c
		}
	}
	return metav1.Condition{}
}

func mustKafkaTopic(t *testing.T, p *plane, ns, name string) *unstructured.Unstructured {
	t.Helper()
	kt, err := p.kafkaTopic(t, ns, name)
	if err != nil {
		t.Fatal(err)
	}
	return kt
}

func releaseTopicOperatorFinalizer(t *testing.T, p *plane, kt *unstructured.Unstructured) {
	t.Helper()
	waitFor(t, 10*time.Second, "KafkaTopic released", func() error {
		cur, err := p.kafkaTopic(t, kt.GetNamespace(), kt.GetName())
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			return err
		}
		cur.SetFinalizers(slices.DeleteFunc(cur.GetFinalizers(), func(f string) bool { return f == topicOperatorFinalizer }))
		if err := p.c.Update(context.Background(), cur); err != nil {
			return err
		}
		return fmt.Errorf("released; checking it is gone")
	})
}

func checkOwner(t *testing.T, refs []metav1.OwnerReference, s *v1alpha1.PlaybackStream) {
	t.Helper()
	if len(refs) != 1 || refs[0].UID != s.UID || refs[0].Kind != "PlaybackStream" || refs[0].Controller == nil || !*refs[0].Controller ||
		refs[0].BlockOwnerDeletion == nil || !*refs[0].BlockOwnerDeletion {
		t.Errorf("owner references %+v, want one controller reference to PlaybackStream %s (%s)", refs, s.Name, s.UID)
	}
}

// checkProducerPod checks the pod template: replicas, the environment (each
// variable one the producer reads, the whole set a valid producer
// configuration), probes, resources and the hardening.
func checkProducerPod(t *testing.T, d *appsv1.Deployment, replicas int32, want map[string]string) {
	t.Helper()
	if d.Spec.Replicas == nil || *d.Spec.Replicas != replicas {
		t.Errorf("replicas %v, want %d", d.Spec.Replicas, replicas)
	}
	env := envOf(t, d)
	for k, v := range want {
		if env[k] != v {
			t.Errorf("env %s = %q, want %q", k, env[k], v)
		}
	}
	vars, err := envconf.Vars(&producercfg.Config{})
	if err != nil {
		t.Fatal(err)
	}
	known := map[string]bool{}
	for _, v := range vars {
		known[v.Name] = true
	}
	for k, v := range env {
		if !known[k] {
			t.Errorf("env %s is not a variable the producer reads", k)
		}
		t.Setenv(k, v)
	}
	var pc producercfg.Config
	if err := envconf.Load(&pc); err != nil {
		t.Errorf("the producer would refuse this environment: %v", err)
	}
	if d.Spec.Template.Annotations[v1alpha1.AnnotationConfigHash] == "" {
		t.Errorf("no %s annotation on the pod template", v1alpha1.AnnotationConfigHash)
	}
	ps := d.Spec.Template.Spec
	c := ps.Containers[0]
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" ||
		c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("probes: readiness %+v liveness %+v", c.ReadinessProbe, c.LivenessProbe)
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Limits.Memory().IsZero() {
		t.Errorf("resources %+v", c.Resources)
	}
	sc := c.SecurityContext
	if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem ||
		sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation || sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		t.Errorf("container security context %+v", sc)
	}
	if ps.SecurityContext == nil || ps.SecurityContext.RunAsNonRoot == nil || !*ps.SecurityContext.RunAsNonRoot {
		t.Errorf("pod security context %+v", ps.SecurityContext)
	}
	if ps.AutomountServiceAccountToken == nil || *ps.AutomountServiceAccountToken {
		t.Errorf("producer pods mount a service account token")
	}
}

// waitForEnv waits until the Deployment's producer container has name=value.
func waitForEnv(t *testing.T, p *plane, ns, dep, name, value string) *appsv1.Deployment {
	t.Helper()
	var d *appsv1.Deployment
	waitFor(t, 30*time.Second, fmt.Sprintf("%s=%s on %s", name, value, dep), func() (err error) {
		d, err = getDeployment(p, ns, dep)
		if err != nil {
			return err
		}
		if got := envOf(t, d)[name]; got != value {
			return fmt.Errorf("%s=%q", name, got)
		}
		return nil
	})
	return d
}

// checkOnlyChanged compares two versions of the Deployment: besides the
// listed env variables (and "replicas"), only the config hash may differ,
// and it must.
func checkOnlyChanged(t *testing.T, before, after *appsv1.Deployment, changed ...string) {
	t.Helper()
	if before.Spec.Template.Annotations[v1alpha1.AnnotationConfigHash] == after.Spec.Template.Annotations[v1alpha1.AnnotationConfigHash] &&
		!reflect.DeepEqual(before.Spec.Template, after.Spec.Template) {
		t.Errorf("pod template changed but the config hash did not")
	}
	norm := func(d *appsv1.Deployment) appsv1.DeploymentSpec {
		s := *d.Spec.DeepCopy()
		delete(s.Template.Annotations, v1alpha1.AnnotationConfigHash)
		if slices.Contains(changed, "replicas") {
			s.Replicas = nil
		}
		c := &s.Template.Spec.Containers[0]
		c.Env = slices.DeleteFunc(c.Env, func(e corev1.EnvVar) bool { return slices.Contains(changed, e.Name) })
		return s
	}
	if a, b := norm(before), norm(after); !reflect.DeepEqual(a, b) {
		t.Errorf("the Deployment changed beyond %v:\nbefore %+v\nafter  %+v", changed, a, b)
	}
	if before.Spec.Template.Annotations[v1alpha1.AnnotationConfigHash] == after.Spec.Template.Annotations[v1alpha1.AnnotationConfigHash] {
		t.Errorf("config hash did not change, so the pods would not roll")
	}
}
