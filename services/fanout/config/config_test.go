package config

import (
	"errors"
	"os"
	"path/filepath"
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

func TestDefaultsAreValid(t *testing.T) {
	c, err := load(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Token() != "" || c.MaxConnectionsPerIP != 100 || c.ResumeWindow.Seconds() != 60 || c.Pattern() != nil {
		t.Fatalf("defaults %+v", c)
	}
}

func TestInvalidValuesNameTheirVariable(t *testing.T) {
	for name, value := range map[string]string{
		"FANOUT_TOPIC_PATTERN":          "(",
		"FANOUT_DISCOVERY_INTERVAL":     "1m",
		"FANOUT_AUTH_TOKEN":             "two words",
		"FANOUT_AUTH_TOKEN_FILE":        "/nonexistent/token",
		"FANOUT_MAX_CONNECTIONS_PER_IP": "-1",
		"FANOUT_TRUSTED_PROXIES":        "not-a-cidr",
		"FANOUT_RESUME_WINDOW":          "1h",
		"FANOUT_TAIL_BUFFER":            "10",
		"FANOUT_MAX_SESSIONS":           "0",
		"FANOUT_SESSION_TIMEOUT":        "0s",
		"FANOUT_MAX_STREAMS":            "0",
		"FANOUT_STALE_AFTER":            "10ms",
	} {
		t.Run(name, func(t *testing.T) {
			_, err := load(t, map[string]string{name: value})
			var ve *envconf.VarError
			if !errors.As(err, &ve) || ve.Var != name {
				t.Fatalf("%s=%q: %v", name, value, err)
			}
		})
	}
}

func TestPatternAloneAndTokenFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(file, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := load(t, map[string]string{"FANOUT_TOPICS": "", "FANOUT_TOPIC_PATTERN": "playback-.*", "FANOUT_AUTH_TOKEN_FILE": file, "FANOUT_TRUSTED_PROXIES": "10.0.0.0/8,192.168.1.1"})
	if err != nil {
		t.Fatal(err)
	}
	if c.Token() != "s3cret" || !c.Pattern().MatchString("playback-x") || c.Pattern().MatchString("xplayback-x") || len(c.Proxies()) != 2 {
		t.Fatalf("%+v", c)
	}
	if _, err := load(t, map[string]string{"FANOUT_TOPICS": "", "FANOUT_TOPIC_PATTERN": ""}); err == nil {
		t.Fatal("no topic and no pattern must be refused")
	}
}
