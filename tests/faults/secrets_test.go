package faults

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"playpulse.dev/services/playback/kafkacfg/kafkacfgtest"
	"playpulse.dev/tests/kafkatest"
)

// readSecret reads one file of the cluster's Secrets.
func readSecret(t testing.TB, secret, key string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(cluster.Secret(secret), key))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// clientsCA is the cluster's clients CA, which the mutual-TLS listener
// trusts (Strimzi's clients CA signs the KafkaUsers' certificates).
func clientsCA(t testing.TB) *kafkacfgtest.CA {
	t.Helper()
	certPEM, err := os.ReadFile(filepath.Join(cluster.PKI(), "clients-ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(cluster.PKI(), "clients-ca.key"))
	if err != nil {
		t.Fatal(err)
	}
	return kafkacfgtest.LoadCA(t, certPEM, keyPEM)
}

// tlsUserFiles are the files of a tls KafkaUser's Secret that the services
// read, with a certificate of ca, plus the cluster CA's ca.crt.
func tlsUserFiles(t testing.TB, ca *kafkacfgtest.CA, notBefore, notAfter time.Time) map[string][]byte {
	t.Helper()
	crt, key := ca.Issue(t, kafkatest.TLSUser, notBefore, notAfter)
	return map[string][]byte{"user.crt": crt, "user.key": key, "ca.crt": readSecret(t, kafkatest.ClusterCASecret, "ca.crt")}
}
