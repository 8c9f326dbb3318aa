// Command etcd is the etcd v3.6 server, built from go.etcd.io/etcd/server/v3
// for controller-runtime's envtest (see hack/envtest.sh).
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() {
	etcdmain.Main(os.Args)
}
