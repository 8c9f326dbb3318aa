// Package generated holds the one test that fails when a generated file is
// stale: the controller's deepcopy code, CRD and RBAC rules, their copies in
// the chart, the README's configuration tables, the chart's values table and
// the generated parts of its values schema. `make generate` rewrites them
// all (hack/generate.sh); the dashboard bundle, which needs npm, has its own
// freshness test (tests/e2e TestDashboardBundleFresh).
package generated

import (
	"os/exec"
	"strings"
	"testing"

	"playpulse.dev/tests/harness"
)

// TestGeneratedFilesAreFresh runs hack/generate.sh --check, which generates
// into a temporary directory and compares, and fails naming the command
// that fixes it. (controller-gen and helm are built from pinned Go modules
// on first use and cached.)
func TestGeneratedFilesAreFresh(t *testing.T) {
	root := harness.MustRoot()
	cmd := exec.Command(root+"/hack/generate.sh", "--check")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("generated files are stale: run `make generate` and commit the result\nhack/generate.sh --check: %v\n%s", err, strings.TrimSpace(string(out)))
	}
}
