package controller

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
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
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	"sigs.k8s.io/yaml"

	"playpulse.dev/services/controller/api/v1alpha1"
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

var repoRoot = func() string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		panic("runtime.Caller failed")
	}
	root, err := filepath.Abs(filepath.Join(filepath.Dir(file), "..", ".."))
	if err != nil {
		panic(err)
	}
	return root
}()

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
	strimzi bool
	env     *envtest.Environment
	cfg     *rest.Config
	c       client.Client // cluster admin

	adminKubeconfig      string
	controllerKubeconfig string
	kubectlBin           string
	dir                  string
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
		if err := p.env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stopping envtest:", err)
		}
		os.RemoveAll(p.dir)
		delete(planes, k)
	}
}

func startPlane(strimzi bool) (*plane, error) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	for _, b := range []string{"kube-apiserver", "etcd", "kubectl"} {
		if _, err := os.Stat(filepath.Join(assets, b)); err != nil {
			return nil, fmt.Errorf("KUBEBUILDER_ASSETS=%s lacks %s (%v): run export KUBEBUILDER_ASSETS=\"$(hack/envtest.sh | tail -1)\"", assets, b, err)
		}
	}
	paths := []string{repoPath(crdDir)}
	if strimzi {
		paths = append(paths, repoPath(kafkaTopicCRD))
	}
	p := &plane{strimzi: strimzi, kubectlBin: filepath.Join(assets, "kubectl")}
	p.env = &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDInstallOptions:     envtest.CRDInstallOptions{Paths: paths, ErrorIfPathMissing: true},
	}
	start := time.Now()
	cfg, err := p.env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting envtest from %s: %w", assets, err)
	}
	fmt.Fprintf(os.Stderr, "tests/controller: control plane (strimzi=%v) up in %s\n", strimzi, time.Since(start).Round(time.Millisecond))
	p.cfg = cfg
	fail := func(err error) (*plane, error) { _ = p.env.Stop(); return nil, err }
	if p.c, err = client.New(cfg, client.Options{Scheme: scheme}); err != nil {
		return fail(err)
	}
	if p.dir, err = os.MkdirTemp("", "playpulse-controller-test-"); err != nil {
		return fail(err)
	}
	if p.adminKubeconfig, err = p.kubeconfig("admin", []string{"system:masters"}); err != nil {
		return fail(err)
	}
	if p.controllerKubeconfig, err = p.kubeconfig(controllerUser, nil); err != nil {
		return fail(err)
	}
	if err := p.grantControllerRBAC(); err != nil {
		return fail(err)
	}
	return p, nil
}

func (p *plane) kubeconfig(user string, groups []string) (string, error) {
	u, err := p.env.AddUser(envtest.User{Name: user, Groups: groups}, nil)
	if err != nil {
		return "", err
	}
	kc, err := u.KubeConfig()
	if err != nil {
		return "", err
	}
	path := filepath.Join(p.dir, user+".kubeconfig")
	return path, os.WriteFile(path, kc, 0o600)
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

// kubectlRun runs kubectl and returns stdout, stderr and the error.
func (p *plane) kubectlRun(stdin string, args ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	args = append([]string{"--kubeconfig", p.adminKubeconfig}, args...)
	cmd := exec.CommandContext(ctx, p.kubectlBin, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
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
