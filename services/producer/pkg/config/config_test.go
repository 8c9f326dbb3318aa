package config

import (
	"errors"
	"strconv"
	"strings"
	"testing"

	"playpulse.dev/services/playback/envconf"
)

func load(t *testing.T, env map[string]string) (Config, error) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var c Config
	err := envconf.Load(&c)
	return c, err
}

func TestDefaultsResolve(t *testing.T) {
	c, err := load(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	if r.Rate != 100 || r.Topic != "playback-events" || r.Sarama == nil || r.Log == nil || r.Codec != Compressions["lz4"] {
		t.Fatalf("resolved %+v", r)
	}
	// The instance id is unique per process: host name plus a random suffix.
	r2, _ := c.Resolve()
	if r.Instance == "" || r.Instance == r2.Instance {
		t.Fatalf("instance ids %q, %q", r.Instance, r2.Instance)
	}
	c.ID = "fixed"
	if r, _ := c.Resolve(); r.Instance != "fixed" {
		t.Fatalf("PRODUCER_ID ignored: %q", r.Instance)
	}
}

// TestMaxRateIsTheTag: the bound -h prints is the constant the code uses.
func TestMaxRateIsTheTag(t *testing.T) {
	vars, err := envconf.Vars(&Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vars {
		if v.Name == "PRODUCER_RATE" {
			if v.Max != strconv.Itoa(MaxRate) || v.Min != "0" {
				t.Fatalf("PRODUCER_RATE range %q to %q, want 0 to %d", v.Min, v.Max, MaxRate)
			}
			return
		}
	}
	t.Fatal("no PRODUCER_RATE")
}

func TestBadValuesNameTheVariable(t *testing.T) {
	for _, tt := range []struct{ name, value string }{
		{"PRODUCER_RATE", "-5"},
		{"PRODUCER_RATE", "1000001"},
		{"PRODUCER_RATE", "NaN"},
		{"PRODUCER_TOPIC", ""},
		{"PRODUCER_STREAM", ""},
		{"PRODUCER_ADDR", "not-an-address"},
		{"PRODUCER_MAX_BUFFERED", "0"},
		{"PRODUCER_COMPRESSION", "gzip"},
		{"PRODUCER_LINGER", "2s"},
		{"PRODUCER_CATALOG_SIZE", "0"},
		{"PRODUCER_ZIPF_ALPHA", "6"},
		{"PRODUCER_DEVICE_MIX", "toaster:1"},
		{"PRODUCER_INCIDENTS", "name=x kind=flood from=2026-12-05T21:00:00Z until=2026-12-05T21:01:00Z"},
		{"PRODUCER_HEARTBEAT_INTERVAL", "1h"},
		{"KAFKA_BROKERS", "kafka"},
		{"LOG_LEVEL", "loud"},
	} {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			_, err := load(t, map[string]string{tt.name: tt.value})
			var ve *envconf.VarError
			if !errors.As(err, &ve) || ve.Var != tt.name {
				t.Fatalf("err %v, want one naming %s", err, tt.name)
			}
		})
	}
}

// TestUnreadableSecretIsAConfigError: the resolve step reads the Kafka
// credential files, so a missing one is reported at start, by name.
func TestUnreadableSecretIsAConfigError(t *testing.T) {
	c, err := load(t, map[string]string{"KAFKA_SASL_MECHANISM": "PLAIN", "KAFKA_SASL_USERNAME": "u", "KAFKA_SASL_PASSWORD_FILE": "/nonexistent/password"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Resolve(); err == nil || !strings.HasPrefix(err.Error(), "KAFKA_SASL_PASSWORD_FILE: ") {
		t.Fatalf("Resolve: %v", err)
	}
}
