package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"playpulse.dev/services/playback/envconf"
)

// load is what envconf.MustLoad does at start: load and check, then
// resolve.
func load(t *testing.T, env map[string]string) (Resolved, error) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var c Config
	if err := envconf.Load(&c); err != nil {
		return Resolved{}, err
	}
	return c.Resolve()
}

func TestDefaultsAreValid(t *testing.T) {
	c, err := load(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.Token != "" || c.MaxConnectionsPerIP != 100 || c.ResumeWindow.Seconds() != 60 || c.Sarama == nil || c.Log == nil {
		t.Fatalf("defaults %+v", c)
	}
}

// TestDefaultTopics: with no configuration the fan-out serves the
// producer's default topic and every topic the controller names by default,
// playback-<stream>, so a new PlaybackStream shows on the dashboard at once.
// An empty FANOUT_TOPIC_PATTERN turns the pattern off.
func TestDefaultTopics(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		topic   string
		served  bool
		noMatch bool // Pattern is nil
	}{
		{"producer default", nil, "playback-events", true, false},
		{"controller default", nil, "playback-prime-time", true, false},
		{"controller default, dotted stream", nil, "playback-tv.eu", true, false},
		{"no stream part", nil, "playback", false, false},
		{"prefix inside", nil, "xplayback-x", false, false},
		{"other topic", nil, "orders", false, false},
		{"pattern off", map[string]string{"FANOUT_TOPIC_PATTERN": ""}, "playback-prime-time", false, true},
		{"pattern off, listed topic", map[string]string{"FANOUT_TOPIC_PATTERN": ""}, "playback-events", true, true},
		{"own pattern", map[string]string{"FANOUT_TOPICS": "", "FANOUT_TOPIC_PATTERN": "tv-.*"}, "playback-events", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := load(t, tt.env)
			if err != nil {
				t.Fatal(err)
			}
			p := c.Pattern
			if (p == nil) != tt.noMatch {
				t.Fatalf("Pattern = %v", p)
			}
			served := slices.Contains(c.Topics, tt.topic) || (p != nil && p.MatchString(tt.topic))
			if served != tt.served {
				t.Errorf("topic %q served %v, want %v (topics %v, pattern %v)", tt.topic, served, tt.served, c.Topics, p)
			}
		})
	}
}

func TestInvalidValuesNameTheirVariable(t *testing.T) {
	for name, value := range map[string]string{
		"FANOUT_ADDR":                   "not-an-address",
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
		"FANOUT_FRAME_HZ":               "61",
		"FANOUT_MAX_FRAME_HZ":           "5", // below FANOUT_FRAME_HZ
		"FANOUT_FRAME_BUDGET":           "10",
		"FANOUT_ALLOWED_ORIGINS":        "example.com",
		"FANOUT_ROLE":                   "merger",
		"FANOUT_AGGREGATOR_REPLAY":      "2h",
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
	if c.Token != "s3cret" || !c.Pattern.MatchString("playback-x") || c.Pattern.MatchString("xplayback-x") || len(c.Proxies) != 2 {
		t.Fatalf("%+v", c)
	}
	if _, err := load(t, map[string]string{"FANOUT_TOPICS": "", "FANOUT_TOPIC_PATTERN": ""}); err == nil {
		t.Fatal("no topic and no pattern must be refused")
	}
}

// TestAlertRules: a rules file is loaded; a file that does not parse, a
// path whose directory does not exist, or a webhook without rules exit 2
// naming the variable; a missing file in a directory that exists (a
// mounted ConfigMap the controller has yet to write) is awaited.
func TestAlertRules(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "rules.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(good, []byte("rules:\n  - {name: f, metric: playback_failure_pct, condition: above, threshold: 5}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("rules:\n  - {name: f, metric: playback_failure_pct, condition: above, threshold: 5, minSampel: 50}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		env     map[string]string
		wantVar string
		rules   int
		awaited bool
	}{
		{env: map[string]string{"FANOUT_ALERT_RULES": good, "FANOUT_ALERT_WEBHOOK": "http://am:9093/api/v2/alerts"}, rules: 1},
		{env: map[string]string{"FANOUT_ALERT_RULES": filepath.Join(dir, "later.yaml")}, awaited: true},
		{env: map[string]string{"FANOUT_ALERT_RULES": bad}, wantVar: "FANOUT_ALERT_RULES"},
		{env: map[string]string{"FANOUT_ALERT_RULES": "/nonexistent/rules.yaml"}, wantVar: "FANOUT_ALERT_RULES"},
		{env: map[string]string{"FANOUT_ALERT_WEBHOOK": "http://am:9093/api/v2/alerts"}, wantVar: "FANOUT_ALERT_WEBHOOK"},
		{env: map[string]string{"FANOUT_ALERT_RULES": good, "FANOUT_ALERT_WEBHOOK": "am:9093"}, wantVar: "FANOUT_ALERT_WEBHOOK"},
	} {
		t.Run("", func(t *testing.T) { // t.Setenv is undone after each
			r, err := load(t, tc.env)
			var ve *envconf.VarError
			switch {
			case tc.wantVar != "":
				if !errors.As(err, &ve) || ve.Var != tc.wantVar {
					t.Errorf("%v: %v, want an error naming %s", tc.env, err, tc.wantVar)
				}
			case err != nil || len(r.Rules) != tc.rules || r.RulesAwaited != tc.awaited:
				t.Errorf("%v: %d rules, awaited %v, %v", tc.env, len(r.Rules), r.RulesAwaited, err)
			}
		})
	}
}
