// Package faults proves Playpulse against a secured three-node Kafka
// cluster (hack/kafka.sh cluster: TLS, SCRAM-SHA-512 and mutual-TLS
// listeners, replication factor 3, min.insync.replicas 2) with the real
// binaries, and under faults: credentials wrong, rotated or expired; a
// partition leader SIGKILLed at 20,000 events/s; the fan-out cut off from
// the brokers; the controller's leader killed while a stream changes.
//
// Faults on the network come from toxiproxy (github.com/Shopify/toxiproxy,
// as a library): every node has listeners that advertise a proxy's address
// (kafkatest.WithProxyListener), so every connection of a client
// bootstrapped there goes through a proxy the test can slow down, cut or
// black-hole, while kcat and the checks read the cluster directly.
//
// One cluster serves the package (TestMain); the tests run one after the
// other and leave it whole (a killed node is restarted and back in sync).
package faults

import (
	"fmt"
	"net"
	"os"
	"testing"
	"time"

	"playpulse.dev/tests/kafkatest"
)

// The proxied listeners: PROD for producers, FAN for fan-outs (so one can
// be cut off while the other goes on), SEC a SCRAM listener for the
// credential rotation.
const (
	linkProducer = "PROD"
	linkFanout   = "FAN"
	linkSecure   = "SEC"
)

var (
	cluster *kafkatest.Cluster
	links   = map[string]*link{}
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	t0 := time.Now()
	var opts []kafkatest.Option
	advertised := map[string][]string{}
	reserved := map[string][]net.Listener{}
	for _, name := range []string{linkProducer, linkFanout, linkSecure} {
		lns, addrs, err := reserveAddrs(3)
		if err != nil {
			fmt.Fprintln(os.Stderr, "faults:", err)
			return 1
		}
		defer closeAll(lns)
		advertised[name], reserved[name] = addrs, lns
		if name == linkSecure {
			opts = append(opts, kafkatest.WithSCRAMProxyListener(name, addrs...))
		} else {
			opts = append(opts, kafkatest.WithProxyListener(name, addrs...))
		}
	}
	c, stop, err := kafkatest.StartClusterMain(opts...)
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults: cannot start the Kafka cluster:", err)
		return 1
	}
	defer stop()
	cluster = c
	for name, addrs := range advertised {
		closeAll(reserved[name]) // the proxies listen there now
		l, err := newLink(name, addrs, c.ProxyUpstreams(name))
		if err != nil {
			fmt.Fprintln(os.Stderr, "faults:", err)
			return 1
		}
		defer l.close()
		links[name] = l
	}
	fmt.Fprintf(os.Stderr, "faults: 3-node cluster and proxies ready in %v (%s)\n", time.Since(t0).Round(time.Millisecond), c.Dir())
	return m.Run()
}

// reserveAddrs returns n loopback addresses and listeners that hold them
// while the cluster starts (some seconds), closed just before the proxies
// listen there: a port closed at once was taken, in one run, by another
// process (a test lane beside this one, an outgoing connection) before
// the proxy bound it.
func reserveAddrs(n int) ([]net.Listener, []string, error) {
	var lns []net.Listener
	var out []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			closeAll(lns)
			return nil, nil, err
		}
		lns = append(lns, ln)
		out = append(out, ln.Addr().String())
	}
	return lns, out, nil
}

// closeAll closes listeners (again is harmless).
func closeAll(lns []net.Listener) {
	for _, ln := range lns {
		ln.Close()
	}
}
