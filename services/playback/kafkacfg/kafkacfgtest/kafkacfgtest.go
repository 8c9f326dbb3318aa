// Package kafkacfgtest helps tests of Kafka credentials (kafkacfg's, and
// tests/faults' against real brokers): a CA that issues certificates as
// Strimzi's CAs do, and Secrets mounted the way the kubelet mounts them,
// which is how a rotated credential reaches a running service.
package kafkacfgtest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// CA issues certificates.
type CA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	PEM  []byte // Cert, PEM-encoded: a ca.crt
}

// NewCA is a new self-signed CA (EC P-256, valid for a day).
func NewCA(t testing.TB, cn string) *CA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{Organization: []string{"io.strimzi"}, CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &CA{Cert: cert, Key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// LoadCA is an existing CA: its certificate and its PKCS#8 key, PEM (what
// hack/kafka.sh cluster-init writes).
func LoadCA(t testing.TB, certPEM, keyPEM []byte) *CA {
	t.Helper()
	cb, _ := pem.Decode(certPEM)
	kb, _ := pem.Decode(keyPEM)
	if cb == nil || kb == nil {
		t.Fatal("kafkacfgtest: the CA's files hold no PEM")
	}
	cert, err := x509.ParseCertificate(cb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	key, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		t.Fatalf("kafkacfgtest: a %T cannot sign", key)
	}
	return &CA{Cert: cert, Key: signer, PEM: certPEM}
}

// Issue is a certificate for cn valid from notBefore to notAfter, for
// servers and clients, naming ips, and its key (PKCS#8, as Strimzi's
// user.key), both PEM.
func (ca *CA) Issue(t testing.TB, cn string, notBefore, notAfter time.Time, ips ...net.IP) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{Organization: []string{"io.strimzi"}, CommonName: cn},
		NotBefore: notBefore, NotAfter: notAfter,
		KeyUsage:    x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		IPAddresses: ips,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, &key.PublicKey, ca.Key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// Secret is a directory laid out as the kubelet mounts a Secret (its
// atomic writer): KEY -> ..data/KEY, ..data -> ..<version>/. Update swaps
// ..data to a new version in one rename, as the kubelet does when the
// Secret changes.
type Secret struct {
	t       testing.TB
	dir     string
	version int
}

// MountSecret mounts files (key → content) in a temporary directory.
func MountSecret(t testing.TB, files map[string][]byte) *Secret {
	t.Helper()
	s := &Secret{t: t, dir: t.TempDir()}
	s.Update(files)
	for k := range files {
		if err := os.Symlink(filepath.Join("..data", k), filepath.Join(s.dir, k)); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// Path is where key is mounted.
func (s *Secret) Path(key string) string { return filepath.Join(s.dir, key) }

// Update replaces the Secret's content (the same keys) at once.
func (s *Secret) Update(files map[string][]byte) {
	s.t.Helper()
	s.version++
	v := fmt.Sprintf("..%d_%d", time.Now().UnixNano(), s.version)
	if err := os.Mkdir(filepath.Join(s.dir, v), 0o755); err != nil {
		s.t.Fatal(err)
	}
	for k, b := range files {
		if err := os.WriteFile(filepath.Join(s.dir, v, k), b, 0o600); err != nil {
			s.t.Fatal(err)
		}
	}
	tmp := filepath.Join(s.dir, "..data_tmp")
	if err := os.Symlink(v, tmp); err != nil {
		s.t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(s.dir, "..data")); err != nil {
		s.t.Fatal(err)
	}
}
