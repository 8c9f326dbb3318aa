package kafkacfg

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"playpulse.dev/services/playback/kafkacfg/kafkacfgtest"
)

// TestExplain: each way a secured connection fails, produced for real
// (TLS handshakes against a server with the certificates of the case) or
// as sarama returns it, is explained with its reason, the variable to fix
// and the file it names.
func TestExplain(t *testing.T) {
	clusterCA, otherCA, clientsCA := kafkacfgtest.NewCA(t, "cluster-ca"), kafkacfgtest.NewCA(t, "other-ca"), kafkacfgtest.NewCA(t, "clients-ca")
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	caFile := write("ca.crt", clusterCA.PEM)
	rogueCert, rogueKey := valid(t, otherCA, "user")
	rogueCertFile, rogueKeyFile := write("rogue.crt", rogueCert), write("rogue.key", rogueKey)
	oldCert, oldKey := clientsCA.Issue(t, "user", time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour), localhost)
	oldCertFile, oldKeyFile := write("old.crt", oldCert), write("old.key", oldKey)
	pwFile := write("password", []byte("pw"))
	brokerOK := serverPair(t, clusterCA, "broker")
	expiredPEM, expiredKey := clusterCA.Issue(t, "broker", time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour), localhost)
	brokerExpired, err := tls.X509KeyPair(expiredPEM, expiredKey)
	if err != nil {
		t.Fatal(err)
	}
	brokerOther := serverPair(t, otherCA, "broker")
	clientsPool := x509.NewCertPool()
	clientsPool.AddCert(clientsCA.Cert)

	base := Config{Brokers: []string{"127.0.0.1:9093"}, Version: "3.9.0", TLSCAFile: caFile}
	withCert := func(cert, key string) Config { c := base; c.TLSCertFile, c.TLSKeyFile = cert, key; return c }
	tlsErr := func(c Config, server tls.Certificate, clientCAs *x509.CertPool) error {
		f, err := newFiles(&c)
		if err != nil {
			t.Fatal(err)
		}
		cerr, _ := handshake(t, c.tlsConfig(f), server, clientCAs)
		if cerr == nil {
			t.Fatal("the handshake succeeded")
		}
		return cerr
	}
	scram := base
	scram.SASLMechanism, scram.SASLUsername, scram.SASLPasswordFile = "SCRAM-SHA-512", "playpulse", pwFile

	tests := []struct {
		name      string
		cfg       Config
		err       func() error
		reason    string
		variable  string
		mentioned string // in the message
	}{
		{"untrusted CA", base, func() error { return tlsErr(base, brokerOther, nil) }, ReasonUntrustedCA, "KAFKA_TLS_CA_FILE", caFile},
		{"broker certificate expired", base, func() error { return tlsErr(base, brokerExpired, nil) }, ReasonBrokerCertExpired, "", "must renew it"},
		{"no client certificate for a mutual TLS listener", base, func() error { return tlsErr(base, brokerOK, clientsPool) }, ReasonClientCertRequired, "KAFKA_TLS_CERT_FILE", "KAFKA_TLS_KEY_FILE"},
		{"client certificate of another CA", withCert(rogueCertFile, rogueKeyFile), func() error { return tlsErr(withCert(rogueCertFile, rogueKeyFile), brokerOK, clientsPool) },
			ReasonClientCertRejected, "KAFKA_TLS_CERT_FILE", rogueCertFile},
		{"client certificate expired", withCert(oldCertFile, oldKeyFile), func() error { return tlsErr(withCert(oldCertFile, oldKeyFile), brokerOK, clientsPool) },
			ReasonClientCertExpired, "KAFKA_TLS_CERT_FILE", oldCertFile},
		{"wrong password", scram, func() error {
			return sarama.Wrap(sarama.ErrOutOfBrokers, fmt.Errorf("%w: Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512", sarama.ErrSASLAuthenticationFailed))
		}, ReasonSASLAuthentication, "KAFKA_SASL_PASSWORD_FILE", pwFile},
		{"mechanism not enabled", scram, func() error { return sarama.Wrap(sarama.ErrOutOfBrokers, sarama.ErrUnsupportedSASLMechanism) }, ReasonSASLMechanism, "KAFKA_SASL_MECHANISM", "SCRAM-SHA-512"},
		{"TLS to a plaintext port", base, func() error {
			cc, sc := tcpPair(t)
			go func() { _, _ = sc.Write([]byte("\x00\x00\x00\x08not tls!")); _, _ = io.Copy(io.Discard, sc) }()
			defer sc.Close()
			defer cc.Close()
			return tls.Client(cc, &tls.Config{InsecureSkipVerify: true}).Handshake() //nolint:gosec // a test of the error only
		}, ReasonTLSNotOffered, "KAFKA_TLS", "TLS listener"},
		{"connection refused", base, func() error {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			ln.Close()
			_, err = net.Dial("tcp", addr)
			return sarama.Wrap(sarama.ErrOutOfBrokers, err)
		}, ReasonUnreachable, "KAFKA_BROKERS", "connection refused"},
		{"closed during the first request", base, func() error { return sarama.Wrap(sarama.ErrOutOfBrokers, io.EOF) }, ReasonConnectionClosed, "", "KAFKA_SASL_MECHANISM"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := tt.err()
			got := tt.cfg.Explain(raw)
			var c *Cause
			if !errors.As(got, &c) {
				t.Fatalf("%v: not explained", raw)
			}
			if c.Reason != tt.reason || c.Var != tt.variable || !strings.Contains(c.Msg, tt.mentioned) {
				t.Fatalf("explained as %q (var %q): %s\nwant reason %q, var %q, mentioning %q", c.Reason, c.Var, c.Msg, tt.reason, tt.variable, tt.mentioned)
			}
			if !errors.Is(got, raw) && got.(*Cause).Err != raw {
				t.Fatal("the explained error does not wrap the original")
			}
			if again := tt.cfg.Explain(got); again != got {
				t.Fatal("explaining an explained error changed it")
			}
			if ReasonOf(got) != tt.reason {
				t.Fatalf("ReasonOf = %q", ReasonOf(got))
			}
		})
	}
	if err := errors.New("something else"); base.Explain(err) != err || ReasonOf(err) != ReasonOther {
		t.Fatal("an unknown error must be returned as it is")
	}
}
