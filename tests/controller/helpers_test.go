package controller

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"playpulse.dev/services/controller/api/v1alpha1"
	"playpulse.dev/tests/harness"
)

// controllerProc is a running bin/controller.
type controllerProc struct {
	*harness.Proc
	addr string
}

// startController runs bin/controller (built with the race detector when
// the tests run with it) as the RBAC-limited controller user, watching only
// ns, with leader election in ns. It returns once /readyz answers 200.
func startController(t *testing.T, p *plane, ns string, extra map[string]string) *controllerProc {
	t.Helper()
	addr := harness.FreeAddr(t)
	env := map[string]string{
		"KUBECONFIG":                           p.controllerKubeconfig,
		"CONTROLLER_ADDR":                      addr,
		"CONTROLLER_NAMESPACES":                ns,
		"CONTROLLER_LEADER_ELECTION_NAMESPACE": ns,
		"CONTROLLER_PRODUCER_IMAGE":            "registry.example/playpulse/producer:test",
	}
	for k, v := range extra {
		env[k] = v
	}
	proc := harness.Start(t, "controller", env)
	harness.WaitReady(t, "http://"+addr+"/readyz", 60*time.Second)
	return &controllerProc{Proc: proc, addr: addr}
}

// metric returns the sum of the samples of a metric on /metrics whose
// labels include every one of labels (e.g. `result="success"`).
func (c *controllerProc) metric(name string, labels ...string) (float64, error) {
	resp, err := http.Get("http://" + c.addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	sum, found := 0.0, false
line:
	for _, l := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(l, name+"{") && !strings.HasPrefix(l, name+" ") {
			continue
		}
		for _, want := range labels {
			if !strings.Contains(l, want) {
				continue line
			}
		}
		f := strings.Fields(l)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, err
		}
		sum, found = sum+v, true
	}
	if !found {
		return 0, fmt.Errorf("no %s%v on /metrics", name, labels)
	}
	return sum, nil
}

// waitFor polls cond until it returns nil, failing the test with the last
// error after d.
func waitFor(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	harness.Eventually(t, d, what, cond)
}

func getStream(t *testing.T, p *plane, ns, name string) *v1alpha1.PlaybackStream {
	t.Helper()
	var s v1alpha1.PlaybackStream
	if err := p.c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &s); err != nil {
		t.Fatal(err)
	}
	return &s
}

// conditionIs checks one condition of the stream's current status, and that
// the status describes the current generation.
func conditionIs(p *plane, ns, name, typ string, status metav1.ConditionStatus, reason string) error {
	var s v1alpha1.PlaybackStream
	if err := p.c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &s); err != nil {
		return err
	}
	if s.Status.ObservedGeneration != s.Generation {
		return fmt.Errorf("status.observedGeneration %d, generation %d", s.Status.ObservedGeneration, s.Generation)
	}
	c := meta.FindStatusCondition(s.Status.Conditions, typ)
	if c == nil {
		return fmt.Errorf("no %s condition in %+v", typ, s.Status.Conditions)
	}
	if c.Status != status || (reason != "" && c.Reason != reason) {
		return fmt.Errorf("%s is %s/%s (%s), want %s/%s", typ, c.Status, c.Reason, c.Message, status, reason)
	}
	if c.ObservedGeneration != s.Generation {
		return fmt.Errorf("%s.observedGeneration %d, generation %d", typ, c.ObservedGeneration, s.Generation)
	}
	return nil
}

func getDeployment(p *plane, ns, name string) (*appsv1.Deployment, error) {
	var d appsv1.Deployment
	err := p.c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, &d)
	return &d, err
}

// envOf returns the producer container's environment as a map.
func envOf(t *testing.T, d *appsv1.Deployment) map[string]string {
	t.Helper()
	for _, c := range d.Spec.Template.Spec.Containers {
		if c.Name == "producer" {
			env := map[string]string{}
			for _, e := range c.Env {
				if e.ValueFrom != nil {
					t.Fatalf("env %s uses valueFrom; the test kubelet only knows literal values", e.Name)
				}
				env[e.Name] = e.Value
			}
			return env
		}
	}
	t.Fatalf("deployment %s has no producer container", d.Name)
	return nil
}

// markDeploymentReady plays the Deployment controller and the kubelet for
// a Deployment whose pods are not run: every asked replica is up to date
// and ready.
func markDeploymentReady(t *testing.T, p *plane, ns, name string) {
	t.Helper()
	waitFor(t, 10*time.Second, "deployment status update", func() error {
		d, err := getDeployment(p, ns, name)
		if err != nil {
			return err
		}
		n := int32(1)
		if d.Spec.Replicas != nil {
			n = *d.Spec.Replicas
		}
		d.Status = appsv1.DeploymentStatus{
			ObservedGeneration: d.Generation,
			Replicas:           n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n,
			Conditions: []appsv1.DeploymentCondition{{
				Type: appsv1.DeploymentAvailable, Status: corev1.ConditionTrue, Reason: "MinimumReplicasAvailable",
				LastUpdateTime: metav1.Now(), LastTransitionTime: metav1.Now(),
			}},
		}
		return p.c.Status().Update(context.Background(), d)
	})
}

// eventsOf lists the Kubernetes events about a stream, as "Reason: note".
func eventsOf(t *testing.T, p *plane, ns, name string) []string {
	t.Helper()
	var list corev1.EventList
	if err := p.c.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range list.Items {
		if e.InvolvedObject.Kind == "PlaybackStream" && e.InvolvedObject.Name == name {
			out = append(out, e.Reason+": "+e.Message)
		}
	}
	return out
}
