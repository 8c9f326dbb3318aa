package kafkacfg_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/IBM/sarama"

	"playpulse.dev/services/playback/envconf"
	"playpulse.dev/services/playback/kafkacfg"
)

// TestChecksNameTheVariable: the tags (envconf.Check) and Validate together
// refuse every bad setting, naming its variable.
func TestChecksNameTheVariable(t *testing.T) {
	base := func() kafkacfg.Config {
		return kafkacfg.Config{Brokers: []string{"localhost:9092"}, ClientID: "x", Version: "3.9.0"}
	}
	tests := []struct {
		name    string
		mutate  func(*kafkacfg.Config)
		wantVar string
	}{
		{"ok", func(*kafkacfg.Config) {}, ""},
		{"no brokers", func(c *kafkacfg.Config) { c.Brokers = nil }, "KAFKA_BROKERS"},
		{"broker without port", func(c *kafkacfg.Config) { c.Brokers = []string{"kafka"} }, "KAFKA_BROKERS"},
		{"bad version", func(c *kafkacfg.Config) { c.Version = "four" }, "KAFKA_VERSION"},
		{"cert without key", func(c *kafkacfg.Config) { c.TLSCertFile = "c.pem" }, "KAFKA_TLS_CERT_FILE"},
		{"unknown mechanism", func(c *kafkacfg.Config) { c.SASLMechanism = "GSSAPI" }, "KAFKA_SASL_MECHANISM"},
		{"scram without user", func(c *kafkacfg.Config) { c.SASLMechanism = "SCRAM-SHA-512"; c.SASLPassword = "p" }, "KAFKA_SASL_USERNAME"},
		{"plain without password", func(c *kafkacfg.Config) { c.SASLMechanism = "PLAIN"; c.SASLUsername = "u" }, "KAFKA_SASL_PASSWORD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := base()
			tt.mutate(&c)
			err := envconf.Check(&c)
			if err == nil {
				err = c.Validate()
			}
			if tt.wantVar == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			var ve *envconf.VarError
			if !errors.As(err, &ve) || ve.Var != tt.wantVar {
				t.Fatalf("err = %v, want one naming %s", err, tt.wantVar)
			}
		})
	}
}

func TestEmptyBrokersFromEnvironment(t *testing.T) {
	t.Setenv("KAFKA_BROKERS", "")
	var c kafkacfg.Config
	err := envconf.Load(&c)
	var ve *envconf.VarError
	if !errors.As(err, &ve) || ve.Var != "KAFKA_BROKERS" {
		t.Fatalf("KAFKA_BROKERS= gives %v", err)
	}
}

func TestSaramaSASL(t *testing.T) {
	pwFile := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pwFile, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, mech := range []string{"PLAIN", "SCRAM-SHA-512", "SCRAM-SHA-256"} {
		c := kafkacfg.Config{Brokers: []string{"b:9092"}, Version: "4.0.0", SASLMechanism: mech, SASLUsername: "alice", SASLPasswordFile: pwFile}
		sc, err := c.Sarama()
		if err != nil {
			t.Fatalf("%s: %v", mech, err)
		}
		if !sc.Net.SASL.Enable || string(sc.Net.SASL.Mechanism) != mech || sc.Net.SASL.User != "alice" || sc.Net.SASL.Password != "s3cret" {
			t.Fatalf("%s: SASL config %+v", mech, sc.Net.SASL)
		}
		if mech != "PLAIN" {
			// The SCRAM client must produce a client-first message.
			cl := sc.Net.SASL.SCRAMClientGeneratorFunc()
			if err := cl.Begin("alice", "s3cret", ""); err != nil {
				t.Fatal(err)
			}
			first, err := cl.Step("")
			if err != nil || len(first) < 10 || first[:5] != "n,,n=" {
				t.Fatalf("%s: client-first %q, %v", mech, first, err)
			}
		}
		if sc.Version != sarama.V4_0_0_0 {
			t.Fatalf("version %v", sc.Version)
		}
	}
}

func TestSaramaTLS(t *testing.T) {
	c := kafkacfg.Config{Brokers: []string{"b:9093"}, Version: "3.9.0", TLSCAFile: filepath.Join(t.TempDir(), "missing.pem")}
	if _, err := c.Sarama(); err == nil {
		t.Fatal("missing CA file accepted")
	}
	c = kafkacfg.Config{Brokers: []string{"b:9093"}, Version: "3.9.0", TLS: true}
	sc, err := c.Sarama()
	if err != nil {
		t.Fatal(err)
	}
	if !sc.Net.TLS.Enable || sc.Net.TLS.Config.InsecureSkipVerify {
		t.Fatalf("TLS config %+v", sc.Net.TLS)
	}
}
