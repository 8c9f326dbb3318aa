package faults

import (
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"playpulse.dev/services/controller/api/v1alpha1"
	"playpulse.dev/services/playback/kafkacfg/kafkacfgtest"
	"playpulse.dev/tests/harness"
	"playpulse.dev/tests/kafkatest"
	"playpulse.dev/tests/kubetest"
)

// TestControllerLeaderKilled first checks that a controller in Kafka mode
// whose password is wrong stays up and not ready, saying why, and gets
// ready once its mounted Secret is fixed. Then it runs two controllers in Kafka admin mode on
// the secured cluster (TLS + SCRAM-SHA-512, the files of Strimzi's
// Secrets) with leader election against a real kube-apiserver (envtest).
// The leader is SIGKILLed right after a stream is changed (partitions 3 →
// 6, rate 100 → 200): the standby takes the Lease, the change is applied
// once (the topic has 6 partitions, the producer Deployment one new
// generation with the new rate), the stream ends Ready, and its TopicReady
// never turns False on the way.
func TestControllerLeaderKilled(t *testing.T) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		t.Fatalf("KUBEBUILDER_ASSETS is not set; this test needs a real kube-apiserver: %s (make test does it)", kubetest.BuildHint)
	}
	plane, err := kubetest.Start(assets, filepath.Join(harness.MustRoot(), "services", "controller", "config", "crd", "bases"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = plane.Stop() })
	kubeconfig, err := plane.Kubeconfig("admin", "system:masters")
	if err != nil {
		t.Fatal(err)
	}
	scheme := k8sruntime.NewScheme()
	if err := clientgoscheme.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	if err := v1alpha1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	kc, err := client.New(plane.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const ns, name, lease = "faults", "failover", "playpulse-controller"
	if err := kc.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		t.Fatal(err)
	}
	stopKubelet := playDeployments(t, kc, ns)
	defer stopKubelet()

	controller := func() *service {
		addr := harness.FreeAddr(t)
		env := map[string]string{
			"KUBECONFIG": kubeconfig, "CONTROLLER_ADDR": addr, "CONTROLLER_NAMESPACES": ns,
			"CONTROLLER_LEADER_ELECTION_NAMESPACE": ns, "CONTROLLER_TOPIC_MODE": "kafka",
			"CONTROLLER_PRODUCER_IMAGE": "localhost/playpulse/producer:test", "LOG_LEVEL": "info",
		}
		maps.Copy(env, scramEnv(cluster.Bootstrap(kafkatest.SCRAM)))
		s := &service{Proc: harness.Start(t, "controller", env), addr: addr}
		s.waitReady(t, 60*time.Second) // its Kafka probe answered, with SCRAM
		return s
	}
	holder := func() string {
		var l coordinationv1.Lease
		if err := kc.Get(ctx, client.ObjectKey{Namespace: ns, Name: lease}, &l); err != nil || l.Spec.HolderIdentity == nil {
			return ""
		}
		return *l.Spec.HolderIdentity
	}
	// A controller whose password is wrong stays up, not ready, saying
	// why; once its Secret is fixed it is ready (its own Lease and
	// namespace: it must not lead the others).
	pw := readSecret(t, kafkatest.SCRAMUser, "password")
	secret := kafkacfgtest.MountSecret(t, map[string][]byte{"password": []byte("not-the-password")})
	badAddr := harness.FreeAddr(t)
	badEnv := map[string]string{
		"KUBECONFIG": kubeconfig, "CONTROLLER_ADDR": badAddr, "CONTROLLER_NAMESPACES": "default",
		"CONTROLLER_LEADER_ELECTION_NAMESPACE": "default", "CONTROLLER_LEADER_ELECTION_ID": "wrong-password",
		"CONTROLLER_TOPIC_MODE": "kafka", "CONTROLLER_PRODUCER_IMAGE": "localhost/playpulse/producer:test",
	}
	maps.Copy(badEnv, scramEnv(cluster.Bootstrap(kafkatest.SCRAM)))
	badEnv["KAFKA_SASL_PASSWORD_FILE"] = secret.Path("password")
	bad := &service{Proc: harness.Start(t, "controller", badEnv), addr: badAddr}
	harness.Eventually(t, 60*time.Second, "the controller with a wrong password not ready, saying why", func() error {
		code, failing, err := bad.readiness()
		if err != nil {
			return err
		}
		if code != 503 || !strings.Contains(failing["kafka"], "wrong password") || !strings.Contains(failing["kafka"], secret.Path("password")) {
			return fmt.Errorf("%d %v", code, failing)
		}
		return nil
	})
	secret.Update(map[string][]byte{"password": pw})
	bad.waitReady(t, 30*time.Second)
	bad.Stop(10 * time.Second)

	a := controller()
	var leaderA string
	harness.Eventually(t, 30*time.Second, "the first controller holds the Lease", func() error {
		if leaderA = holder(); leaderA == "" {
			return fmt.Errorf("no holder")
		}
		return nil
	})
	b := controller()

	topic := "playback-" + name
	s := &v1alpha1.PlaybackStream{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: v1alpha1.PlaybackStreamSpec{EventsPerSecond: 100, Replicas: 1, Topic: v1alpha1.TopicSpec{Partitions: 3}}}
	if err := kc.Create(ctx, s); err != nil {
		t.Fatal(err)
	}
	stream := func() *v1alpha1.PlaybackStream {
		var s v1alpha1.PlaybackStream
		if err := kc.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &s); err != nil {
			t.Fatal(err)
		}
		return &s
	}
	ready := func(what string) {
		harness.Eventually(t, 60*time.Second, what, func() error {
			s := stream()
			c := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionReady)
			if s.Status.ObservedGeneration != s.Generation || c == nil || c.Status != metav1.ConditionTrue || c.ObservedGeneration != s.Generation {
				return fmt.Errorf("generation %d, status %+v", s.Generation, s.Status.Conditions)
			}
			return nil
		})
	}
	ready("the stream Ready under the first leader")
	deployment := func() *appsv1.Deployment {
		var d appsv1.Deployment
		if err := kc.Get(ctx, client.ObjectKey{Namespace: ns, Name: name + "-producer"}, &d); err != nil {
			t.Fatal(err)
		}
		return &d
	}
	genBefore := deployment().Generation
	if holder() != leaderA {
		t.Fatalf("the Lease moved to %s before the kill", holder())
	}

	// Watch TopicReady through the failover.
	var (
		wmu     sync.Mutex
		falses  []string
		watchCt = make(chan struct{})
		watched = make(chan struct{})
	)
	go func() {
		defer close(watched)
		for {
			select {
			case <-watchCt:
				return
			case <-time.After(100 * time.Millisecond): // the sampling period
			}
			var s v1alpha1.PlaybackStream
			if kc.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, &s) != nil {
				continue
			}
			if c := meta.FindStatusCondition(s.Status.Conditions, v1alpha1.ConditionTopicReady); c != nil && c.Status == metav1.ConditionFalse {
				wmu.Lock()
				falses = append(falses, c.Reason+": "+c.Message)
				wmu.Unlock()
			}
		}
	}()

	s = stream()
	s.Spec.Topic.Partitions, s.Spec.EventsPerSecond = 6, 200
	if err := kc.Update(ctx, s); err != nil {
		t.Fatal(err)
	}
	if err := a.Signal(9); err != nil { // SIGKILL: no Lease release, no clean stop
		t.Fatal(err)
	}
	killed := time.Now()
	var leaderB string
	harness.Eventually(t, 60*time.Second, "the standby takes the Lease", func() error {
		if leaderB = holder(); leaderB == leaderA || leaderB == "" {
			return fmt.Errorf("holder %q", leaderB)
		}
		return nil
	})
	t.Logf("the standby took the Lease %v after the leader was killed (%s → %s)", time.Since(killed).Round(100*time.Millisecond), leaderA, leaderB)
	ready("the changed stream Ready under the new leader")
	close(watchCt)
	<-watched

	ps, err := cluster.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	if len(ps) != 6 {
		t.Errorf("topic %s has %d partitions, want 6", topic, len(ps))
	}
	d := deployment()
	if d.Generation != genBefore+1 {
		t.Errorf("the producer Deployment went from generation %d to %d; the change must be applied once", genBefore, d.Generation)
	}
	if env := d.Spec.Template.Spec.Containers[0].Env; !hasEnv(env, "PRODUCER_RATE", "200") {
		t.Errorf("the producer Deployment's environment %v lacks PRODUCER_RATE=200", env)
	}
	var events corev1.EventList
	if err := kc.List(ctx, &events, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	grew := 0
	for _, e := range events.Items {
		if e.Reason == "PartitionsIncreased" {
			grew++
		}
	}
	if grew > 1 {
		t.Errorf("%d PartitionsIncreased events: the partitions were grown more than once", grew)
	}
	if len(falses) > 0 {
		t.Errorf("TopicReady turned False during the failover: %v", falses)
	}
	if b.Exited() {
		t.Fatal("the new leader exited")
	}
}

func hasEnv(env []corev1.EnvVar, name, value string) bool {
	for _, e := range env {
		if e.Name == name && e.Value == value {
			return true
		}
	}
	return false
}

// playDeployments plays the Deployment controller and the kubelet of
// envtest, which has neither: every Deployment of ns whose status is not
// of its current generation is marked rolled out and available.
func playDeployments(t *testing.T, kc client.Client, ns string) (stop func()) {
	t.Helper()
	done, stopped := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			select {
			case <-done:
				return
			case <-time.After(200 * time.Millisecond): // the kubelet's pace
			}
			var ds appsv1.DeploymentList
			if kc.List(context.Background(), &ds, client.InNamespace(ns)) != nil {
				continue
			}
			for _, d := range ds.Items {
				if d.Status.ObservedGeneration == d.Generation {
					continue
				}
				n := int32(1)
				if d.Spec.Replicas != nil {
					n = *d.Spec.Replicas
				}
				d.Status = appsv1.DeploymentStatus{
					ObservedGeneration: d.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n,
					Conditions: []appsv1.DeploymentCondition{{Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue,
						Reason: "MinimumReplicasAvailable", LastUpdateTime: metav1.Now(), LastTransitionTime: metav1.Now()}},
				}
				_ = kc.Status().Update(context.Background(), &d) // a conflict is retried on the next pass
			}
		}
	}()
	return func() { close(done); <-stopped }
}
