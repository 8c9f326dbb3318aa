package e2e

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"playpulse.dev/tests/harness"
)

// TestMakeRunStack runs what `make run` runs: devstack with its embedded
// broker, the producer and the fan-out. Events must reach the dashboard's
// snapshot, and Ctrl-C (SIGINT) must leave no process behind.
func TestMakeRunStack(t *testing.T) {
	bin := harness.Bin(t)
	root, err := harness.Root()
	if err != nil {
		t.Fatal(err)
	}
	devstack := filepath.Join(t.TempDir(), "devstack")
	build := exec.Command("go", "build", "-o", devstack, "./tools/cmd/devstack")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build devstack: %v\n%s", err, out)
	}
	addr := harness.FreeAddr(t)
	cmd := exec.Command(devstack, "-bin", bin)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "FANOUT_ADDR=" + addr, "LOG_LEVEL=warn"}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			default:
			}
		}
		close(lines)
	}()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()

	sawURL := false
	deadline := time.After(30 * time.Second)
	for !sawURL {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("devstack exited early")
			}
			sawURL = strings.Contains(l, "Dashboard: http://localhost:")
		case <-deadline:
			t.Fatal("devstack printed no dashboard URL")
		}
	}
	harness.Eventually(t, 30*time.Second, "events flow through the embedded broker", func() error {
		var snap struct {
			EventsTotal uint64 `json:"events_total"`
		}
		if err := getJSON("http://"+addr+"/api/snapshot", &snap); err != nil {
			return err
		}
		if snap.EventsTotal < 100 {
			return fmt.Errorf("%d events so far", snap.EventsTotal)
		}
		return nil
	})
	children := childPIDs(t, cmd.Process.Pid)
	if len(children) != 2 {
		t.Fatalf("devstack runs %d child processes, want producer and fanout", len(children))
	}
	if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("devstack exit: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("devstack did not stop within 15s of Ctrl-C")
	}
	for _, pid := range children {
		if err := syscall.Kill(pid, 0); err == nil {
			t.Errorf("process %d still running after devstack stopped", pid)
		}
	}
}

// childPIDs lists the direct children of pid, from /proc/*/stat.
func childPIDs(t *testing.T, pid int) []int {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatal(err)
	}
	var out []int
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // the process ended meanwhile
		}
		// Fields after the parenthesised command name: state ppid ...
		rest := string(b[strings.LastIndexByte(string(b), ')')+1:])
		f := strings.Fields(rest)
		if len(f) > 1 && f[1] == strconv.Itoa(pid) {
			n, _ := strconv.Atoi(filepath.Base(filepath.Dir(path)))
			out = append(out, n)
		}
	}
	return out
}
