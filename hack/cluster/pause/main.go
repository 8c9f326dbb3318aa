// Command pause is the pod sandbox process of the test-bed cluster: it holds
// the pod's namespaces, reaps orphans, and exits on SIGINT or SIGTERM. The
// upstream image (registry.k8s.io/pause) cannot be pulled here, and this is
// all it does.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	c := make(chan os.Signal, 8)
	signal.Notify(c, syscall.SIGINT, syscall.SIGTERM, syscall.SIGCHLD)
	for s := range c {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			if pid, _ := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 {
				break
			}
		}
	}
}
