// Package harness runs Playpulse's real binaries for black-box tests: it
// builds them once per test process, starts them with a given environment,
// keeps the tail of their logs for failure messages, waits on their
// endpoints, and guarantees nothing outlives the test.
package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

var (
	buildOnce sync.Once
	binDir    string
	buildErr  error
)

// Root returns the repository root (the directory holding go.work).
func Root() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("go.work not found above the working directory")
		}
		dir = parent
	}
}

// MustRoot is Root for package-level variables: outside the repository
// no test could run, so it panics.
func MustRoot() string {
	root, err := Root()
	if err != nil {
		panic(err)
	}
	return root
}

// Bin returns the directory with freshly built producer, fanout and
// controller binaries (built once per test process, with the race detector
// when the tests run with it).
func Bin(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		root, err := Root()
		if err != nil {
			buildErr = err
			return
		}
		binDir, err = binTemp("playpulse-bin-")
		if err != nil {
			buildErr = err
			return
		}
		args := []string{"build", "-o", binDir + "/"}
		if raceEnabled {
			args = append(args, "-race")
		}
		args = append(args, "./services/producer/cmd/producer", "./services/fanout/cmd/fanout", "./services/controller/cmd/controller", "./services/collector/cmd/collector")
		cmd := exec.Command("go", args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binDir
}

// binTemp makes this test process's directory for its binaries (about
// 170 MB with the race detector), named prefix<pid>-..., after removing
// those of processes that have exited: a test binary has no hook that runs
// after its last test, so each run removes what the runs before it left.
func binTemp(prefix string) (string, error) {
	old, _ := filepath.Glob(filepath.Join(os.TempDir(), prefix+"*"))
	for _, d := range old {
		pid, _, _ := strings.Cut(strings.TrimPrefix(filepath.Base(d), prefix), "-")
		n, err := strconv.Atoi(pid)
		if err != nil || n <= 0 {
			continue
		}
		if err := syscall.Kill(n, 0); err == nil || errors.Is(err, syscall.EPERM) {
			continue // still running (or a PID reused: removed by a later run)
		}
		_ = os.RemoveAll(d)
	}
	return os.MkdirTemp("", fmt.Sprintf("%s%d-", prefix, os.Getpid()))
}

var (
	fastOnce sync.Once
	fastDir  string
	fastErr  error
)

// FastBin is Bin without the race detector, whatever the tests run with:
// for rate and throughput tests, which the race detector would slow 5-10x.
// Correctness tests should keep using Bin.
func FastBin(t testing.TB) string {
	t.Helper()
	fastOnce.Do(func() {
		root, err := Root()
		if err != nil {
			fastErr = err
			return
		}
		fastDir, err = binTemp("playpulse-fastbin-")
		if err != nil {
			fastErr = err
			return
		}
		cmd := exec.Command("go", "build", "-o", fastDir+"/", "./services/producer/cmd/producer", "./services/fanout/cmd/fanout", "./services/controller/cmd/controller", "./services/collector/cmd/collector")
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			fastErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if fastErr != nil {
		t.Fatal(fastErr)
	}
	return fastDir
}

// StartFrom is Start with the binary taken from dir (Bin or FastBin).
func StartFrom(t testing.TB, dir, name string, env map[string]string) *Proc {
	t.Helper()
	p, err := start(dir, name, env)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Stop(10 * time.Second)
		if t.Failed() {
			t.Logf("--- %s output (tail) ---\n%s", name, p.Output())
		}
	})
	return p
}

// Proc is a running service binary.
type Proc struct {
	Name string
	cmd  *exec.Cmd
	out  *tail
	done chan struct{}
	err  error
}

// Start runs bin/<name> with exactly env (plus PATH and HOME), and stops it
// when the test ends.
func Start(t testing.TB, name string, env map[string]string) *Proc {
	t.Helper()
	return StartFrom(t, Bin(t), name, env)
}

func start(bin, name string, env map[string]string) (*Proc, error) {
	cmd := exec.Command(filepath.Join(bin, name))
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	out := &tail{max: 400}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	p := &Proc{Name: name, cmd: cmd, out: out, done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	return p, nil
}

// Run runs bin/<name> to completion with env and returns its exit code and
// combined output.
func Run(t testing.TB, name string, env map[string]string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(filepath.Join(Bin(t), name), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), buf.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, buf.String()
}

// Pid is the process id.
func (p *Proc) Pid() int { return p.cmd.Process.Pid }

// Signal sends sig to the process.
func (p *Proc) Signal(sig syscall.Signal) error { return p.cmd.Process.Signal(sig) }

// Wait waits up to d for the process to exit and returns its exit code.
func (p *Proc) Wait(d time.Duration) (int, error) {
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode(), nil
	case <-time.After(d):
		return -1, fmt.Errorf("%s still running after %s", p.Name, d)
	}
}

// Exited reports whether the process has ended.
func (p *Proc) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop sends SIGTERM, waits up to d, then kills the process group.
func (p *Proc) Stop(d time.Duration) {
	if p.Exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	if _, err := p.Wait(d); err != nil {
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
}

// Output returns the last lines the process wrote.
func (p *Proc) Output() string { return p.out.String() }

// FreeAddr returns a free 127.0.0.1:port.
func FreeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Eventually polls cond every 50 ms until it returns nil or d passes, and
// fails the test with the last error.
func Eventually(t testing.TB, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	var err error
	for {
		if err = cond(); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true within %s: %v", what, d, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// WaitReady waits until GET url returns 200.
func WaitReady(t testing.TB, url string, d time.Duration) {
	t.Helper()
	Eventually(t, d, "GET "+url, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
}

// tail keeps the last max lines written to it.
type tail struct {
	mu    sync.Mutex
	max   int
	lines []string
	part  []byte
}

func (w *tail) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.part = append(w.part, b...)
	for {
		i := bytes.IndexByte(w.part, '\n')
		if i < 0 {
			break
		}
		w.lines = append(w.lines, string(w.part[:i]))
		w.part = w.part[i+1:]
		if len(w.lines) > w.max {
			w.lines = w.lines[len(w.lines)-w.max:]
		}
	}
	return len(b), nil
}

func (w *tail) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.lines, "\n") + string(w.part)
}

// GetJSON decodes the 200 answer of GET url into v.
func GetJSON(url string, v any) error {
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(v)
}
