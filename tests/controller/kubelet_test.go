package controller

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"sort"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"playpulse.dev/services/controller/api/v1alpha1"
	"playpulse.dev/tests/harness"
)

// kubelet plays the Deployment controller and the kubelet for the producer
// Deployments of one namespace, since envtest runs neither: for each
// Deployment it keeps spec.replicas bin/producer processes running with the
// environment of the pod template's producer container (PRODUCER_ADDR is
// replaced by a free local port: pods have their own network namespace,
// processes do not). When the template changes (its config hash) it stops
// every old process and starts new ones at once, as the Deployments'
// maxSurge/maxUnavailable of 100% ask; it restarts processes that exit, and
// writes the Deployment status (replicas, updated, ready from /readyz).
type kubelet struct {
	t   *testing.T
	p   *plane
	ns  string
	bin string

	mu   sync.Mutex
	pods map[string][]*pod // by Deployment
	term sync.WaitGroup

	cancel   context.CancelFunc
	done     chan struct{}
	stopOnce sync.Once
	extra    map[string]string // added to every producer's environment
}

type pod struct {
	hash  string
	proc  *harness.Proc
	addr  string
	ready bool
}

func startKubelet(t *testing.T, p *plane, ns string) *kubelet {
	t.Helper()
	return startKubeletEnv(t, p, ns, nil)
}

// startKubeletEnv is startKubelet with variables added to every producer
// it starts, as a test's own choice of audience (the Deployment's win).
func startKubeletEnv(t *testing.T, p *plane, ns string, extra map[string]string) *kubelet {
	t.Helper()
	// Producers are built without the race detector: this is a rate test.
	k := &kubelet{t: t, p: p, ns: ns, bin: harness.FastBin(t), pods: map[string][]*pod{}, done: make(chan struct{}), extra: extra}
	ctx, cancel := context.WithCancel(context.Background())
	k.cancel = cancel
	go k.run(ctx)
	t.Cleanup(k.stop)
	return k
}

// stop stops the loop, then every process. Call it (defer) before the test
// returns: the processes' own cleanups run before t.Cleanup(k.stop), and
// the loop must not restart them meanwhile.
func (k *kubelet) stop() { k.stopOnce.Do(k.stopNow) }

func (k *kubelet) stopNow() {
	k.cancel()
	<-k.done
	k.mu.Lock()
	for name, pods := range k.pods {
		for _, p := range pods {
			k.terminate(p)
		}
		delete(k.pods, name)
	}
	k.mu.Unlock()
	k.term.Wait()
}

func (k *kubelet) run(ctx context.Context) {
	defer close(k.done)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if err := k.sync(ctx); err != nil && ctx.Err() == nil {
			k.t.Logf("kubelet: %v", err)
		}
	}
}

// terminate stops a process in the background (SIGTERM, as a pod
// deletion does; the producer flushes within its grace period).
func (k *kubelet) terminate(p *pod) {
	k.term.Add(1)
	go func() {
		defer k.term.Done()
		p.proc.Stop(15 * time.Second)
	}()
}

func (k *kubelet) sync(ctx context.Context) error {
	var list appsv1.DeploymentList
	if err := k.p.c.List(ctx, &list, client.InNamespace(k.ns)); err != nil {
		return err
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	seen := map[string]bool{}
	for i := range list.Items {
		d := &list.Items[i]
		seen[d.Name] = true
		if err := k.syncDeployment(ctx, d); err != nil {
			return err
		}
	}
	for name, pods := range k.pods {
		if !seen[name] {
			for _, p := range pods {
				k.terminate(p)
			}
			delete(k.pods, name)
		}
	}
	return nil
}

func (k *kubelet) syncDeployment(ctx context.Context, d *appsv1.Deployment) error {
	hash := d.Spec.Template.Annotations[v1alpha1.AnnotationConfigHash]
	want := 1
	if d.Spec.Replicas != nil {
		want = int(*d.Spec.Replicas)
	}
	var keep []*pod
	for _, p := range k.pods[d.Name] {
		switch {
		case p.hash != hash:
			k.terminate(p) // the template changed: replace every old pod at once
		case p.proc.Exited():
			k.t.Logf("kubelet: producer of %s exited; restarting it. Output:\n%s", d.Name, p.proc.Output())
		default:
			keep = append(keep, p)
		}
	}
	for len(keep) > want {
		k.terminate(keep[len(keep)-1])
		keep = keep[:len(keep)-1]
	}
	for len(keep) < want {
		env := maps.Clone(k.extra)
		if env == nil {
			env = map[string]string{}
		}
		for _, c := range d.Spec.Template.Spec.Containers {
			if c.Name != "producer" {
				continue
			}
			for _, e := range c.Env {
				if e.ValueFrom != nil {
					return fmt.Errorf("deployment %s: env %s uses valueFrom", d.Name, e.Name)
				}
				env[e.Name] = e.Value
			}
		}
		addr := harness.FreeAddr(k.t)
		env["PRODUCER_ADDR"] = addr
		keep = append(keep, &pod{hash: hash, addr: addr, proc: harness.StartFrom(k.t, k.bin, "producer", env)})
	}
	ready := 0
	for _, p := range keep {
		p.ready = probe("http://" + p.addr + "/readyz")
		if p.ready {
			ready++
		}
	}
	k.pods[d.Name] = keep

	st := appsv1.DeploymentStatus{
		ObservedGeneration: d.Generation,
		Replicas:           int32(len(keep)),
		UpdatedReplicas:    int32(len(keep)),
		ReadyReplicas:      int32(ready),
		AvailableReplicas:  int32(ready),
	}
	if d.Status.ObservedGeneration == st.ObservedGeneration && d.Status.Replicas == st.Replicas &&
		d.Status.UpdatedReplicas == st.UpdatedReplicas && d.Status.ReadyReplicas == st.ReadyReplicas {
		return nil
	}
	st.Conditions = []appsv1.DeploymentCondition{{
		Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable",
		LastUpdateTime: metav1.Now(), LastTransitionTime: metav1.Now(),
	}}
	d.Status = st
	return k.p.c.Status().Update(ctx, d)
}

func probe(url string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// running returns how many processes of a Deployment run its current
// template, and their PRODUCER_RATE-independent identities (addresses).
func (k *kubelet) running(deployment string) []string {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []string
	for _, p := range k.pods[deployment] {
		if !p.proc.Exited() {
			out = append(out, p.addr)
		}
	}
	sort.Strings(out)
	return out
}
