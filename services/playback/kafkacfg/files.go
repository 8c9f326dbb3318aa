package kafkacfg

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"os"
	"strings"
	"sync"
	"time"

	"playpulse.dev/services/playback/envconf"
)

// recheckEvery bounds how often the credential files are looked at: at most
// once a second, and only when a connection is being made, so a client that
// is connected costs nothing and one that reconnects in a loop costs a few
// stat calls a second.
const recheckEvery = time.Second

// files holds what the credential files (KAFKA_TLS_CA_FILE,
// KAFKA_TLS_CERT_FILE with KAFKA_TLS_KEY_FILE, KAFKA_SASL_PASSWORD_FILE)
// held when last read, and reads them again when they change: a mounted
// Kubernetes Secret is updated by the kubelet swapping a symlink, which
// changes what the paths resolve to, and a Strimzi KafkaUser's password or
// certificate is renewed that way. Each new connection asks for the current
// material (the TLS callbacks, the SCRAM client), so a client reconnecting
// after a rotation uses the new files without a restart; connections
// already authenticated stay as they are.
type files struct {
	ca, cert, key, password string // paths; "" when not configured
	now                     func() time.Time

	mu      sync.Mutex
	checked time.Time
	stamps  map[string]stamp
	pool    *x509.CertPool
	leaf    *tls.Certificate
	secret  string
}

// stamp identifies a version of a file: a rotated secret is a new file.
type stamp struct {
	mod  time.Time
	size int64
}

// newFiles reads the files for the first time; an error names the
// variable, as configuration errors at start do.
func newFiles(c *Config) (*files, error) {
	f := &files{ca: c.TLSCAFile, cert: c.TLSCertFile, key: c.TLSKeyFile, password: c.SASLPasswordFile, now: time.Now}
	if err := f.load(); err != nil {
		return nil, err
	}
	f.checked = f.now()
	return f, nil
}

func (f *files) paths() []string {
	var out []string
	for _, p := range []string{f.ca, f.cert, f.key, f.password} {
		if p != "" {
			out = append(out, p)
		}
	}
	return out
}

// load reads every configured file and replaces the material only if all
// of it is usable. Called with f.mu held, or before f is shared.
func (f *files) load() error {
	stamps := map[string]stamp{}
	read := func(variable, path string) ([]byte, error) {
		fi, err := os.Stat(path)
		if err != nil {
			return nil, envconf.Invalid(variable, "%v", err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return nil, envconf.Invalid(variable, "%v", err)
		}
		stamps[path] = stamp{fi.ModTime(), fi.Size()}
		return b, nil
	}
	var (
		pool   *x509.CertPool
		leaf   *tls.Certificate
		secret string
	)
	if f.ca != "" {
		pem, err := read("KAFKA_TLS_CA_FILE", f.ca)
		if err != nil {
			return err
		}
		pool = x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return envconf.Invalid("KAFKA_TLS_CA_FILE", "no PEM certificates in %s", f.ca)
		}
	}
	if f.cert != "" {
		certPEM, err := read("KAFKA_TLS_CERT_FILE", f.cert)
		if err != nil {
			return err
		}
		keyPEM, err := read("KAFKA_TLS_KEY_FILE", f.key)
		if err != nil {
			return err
		}
		kp, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return envconf.Invalid("KAFKA_TLS_CERT_FILE", "with KAFKA_TLS_KEY_FILE: %v", err)
		}
		leaf = &kp
	}
	if f.password != "" {
		b, err := read("KAFKA_SASL_PASSWORD_FILE", f.password)
		if err != nil {
			return err
		}
		secret = strings.TrimRight(string(b), "\r\n")
		if secret == "" {
			return envconf.Invalid("KAFKA_SASL_PASSWORD_FILE", "%s is empty", f.password)
		}
	}
	f.stamps, f.pool, f.leaf, f.secret = stamps, pool, leaf, secret
	return nil
}

// refresh reads the files again if one of them changed since they were
// last read, at most once per recheckEvery.
func (f *files) refresh() {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.now()
	if now.Sub(f.checked) < recheckEvery {
		return
	}
	f.checked = now
	changed := false
	for _, p := range f.paths() {
		fi, err := os.Stat(p)
		if err != nil || (stamp{fi.ModTime(), fi.Size()}) != f.stamps[p] {
			changed = true
			break
		}
	}
	if !changed {
		return
	}
	// Files that cannot be used (the kubelet half-way through an update, a
	// key that does not match its certificate) leave the previous material
	// in use and the stamps as they were, so the next connection tries
	// again; Explain reports an unusable client certificate file.
	_ = f.load()
}

func (f *files) current() (*x509.CertPool, *tls.Certificate, string) {
	f.refresh()
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pool, f.leaf, f.secret
}

// clientCertificate is tls.Config.GetClientCertificate: the certificate
// of KAFKA_TLS_CERT_FILE as it is now.
func (f *files) clientCertificate(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
	_, leaf, _ := f.current()
	if leaf == nil {
		return &tls.Certificate{}, nil // none: the broker decides
	}
	return leaf, nil
}

// verifyBroker is tls.Config.VerifyConnection: the broker's chain checked
// against the CAs of KAFKA_TLS_CA_FILE as it is now, and its name against
// the address dialled. It replaces crypto/tls's own verification, which
// would use the CAs read at start for the life of the process.
func (f *files) verifyBroker(cs tls.ConnectionState) error {
	pool, _, _ := f.current()
	if len(cs.PeerCertificates) == 0 {
		return errors.New("kafka: the broker sent no certificate")
	}
	opts := x509.VerifyOptions{
		DNSName:       cs.ServerName,
		Roots:         pool,
		Intermediates: x509.NewCertPool(),
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, c := range cs.PeerCertificates[1:] {
		opts.Intermediates.AddCert(c)
	}
	if _, err := cs.PeerCertificates[0].Verify(opts); err != nil {
		return &tls.CertificateVerificationError{UnverifiedCertificates: cs.PeerCertificates, Err: err}
	}
	return nil
}

// saslPassword is the password of KAFKA_SASL_PASSWORD_FILE as it is now.
func (f *files) saslPassword() string {
	_, _, pw := f.current()
	return pw
}
