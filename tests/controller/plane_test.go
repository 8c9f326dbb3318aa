package controller

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"playpulse.dev/services/controller/api/v1alpha1"
	"playpulse.dev/tests/harness"
	"playpulse.dev/tests/kubetest"
)

// Paths, relative to the repository root.
const (
	crdDir        = "services/controller/config/crd/bases"
	roleFile      = "services/controller/config/rbac/role.yaml"
	kafkaTopicCRD = "tests/testdata/crds/kafkatopic-crd.yaml"
)

// controllerUser is the identity bin/controller runs as: it gets exactly the
// generated ClusterRole (plus Leases for leader election, which the chart
// grants in its own namespace), so the tests prove the RBAC rules suffice.
const controllerUser = "playpulse-controller"

var repoRoot = harness.MustRoot()

func repoPath(rel string) string { return filepath.Join(repoRoot, filepath.FromSlash(rel)) }

var scheme = func() *k8sruntime.Scheme {
	s := k8sruntime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err)
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		panic(err)
	}
	return s
}()

// plane is one kube-apiserver + etcd with the PlaybackStream CRD installed
// and, when strimzi is set, the test copy of Strimzi's KafkaTopic CRD.
type plane struct {
	*kubetest.Plane
	strimzi bool
	c       client.Client // cluster admin

	adminKubeconfig      string
	controllerKubeconfig string
}

var (
	planesMu sync.Mutex
	planes   = map[bool]*plane{}
)

// controlPlane returns the shared control plane with or without the
// KafkaTopic CRD, starting it on first use.
func controlPlane(t testing.TB, strimzi bool) *plane {
	t.Helper()
	planesMu.Lock()
	defer planesMu.Unlock()
	if p := planes[strimzi]; p != nil {
		return p
	}
	p, err := startPlane(strimzi)
	if err != nil {
		t.Fatal(err)
	}
	planes[strimzi] = p
	return p
}

func stopPlanes() {
	planesMu.Lock()
	defer planesMu.Unlock()
	for k, p := range planes {
		if err := p.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping envtest:", err)
		}
		delete(planes, k)
	}
}

func startPlane(strimzi bool) (*plane, error) {
	paths := []string{repoPath(crdDir)}
	if strimzi {
		paths = append(paths, repoPath(kafkaTopicCRD))
	}
	kp, err := kubetest.Start(os.Getenv("KUBEBUILDER_ASSETS"), paths...)
	if err != nil {
		return nil, err
	}
	p := &plane{Plane: kp, strimzi: strimzi}
	fail := func(err error) (*plane, error) { _ = kp.Stop(); return nil, err }
	if p.c, err = client.New(kp.Config, client.Options{Scheme: scheme}); err != nil {
		return fail(err)
	}
	if p.adminKubeconfig, err = kp.Kubeconfig("admin", "system:masters"); err != nil {
		return fail(err)
	}
	if p.controllerKubeconfig, err = kp.Kubeconfig(controllerUser); err != nil {
		return fail(err)
	}
	if err := p.grantControllerRBAC(); err != nil {
		return fail(err)
	}
	return p, nil
}

// grantControllerRBAC binds the generated ClusterRole to controllerUser,
// plus Leases and Events for leader election.
func (p *plane) grantControllerRBAC() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	b, err := os.ReadFile(repoPath(roleFile))
	if err != nil {
		return err
	}
	var role rbacv1.ClusterRole
	if err := yaml.UnmarshalStrict(bytes.TrimPrefix(b, []byte("---\n")), &role); err != nil {
		return fmt.Errorf("%s: %w", roleFile, err)
	}
	role.ObjectMeta = metav1.ObjectMeta{Name: "playpulse-controller"}
	le := rbacv1.ClusterRole{
		ObjectMeta: metav1.ObjectMeta{Name: "playpulse-controller-leader-election"},
		Rules: []rbacv1.PolicyRule{
			{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"get", "list", "watch", "create", "update", "patch", "delete"}},
			{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}},
		},
	}
	for _, r := range []*rbacv1.ClusterRole{&role, &le} {
		if err := p.c.Create(ctx, r); err != nil {
			return err
		}
		binding := &rbacv1.ClusterRoleBinding{
			ObjectMeta: metav1.ObjectMeta{Name: r.Name},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: r.Name},
			Subjects:   []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: controllerUser}},
		}
		if err := p.c.Create(ctx, binding); err != nil {
			return err
		}
	}
	return nil
}

// namespace creates a fresh namespace for one test.
func (p *plane) namespace(t testing.TB) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "pbs-"}}
	if err := p.c.Create(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	return ns.Name
}

// kubectl runs the envtest kubectl as cluster admin and returns stdout; a
// failure fails the test with stderr.
func (p *plane) kubectl(t testing.TB, stdin string, args ...string) string {
	t.Helper()
	out, errOut, err := p.kubectlRun(stdin, args...)
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, errOut)
	}
	return out
}

// kubectlRun runs kubectl as cluster admin and returns stdout, stderr and
// the error.
func (p *plane) kubectlRun(stdin string, args ...string) (string, string, error) {
	return p.RunKubectl(p.adminKubeconfig, stdin, args...)
}

// kafkaTopic gets a KafkaTopic as unstructured.
func (p *plane) kafkaTopic(t testing.TB, ns, name string) (*unstructured.Unstructured, error) {
	t.Helper()
	u := &unstructured.Unstructured{}
	u.SetAPIVersion("kafka.strimzi.io/v1")
	u.SetKind("KafkaTopic")
	err := p.c.Get(context.Background(), client.ObjectKey{Namespace: ns, Name: name}, u)
	return u, err
}
