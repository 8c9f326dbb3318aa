package cluster

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"playpulse.dev/tests/harness"
)

// commandTimeout bounds one kubectl or helm call, so that a wedged API
// server fails the test with the tool's output instead of hanging it.
const commandTimeout = 2 * time.Minute

// runTool runs a tool of the bed (kubectl, helm) with its kubeconfig and
// returns its standard output (warnings on stderr are not part of it).
func runTool(bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), commandTimeout)
	defer cancel()
	cmd := toolCmd(ctx, bin, args...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	err := cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s %s: %v\n%s%s", filepath.Base(bin), strings.Join(args, " "), err, out.String(), stderr.String())
	}
	return out.String(), err
}

func toolCmd(ctx context.Context, bin string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+bed.env["KUBECONFIG"])
	return cmd
}

// rolloutReport is what a rate that did not follow needs explained: the
// test namespace's Deployments, ReplicaSets and pods (ages, restarts) and
// its last events, in kubectl's words, at most 40 lines.
func rolloutReport() string {
	var b strings.Builder
	b.WriteString("the rollout, as the API server sees it:\n")
	for _, args := range [][]string{
		{"-n", ns, "get", "deployments,replicasets,pods", "-o", "wide"},
		{"-n", ns, "get", "events", "--sort-by=.lastTimestamp"},
	} {
		out, err := runTool(bed.env["KUBECTL"], args...)
		if err != nil {
			out = err.Error()
		}
		b.WriteString(lastLines(out, 20))
		b.WriteString("\n")
	}
	return b.String()
}

// readAll reads and closes an HTTP response body.
func readAll(t *testing.T, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// kubectl runs the bed's kubectl (the same Kubernetes version as the node)
// and fails the test on an error.
func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := runTool(bed.env["KUBECTL"], args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// helm runs the pinned helm (hack/helm.sh) and fails the test on an error.
func helm(t *testing.T, args ...string) string {
	t.Helper()
	out, err := runTool(bed.env["HELM"], args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// eventually is harness.Eventually: poll cond until nil or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	harness.Eventually(t, d, what, cond)
}

// pods lists the pods of ns that match a label selector.
func pods(t *testing.T, ns, selector string) []corev1.Pod {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	l, err := bed.kube.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	return l.Items
}

// readyPods waits until exactly n pods match selector, each Running and
// Ready and none terminating, and returns them.
func readyPods(t *testing.T, ns, selector string, n int, d time.Duration) []corev1.Pod {
	t.Helper()
	var ps []corev1.Pod
	eventually(t, d, fmt.Sprintf("%d ready pods %s in %s", n, selector, ns), func() error {
		ps = pods(t, ns, selector)
		if len(ps) != n {
			return fmt.Errorf("%d pods: %s", len(ps), podSummary(ps))
		}
		for _, p := range ps {
			if err := podReady(p); err != nil {
				return fmt.Errorf("%v; pods: %s", err, podSummary(ps))
			}
		}
		return nil
	})
	return ps
}

// someReadyPods waits until at least one pod that matches selector is
// Running and Ready, and returns the ready ones: for pods a scaler may be
// adding to meanwhile.
func someReadyPods(t *testing.T, ns, selector string, d time.Duration) []corev1.Pod {
	t.Helper()
	var ready []corev1.Pod
	eventually(t, d, "a ready pod "+selector+" in "+ns, func() error {
		ps := pods(t, ns, selector)
		ready = nil
		for _, p := range ps {
			if podReady(p) == nil {
				ready = append(ready, p)
			}
		}
		if len(ready) == 0 {
			return fmt.Errorf("%d pods: %s", len(ps), podSummary(ps))
		}
		return nil
	})
	return ready
}

func podReady(p corev1.Pod) error {
	if p.DeletionTimestamp != nil {
		return fmt.Errorf("pod %s is terminating", p.Name)
	}
	if p.Status.Phase != corev1.PodRunning {
		return fmt.Errorf("pod %s is %s", p.Name, p.Status.Phase)
	}
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			return nil
		}
	}
	return fmt.Errorf("pod %s is not Ready", p.Name)
}

// podSummary is one line per pod: name, phase, readiness and what its
// containers wait for, for failure messages.
func podSummary(ps []corev1.Pod) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "\n  %s %s", p.Name, p.Status.Phase)
		for _, c := range p.Status.ContainerStatuses {
			fmt.Fprintf(&b, " [%s ready=%v restarts=%d", c.Name, c.Ready, c.RestartCount)
			if w := c.State.Waiting; w != nil {
				fmt.Fprintf(&b, " waiting %s: %s", w.Reason, w.Message)
			}
			if x := c.State.Terminated; x != nil {
				fmt.Fprintf(&b, " terminated %s (%d): %s", x.Reason, x.ExitCode, x.Message)
			}
			b.WriteString("]")
		}
	}
	return b.String()
}

// portForward runs `kubectl port-forward` to target (svc/x, pod/x) until
// the test ends and returns the local address.
func portForward(t *testing.T, ns, target string, port int) string {
	t.Helper()
	cmd := exec.Command(bed.env["KUBECTL"], "-n", ns, "port-forward", "--address", "127.0.0.1", target, ":"+strconv.Itoa(port))
	cmd.Env = append(os.Environ(), "KUBECONFIG="+bed.env["KUBECONFIG"])
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	// "Forwarding from 127.0.0.1:41235 -> 8080"
	re := regexp.MustCompile(`^Forwarding from (127\.0\.0\.1:\d+) -> \d+`)
	found := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if m := re.FindStringSubmatch(sc.Text()); m != nil {
				select {
				case found <- m[1]:
				default:
				}
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case addr := <-found:
		return addr
	case <-time.After(30 * time.Second):
		t.Fatalf("kubectl port-forward %s printed no address within 30 s: %s", target, stderr.String())
	}
	return ""
}

// logLine is the part of a service's JSON log line the tests read.
type logLine struct {
	Level string `json:"level"`
	Msg   string `json:"msg"`
}

// serviceLogs reads a container's log with `kubectl logs` and returns its
// lines; every line must be one of the services' JSON log lines.
func serviceLogs(t *testing.T, ns, pod, container string) []logLine {
	t.Helper()
	out := kubectl(t, "-n", ns, "logs", pod, "-c", container)
	var lines []logLine
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var ll logLine
		if err := json.Unmarshal([]byte(l), &ll); err != nil || ll.Level == "" {
			t.Errorf("%s/%s: a log line that is not the services' JSON: %q", pod, container, l)
			continue
		}
		lines = append(lines, ll)
	}
	return lines
}

// containerPID is the host PID of a running container's first process,
// from the node's containerd (the pod status names the container).
func containerPID(t *testing.T, containerID string) int {
	t.Helper()
	id := strings.TrimPrefix(containerID, "containerd://")
	out, err := exec.Command("ctr", "--address", bed.env["CONTAINERD_SOCK"], "-n", "k8s.io", "tasks", "ls").CombinedOutput()
	if err != nil {
		t.Fatalf("ctr tasks ls: %v\n%s", err, out)
	}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 && f[0] == id {
			pid, err := strconv.Atoi(f[1])
			if err != nil {
				t.Fatalf("ctr tasks ls: %q", l)
			}
			return pid
		}
	}
	t.Fatalf("container %s is not among containerd's tasks:\n%s", id, out)
	return 0
}

// procStatus reads /proc/PID/status into a map.
func procStatus(t *testing.T, pid int) map[string]string {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, l := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(l, ":"); ok {
			m[k] = strings.Join(strings.Fields(v), " ")
		}
	}
	return m
}

// rootReadOnly reports whether the process's root mount is read-only, from
// /proc/PID/mountinfo (field 5 is the mount point, 6 its options).
func rootReadOnly(t *testing.T, pid int) bool {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) > 5 && f[4] == "/" {
			for _, o := range strings.Split(f[5], ",") {
				if o == "ro" {
					return true
				}
			}
			return false
		}
	}
	t.Fatalf("no root mount in /proc/%d/mountinfo", pid)
	return false
}

// memoryLimit is the memory limit the kernel enforces on the process: its
// cgroup v1 memory controller's limit_in_bytes (or cgroup v2 memory.max).
func memoryLimit(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		parts := strings.SplitN(l, ":", 3)
		if len(parts) != 3 {
			continue
		}
		var file string
		switch {
		case strings.Contains(","+parts[1]+",", ",memory,"):
			file = filepath.Join("/sys/fs/cgroup/memory", parts[2], "memory.limit_in_bytes")
		case parts[0] == "0" && parts[1] == "":
			if _, err := os.Stat("/sys/fs/cgroup/memory"); err == nil {
				continue // hybrid: the v1 memory controller decides
			}
			file = filepath.Join("/sys/fs/cgroup", parts[2], "memory.max")
		default:
			continue
		}
		v, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		n, err := strconv.ParseInt(strings.TrimSpace(string(v)), 10, 64)
		if err != nil {
			t.Fatalf("%s: %q", file, v)
		}
		return n
	}
	t.Fatalf("no memory cgroup in /proc/%d/cgroup:\n%s", pid, b)
	return 0
}
