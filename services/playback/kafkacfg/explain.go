package kafkacfg

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/IBM/sarama"
)

// Cause is a Kafka connection failure explained: what went wrong, in words
// an operator acts on, and the setting to fix. Services put it in /readyz
// and in their log lines (Explain), so that a wrong password or an expired
// certificate reads as such instead of "client has run out of available
// brokers to talk to".
type Cause struct {
	// Reason is a short fixed name (a metric label): one of the Reason*
	// constants.
	Reason string
	// Var is the variable to fix, "" when no client setting can fix it
	// (a broker's certificate expired).
	Var string
	// Msg says what happened and what to do.
	Msg string
	// Err is the error as the Kafka client returned it.
	Err error
}

// Reasons of a Cause.
const (
	ReasonSASLAuthentication = "sasl_authentication_failed"
	ReasonSASLMechanism      = "sasl_mechanism_not_enabled"
	ReasonSASLNotExpected    = "sasl_not_expected"
	ReasonUntrustedCA        = "untrusted_broker_certificate"
	ReasonBrokerCertExpired  = "broker_certificate_expired"
	ReasonBrokerCertName     = "broker_certificate_wrong_name"
	ReasonClientCertExpired  = "client_certificate_expired"
	ReasonClientCertRejected = "client_certificate_rejected"
	ReasonClientCertRequired = "client_certificate_required"
	ReasonCredentialFiles    = "credential_files_unusable"
	ReasonTLSNotOffered      = "tls_not_offered"
	ReasonConnectionClosed   = "connection_closed"
	ReasonNotAuthorized      = "not_authorized"
	ReasonUnreachable        = "unreachable"
	ReasonTimeout            = "timeout"
	ReasonOther              = "other"
)

// Reasons lists every Reason, for metrics that pre-create their labels.
func Reasons() []string {
	return []string{ReasonSASLAuthentication, ReasonSASLMechanism, ReasonSASLNotExpected, ReasonUntrustedCA,
		ReasonBrokerCertExpired, ReasonBrokerCertName, ReasonClientCertExpired, ReasonClientCertRejected,
		ReasonClientCertRequired, ReasonCredentialFiles, ReasonTLSNotOffered, ReasonConnectionClosed,
		ReasonNotAuthorized, ReasonUnreachable, ReasonTimeout, ReasonOther}
}

func (c *Cause) Error() string {
	if c.Err == nil {
		return c.Msg
	}
	return c.Msg + " (" + c.Err.Error() + ")"
}

func (c *Cause) Unwrap() error { return c.Err }

// ReasonOf is the Reason of an explained error, ReasonOther for any other
// error and "" for nil.
func ReasonOf(err error) string {
	if err == nil {
		return ""
	}
	var c *Cause
	if errors.As(err, &c) {
		return c.Reason
	}
	return ReasonOther
}

// Explain returns err as a *Cause when it recognises why a connection to
// Kafka failed, naming the variable (and file) to fix; any other error is
// returned as it is. It reads the client certificate file to tell an
// expired certificate from a rejected one, so call it where a failure is
// recorded, not on every readiness probe.
func (c *Config) Explain(err error) error {
	if err == nil {
		return nil
	}
	var done *Cause
	if errors.As(err, &done) {
		return err
	}
	cause := c.explain(err)
	if cause == nil {
		return err
	}
	cause.Err = err
	return cause
}

// explain classifies err, most specific first.
func (c *Config) explain(err error) *Cause {
	msg := err.Error()
	var (
		unknownCA x509.UnknownAuthorityError
		invalid   x509.CertificateInvalidError
		hostname  x509.HostnameError
		header    tls.RecordHeaderError
		netErr    net.Error
	)
	switch {
	case errors.Is(err, sarama.ErrSASLAuthenticationFailed):
		return &Cause{Reason: ReasonSASLAuthentication, Var: c.passwordVar(),
			Msg: fmt.Sprintf("the broker refused user %q with %s: wrong password or unknown user; fix %s or KAFKA_SASL_USERNAME (Strimzi: the KafkaUser's Secret, key password)",
				c.SASLUsername, strings.ToUpper(c.SASLMechanism), c.passwordRef())}
	case errors.Is(err, sarama.ErrUnsupportedSASLMechanism):
		return &Cause{Reason: ReasonSASLMechanism, Var: "KAFKA_SASL_MECHANISM",
			Msg: fmt.Sprintf("the listener does not offer KAFKA_SASL_MECHANISM=%s: use the mechanism it has (Strimzi: scram-sha-512) or the address of the right listener in KAFKA_BROKERS", c.SASLMechanism)}
	case errors.Is(err, sarama.ErrIllegalSASLState):
		return &Cause{Reason: ReasonSASLNotExpected, Var: "KAFKA_SASL_MECHANISM",
			Msg: "the listener does not use SASL: unset KAFKA_SASL_MECHANISM, or put the SASL listener's address in KAFKA_BROKERS"}
	case errors.As(err, &unknownCA):
		return &Cause{Reason: ReasonUntrustedCA, Var: "KAFKA_TLS_CA_FILE",
			Msg: fmt.Sprintf("the broker's certificate (%s, issued by %s) is not signed by %s: untrusted CA; %s",
				name(unknownCA.Cert), issuer(unknownCA.Cert), c.trusted(), c.caFix())}
	case errors.As(err, &invalid) && invalid.Reason == x509.Expired:
		when := ""
		if invalid.Cert != nil {
			when = fmt.Sprintf(" (valid %s to %s)", invalid.Cert.NotBefore.UTC().Format(time.RFC3339), invalid.Cert.NotAfter.UTC().Format(time.RFC3339))
		}
		return &Cause{Reason: ReasonBrokerCertExpired,
			Msg: fmt.Sprintf("the broker's certificate %s has expired or is not valid yet%s: the broker must renew it (Strimzi renews the cluster's certificates itself: check the Kafka resource's status and the cluster CA), or this machine's clock is wrong; no client setting fixes this", name(invalid.Cert), when)}
	case errors.As(err, &invalid):
		return &Cause{Reason: ReasonUntrustedCA, Var: "KAFKA_TLS_CA_FILE",
			Msg: fmt.Sprintf("the broker's certificate %s cannot be used (%v); %s", name(invalid.Cert), invalid, c.caFix())}
	case errors.As(err, &hostname):
		return &Cause{Reason: ReasonBrokerCertName, Var: "KAFKA_BROKERS",
			Msg: fmt.Sprintf("the broker's certificate is not valid for %q (it names %s): use a broker address the certificate names in KAFKA_BROKERS (Strimzi: the bootstrap Service's name)", hostname.Host, certNames(hostname.Certificate))}
	}
	if cause := c.clientCertProblem(); cause != nil && (isTLSAlert(msg) || isClosed(err)) {
		return cause
	}
	switch {
	case isTLSAlert(msg):
		alert := msg[strings.LastIndex(msg, "tls: ")+len("tls: "):]
		if c.TLSCertFile == "" {
			return &Cause{Reason: ReasonClientCertRequired, Var: "KAFKA_TLS_CERT_FILE",
				Msg: fmt.Sprintf("the broker ended the TLS handshake (%s): its listener wants a client certificate (mutual TLS); set KAFKA_TLS_CERT_FILE and KAFKA_TLS_KEY_FILE (Strimzi: the tls KafkaUser's Secret, user.crt and user.key)", alert)}
		}
		return &Cause{Reason: ReasonClientCertRejected, Var: "KAFKA_TLS_CERT_FILE",
			Msg: fmt.Sprintf("the broker rejected the client certificate in KAFKA_TLS_CERT_FILE (%s): %s; it must be signed by the clients CA the listener trusts (Strimzi: the tls KafkaUser's Secret, user.crt and user.key); fix KAFKA_TLS_CERT_FILE and KAFKA_TLS_KEY_FILE", c.TLSCertFile, alert)}
	case errors.As(err, &header):
		return &Cause{Reason: ReasonTLSNotOffered, Var: "KAFKA_TLS",
			Msg: "the broker does not speak TLS on that port: put the TLS listener's address in KAFKA_BROKERS (Strimzi: port 9093), or set KAFKA_TLS=false and no KAFKA_TLS_* file for a plaintext listener"}
	case errors.Is(err, sarama.ErrTopicAuthorizationFailed), errors.Is(err, sarama.ErrClusterAuthorizationFailed),
		errors.Is(err, sarama.ErrGroupAuthorizationFailed), errors.Is(err, sarama.ErrTransactionalIDAuthorizationFailed):
		return &Cause{Reason: ReasonNotAuthorized,
			Msg: fmt.Sprintf("the broker does not allow %s this (%v): grant the ACLs docs/operations.md lists (Strimzi: the KafkaUser's spec.authorization)", c.principal(), firstKError(err))}
	case errors.Is(err, syscall.ECONNREFUSED):
		return &Cause{Reason: ReasonUnreachable, Var: "KAFKA_BROKERS",
			Msg: fmt.Sprintf("nothing listens at %s (connection refused): check the broker addresses (KAFKA_BROKERS)", dialed(err))}
	case isClosed(err):
		return &Cause{Reason: ReasonConnectionClosed,
			Msg: "the broker closed the connection during its first requests: a TLS or SASL listener answers a client that does not use them so; check that KAFKA_TLS and KAFKA_SASL_MECHANISM match the listener in KAFKA_BROKERS (or the broker is restarting)"}
	case errors.As(err, &netErr) && netErr.Timeout():
		return &Cause{Reason: ReasonTimeout, Var: "KAFKA_BROKERS",
			Msg: fmt.Sprintf("no answer from %s in time: check the broker addresses (KAFKA_BROKERS) and the network between", dialed(err))}
	}
	return nil
}

// clientCertProblem checks the client certificate file as it is now:
// expired, not valid yet, or unusable.
func (c *Config) clientCertProblem() *Cause {
	if c.TLSCertFile == "" {
		return nil
	}
	b, err := os.ReadFile(c.TLSCertFile)
	if err != nil {
		return &Cause{Reason: ReasonCredentialFiles, Var: "KAFKA_TLS_CERT_FILE", Msg: fmt.Sprintf("KAFKA_TLS_CERT_FILE cannot be read: %v", err)}
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return &Cause{Reason: ReasonCredentialFiles, Var: "KAFKA_TLS_CERT_FILE", Msg: fmt.Sprintf("KAFKA_TLS_CERT_FILE (%s) holds no PEM certificate", c.TLSCertFile)}
	}
	cert, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return &Cause{Reason: ReasonCredentialFiles, Var: "KAFKA_TLS_CERT_FILE", Msg: fmt.Sprintf("KAFKA_TLS_CERT_FILE (%s): %v", c.TLSCertFile, err)}
	}
	now := time.Now()
	switch {
	case now.After(cert.NotAfter):
		return &Cause{Reason: ReasonClientCertExpired, Var: "KAFKA_TLS_CERT_FILE",
			Msg: fmt.Sprintf("the client certificate in KAFKA_TLS_CERT_FILE (%s, %s) expired at %s: renew it (Strimzi's User Operator renews the KafkaUser's Secret, user.crt and user.key; the files are read again when they change)",
				c.TLSCertFile, name(cert), cert.NotAfter.UTC().Format(time.RFC3339))}
	case now.Before(cert.NotBefore):
		return &Cause{Reason: ReasonClientCertExpired, Var: "KAFKA_TLS_CERT_FILE",
			Msg: fmt.Sprintf("the client certificate in KAFKA_TLS_CERT_FILE (%s, %s) is not valid before %s: check this machine's clock, or the certificate",
				c.TLSCertFile, name(cert), cert.NotBefore.UTC().Format(time.RFC3339))}
	}
	return nil
}

// dialed is the address a network error is about, or "the brokers".
func dialed(err error) string {
	var op *net.OpError
	if errors.As(err, &op) && op.Addr != nil {
		return op.Addr.String()
	}
	return "the brokers"
}

func isTLSAlert(msg string) bool { return strings.Contains(msg, "remote error: tls: ") }

// isClosed: the broker closed the connection (EOF, reset) before
// answering.
func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

func (c *Config) passwordVar() string {
	if c.SASLPasswordFile != "" {
		return "KAFKA_SASL_PASSWORD_FILE"
	}
	return "KAFKA_SASL_PASSWORD"
}

func (c *Config) passwordRef() string {
	if c.SASLPasswordFile != "" {
		return fmt.Sprintf("KAFKA_SASL_PASSWORD_FILE (%s)", c.SASLPasswordFile)
	}
	return "KAFKA_SASL_PASSWORD"
}

func (c *Config) trusted() string {
	if c.TLSCAFile != "" {
		return fmt.Sprintf("a CA in KAFKA_TLS_CA_FILE (%s)", c.TLSCAFile)
	}
	return "a CA this system trusts (no KAFKA_TLS_CA_FILE)"
}

func (c *Config) caFix() string {
	if c.TLSCAFile != "" {
		return fmt.Sprintf("fix KAFKA_TLS_CA_FILE (%s): it must hold the CA that signed the brokers' certificates (Strimzi: the <cluster>-cluster-ca-cert Secret, key ca.crt)", c.TLSCAFile)
	}
	return "set KAFKA_TLS_CA_FILE to the CA that signed the brokers' certificates (Strimzi: the <cluster>-cluster-ca-cert Secret, key ca.crt)"
}

func (c *Config) principal() string {
	switch {
	case c.SASLMechanism != "":
		return fmt.Sprintf("user %q", c.SASLUsername)
	case c.TLSCertFile != "":
		return "the client certificate's user"
	}
	return "this client"
}

func firstKError(err error) error {
	var k sarama.KError
	if errors.As(err, &k) {
		return k
	}
	return err
}

func name(c *x509.Certificate) string {
	if c == nil {
		return "(none)"
	}
	return c.Subject.String()
}

func issuer(c *x509.Certificate) string {
	if c == nil {
		return "(none)"
	}
	return c.Issuer.String()
}

func certNames(c *x509.Certificate) string {
	if c == nil {
		return "no names"
	}
	var names []string
	names = append(names, c.DNSNames...)
	for _, ip := range c.IPAddresses {
		names = append(names, ip.String())
	}
	if len(names) == 0 {
		return "no names"
	}
	return strings.Join(names, ", ")
}
