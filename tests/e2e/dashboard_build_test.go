package e2e

import (
	"bytes"
	"compress/gzip"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"playpulse.dev/tests/harness"
)

const (
	uiDir     = "services/fanout/internal/web/ui"        // the page's sources, package.json and lock file
	bundleDir = "services/fanout/internal/web/dashboard" // the built page, committed and embedded by go:embed
)

// TestDashboardBundleFresh builds the dashboard from its sources with the
// locked npm packages into a temporary directory (npm ci, npm test, the
// build) and requires the committed bundle to be exactly that build, so a
// `go build` from a clean checkout, which needs no Node, serves what the
// sources say. In CI it also requires the bundle to be committed as built
// (`make test` rebuilds it in place first).
func TestDashboardBundleFresh(t *testing.T) {
	root, err := harness.Root()
	if err != nil {
		t.Fatal(err)
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatal("npm is not installed; the dashboard is built with Node 18+ and npm (apt-get install nodejs npm)")
	}
	src := filepath.Join(root, uiDir)
	work := filepath.Join(t.TempDir(), "ui")
	for _, dir := range []string{"src", "test"} {
		if err := os.CopyFS(filepath.Join(work, dir), os.DirFS(filepath.Join(src, dir))); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"package.json", "package-lock.json", "build.mjs"} {
		if err := os.WriteFile(filepath.Join(work, name), readFile(t, filepath.Join(src, name)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "dashboard")
	for _, args := range [][]string{
		{npm, "ci", "--no-audit", "--no-fund"},
		{npm, "test"},
		{"node", "build.mjs", "--out", out},
	} {
		cmd := exec.Command(args[0], args[1:]...)
		cmd.Dir = work
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, b)
		}
	}

	committed := filepath.Join(root, bundleDir)
	want, got := listFiles(t, out), listFiles(t, committed)
	if strings.Join(want, "\n") != strings.Join(got, "\n") {
		t.Fatalf("%s is not the build of %s: run `make dashboard` and commit the result\nbuilt:     %v\ncommitted: %v", bundleDir, uiDir, want, got)
	}
	for _, name := range want {
		a, b := readFile(t, filepath.Join(out, name)), readFile(t, filepath.Join(committed, name))
		if strings.HasSuffix(name, ".gz") {
			// zlib versions may differ between machines: compare what they hold.
			a, b = gunzip(t, name, a), gunzip(t, name, b)
			if plain := readFile(t, filepath.Join(committed, strings.TrimSuffix(name, ".gz"))); !bytes.Equal(b, plain) {
				t.Fatalf("%s/%s does not hold %s", bundleDir, name, strings.TrimSuffix(name, ".gz"))
			}
		}
		if !bytes.Equal(a, b) {
			t.Fatalf("%s/%s differs from a fresh build of %s: run `make dashboard` and commit the result", bundleDir, name, uiDir)
		}
	}
	if os.Getenv("CI") != "" {
		// The .gz files are left out: another zlib may compress the same
		// bytes differently (their content was compared above).
		cmd := exec.Command("git", "status", "--porcelain", "--", bundleDir, ":(exclude)"+bundleDir+"/**/*.gz", ":(exclude)"+bundleDir+"/*.gz")
		cmd.Dir = root
		b, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git status: %v\n%s", err, b)
		}
		if len(bytes.TrimSpace(b)) > 0 {
			t.Fatalf("the committed dashboard bundle is stale (make rebuilt it):\n%s\nrun `make dashboard` and commit the result", b)
		}
	}
}

func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		names = append(names, filepath.ToSlash(rel))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func gunzip(t *testing.T, name string, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	out, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return out
}
