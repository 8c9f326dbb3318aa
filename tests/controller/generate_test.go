package controller

import "testing"

// TestGeneratedFilesAreFresh fails when the CRD, the RBAC rules or the
// deepcopy code no longer match the Go markers in services/controller: run
// `make generate`. (controller-gen is built from hack/tools on first use.)
func TestGeneratedFilesAreFresh(t *testing.T) {
	out, err := hackCommand(t, "hack/generate.sh", "--check")
	if err != nil {
		t.Fatalf("hack/generate.sh --check: %v\n%s", err, out)
	}
}
