package config

import (
	"errors"
	"testing"

	"playpulse.dev/services/playback/envconf"
)

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

func TestDefaultsResolve(t *testing.T) {
	r, err := load(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !r.Ingest || !r.Sessionize || r.Sarama == nil || r.Log == nil || r.IntakeTopic != "playpulse-cmcd" || r.EventsTopic != "playback-players" {
		t.Fatalf("defaults %+v", r)
	}
	// The inactivity timeout must stay below the fan-out's default session
	// timeout (60 s), or a closed tab's session expires there uncounted.
	if r.InactivityTimeout.Seconds() >= 60 || r.RebuildLookback < r.InactivityTimeout+r.ReorderWindow {
		t.Fatalf("timeouts %s, look-back %s", r.InactivityTimeout, r.RebuildLookback)
	}
	r, err = load(t, map[string]string{"COLLECTOR_ROLES": "ingest", "COLLECTOR_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.7"})
	if err != nil || !r.Ingest || r.Sessionize || len(r.Proxies) != 2 || r.Proxies[1].String() != "192.0.2.7/32" {
		t.Fatalf("%+v, %v", r, err)
	}
}

func TestBadValuesNameTheVariable(t *testing.T) {
	for _, tt := range []struct{ name, value string }{
		{"COLLECTOR_ROLES", "edge"},
		{"COLLECTOR_ROLES", ""},
		{"COLLECTOR_ADDR", "nope"},
		{"COLLECTOR_INTAKE_TOPIC", ""},
		{"COLLECTOR_EVENTS_TOPIC", "playpulse-cmcd"},
		{"COLLECTOR_DEFAULT_STREAM", "Bad Name"},
		{"COLLECTOR_ALLOWED_ORIGINS", "player.example"},
		{"COLLECTOR_ALLOWED_ORIGINS", "https://player.example/path"},
		{"COLLECTOR_TRUSTED_PROXIES", "10.0.0.0/33"},
		{"COLLECTOR_USER_ID_KEY", "uid"},
		{"COLLECTOR_RATE_BURST", "50"},
		{"COLLECTOR_MAX_LINE_BYTES", "70000"},
		{"COLLECTOR_REBUILD_LOOKBACK", "10s"},
		{"COLLECTOR_REORDER_WINDOW", "1m"},
		{"COLLECTOR_INACTIVITY_TIMEOUT", "0s"},
		{"COLLECTOR_MAX_BUFFERED", "0"},
		{"KAFKA_BROKERS", "kafka"},
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
