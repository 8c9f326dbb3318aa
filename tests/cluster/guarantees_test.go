package cluster

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// outside is an address outside this machine: TEST-NET-3 (RFC 5737), which
// no network routes, so that even if the guarantees failed nothing would
// answer.
const outside = "203.0.113.1:80"

// probeResult is what tests/cluster/netprobe prints.
type probeResult struct {
	Routes  []string          `json:"routes"`
	Dial    map[string]string `json:"dial"`
	Resolve map[string]string `json:"resolve"`
}

// TestNothingLeavesTheMachine checks the guarantees docs/kubernetes.md
// makes about the test bed, from inside a pod and from the host: a pod has
// no default route and cannot reach an outside address or the machine's
// own network address, while it does reach the node, the API server's
// ClusterIP and Kafka; cluster DNS answers cluster names and no other; the
// control plane has no name server to ask; nothing of the cluster listens
// beyond the loopback and the node address; the guard chains are in place.
func TestNothingLeavesTheMachine(t *testing.T) {
	needBed(t)
	const probeNS = "playpulse-netprobe"
	nodeIP := bed.env["NODE_IP"]
	dial := []string{outside, nodeIP + ":6443", "10.96.0.1:443", bed.broker.Addr()}
	uplink := uplinkAddr(t)
	if uplink != "" {
		// The machine's own address on its network: a pod must not reach
		// it (it has no route there), though the host would answer.
		dial = append(dial, uplink+":22")
	}
	kubectl(t, "create", "namespace", probeNS)
	t.Cleanup(func() { _, _ = runTool(bed.env["KUBECTL"], "delete", "namespace", probeNS, "--wait=false") })
	kubectl(t, "-n", probeNS, "run", "netprobe", "--image="+bed.netprobe, "--image-pull-policy=Never", "--restart=Never",
		"--overrides", `{"spec":{"securityContext":{"runAsNonRoot":true,"seccompProfile":{"type":"RuntimeDefault"}},"automountServiceAccountToken":false}}`,
		"--", "-dial", strings.Join(dial, ","), "-resolve", "example.com,playpulse.dev,kubernetes.default.svc.cluster.local")
	eventually(t, 60*time.Second, "the netprobe pod finishes", func() error {
		phase := kubectl(t, "-n", probeNS, "get", "pod", "netprobe", "-o", "jsonpath={.status.phase}")
		if phase != "Succeeded" {
			return fmt.Errorf("phase %q", phase)
		}
		return nil
	})
	var r probeResult
	out := kubectl(t, "-n", probeNS, "logs", "netprobe")
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("netprobe printed %q: %v", out, err)
	}
	t.Logf("from a pod: %+v", r)

	// Routes: the pod subnet, the service range and the node; no default.
	for _, rt := range r.Routes {
		if !slices.Contains([]string{"10.244.0.0/24", "10.96.0.0/24", nodeIP + "/32"}, rt) {
			t.Errorf("a pod has the route %s; it must have none but the pod subnet, the service range and the node", rt)
		}
	}
	for _, a := range []string{outside, uplink + ":22"} {
		if res, ok := r.Dial[a]; ok && !strings.Contains(res, "network is unreachable") {
			t.Errorf("a pod connecting to %s: %q, want network is unreachable", a, res)
		}
	}
	for _, a := range []string{nodeIP + ":6443", "10.96.0.1:443", bed.broker.Addr()} {
		if r.Dial[a] != "ok" {
			t.Errorf("a pod cannot reach %s: %s", a, r.Dial[a])
		}
	}
	// Cluster DNS: cluster names only; CoreDNS has no upstream to ask.
	if r.Resolve["kubernetes.default.svc.cluster.local"] != "10.96.0.1" {
		t.Errorf("kubernetes.default.svc.cluster.local resolves to %q in a pod, want 10.96.0.1", r.Resolve["kubernetes.default.svc.cluster.local"])
	}
	for _, n := range []string{"example.com", "playpulse.dev"} {
		if net.ParseIP(strings.Split(r.Resolve[n], ",")[0]) != nil {
			t.Errorf("cluster DNS resolved the outside name %s to %s", n, r.Resolve[n])
		}
	}
	corefile := kubectl(t, "-n", "kube-system", "get", "configmap", "coredns", "-o", "jsonpath={.data.Corefile}")
	if strings.Contains(corefile, "forward") || strings.Contains(corefile, "/etc/resolv.conf") {
		t.Errorf("CoreDNS may ask an upstream resolver:\n%s", corefile)
	}

	// The host side.
	state := bed.env["CLUSTER_STATE"]
	checkBedProcesses(t)
	kubeletCfg, err := os.ReadFile(filepath.Join(state, "kubelet-config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if m := regexp.MustCompile(`(?m)^resolvConf: "?([^"\s]+)`).FindSubmatch(kubeletCfg); m == nil {
		t.Errorf("the kubelet's config names no resolvConf")
	} else if b, err := os.ReadFile(string(m[1])); err != nil || strings.Contains(string(b), "nameserver") {
		t.Errorf("the kubelet gives pods %s: %q %v", m[1], b, err)
	}

	for _, chain := range []string{"PLAYPULSE-NODE-IN", "PLAYPULSE-NODE-FWD"} {
		if out, err := exec.Command("iptables", "-S", chain).CombinedOutput(); err != nil || !strings.Contains(string(out), "-j DROP") {
			t.Errorf("the guard chain %s is missing: %v\n%s", chain, err, out)
		}
	}
}

// checkBedProcesses checks every process hack/cluster.sh runs (its PID
// files; KEDA's too while it is on): none that resolves names sees a name
// server, and none listens anywhere but on the loopback and the node's
// address, except KEDA's metrics server for its own /metrics, which takes a
// port and no address: that port must then be closed to every interface
// but lo (hack/cluster.sh's guard rule). It returns the processes' names.
func checkBedProcesses(t *testing.T) []string {
	t.Helper()
	state := bed.env["CLUSTER_STATE"]
	nodeIP := bed.env["NODE_IP"]
	pids := map[int]string{}
	files, _ := filepath.Glob(filepath.Join(state, "run", "*.pid"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil {
			t.Fatalf("%s: %q", f, b)
		}
		pids[pid] = strings.TrimSuffix(filepath.Base(f), ".pid")
	}
	if len(pids) < 7 {
		t.Fatalf("the bed runs %d processes (%v), want containerd, etcd, the API server, controller-manager, scheduler, kubelet, kube-proxy", len(pids), pids)
	}
	for pid, name := range pids {
		if name == "containerd" || name == "kubelet" {
			continue // in the host's mount namespace (pods' mounts); neither resolves names
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/root/etc/resolv.conf", pid))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if regexp.MustCompile(`(?m)^\s*nameserver`).Match(b) {
			t.Errorf("%s sees a name server in its /etc/resolv.conf:\n%s", name, b)
		}
	}

	ss, err := exec.Command("ss", "-Hltnup").CombinedOutput()
	if err != nil {
		t.Fatalf("ss: %v\n%s", err, ss)
	}
	re := regexp.MustCompile(`pid=(\d+)`)
	for _, l := range strings.Split(string(ss), "\n") {
		f := strings.Fields(l)
		if len(f) < 5 {
			continue
		}
		for _, m := range re.FindAllStringSubmatch(l, -1) {
			pid, _ := strconv.Atoi(m[1])
			name, ours := pids[pid]
			if !ours {
				continue
			}
			host, port, _ := net.SplitHostPort(f[4])
			if host == "127.0.0.1" || host == "::1" || host == nodeIP {
				continue
			}
			if name == "keda-metrics" && closedButOnLo(t, port) {
				continue
			}
			t.Errorf("%s listens on %s; the bed listens on the loopback and the node address only", name, f[4])
		}
	}
	var names []string
	for _, n := range pids {
		names = append(names, n)
	}
	return names
}

// closedButOnLo: iptables and ip6tables drop TCP to port from every
// interface but lo.
func closedButOnLo(t *testing.T, port string) bool {
	t.Helper()
	for _, ipt := range []string{"iptables", "ip6tables"} {
		out, err := exec.Command(ipt, "-S", "INPUT").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "-A INPUT ! -i lo -p tcp -m tcp --dport "+port+" -j DROP") {
			t.Logf("%s -S INPUT: %v\n%s", ipt, err, out)
			return false
		}
	}
	return true
}

// uplinkAddr is the machine's own address on the interface its default
// route leaves by, or "" when it has none.
func uplinkAddr(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("ip", "-4", "route", "get", strings.Split(outside, ":")[0]).CombinedOutput()
	if err != nil {
		return "" // no route out at all
	}
	f := strings.Fields(string(out))
	if i := slices.Index(f, "src"); i >= 0 && i+1 < len(f) {
		return f[i+1]
	}
	return ""
}
