package packaging

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"playpulse.dev/tests/harness"
)

// Paths of the things under test, relative to the repository root.
const (
	chartDir      = "charts/playpulse"
	allOnValues   = "charts/playpulse/ci/all-on-values.yaml"
	devValues     = "k8s/values-dev.yaml"
	testCRDDir    = "tests/testdata/crds"
	releaseName   = "playpulse"
	testNamespace = "playpulse"
)

var repoRoot = harness.MustRoot()

func repoPath(rel string) string { return filepath.Join(repoRoot, filepath.FromSlash(rel)) }

// hackTool runs a hack/ script that builds (or finds in its cache) a binary
// and prints its path or directory on the last line of stdout. A failure
// stops the test with the command to run by hand.
func hackTool(script string, args ...string) (string, error) {
	cmd := exec.Command(repoPath(script), args...)
	cmd.Dir = repoRoot
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%s %s failed: %v\n%s\nrun it by hand to see why: %s %s",
			script, strings.Join(args, " "), err, stderr.String(), script, strings.Join(args, " "))
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	return strings.TrimSpace(lines[len(lines)-1]), nil
}

var helmOnce = sync.OnceValues(func() (string, error) {
	if p := os.Getenv("PLAYPULSE_HELM"); p != "" {
		return p, nil
	}
	return hackTool("hack/helm.sh", "--path")
})

// helmBin returns the pinned helm binary, built by hack/helm.sh.
func helmBin(t testing.TB) string {
	t.Helper()
	p, err := helmOnce()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// runHelm runs helm from the repository root with a private HOME for its
// caches and config, so the user's repositories and plugins play no part.
func runHelm(t testing.TB, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := exec.Command(helmBin(t), args...)
	cmd.Dir = repoRoot
	home := helmHome(t)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err = cmd.Run()
	return o.String(), e.String(), err
}

var helmHomeOnce = sync.OnceValue(func() string {
	d, err := os.MkdirTemp("", "playpulse-helm-home-")
	if err != nil {
		panic(err)
	}
	return d
})

func helmHome(testing.TB) string { return helmHomeOnce() }

// mustHelm is runHelm that fails the test on error.
func mustHelm(t testing.TB, args ...string) string {
	t.Helper()
	out, stderr, err := runHelm(t, args...)
	if err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
	return out
}

// valueSet names a way to install the chart.
type valueSet struct {
	name string
	args []string // extra helm arguments
}

var valueSets = []valueSet{
	{"defaults", nil},
	{"all-on", []string{"--values", allOnValues}},
	{"dev", []string{"--values", devValues}},
}

// render runs helm template (CRDs included) and returns the objects.
func render(t testing.TB, namespace string, extra ...string) []*unstructured.Unstructured {
	t.Helper()
	args := append([]string{"template", releaseName, chartDir, "--namespace", namespace, "--include-crds"}, extra...)
	return decodeObjects(t, mustHelm(t, args...))
}

// decodeObjects splits a multi-document YAML stream into objects, skipping
// empty documents.
func decodeObjects(t testing.TB, stream string) []*unstructured.Unstructured {
	t.Helper()
	objs, err := decodeObjectsErr(strings.NewReader(stream))
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

func decodeObjectsErr(r io.Reader) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLReader(bufio.NewReaderSize(r, 1<<20))
	var objs []*unstructured.Unstructured
	for {
		doc, err := dec.Read()
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, err
		}
		var m map[string]any
		if err := yaml.Unmarshal(doc, &m); err != nil {
			return nil, fmt.Errorf("%v in:\n%s", err, doc)
		}
		if len(m) == 0 {
			continue
		}
		objs = append(objs, &unstructured.Unstructured{Object: m})
	}
}

func decodeFile(t testing.TB, rel string) []*unstructured.Unstructured {
	t.Helper()
	f, err := os.Open(repoPath(rel))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	objs, err := decodeObjectsErr(f)
	if err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
	return objs
}

// find returns the objects of a kind.
func find(objs []*unstructured.Unstructured, kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range objs {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

func kinds(objs []*unstructured.Unstructured) []string {
	seen := map[string]bool{}
	var out []string
	for _, o := range objs {
		if !seen[o.GetKind()] {
			seen[o.GetKind()] = true
			out = append(out, o.GetKind())
		}
	}
	sort.Strings(out)
	return out
}

func id(o *unstructured.Unstructured) string {
	return fmt.Sprintf("%s %s/%s", o.GetKind(), o.GetNamespace(), o.GetName())
}

// component returns the app.kubernetes.io/component label.
func component(o *unstructured.Unstructured) string {
	return o.GetLabels()["app.kubernetes.io/component"]
}

// podSpec returns a Deployment's pod template spec.
func podSpec(t testing.TB, d *unstructured.Unstructured) map[string]any {
	t.Helper()
	spec, ok, err := unstructured.NestedMap(d.Object, "spec", "template", "spec")
	if err != nil || !ok {
		t.Fatalf("%s: no pod template spec (%v)", id(d), err)
	}
	return spec
}

func containers(t testing.TB, d *unstructured.Unstructured) []map[string]any {
	t.Helper()
	list, ok, err := unstructured.NestedSlice(d.Object, "spec", "template", "spec", "containers")
	if err != nil || !ok || len(list) == 0 {
		t.Fatalf("%s: no containers (%v)", id(d), err)
	}
	var out []map[string]any
	for _, c := range list {
		out = append(out, c.(map[string]any))
	}
	return out
}

// str reads a nested string, "" when absent.
func str(m map[string]any, path ...string) string {
	s, _, _ := unstructured.NestedString(m, path...)
	return s
}

// num reads a nested number (YAML numbers decode as float64), -1 when absent.
func num(m map[string]any, path ...string) int64 {
	v, ok, _ := unstructured.NestedFieldNoCopy(m, path...)
	if !ok {
		return -1
	}
	switch n := v.(type) {
	case float64:
		return int64(n)
	case int64:
		return n
	case int:
		return int64(n)
	}
	return -1
}
