// Command netprobe is the test bed's network probe (tests/cluster): run in a
// pod, it reports, as one JSON object on stdout, the pod's routes, whether
// it can reach the given addresses and resolve the given names. The test
// reads it from `kubectl logs` and checks that nothing can leave the
// machine while the cluster's own addresses work.
//
//	netprobe -dial 192.0.2.1:80,10.250.0.1:6443 -resolve example.com,kubernetes.default.svc.cluster.local
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"
)

// Result is what the probe prints.
type Result struct {
	// Routes are the destinations of the IPv4 routing table (/proc/net/route),
	// "0.0.0.0/0" for a default route.
	Routes  []string          `json:"routes"`
	Dial    map[string]string `json:"dial"`    // address → "ok" or the error
	Resolve map[string]string `json:"resolve"` // name → addresses or the error
}

func main() {
	dial := flag.String("dial", "", "comma-separated host:port to connect to (TCP)")
	resolve := flag.String("resolve", "", "comma-separated names to resolve through the pod's resolv.conf")
	timeout := flag.Duration("timeout", 3*time.Second, "limit of each attempt")
	flag.Parse()

	r := Result{Dial: map[string]string{}, Resolve: map[string]string{}}
	var err error
	if r.Routes, err = routes(); err != nil {
		fmt.Fprintln(os.Stderr, "netprobe:", err)
		os.Exit(1)
	}
	for _, a := range split(*dial) {
		c, err := net.DialTimeout("tcp", a, *timeout)
		if err != nil {
			r.Dial[a] = err.Error()
			continue
		}
		c.Close()
		r.Dial[a] = "ok"
	}
	res := &net.Resolver{PreferGo: true} // the pod's /etc/resolv.conf, no cgo
	for _, n := range split(*resolve) {
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		addrs, err := res.LookupHost(ctx, n)
		cancel()
		if err != nil {
			r.Resolve[n] = err.Error()
			continue
		}
		r.Resolve[n] = strings.Join(addrs, ",")
	}
	if err := json.NewEncoder(os.Stdout).Encode(r); err != nil {
		os.Exit(1)
	}
}

func split(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// routes reads /proc/net/route: destination and mask are little-endian hex.
func routes() ([]string, error) {
	f, err := os.Open("/proc/net/route")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Scan() // header
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) < 8 {
			continue
		}
		dst, mask := hexIP(fs[1]), hexIP(fs[7])
		if dst == nil || mask == nil {
			return nil, fmt.Errorf("bad route line %q", sc.Text())
		}
		ones, _ := net.IPMask(mask).Size()
		out = append(out, fmt.Sprintf("%s/%d", dst, ones))
	}
	return out, sc.Err()
}

func hexIP(h string) net.IP {
	var v uint32
	if _, err := fmt.Sscanf(h, "%08X", &v); err != nil {
		return nil
	}
	return net.IPv4(byte(v), byte(v>>8), byte(v>>16), byte(v>>24)).To4()
}
