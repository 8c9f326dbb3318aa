// Package cluster tests Playpulse the way its users run it, on a real
// single-node Kubernetes cluster on this machine (hack/cluster.sh; docs/
// kubernetes.md, "The test bed"): the project's four images built from
// build/*.Dockerfile without Docker and imported into the node's
// containerd, the chart installed with helm, PlaybackStreams applied with
// kubectl and their rate measured in a real Kafka broker, the dashboard
// opened in headless Chromium through the fan-out's Service, CMCD reports
// posted through the collector's Service.
//
// TestMain brings the node up when none runs (and takes down only what it
// started), starts a Kafka broker on the node's address and builds and
// loads the images. It needs root, as `make test` in CI has; without it, or
// when the node cannot come up, every test fails with the reason. Nothing
// is skipped.
package cluster

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"testing"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"playpulse.dev/tests/harness"
	"playpulse.dev/tests/kafkatest"
)

// bed is what TestMain set up for every test.
var bed struct {
	root     string
	env      map[string]string // hack/cluster.sh env: KUBECONFIG, KUBECTL, HELM, NODE_IP, ...
	kube     kubernetes.Interface
	broker   *kafkatest.Broker
	secured  *kafkatest.Cluster     // TLS, SCRAM and mutual TLS on the node's address (TestSecuredStreams)
	images   map[string]*builtImage // producer, fanout, controller, collector
	netprobe string                 // image reference of the network probe
	err      error                  // why the bed is not there: every test fails with it
}

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	owner := fmt.Sprintf("tests/cluster-%d", os.Getpid())
	stop, err := setUp(owner)
	if err != nil {
		// The tests still run, each failing with this reason, so that the
		// failure is a test failure with a name, never a skip.
		bed.err = err
		fmt.Fprintf(os.Stderr, "tests/cluster: the test bed is not available: %v\n", err)
	}
	code := m.Run()
	if stop != nil && !stop() {
		code = 1
	}
	return code
}

// setUp brings the bed up; stop undoes what setUp did and reports whether
// the host was left as it was.
func setUp(owner string) (stop func() bool, err error) {
	if os.Geteuid() != 0 {
		return nil, fmt.Errorf("tests/cluster needs root: the test bed runs containerd, the kubelet and iptables rules (CI runs `make test` as root)")
	}
	root, err := harness.Root()
	if err != nil {
		return nil, err
	}
	bed.root = root
	var undo []func() bool
	stop = func() bool {
		ok := true
		for i := len(undo) - 1; i >= 0; i-- {
			ok = undo[i]() && ok
		}
		return ok
	}
	t0 := time.Now()
	out, err := clusterSh(owner, "up")
	// Whatever up did, down --if-owner takes down what this process started
	// (and only that), and fails when the host is not as it was.
	undo = append(undo, func() bool {
		out, err := clusterSh(owner, "down", "--if-owner", owner)
		if err != nil {
			fmt.Fprintf(os.Stderr, "tests/cluster: hack/cluster.sh down: %v\n%s", err, out)
			return false
		}
		return true
	})
	if err != nil {
		return stop, fmt.Errorf("hack/cluster.sh up: %v\n%s", err, out)
	}
	bed.env = parseEnv(out)
	for _, k := range []string{"KUBECONFIG", "KUBECTL", "HELM", "NODE_IP", "NODE_NAME", "CONTAINERD_SOCK", "CLUSTER_STATE"} {
		if bed.env[k] == "" {
			return stop, fmt.Errorf("hack/cluster.sh up printed no %s:\n%s", k, out)
		}
	}
	fmt.Fprintf(os.Stderr, "tests/cluster: node up in %v\n", time.Since(t0).Round(time.Millisecond))
	cfg, err := clientcmd.BuildConfigFromFlags("", bed.env["KUBECONFIG"])
	if err != nil {
		return stop, err
	}
	if bed.kube, err = kubernetes.NewForConfig(cfg); err != nil {
		return stop, err
	}

	// The broker of hack/kafka.sh, its client listener on the node's
	// address: reachable from the pods (their route to the node) and from
	// here, and from nowhere else.
	b, stopBroker, err := kafkatest.StartMain(kafkatest.WithHost(bed.env["NODE_IP"]))
	if err != nil {
		return stop, err
	}
	bed.broker = b
	undo = append(undo, func() bool { stopBroker(); return true })

	// The secured three-node cluster, on the node's address too, starts
	// while the images build.
	type started struct {
		c    *kafkatest.Cluster
		stop func()
		err  error
	}
	secured := make(chan started, 1)
	go func() {
		c, stop, err := kafkatest.StartClusterMain(kafkatest.WithHost(bed.env["NODE_IP"]))
		secured <- started{c, stop, err}
	}()
	t0 = time.Now()
	// The tarballs (TestImagesMatchDockerfiles reads them back) go when the
	// bed does: tens of MB a run.
	imgDir, err := os.MkdirTemp("", "playpulse-cluster-images-")
	if err != nil {
		return stop, err
	}
	undo = append(undo, func() bool { return os.RemoveAll(imgDir) == nil })
	buildErr := buildImages(imgDir)
	fmt.Fprintf(os.Stderr, "tests/cluster: images built and loaded in %v\n", time.Since(t0).Round(time.Millisecond))
	sc := <-secured
	if sc.err == nil {
		bed.secured = sc.c
		undo = append(undo, func() bool { sc.stop(); return true })
		fmt.Fprintf(os.Stderr, "tests/cluster: secured Kafka cluster ready %v after the images started building\n", time.Since(t0).Round(time.Millisecond))
	}
	if buildErr != nil {
		return stop, buildErr
	}
	return stop, sc.err
}

// clusterSh runs hack/cluster.sh; stderr (its progress) goes to ours.
func clusterSh(owner string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute) // a cold build of the node binaries
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join(bed.root, "hack", "cluster.sh")}, args...)...)
	cmd.Env = append(os.Environ(), "PLAYPULSE_CLUSTER_OWNER="+owner)
	var stdout bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = os.Stderr
	err := cmd.Run()
	return stdout.String(), err
}

// parseEnv reads NAME=value lines.
func parseEnv(s string) map[string]string {
	env := map[string]string{}
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok && k != "" && strings.ToUpper(k) == k {
			env[k] = v
		}
	}
	return env
}

// needBed fails the test when TestMain could not set the bed up.
func needBed(t *testing.T) {
	t.Helper()
	if bed.err != nil {
		t.Fatalf("the test bed is not available: %v", bed.err)
	}
}
