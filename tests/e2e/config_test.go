package e2e

import (
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"playpulse.dev/services/playback/envconf"
	"playpulse.dev/tests/harness"
	"playpulse.dev/tools/docgen"
)

// configs maps each binary to its config struct.
var configs = docgen.Configs

// TestBadConfigExits2 starts each binary with one bad variable: it must
// exit with code 2 and name the variable.
func TestBadConfigExits2(t *testing.T) {
	tests := []struct {
		bin, name, value string
	}{
		{"producer", "PRODUCER_RATE", "-5"},
		{"producer", "PRODUCER_RATE", "fast"},
		{"producer", "KAFKA_BROKERS", ""},
		{"producer", "PRODUCER_TOPIC", ""},
		{"producer", "PRODUCER_CATALOG_SIZE", "0"},
		{"producer", "LOG_LEVEL", "loud"},
		{"fanout", "KAFKA_BROKERS", ""},
		{"fanout", "FANOUT_TOPIC_PATTERN", "("},
		{"fanout", "FANOUT_WRITE_TIMEOUT", "soon"},
		{"fanout", "FANOUT_ALLOWED_ORIGINS", "not a url"},
		{"fanout", "KAFKA_SASL_MECHANISM", "GSSAPI"},
		{"controller", "KAFKA_BROKERS", "no-port"},
		{"controller", "CONTROLLER_KAFKA_CLUSTER", ""},
		{"controller", "KUBECONFIG", "/nonexistent/kubeconfig"},
		{"fanout", "FANOUT_AUTH_TOKEN_FILE", "/nonexistent/token"},
		{"producer", "KAFKA_TLS_CA_FILE", "/nonexistent/ca.crt"},
	}
	// Every listen address is checked when the configuration loads, not
	// when the service first listens.
	for bin, spec := range configs {
		vars, err := envconf.Vars(spec)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range vars {
			if strings.HasSuffix(v.Name, "_ADDR") {
				tests = append(tests, struct{ bin, name, value string }{bin, v.Name, "not-an-address"})
			}
		}
	}
	for _, tt := range tests {
		t.Run(tt.bin+"/"+tt.name+"="+tt.value, func(t *testing.T) {
			code, out := harness.Run(t, tt.bin, map[string]string{tt.name: tt.value})
			if code != envconf.ExitInvalid {
				t.Fatalf("exit code %d, want 2; output:\n%s", code, out)
			}
			if !strings.Contains(out, tt.name) {
				t.Fatalf("message does not name %s:\n%s", tt.name, out)
			}
			if strings.Contains(out, "panic") || strings.Count(strings.TrimSpace(out), "\n") > 2 {
				t.Fatalf("want one clear line, got:\n%s", out)
			}
		})
	}
	for bin := range configs {
		t.Run(bin+"/unexpected argument", func(t *testing.T) {
			if code, out := harness.Run(t, bin, nil, "--rate=5"); code != 2 {
				t.Fatalf("exit %d: %s", code, out)
			}
		})
	}
}

// TestHelpListsEveryVariable: -h prints each variable with its default and
// description, and exits 0.
func TestHelpListsEveryVariable(t *testing.T) {
	for bin, spec := range configs {
		t.Run(bin, func(t *testing.T) {
			code, out := harness.Run(t, bin, nil, "-h")
			if code != 0 {
				t.Fatalf("-h exit %d", code)
			}
			vars, err := envconf.Vars(spec)
			if err != nil {
				t.Fatal(err)
			}
			if len(vars) < 5 {
				t.Fatalf("only %d variables", len(vars))
			}
			for _, v := range vars {
				line := lineWith(out, v.Name+" ")
				if line == "" {
					t.Errorf("-h lacks %s", v.Name)
					continue
				}
				if v.Description == "" {
					t.Errorf("%s has no description", v.Name)
				}
				if !strings.Contains(line, v.Description) || (v.Default != "" && !strings.Contains(line, v.Default)) {
					t.Errorf("-h line for %s lacks its default or description: %q", v.Name, line)
				}
			}
		})
	}
}

func lineWith(out, prefix string) string {
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, prefix) {
			return l
		}
	}
	return ""
}

// TestShutdown: SIGTERM makes each service exit 0 within 10 s; the fan-out
// closes its WebSockets with 1001 (going away); the producer flushes.
func TestShutdown(t *testing.T) {
	s := startStack(t, stackOpts{rate: "1000", producerEnv: map[string]string{"LOG_LEVEL": "info"}})
	c := dial(t, s.fanAddr, nil)
	read(t, c, 5*time.Second) // hello

	harness.Eventually(t, 20*time.Second, "producer acknowledged events", func() error {
		return metricAtLeast("http://"+s.prodAddr+"/metrics", "playpulse_producer_events_total", 100)
	})
	start := time.Now()
	if err := s.producer.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	code, err := s.producer.Wait(10 * time.Second)
	if err != nil || code != 0 {
		t.Fatalf("producer: exit %d, %v after %s", code, err, time.Since(start))
	}
	if out := s.producer.Output(); !strings.Contains(out, `"msg":"producer stopped"`) || !strings.Contains(out, `"failed":0`) {
		t.Fatalf("producer did not flush everything:\n%s", out)
	}

	if err := s.fanout.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	closeCode := 0
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for closeCode == 0 {
		if _, _, err := c.ReadMessage(); err != nil {
			if ce, ok := err.(*websocket.CloseError); ok {
				closeCode = ce.Code
			} else {
				t.Fatalf("connection ended without a close frame: %v", err)
			}
		}
	}
	if closeCode != websocket.CloseGoingAway {
		t.Fatalf("close code %d, want 1001", closeCode)
	}
	code, err = s.fanout.Wait(10 * time.Second)
	if err != nil || code != 0 {
		t.Fatalf("fanout: exit %d, %v", code, err)
	}
}
