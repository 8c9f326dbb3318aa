package envconf_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"playpulse.dev/services/playback/envconf"
)

type Inner struct {
	Brokers []string `envconfig:"TEST_BROKERS" default:"localhost:9092" desc:"brokers"`
}

type spec struct {
	Inner
	Rate    float64       `envconfig:"TEST_RATE" default:"50" desc:"events per second"`
	Timeout time.Duration `envconfig:"TEST_TIMEOUT" default:"2s" desc:"how long"`
	Token   string        `envconfig:"TEST_TOKEN" desc:"secret"`
}

func (s *spec) Validate() error {
	if s.Rate < 0 {
		return envconf.Invalid("TEST_RATE", "must be >= 0, got %v", s.Rate)
	}
	return nil
}

func TestLoad(t *testing.T) {
	tests := []struct {
		name    string
		env     map[string]string
		wantVar string
		check   func(*spec) bool
	}{
		{"defaults", nil, "", func(s *spec) bool {
			return s.Rate == 50 && s.Timeout == 2*time.Second && len(s.Brokers) == 1 && s.Brokers[0] == "localhost:9092"
		}},
		{"list", map[string]string{"TEST_BROKERS": "a:1,b:2"}, "", func(s *spec) bool { return len(s.Brokers) == 2 }},
		{"negative rate", map[string]string{"TEST_RATE": "-5"}, "TEST_RATE", nil},
		{"unparsable rate", map[string]string{"TEST_RATE": "fast"}, "TEST_RATE", nil},
		{"unparsable duration", map[string]string{"TEST_TIMEOUT": "soon"}, "TEST_TIMEOUT", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			var s spec
			err := envconf.Load(&s)
			if tt.wantVar == "" {
				if err != nil {
					t.Fatal(err)
				}
				if !tt.check(&s) {
					t.Fatalf("unexpected config %+v", s)
				}
				return
			}
			var ve *envconf.VarError
			if !errors.As(err, &ve) || ve.Var != tt.wantVar {
				t.Fatalf("err = %v, want a VarError naming %s", err, tt.wantVar)
			}
		})
	}
}

func TestUsageListsEveryVariable(t *testing.T) {
	var b strings.Builder
	envconf.Usage(&b, "svc", &spec{})
	for _, want := range []string{"TEST_BROKERS", "localhost:9092", "brokers", "TEST_RATE", "50", "TEST_TIMEOUT", "2s", "TEST_TOKEN", "secret"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, b.String())
		}
	}
	md, err := envconf.Markdown(&spec{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md, "| `TEST_RATE` | `50` | events per second |") {
		t.Errorf("markdown:\n%s", md)
	}
}
