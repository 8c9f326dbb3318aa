package harness

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestBinTempRemovesExitedProcesses: the binary directories of exited test
// processes go, those of running ones stay, and the new one names this
// process.
func TestBinTempRemovesExitedProcesses(t *testing.T) {
	prefix := fmt.Sprintf("playpulse-bintest-%d-", os.Getpid()) // no other test's prefix
	exited := exec.Command("true")
	if err := exited.Run(); err != nil {
		t.Fatal(err)
	}
	dead := filepath.Join(os.TempDir(), fmt.Sprintf("%s%d-x", prefix, exited.Process.Pid))
	live := filepath.Join(os.TempDir(), fmt.Sprintf("%s%d-y", prefix, os.Getpid()))
	other := filepath.Join(os.TempDir(), prefix+"notapid")
	for _, d := range []string{dead, live, other} {
		if err := os.MkdirAll(filepath.Join(d, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(d) })
	}
	got, err := binTemp(prefix)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(got) })
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Errorf("%s of an exited process is still there (%v)", dead, err)
	}
	for _, d := range []string{live, other, got} {
		if _, err := os.Stat(d); err != nil {
			t.Errorf("%s: %v", d, err)
		}
	}
	if want := fmt.Sprintf("%s%d-", prefix, os.Getpid()); !strings.HasPrefix(filepath.Base(got), want) {
		t.Errorf("new directory %s, want %s...", got, want)
	}
}
