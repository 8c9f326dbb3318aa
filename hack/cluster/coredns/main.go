// Command coredns is CoreDNS v1.15.0 with only the plugins the test bed's
// Corefile uses (hack/cluster.sh coredns_manifest): errors, health, ready,
// kubernetes and cache. CoreDNS's own main links every plugin, cloud
// providers' SDKs included, which took most of its three-minute cold build;
// without the forward plugin this DNS cannot ask anything upstream either.
// dnsserver.Directives, CoreDNS's generated list, keeps the plugins' order.
package main

import (
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/ready"

	"github.com/coredns/coredns/coremain"
)

func main() {
	coremain.Run()
}
