// Package kubetest runs a real kube-apiserver and etcd for the tests that
// need an API server (controller-runtime's envtest, with the binaries that
// hack/envtest.sh builds), and gives them what they drive it with: a
// rest.Config, kubeconfig files for users of their choosing, and the kubectl
// of the same Kubernetes version.
//
// tests/controller and tests/packaging each keep their own shared Plane per
// test process; this package only starts, serves and stops one.
package kubetest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// BuildHint is how a person gets the binaries Start needs.
const BuildHint = `export KUBEBUILDER_ASSETS="$(hack/envtest.sh | tail -1)"`

// kubectlTimeout bounds one kubectl call, so a wedged API server fails the
// test with kubectl's output instead of hanging it until the go test timeout.
const kubectlTimeout = time.Minute

// Plane is one running kube-apiserver and etcd.
type Plane struct {
	Config  *rest.Config // cluster admin, for clients in the test process
	Kubectl string       // path of the kubectl built with the API server

	env *envtest.Environment
	dir string // the kubeconfig files; Stop removes it
}

// Start starts a control plane from the binaries in assets (what
// KUBEBUILDER_ASSETS names) and installs the CRDs in crdPaths (files or
// directories), returning once they are served.
func Start(assets string, crdPaths ...string) (*Plane, error) {
	for _, b := range []string{"kube-apiserver", "etcd", "kubectl"} {
		if _, err := os.Stat(filepath.Join(assets, b)); err != nil {
			return nil, fmt.Errorf("envtest binaries: %q lacks %s (%v); build them, from the repository root: %s", assets, b, err, BuildHint)
		}
	}
	p := &Plane{
		Kubectl: filepath.Join(assets, "kubectl"),
		env: &envtest.Environment{
			BinaryAssetsDirectory: assets,
			CRDInstallOptions:     envtest.CRDInstallOptions{Paths: crdPaths, ErrorIfPathMissing: true},
		},
	}
	start := time.Now()
	cfg, err := p.env.Start()
	if err != nil {
		return nil, fmt.Errorf("starting envtest from %s: %w", assets, err)
	}
	p.Config = cfg
	if p.dir, err = os.MkdirTemp("", "playpulse-kubetest-"); err != nil {
		_ = p.env.Stop()
		return nil, err
	}
	var crds []string
	for _, c := range crdPaths {
		crds = append(crds, filepath.Base(c))
	}
	fmt.Fprintf(os.Stderr, "kubetest: kube-apiserver and etcd up in %s (CRDs from %s)\n",
		time.Since(start).Round(time.Millisecond), strings.Join(crds, ", "))
	return p, nil
}

// Kubeconfig writes a kubeconfig file for user in groups (system:masters
// for a cluster admin; none for a user that only has what RBAC grants it)
// and returns its path.
func (p *Plane) Kubeconfig(user string, groups ...string) (string, error) {
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

// RunKubectl runs kubectl as the user of kubeconfig, with stdin as its
// input, and returns its stdout and stderr.
func (p *Plane) RunKubectl(kubeconfig, stdin string, args ...string) (stdout, stderr string, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), kubectlTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.Kubectl, append([]string{"--kubeconfig", kubeconfig}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

// Stop stops the API server and etcd and removes the kubeconfig files.
func (p *Plane) Stop() error {
	err := p.env.Stop()
	if rerr := os.RemoveAll(p.dir); err == nil {
		err = rerr
	}
	return err
}
