// Package controller tests the PlaybackStream controller the way it runs:
// the real bin/controller process against a real kube-apiserver and etcd
// (controller-runtime's envtest, binaries built by hack/envtest.sh) with the
// generated CRD and RBAC installed, and, without Strimzi, against a real
// Apache Kafka broker. The end-to-end test drives it with the kubectl built
// by the same script and plays the kubelet for the producer Deployment by
// running bin/producer processes with the pod template's environment.
//
// Prerequisites (make test provides them):
//
//	export KUBEBUILDER_ASSETS="$(hack/envtest.sh | tail -1)"
//	hack/kafka.sh fetch
package controller

import (
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"playpulse.dev/tests/kafkatest"
)

var (
	brokerOnce sync.Once
	broker     *kafkatest.Broker
	brokerStop func()
	brokerErr  error
)

// kafka returns the package's Kafka broker, started on first use.
func kafka(t testing.TB) *kafkatest.Broker {
	t.Helper()
	brokerOnce.Do(func() { broker, brokerStop, brokerErr = kafkatest.StartMain() })
	if brokerErr != nil {
		t.Fatal(brokerErr)
	}
	return broker
}

func TestMain(m *testing.M) {
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		fmt.Fprint(os.Stderr, `tests/controller: KUBEBUILDER_ASSETS is not set. These tests need a real
kube-apiserver, etcd and kubectl; build them (once, ~9 minutes) and point to them
from the repository root with:

	export KUBEBUILDER_ASSETS="$(hack/envtest.sh | tail -1)"

or run `+"`make test`"+`, which does this.
`)
		os.Exit(1)
	}
	ctrllog.SetLogger(logr.Discard()) // envtest's own chatter; the controller under test logs through its process
	code := m.Run()
	stopPlanes()
	if brokerStop != nil {
		brokerStop()
	}
	os.Exit(code)
}
