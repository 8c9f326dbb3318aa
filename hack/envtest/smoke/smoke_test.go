package smoke

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

const wantVersion = "v1.37.2"

// assetsDir returns KUBEBUILDER_ASSETS, or runs hack/envtest.sh (a cache hit
// after the first build) and uses the last line it prints.
func assetsDir(t *testing.T) string {
	t.Helper()
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir
	}
	script, err := filepath.Abs(filepath.Join("..", "..", "envtest.sh"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(script)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", script, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return lines[len(lines)-1]
}

func TestEnvtestControlPlane(t *testing.T) {
	assets := assetsDir(t)
	for _, b := range []string{"kube-apiserver", "etcd", "kubectl"} {
		if _, err := os.Stat(filepath.Join(assets, b)); err != nil {
			t.Fatalf("missing envtest binary: %v", err)
		}
	}

	env := &envtest.Environment{BinaryAssetsDirectory: assets}
	start := time.Now()
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting envtest: %v", err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = env.Stop()
		}
	})
	t.Logf("control plane up in %s at %s", time.Since(start).Round(time.Millisecond), cfg.Host)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := cs.Discovery().ServerVersion()
	if err != nil {
		t.Fatalf("server version: %v", err)
	}
	if sv.GitVersion != wantVersion {
		t.Errorf("server gitVersion = %q, want %q", sv.GitVersion, wantVersion)
	}

	ns, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{GenerateName: "smoke-"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create namespace: %v", err)
	}
	_, err = cs.CoreV1().ConfigMaps(ns.Name).Create(ctx, &corev1.ConfigMap{
		ObjectMeta: metav1.ObjectMeta{Name: "smoke"},
		Data:       map[string]string{"hello": "playpulse"},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create configmap: %v", err)
	}
	cm, err := cs.CoreV1().ConfigMaps(ns.Name).Get(ctx, "smoke", metav1.GetOptions{})
	if err != nil {
		t.Fatalf("get configmap: %v", err)
	}
	if cm.Data["hello"] != "playpulse" {
		t.Errorf("configmap data = %v", cm.Data)
	}

	// Drive the built kubectl with a kubeconfig for an admin user.
	user, err := env.AddUser(envtest.User{Name: "smoke-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatalf("add user: %v", err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		t.Fatalf("kubeconfig: %v", err)
	}
	kcPath := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(kcPath, kubeconfig, 0o600); err != nil {
		t.Fatal(err)
	}
	kubectl := func(args ...string) string {
		t.Helper()
		args = append([]string{"--kubeconfig", kcPath, "--server", cfg.Host}, args...)
		cmd := exec.CommandContext(ctx, filepath.Join(assets, "kubectl"), args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
		}
		return string(out)
	}

	if out := kubectl("get", "ns", "-o", "name"); !strings.Contains(out, "namespace/"+ns.Name) {
		t.Errorf("kubectl get ns: %q does not list namespace/%s", out, ns.Name)
	}
	if out := kubectl("-n", ns.Name, "get", "configmap", "smoke", "-o", "jsonpath={.data.hello}"); out != "playpulse" {
		t.Errorf("kubectl get configmap: %q, want %q", out, "playpulse")
	}

	var versions struct {
		ClientVersion struct{ GitVersion string } `json:"clientVersion"`
		ServerVersion struct{ GitVersion string } `json:"serverVersion"`
	}
	if err := json.Unmarshal([]byte(kubectl("version", "-o", "json")), &versions); err != nil {
		t.Fatalf("kubectl version: %v", err)
	}
	if versions.ClientVersion.GitVersion != wantVersion || versions.ServerVersion.GitVersion != wantVersion {
		t.Errorf("kubectl version: client %q, server %q, want %q", versions.ClientVersion.GitVersion, versions.ServerVersion.GitVersion, wantVersion)
	}

	stopped = true
	if err := env.Stop(); err != nil {
		t.Fatalf("stopping envtest: %v", err)
	}
}
