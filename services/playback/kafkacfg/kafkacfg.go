// Package kafkacfg is the one place where Kafka client settings are read
// and turned into a sarama configuration, so that the producer, the fan-out
// and the controller connect the same way: plain, TLS, mutual TLS, SASL
// PLAIN or SCRAM-SHA-512 (the listener types Strimzi offers).
package kafkacfg

import (
	"crypto/tls"
	"fmt"
	"strings"

	"github.com/IBM/sarama"
	"github.com/rcrowley/go-metrics"

	"playpulse.dev/services/playback/envconf"
)

// sarama records go-metrics meters on every request, which costs CPU on the
// hot path and starts a process-wide goroutine that never ends. Playpulse
// exports its own Prometheus metrics instead.
func init() { metrics.UseNilMetrics = true }

// Config holds the Kafka client settings. Services embed it anonymously in
// their own config struct, so the variables keep these exact names.
type Config struct {
	Brokers  []string `envconfig:"KAFKA_BROKERS" default:"localhost:9092" format:"hostport" desc:"comma-separated bootstrap brokers, host:port"`
	ClientID string   `envconfig:"KAFKA_CLIENT_ID" default:"playpulse" desc:"client id sent to Kafka (shows in broker logs and quotas)"`
	Version  string   `envconfig:"KAFKA_VERSION" default:"3.9.0" desc:"Kafka protocol version to speak; any broker from 3.9 on, including 4.x, accepts the default"`

	TLS                   bool   `envconfig:"KAFKA_TLS" default:"false" desc:"connect with TLS (implied by any KAFKA_TLS_* file)"`
	TLSCAFile             string `envconfig:"KAFKA_TLS_CA_FILE" desc:"PEM file of CAs to trust instead of the system roots (Strimzi: the cluster CA secret's ca.crt)"`
	TLSCertFile           string `envconfig:"KAFKA_TLS_CERT_FILE" desc:"PEM client certificate for mutual TLS (Strimzi KafkaUser with tls authentication: user.crt)"`
	TLSKeyFile            string `envconfig:"KAFKA_TLS_KEY_FILE" desc:"PEM private key of KAFKA_TLS_CERT_FILE (user.key)"`
	TLSInsecureSkipVerify bool   `envconfig:"KAFKA_TLS_INSECURE_SKIP_VERIFY" default:"false" desc:"do not verify the broker certificate; for debugging only"`

	SASLMechanism    string `envconfig:"KAFKA_SASL_MECHANISM" desc:"empty (no SASL), PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512"`
	SASLUsername     string `envconfig:"KAFKA_SASL_USERNAME" desc:"SASL user name"`
	SASLPassword     string `envconfig:"KAFKA_SASL_PASSWORD" desc:"SASL password; prefer KAFKA_SASL_PASSWORD_FILE"`
	SASLPasswordFile string `envconfig:"KAFKA_SASL_PASSWORD_FILE" desc:"file holding the SASL password (a mounted Strimzi KafkaUser secret)"`
}

// Validate checks what the tags cannot (each broker's host:port is the
// format tag's) and names the variable at fault.
func (c *Config) Validate() error {
	if len(c.Brokers) == 0 {
		return envconf.Invalid("KAFKA_BROKERS", "must list at least one broker, e.g. localhost:9092")
	}
	if _, err := sarama.ParseKafkaVersion(c.Version); err != nil {
		return envconf.Invalid("KAFKA_VERSION", "%v", err)
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		return envconf.Invalid("KAFKA_TLS_CERT_FILE", "KAFKA_TLS_CERT_FILE and KAFKA_TLS_KEY_FILE go together")
	}
	switch strings.ToUpper(c.SASLMechanism) {
	case "":
	case sarama.SASLTypePlaintext, sarama.SASLTypeSCRAMSHA256, sarama.SASLTypeSCRAMSHA512:
		if c.SASLUsername == "" {
			return envconf.Invalid("KAFKA_SASL_USERNAME", "required with KAFKA_SASL_MECHANISM=%s", c.SASLMechanism)
		}
		if c.SASLPassword == "" && c.SASLPasswordFile == "" {
			return envconf.Invalid("KAFKA_SASL_PASSWORD", "KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE is required with KAFKA_SASL_MECHANISM=%s", c.SASLMechanism)
		}
	default:
		return envconf.Invalid("KAFKA_SASL_MECHANISM", "%q is not one of PLAIN, SCRAM-SHA-256, SCRAM-SHA-512", c.SASLMechanism)
	}
	return nil
}

// Sarama returns a sarama configuration with the connection settings
// applied, reading the TLS and SASL files it names; each service's resolve
// step calls it, so an unreadable file is a configuration error at start.
// Callers set what is specific to them (producer acks, consumer offsets) on
// the result.
//
// The files are read again when they change (a rotated Kubernetes Secret):
// every new connection uses the CA, client certificate and SCRAM password
// as they are then, so clients reconnect with new credentials without a
// restart. A PLAIN password is the exception: sarama sends the one it was
// configured with, so PLAIN needs a restart after a rotation (Strimzi's
// users are SCRAM-SHA-512 or TLS).
func (c *Config) Sarama() (*sarama.Config, error) {
	sc := sarama.NewConfig()
	sc.ClientID = c.ClientID
	v, err := sarama.ParseKafkaVersion(c.Version)
	if err != nil {
		return nil, envconf.Invalid("KAFKA_VERSION", "%v", err)
	}
	sc.Version = v
	f, err := newFiles(c)
	if err != nil {
		return nil, err
	}
	if c.TLS || c.TLSCAFile != "" || c.TLSCertFile != "" || c.TLSInsecureSkipVerify {
		sc.Net.TLS.Enable = true
		sc.Net.TLS.Config = c.tlsConfig(f)
	}
	if mech := strings.ToUpper(c.SASLMechanism); mech != "" {
		pw := c.SASLPassword
		if c.SASLPasswordFile != "" {
			pw = f.saslPassword()
		}
		sc.Net.SASL.Enable = true
		sc.Net.SASL.Handshake = true
		sc.Net.SASL.User = c.SASLUsername
		sc.Net.SASL.Password = pw // sarama requires one; SCRAM asks f for the current one
		sc.Net.SASL.Mechanism = sarama.SASLMechanism(mech)
		current := func() string { return c.SASLPassword }
		if c.SASLPasswordFile != "" {
			current = f.saslPassword
		}
		switch mech {
		case sarama.SASLTypeSCRAMSHA512:
			sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return newSCRAM(scramSHA512, current) }
		case sarama.SASLTypeSCRAMSHA256:
			sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return newSCRAM(scramSHA256, current) }
		}
	}
	if err := sc.Validate(); err != nil {
		return nil, fmt.Errorf("kafka client config: %w", err)
	}
	return sc, nil
}

// tlsConfig verifies the broker against KAFKA_TLS_CA_FILE and shows the
// client certificate as the files are at each handshake (files). Without a
// CA file the system roots verify the broker, as crypto/tls does by
// itself.
func (c *Config) tlsConfig(f *files) *tls.Config {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case c.TLSInsecureSkipVerify:
		tc.InsecureSkipVerify = true //nolint:gosec // opt-in, documented as debug only
	case c.TLSCAFile != "":
		// crypto/tls would verify against the CAs read once; verifyBroker
		// does the same checks against the file as it is now.
		tc.InsecureSkipVerify = true //nolint:gosec // verified in VerifyConnection
		tc.VerifyConnection = f.verifyBroker
	}
	if c.TLSCertFile != "" {
		tc.GetClientCertificate = f.clientCertificate
	}
	return tc
}
