package kafkacfg

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/xdg-go/scram"

	"playpulse.dev/services/playback/kafkacfg/kafkacfgtest"
)

// localhost is the address the test certificates name (sarama sets the
// server name from the broker address).
var localhost = net.ParseIP("127.0.0.1")

// valid issues a certificate of ca for cn valid now.
func valid(t *testing.T, ca *kafkacfgtest.CA, cn string) (certPEM, keyPEM []byte) {
	t.Helper()
	return ca.Issue(t, cn, time.Now().Add(-time.Hour), time.Now().Add(time.Hour), localhost)
}

// serverPair is a key pair for cn signed by ca, for a test server.
func serverPair(t *testing.T, ca *kafkacfgtest.CA, cn string) tls.Certificate {
	t.Helper()
	kp, err := tls.X509KeyPair(valid(t, ca, cn))
	if err != nil {
		t.Fatal(err)
	}
	return kp
}

// handshake runs a TLS handshake between a client with tc and a server
// showing serverCert and, when clientCAs is set, requiring a client
// certificate signed by it; it returns the client's and the server's
// errors.
func handshake(t *testing.T, tc *tls.Config, serverCert tls.Certificate, clientCAs *x509.CertPool) (clientErr, serverErr error) {
	t.Helper()
	cc, sc := tcpPair(t)
	defer cc.Close()
	defer sc.Close()
	srvConf := &tls.Config{Certificates: []tls.Certificate{serverCert}}
	if clientCAs != nil {
		srvConf.ClientAuth, srvConf.ClientCAs = tls.RequireAndVerifyClientCert, clientCAs
	}
	done := make(chan error, 1)
	go func() {
		s := tls.Server(sc, srvConf)
		err := s.Handshake()
		if err != nil {
			sc.Close()
		}
		done <- err
	}()
	c := tc.Clone()
	c.ServerName = "127.0.0.1" // as sarama sets it from the broker address
	cl := tls.Client(cc, c)
	clientErr = cl.Handshake()
	if clientErr == nil {
		// TLS 1.3: a rejected client certificate shows on the first read.
		_ = cl.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		_, clientErr = cl.Read(make([]byte, 1))
		var ne net.Error
		if errors.As(clientErr, &ne) && ne.Timeout() {
			clientErr = nil
		}
	}
	cc.Close()
	return clientErr, <-done
}

// TestRotation: a client made once keeps working across a rotation of the
// CA, the client certificate and the password, each read again when its
// mounted Secret is swapped; files that cannot be used keep the previous
// material.
func TestRotation(t *testing.T) {
	clusterCA1, clusterCA2 := kafkacfgtest.NewCA(t, "cluster-ca v0"), kafkacfgtest.NewCA(t, "cluster-ca v1")
	clientsCA1, clientsCA2 := kafkacfgtest.NewCA(t, "clients-ca v0"), kafkacfgtest.NewCA(t, "clients-ca v1")
	user1, key1 := valid(t, clientsCA1, "user")
	ca := kafkacfgtest.MountSecret(t, map[string][]byte{"ca.crt": clusterCA1.PEM})
	user := kafkacfgtest.MountSecret(t, map[string][]byte{"user.crt": user1, "user.key": key1})
	pw := kafkacfgtest.MountSecret(t, map[string][]byte{"password": []byte("first\n")})
	c := Config{Brokers: []string{"127.0.0.1:9093"}, Version: "3.9.0", TLSCAFile: ca.Path("ca.crt"),
		TLSCertFile: user.Path("user.crt"), TLSKeyFile: user.Path("user.key"),
		SASLMechanism: "SCRAM-SHA-512", SASLUsername: "u", SASLPasswordFile: pw.Path("password")}
	f, err := newFiles(&c)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	f.now = func() time.Time { return now }
	tc := c.tlsConfig(f)

	broker1 := serverPair(t, clusterCA1, "broker")
	broker2 := serverPair(t, clusterCA2, "broker")
	pool := func(ca *kafkacfgtest.CA) *x509.CertPool { p := x509.NewCertPool(); p.AddCert(ca.Cert); return p }
	if cerr, serr := handshake(t, tc, broker1, pool(clientsCA1)); cerr != nil || serr != nil {
		t.Fatalf("before the rotation: client %v, server %v", cerr, serr)
	}
	if got := f.saslPassword(); got != "first" {
		t.Fatalf("password %q", got)
	}

	// The cluster renews its CA and the user's certificate, and the
	// password changes: every Secret is swapped.
	user2, key2 := valid(t, clientsCA2, "user")
	ca.Update(map[string][]byte{"ca.crt": clusterCA2.PEM})
	user.Update(map[string][]byte{"user.crt": user2, "user.key": key2})
	pw.Update(map[string][]byte{"password": []byte("second")})
	// Within recheckEvery of the last look the files are not looked at.
	if cerr, _ := handshake(t, tc, broker2, pool(clientsCA2)); cerr == nil {
		t.Fatal("the new CA was used before recheckEvery passed: the files are stat'ed on every connection")
	}
	now = now.Add(recheckEvery)
	if cerr, serr := handshake(t, tc, broker2, pool(clientsCA2)); cerr != nil || serr != nil {
		t.Fatalf("after the rotation: client %v, server %v", cerr, serr)
	}
	if got := f.saslPassword(); got != "second" {
		t.Fatalf("password after the rotation %q, want second", got)
	}
	cl := newSCRAM(scramSHA512, f.saslPassword)
	if err := cl.Begin("u", "first", ""); err != nil { // sarama passes the password it was configured with
		t.Fatal(err)
	}

	// A certificate whose key does not match (the kubelet half-way, or a
	// bad secret) is not taken: the previous pair stays.
	_, otherKey := valid(t, clientsCA2, "user")
	user.Update(map[string][]byte{"user.crt": user2, "user.key": otherKey})
	now = now.Add(recheckEvery)
	if cerr, serr := handshake(t, tc, broker2, pool(clientsCA2)); cerr != nil || serr != nil {
		t.Fatalf("with a mismatched key file: client %v, server %v; want the previous pair", cerr, serr)
	}
}

// TestSCRAMUsesCurrentPassword: the SCRAM client sarama creates for a
// connection authenticates with the password file as it is, not with the
// password sarama was configured with: a SCRAM server (xdg-go/scram's)
// holding the current password's credentials accepts it, and refuses a
// client that used the stale one.
func TestSCRAMUsesCurrentPassword(t *testing.T) {
	stored, err := scramSHA512.NewClient("alice", "current", "")
	if err != nil {
		t.Fatal(err)
	}
	creds := stored.GetStoredCredentials(scram.KeyFactors{Salt: "salt-of-the-broker", Iters: 4096})
	conversation := func(password string) error {
		srv, err := scramSHA512.NewServer(func(string) (scram.StoredCredentials, error) { return creds, nil })
		if err != nil {
			return err
		}
		conv := srv.NewConversation()
		cl := newSCRAM(scramSHA512, func() string { return password })
		if err := cl.Begin("alice", "stale", ""); err != nil { // what sarama passes
			return err
		}
		msg, err := cl.Step("")
		for err == nil && !cl.Done() {
			var answer string
			if answer, err = conv.Step(msg); err == nil {
				msg, err = cl.Step(answer)
			}
		}
		if err == nil && !conv.Valid() {
			err = errors.New("the server did not validate the client")
		}
		return err
	}
	if err := conversation("current"); err != nil {
		t.Fatalf("with the current password: %v", err)
	}
	if err := conversation("stale"); err == nil {
		t.Fatal("a client with the stale password was accepted: the conversation checks nothing")
	}
}

// tcpPair is both ends of a loopback TCP connection (buffered by the
// kernel, unlike net.Pipe, so a side may write while the other writes).
func tcpPair(t *testing.T) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	return client, server
}
