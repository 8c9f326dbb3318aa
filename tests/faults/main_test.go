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
	for _, name := range []string{linkProducer, linkFanout, linkSecure} {
		addrs, err := freeAddrs(3)
		if err != nil {
			fmt.Fprintln(os.Stderr, "faults:", err)
			return 1
		}
		advertised[name] = addrs
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

// freeAddrs returns n free loopback addresses (closed again: the proxies
// listen there once the brokers know to advertise them).
func freeAddrs(n int) ([]string, error) {
	var out []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		out = append(out, ln.Addr().String())
		ln.Close()
	}
	return out, nil
}
