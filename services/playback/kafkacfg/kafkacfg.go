// Package kafkacfg is the one place where Kafka client settings are read
// and turned into a sarama configuration, so that the producer, the fan-out
// and the controller connect the same way: plain, TLS, mutual TLS, SASL
// PLAIN or SCRAM-SHA-512 (the listener types Strimzi offers).
package kafkacfg

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
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
	Brokers  []string `envconfig:"KAFKA_BROKERS" default:"localhost:9092" desc:"comma-separated bootstrap brokers, host:port"`
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

// Validate checks the settings and names the variable at fault.
func (c *Config) Validate() error {
	if len(c.Brokers) == 0 {
		return envconf.Invalid("KAFKA_BROKERS", "must list at least one broker, e.g. localhost:9092")
	}
	for _, b := range c.Brokers {
		host, port, ok := strings.Cut(strings.TrimSpace(b), ":")
		if !ok || host == "" || port == "" {
			return envconf.Invalid("KAFKA_BROKERS", "%q is not host:port", b)
		}
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

// BrokerList returns the brokers with surrounding spaces removed.
func (c *Config) BrokerList() []string {
	out := make([]string, len(c.Brokers))
	for i, b := range c.Brokers {
		out[i] = strings.TrimSpace(b)
	}
	return out
}

// Sarama returns a sarama configuration with the connection settings
// applied. Callers set what is specific to them (producer acks, consumer
// offsets) on the result.
func (c *Config) Sarama() (*sarama.Config, error) {
	sc := sarama.NewConfig()
	sc.ClientID = c.ClientID
	v, err := sarama.ParseKafkaVersion(c.Version)
	if err != nil {
		return nil, fmt.Errorf("KAFKA_VERSION: %w", err)
	}
	sc.Version = v
	if c.TLS || c.TLSCAFile != "" || c.TLSCertFile != "" || c.TLSInsecureSkipVerify {
		tc, err := c.tlsConfig()
		if err != nil {
			return nil, err
		}
		sc.Net.TLS.Enable = true
		sc.Net.TLS.Config = tc
	}
	if mech := strings.ToUpper(c.SASLMechanism); mech != "" {
		pw := c.SASLPassword
		if c.SASLPasswordFile != "" {
			b, err := os.ReadFile(c.SASLPasswordFile)
			if err != nil {
				return nil, fmt.Errorf("KAFKA_SASL_PASSWORD_FILE: %w", err)
			}
			pw = strings.TrimRight(string(b), "\r\n")
		}
		sc.Net.SASL.Enable = true
		sc.Net.SASL.Handshake = true
		sc.Net.SASL.User = c.SASLUsername
		sc.Net.SASL.Password = pw
		sc.Net.SASL.Mechanism = sarama.SASLMechanism(mech)
		switch mech {
		case sarama.SASLTypeSCRAMSHA512:
			sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return newSCRAM(scramSHA512) }
		case sarama.SASLTypeSCRAMSHA256:
			sc.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return newSCRAM(scramSHA256) }
		}
	}
	if err := sc.Validate(); err != nil {
		return nil, fmt.Errorf("kafka client config: %w", err)
	}
	return sc, nil
}

func (c *Config) tlsConfig() (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: c.TLSInsecureSkipVerify} //nolint:gosec // opt-in, documented as debug only
	if c.TLSCAFile != "" {
		pem, err := os.ReadFile(c.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("KAFKA_TLS_CA_FILE: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("KAFKA_TLS_CA_FILE: no PEM certificates in %s", c.TLSCAFile)
		}
		tc.RootCAs = pool
	}
	if c.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("KAFKA_TLS_CERT_FILE/KAFKA_TLS_KEY_FILE: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
