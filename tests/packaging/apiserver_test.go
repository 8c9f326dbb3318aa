package packaging

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/restmapper"

	"playpulse.dev/tests/kubetest"
)

// controlPlane is one kube-apiserver + etcd for the whole package, started on
// first use and stopped by TestMain.
type controlPlane struct {
	*kubetest.Plane
	kubeconfig string // cluster admin, for helm and kubectl
	clientset  *kubernetes.Clientset
	dynamic    dynamic.Interface
	mapper     *restmapper.DeferredDiscoveryRESTMapper
}

var (
	cpOnce sync.Once
	cp     *controlPlane
	cpErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if cp != nil {
		if err := cp.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping envtest:", err)
		}
	}
	if d := helmHomeOnce(); d != "" {
		os.RemoveAll(d)
	}
	os.Exit(code)
}

// apiServer returns the shared control plane, starting it on first use with
// the test copies of the Strimzi and ServiceMonitor CRDs installed. The
// chart's own CRD is not pre-installed: helm install puts it there (crds/),
// and TestAPIServer checks that.
func apiServer(t testing.TB) *controlPlane {
	t.Helper()
	cpOnce.Do(func() { cp, cpErr = startControlPlane() })
	if cpErr != nil {
		t.Fatal(cpErr)
	}
	return cp
}

// startControlPlane builds the envtest binaries itself when
// KUBEBUILDER_ASSETS is not set (hack/envtest.sh caches them), so that
// `go test ./tests/packaging` works on its own.
func startControlPlane() (*controlPlane, error) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		var err error
		if assets, err = hackTool("hack/envtest.sh"); err != nil {
			return nil, err
		}
	}
	kp, err := kubetest.Start(assets, repoPath(testCRDDir))
	if err != nil {
		return nil, err
	}
	c := &controlPlane{Plane: kp}
	fail := func(err error) (*controlPlane, error) { _ = kp.Stop(); return nil, err }
	if c.kubeconfig, err = kp.Kubeconfig("packaging-admin", "system:masters"); err != nil {
		return fail(err)
	}
	if c.clientset, err = kubernetes.NewForConfig(kp.Config); err != nil {
		return fail(err)
	}
	if c.dynamic, err = dynamic.NewForConfig(kp.Config); err != nil {
		return fail(err)
	}
	dc, err := discovery.NewDiscoveryClientForConfig(kp.Config)
	if err != nil {
		return fail(err)
	}
	c.mapper = restmapper.NewDeferredDiscoveryRESTMapper(memory.NewMemCacheClient(dc))
	return c, nil
}

func (c *controlPlane) createNamespace(t testing.TB, name string) {
	t.Helper()
	_, err := c.clientset.CoreV1().Namespaces().Create(context.Background(),
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// apply creates (or, for an existing object, replaces) each object with
// strict field validation: a misspelt or unknown field fails instead of
// being dropped. Objects whose kind the server does not know yet (a CRD
// created a moment ago) are retried until discovery catches up.
func (c *controlPlane) apply(ctx context.Context, obj *unstructured.Unstructured) error {
	gvk := obj.GroupVersionKind()
	var mapping *meta.RESTMapping
	err := wait.PollUntilContextTimeout(ctx, 100*time.Millisecond, 30*time.Second, true, func(context.Context) (bool, error) {
		m, err := c.mapper.RESTMapping(gvk.GroupKind(), gvk.Version)
		if err != nil {
			c.mapper.Reset()
			return false, nil
		}
		mapping = m
		return true, nil
	})
	if err != nil {
		return fmt.Errorf("%s: the API server does not serve %s", id(obj), gvk)
	}
	var ri dynamic.ResourceInterface = c.dynamic.Resource(mapping.Resource)
	if mapping.Scope.Name() == meta.RESTScopeNameNamespace {
		ri = c.dynamic.Resource(mapping.Resource).Namespace(obj.GetNamespace())
	}
	_, err = ri.Create(ctx, obj, metav1.CreateOptions{FieldValidation: "Strict", FieldManager: "packaging-test"})
	if apierrors.IsAlreadyExists(err) {
		cur, gerr := ri.Get(ctx, obj.GetName(), metav1.GetOptions{})
		if gerr != nil {
			return gerr
		}
		obj = obj.DeepCopy()
		obj.SetResourceVersion(cur.GetResourceVersion())
		_, err = ri.Update(ctx, obj, metav1.UpdateOptions{FieldValidation: "Strict", FieldManager: "packaging-test"})
	}
	if err != nil {
		return fmt.Errorf("%s: %w", id(obj), err)
	}
	return nil
}

// applyAll applies CRDs first and waits for them to be served, then the rest.
func (c *controlPlane) applyAll(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	sort.SliceStable(objs, func(i, j int) bool {
		return objs[i].GetKind() == "CustomResourceDefinition" && objs[j].GetKind() != "CustomResourceDefinition"
	})
	for _, o := range objs {
		if err := c.apply(ctx, o); err != nil {
			t.Errorf("the API server refused %v", err)
		}
	}
}

// helm runs helm against the control plane.
func (c *controlPlane) helm(t testing.TB, args ...string) string {
	t.Helper()
	return mustHelm(t, append(args, "--kubeconfig", c.kubeconfig)...)
}

// kubectl runs kubectl as cluster admin and returns its stdout.
func (c *controlPlane) kubectl(t testing.TB, args ...string) string {
	t.Helper()
	out, stderr, err := c.RunKubectl(c.kubeconfig, "", args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return out
}

// TestAPIServer applies everything the chart and k8s/ can create to a real
// kube-apiserver (envtest) and runs helm install, upgrade and uninstall
// against it. Order matters: helm install puts the chart's CRD in place
// before anything else applies PlaybackStreams.
func TestAPIServer(t *testing.T) {
	c := apiServer(t)
	ctx := context.Background()

	t.Run("helm install with defaults", func(t *testing.T) {
		start := time.Now()
		out := c.helm(t, "install", releaseName, chartDir, "--namespace", "helm-release", "--create-namespace")
		t.Logf("helm install: %s", time.Since(start).Round(time.Millisecond))
		if !strings.Contains(out, "STATUS: deployed") {
			t.Errorf("helm install output:\n%s", out)
		}
		// NOTES.txt tells how to reach the dashboard and change the load.
		for _, want := range []string{"port-forward svc/playpulse-fanout 8080:80", "kubectl -n helm-release edit playbackstream"} {
			if !strings.Contains(out, want) {
				t.Errorf("NOTES do not say %q:\n%s", want, out)
			}
		}
		crd, err := c.clientset.Discovery().ServerResourcesForGroupVersion("playpulse.dev/v1alpha1")
		if err != nil || len(crd.APIResources) == 0 {
			t.Fatalf("helm install did not install the PlaybackStream CRD from crds/: %v", err)
		}
		for _, d := range []string{"playpulse-controller", "playpulse-fanout"} {
			if _, err := c.clientset.AppsV1().Deployments("helm-release").Get(ctx, d, metav1.GetOptions{}); err != nil {
				t.Errorf("after helm install: %v", err)
			}
		}
	})

	t.Run("helm upgrade with every optional part on", func(t *testing.T) {
		c.createSecrets(t, "helm-release")
		start := time.Now()
		out := c.helm(t, "upgrade", releaseName, chartDir, "--namespace", "helm-release", "--values", allOnValues)
		t.Logf("helm upgrade: %s", time.Since(start).Round(time.Millisecond))
		if !strings.Contains(out, "REVISION: 2") {
			t.Errorf("helm upgrade output:\n%s", out)
		}
		for _, kind := range []string{"ingress", "hpa", "servicemonitor", "kafka", "kafkanodepool", "playbackstream", "kafkatopic"} {
			c.kubectl(t, "--namespace", "helm-release", "get", kind, "-o", "name")
		}
		if !strings.Contains(out, "KafkaTopics playpulse-collector-intake") || !strings.Contains(out, "/v1/cmcd/<stream>") {
			t.Errorf("the notes do not say where players post or which KafkaTopics hold the collector's topics:\n%s", out)
		}
		if out := c.kubectl(t, "--namespace", "helm-release", "get", "playbackstream", "-o", "name"); !strings.Contains(out, "playbackstream.playpulse.dev/default") {
			t.Errorf("no default PlaybackStream after the upgrade: %q", out)
		}
	})

	t.Run("helm upgrade back to defaults and uninstall", func(t *testing.T) {
		c.helm(t, "upgrade", releaseName, chartDir, "--namespace", "helm-release", "--reset-values")
		if _, err := c.clientset.NetworkingV1().Ingresses("helm-release").Get(ctx, "playpulse-fanout", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("the Ingress survived the upgrade to defaults: %v", err)
		}
		c.helm(t, "uninstall", releaseName, "--namespace", "helm-release", "--wait", "--timeout", "60s")
		if _, err := c.clientset.AppsV1().Deployments("helm-release").Get(ctx, "playpulse-fanout", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("the fan-out Deployment survived helm uninstall: %v", err)
		}
		// The collector's and the aggregation tier's KafkaTopics outlive
		// the release (and with them the topics, the events of real
		// players and the history).
		kept := strings.Fields(c.kubectl(t, "--namespace", "helm-release", "get", "kafkatopics", "-o", "name"))
		if !slices.Equal(kept, []string{"kafkatopic.kafka.strimzi.io/playpulse-aggregator-aggregates", "kafkatopic.kafka.strimzi.io/playpulse-aggregator-rollups", "kafkatopic.kafka.strimzi.io/playpulse-aggregator-tail",
			"kafkatopic.kafka.strimzi.io/playpulse-aggregator-tail-filters", "kafkatopic.kafka.strimzi.io/playpulse-collector-events", "kafkatopic.kafka.strimzi.io/playpulse-collector-intake"}) {
			t.Errorf("KafkaTopics after helm uninstall: %v, want the collector's two and the aggregation tier's four", kept)
		}
		c.kubectl(t, "--namespace", "helm-release", "delete", "kafkatopics", "--all")
	})

	t.Run("helm install with the collector, topics left to the user", func(t *testing.T) {
		out := c.helm(t, "install", "players", chartDir, "--namespace", "collector-release", "--create-namespace",
			"--set", "collector.enabled=true", "--set", "collector.topics.create=none", "--set", "kafka.bootstrapServers=kafka.example:9092")
		if n := c.kubectl(t, "--namespace", "collector-release", "get", "kafkatopics", "-o", "name"); n != "" {
			t.Errorf("collector.topics.create=none rendered %s", n)
		}
		// The notes give the commands that create the topics, with the
		// values the collector is given.
		for _, want := range []string{
			"kafka-topics.sh --bootstrap-server kafka.example:9092 --create --if-not-exists --topic playpulse-cmcd --partitions 6 --config retention.ms=86400000\n",
			"kafka-topics.sh --bootstrap-server kafka.example:9092 --create --if-not-exists --topic playback-players --partitions 3\n",
			"port-forward svc/players-playpulse-collector 8083:80",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("the notes do not say %q:\n%s", want, out)
			}
		}
		c.helm(t, "uninstall", "players", "--namespace", "collector-release", "--wait", "--timeout", "60s")
	})

	t.Run("helm install with the aggregation tier, topics left to the user", func(t *testing.T) {
		out := c.helm(t, "install", "tier", chartDir, "--namespace", "tier-release", "--create-namespace",
			"--set", "aggregation.enabled=true", "--set", "aggregation.topic.create=none", "--set", "kafka.bootstrapServers=kafka.example:9092")
		if n := c.kubectl(t, "--namespace", "tier-release", "get", "kafkatopics", "-o", "name"); n != "" {
			t.Errorf("aggregation.topic.create=none rendered %s", n)
		}
		// The notes give the commands that create the aggregates topic and
		// the live tail's two topics.
		for _, want := range []string{
			"kafka-topics.sh --bootstrap-server kafka.example:9092 --create --if-not-exists --topic playpulse-aggregates --partitions 6 --config cleanup.policy=compact,delete --config retention.ms=604800000\n",
			"kafka-topics.sh --bootstrap-server kafka.example:9092 --create --if-not-exists --topic playpulse-tail --partitions 3 --config cleanup.policy=delete --config retention.ms=3600000\n",
			"kafka-topics.sh --bootstrap-server kafka.example:9092 --create --if-not-exists --topic playpulse-tail-filters --partitions 1 --config cleanup.policy=compact,delete --config retention.ms=3600000 --config segment.ms=3600000 --config min.compaction.lag.ms=0 --config delete.retention.ms=3600000\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("the notes do not say %q:\n%s", want, out)
			}
		}
		c.helm(t, "uninstall", "tier", "--namespace", "tier-release", "--wait", "--timeout", "60s")
	})

	t.Run("strict validation refuses unknown fields", func(t *testing.T) {
		// A guard for the checks below: a misspelt field in a Strimzi object
		// must be an error, not silently pruned.
		c.createNamespace(t, "strict")
		np := find(decodeFile(t, "k8s/kafka/kafka.yaml"), "KafkaNodePool")[0]
		np.SetNamespace("strict")
		vols, _, _ := unstructured.NestedSlice(np.Object, "spec", "storage", "volumes")
		vols[0].(map[string]any)["sizeLimt"] = "1Gi"
		_ = unstructured.SetNestedSlice(np.Object, vols, "spec", "storage", "volumes")
		err := c.apply(ctx, np)
		if err == nil || !strings.Contains(err.Error(), "sizeLimt") {
			t.Fatalf("a KafkaNodePool with an unknown field was not refused: %v", err)
		}
	})

	// Every object helm template renders, applied with strict validation,
	// in a namespace per value set.
	for _, vs := range valueSets {
		t.Run("apply rendered "+vs.name, func(t *testing.T) {
			ns := "render-" + vs.name
			c.createNamespace(t, ns)
			c.createSecrets(t, ns)
			objs := render(t, ns, vs.args...)
			start := time.Now()
			c.applyAll(t, objs)
			t.Logf("%d objects accepted in %s", len(objs), time.Since(start).Round(time.Millisecond))
		})
	}

	t.Run("apply k8s manifests and samples", func(t *testing.T) {
		var objs []*unstructured.Unstructured
		files := []string{"k8s/namespace.yaml", "k8s/kafka/kafka.yaml"}
		samples, _ := filepath.Glob(repoPath("k8s/samples/*.yaml"))
		if len(samples) == 0 {
			t.Errorf("no sample PlaybackStreams in k8s/samples/")
		}
		for _, s := range samples {
			rel, _ := filepath.Rel(repoRoot, s)
			files = append(files, filepath.ToSlash(rel))
		}
		for _, f := range files {
			for _, o := range decodeFile(t, f) {
				if o.GetNamespace() == "" && o.GetKind() != "Namespace" {
					o.SetNamespace(testNamespace)
				}
				objs = append(objs, o)
			}
		}
		c.applyAll(t, objs)
		t.Logf("%d objects from %v accepted", len(objs), files)
	})
}

// createSecrets creates the secrets the all-on values refer to, so that
// nothing in the namespace points at a missing object.
func (c *controlPlane) createSecrets(t testing.TB, ns string) {
	t.Helper()
	for name, keys := range map[string][]string{
		"playpulse-cluster-ca-cert": {"ca.crt"},
		"playpulse-user":            {"user.crt", "user.key", "password"},
		"registry-credentials":      {},
		"playpulse-tls":             {"tls.crt", "tls.key"},
		"playpulse-dashboard-token": {"token"},
	} {
		data := map[string][]byte{}
		for _, k := range keys {
			data[k] = []byte("test")
		}
		_, err := c.clientset.CoreV1().Secrets(ns).Create(context.Background(),
			&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name}, Data: data}, metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			t.Fatal(err)
		}
	}
}
