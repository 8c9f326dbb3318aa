package envconf_test

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"playpulse.dev/services/playback/envconf"
)

type Inner struct {
	Brokers []string `envconfig:"TEST_BROKERS" default:"localhost:9092" format:"hostport" desc:"brokers"`
	Size    int      `envconfig:"SIZE" default:"10" min:"1" desc:"knob"`
}

// Validate of an embedded struct runs before the outer one.
func (in *Inner) Validate() error {
	if in.Size == 7 {
		return envconf.Invalid("SIZE", "must not be 7")
	}
	return nil
}

type spec struct {
	Inner
	Knobs   Inner         `envconfig:"TEST"` // prefixed: TEST_SIZE
	Addr    string        `envconfig:"TEST_ADDR" default:":8080" format:"listen" desc:"listen address"`
	Rate    float64       `envconfig:"TEST_RATE" default:"50" min:"0" max:"100" desc:"events per second"`
	Timeout time.Duration `envconfig:"TEST_TIMEOUT" default:"2s" min:"1s" desc:"how long"`
	Delay   time.Duration `envconfig:"TEST_DELAY" default:"0s" max:"1s" desc:"how late"`
	Token   string        `envconfig:"TEST_TOKEN" desc:"secret"`
	Tags    []string      `envconfig:"TEST_TAGS" desc:"tags"`
}

func (s *spec) Validate() error {
	if s.Token == "bad" {
		return envconf.Invalid("TEST_TOKEN", "must not be bad")
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
			return s.Rate == 50 && s.Timeout == 2*time.Second && len(s.Brokers) == 1 && s.Brokers[0] == "localhost:9092" && s.Knobs.Size == 10
		}},
		{"list", map[string]string{"TEST_BROKERS": "a:1,b:2"}, "", func(s *spec) bool { return len(s.Brokers) == 2 }},
		{"list items trimmed, empty ones dropped", map[string]string{"TEST_TAGS": " a, b ,,", "TEST_BROKERS": " a:1 , "}, "", func(s *spec) bool {
			return strings.Join(s.Tags, "|") == "a|b" && strings.Join(s.Brokers, "|") == "a:1"
		}},
		{"bounds are inclusive", map[string]string{"TEST_RATE": "100", "TEST_TIMEOUT": "1s", "TEST_DELAY": "1s", "SIZE": "1"}, "", func(s *spec) bool { return s.Rate == 100 }},
		{"listen on any address", map[string]string{"TEST_ADDR": "[::1]:0"}, "", func(s *spec) bool { return s.Addr == "[::1]:0" }},
		{"listen on a host name", map[string]string{"TEST_ADDR": "localhost:9000"}, "", func(s *spec) bool { return s.Addr == "localhost:9000" }},
		{"negative rate", map[string]string{"TEST_RATE": "-5"}, "TEST_RATE", nil},
		{"rate above max", map[string]string{"TEST_RATE": "100.5"}, "TEST_RATE", nil},
		{"NaN rate", map[string]string{"TEST_RATE": "NaN"}, "TEST_RATE", nil},
		{"infinite rate", map[string]string{"TEST_RATE": "+Inf"}, "TEST_RATE", nil},
		{"unparsable rate", map[string]string{"TEST_RATE": "fast"}, "TEST_RATE", nil},
		{"unparsable duration", map[string]string{"TEST_TIMEOUT": "soon"}, "TEST_TIMEOUT", nil},
		{"duration below min", map[string]string{"TEST_TIMEOUT": "999ms"}, "TEST_TIMEOUT", nil},
		{"duration above max", map[string]string{"TEST_DELAY": "2s"}, "TEST_DELAY", nil},
		{"embedded struct's range", map[string]string{"SIZE": "0"}, "SIZE", nil},
		{"prefixed struct's range", map[string]string{"TEST_SIZE": "0"}, "TEST_SIZE", nil},
		{"not an address", map[string]string{"TEST_ADDR": "not-an-address"}, "TEST_ADDR", nil},
		{"port out of range", map[string]string{"TEST_ADDR": ":65536"}, "TEST_ADDR", nil},
		{"named port", map[string]string{"TEST_ADDR": ":http"}, "TEST_ADDR", nil},
		{"broker without port", map[string]string{"TEST_BROKERS": "a:1,kafka"}, "TEST_BROKERS", nil},
		{"broker without host", map[string]string{"TEST_BROKERS": ":9092"}, "TEST_BROKERS", nil},
		{"broker port 0", map[string]string{"TEST_BROKERS": "kafka:0"}, "TEST_BROKERS", nil},
		{"Validate runs last", map[string]string{"TEST_TOKEN": "bad"}, "TEST_TOKEN", nil},
		{"embedded struct's Validate runs", map[string]string{"SIZE": "7"}, "SIZE", nil},
		{"a named struct field is not embedded", map[string]string{"TEST_SIZE": "7"}, "", func(s *spec) bool { return s.Knobs.Size == 7 }},
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
			if !strings.HasPrefix(err.Error(), tt.wantVar+": ") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("want one line starting with %s: %q", tt.wantVar, err)
			}
		})
	}
}

// TestRangeMessages: the message says the bounds the tag declares and the
// value that broke them.
func TestRangeMessages(t *testing.T) {
	for env, want := range map[string]string{
		"TEST_RATE=-5":      "TEST_RATE: must be between 0 and 100, got -5",
		"TEST_TIMEOUT=10ms": "TEST_TIMEOUT: must be at least 1s, got 10ms",
		"TEST_DELAY=1m":     "TEST_DELAY: must be at most 1s, got 1m0s",
	} {
		t.Run(env, func(t *testing.T) {
			k, v, _ := strings.Cut(env, "=")
			t.Setenv(k, v)
			var s spec
			if err := envconf.Load(&s); err == nil || err.Error() != want {
				t.Fatalf("got %v, want %q", err, want)
			}
		})
	}
}

// TestCheckReportsEveryViolation: Check, for structs used without the
// environment, names every field at fault, without a prefix.
func TestCheckReportsEveryViolation(t *testing.T) {
	s := spec{Inner: Inner{Size: 0, Brokers: []string{"x"}}, Addr: ":1", Rate: math.NaN(), Timeout: time.Second}
	err := envconf.Check(&s)
	for _, want := range []string{"SIZE", "TEST_BROKERS", "TEST_RATE", "TEST_SIZE"} {
		if err == nil || !strings.Contains(err.Error(), want+":") {
			t.Errorf("Check = %v, want it to name %s", err, want)
		}
	}
	if err := envconf.Check(&spec{Inner: Inner{Size: 1}, Knobs: Inner{Size: 1}, Addr: ":0", Timeout: time.Second}); err != nil {
		t.Errorf("valid struct: %v", err)
	}
}

// TestBadTagsAreProgrammingErrors: a range on a string or an unknown format
// fails loudly rather than passing silently.
func TestBadTagsAreProgrammingErrors(t *testing.T) {
	var s1 struct {
		S string `envconfig:"TEST_S" default:"x" min:"1" desc:"s"`
	}
	if err := envconf.Load(&s1); err == nil || !strings.Contains(err.Error(), "min and max apply to numbers") {
		t.Errorf("min on a string: %v", err)
	}
	var s2 struct {
		S string `envconfig:"TEST_S" default:"x" format:"email" desc:"s"`
	}
	if err := envconf.Load(&s2); err == nil || !strings.Contains(err.Error(), "unknown format") {
		t.Errorf("unknown format: %v", err)
	}
	var s3 struct {
		N int `envconfig:"TEST_N" default:"1" max:"ten" desc:"n"`
	}
	if err := envconf.Load(&s3); err == nil || !strings.Contains(err.Error(), "bad bound") {
		t.Errorf("unparsable bound: %v", err)
	}
}

func TestUsageListsEveryVariable(t *testing.T) {
	var b strings.Builder
	envconf.Usage(&b, "svc", &spec{})
	for _, want := range []string{"TEST_BROKERS", "localhost:9092", "brokers", "TEST_RATE", "50", "0 to 100", "TEST_TIMEOUT", "2s", "≥ 1s", "≤ 1s", "TEST_TOKEN", "secret", "TEST_SIZE"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("usage lacks %q:\n%s", want, b.String())
		}
	}
	md, err := envconf.Markdown(&spec{})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| `TEST_RATE` | `50` | 0 to 100 | events per second |", "| `TEST_TOKEN` |  |  | secret |"} {
		if !strings.Contains(md, want) {
			t.Errorf("markdown lacks %q:\n%s", want, md)
		}
	}
	vars, err := envconf.Vars(&spec{})
	if err != nil {
		t.Fatal(err)
	}
	if vars[3].Name != "TEST_SIZE" || vars[3].Min != "1" || vars[3].Type != "Integer" {
		t.Errorf("vars[3] = %+v", vars[3])
	}
}
