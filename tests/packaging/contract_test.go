package packaging

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	collectorcfg "playpulse.dev/services/collector/pkg/config"
	fanoutcfg "playpulse.dev/services/fanout/pkg/config"
	"playpulse.dev/services/playback/envconf"
	producercfg "playpulse.dev/services/producer/pkg/config"
	"playpulse.dev/tools/docgen"
)

// services maps a container (component) name to the config struct of the
// binary it runs (the same map the README tables are made from). The
// allowed variables come from envconf.Vars, so a variable added to or
// removed from a struct changes the contract at once.
var services = docgen.Configs

func serviceVars(t testing.TB, service string) (all map[string]bool, required []string) {
	t.Helper()
	spec, ok := services[service]
	if !ok {
		t.Fatalf("no config struct known for service %q", service)
	}
	vars, err := envconf.Vars(spec)
	if err != nil {
		t.Fatal(err)
	}
	all = map[string]bool{}
	for _, v := range vars {
		all[v.Name] = true
		if v.Required {
			required = append(required, v.Name)
		}
	}
	return all, required
}

// checkEnv compares one container's environment with its service's config
// struct: nothing unknown, nothing required missing, no duplicates.
func checkEnv(t *testing.T, where, service string, env []map[string]any) {
	t.Helper()
	allowed, required := serviceVars(t, service)
	set := map[string]bool{}
	for _, e := range env {
		name := fmt.Sprint(e["name"])
		if set[name] {
			t.Errorf("%s: %s is set twice", where, name)
		}
		set[name] = true
		if !allowed[name] {
			t.Errorf("%s sets %s, which the %s does not read (not in its config struct)", where, name, service)
		}
	}
	for _, r := range required {
		if !set[r] {
			t.Errorf("%s does not set %s, which the %s requires", where, r, service)
		}
	}
}

// TestChartEnvMatchesConfigStructs: every variable the chart sets on a pod
// is one that pod's service reads, and every required one is set, for every
// value set (the all-on values switch TLS, SASL and every optional knob on).
func TestChartEnvMatchesConfigStructs(t *testing.T) {
	checked := map[string]int{}
	for _, vs := range valueSets {
		t.Run(vs.name, func(t *testing.T) {
			for _, d := range find(render(t, testNamespace, vs.args...), "Deployment") {
				for _, c := range containers(t, d) {
					service := fmt.Sprint(c["name"])
					var env []map[string]any
					list, _ := c["env"].([]any)
					for _, e := range list {
						env = append(env, e.(map[string]any))
					}
					where := fmt.Sprintf("%s container %s", id(d), service)
					checkEnv(t, where, service, env)
					validateEnv(t, where, service, env)
					checked[service] += len(env)
				}
			}
		})
	}
	var names []string
	for s := range checked {
		names = append(names, s)
	}
	sort.Strings(names)
	if !slices.Equal(names, []string{"collector", "controller", "fanout"}) {
		t.Errorf("checked containers %v, want collector, controller and fanout", names)
	}
	t.Logf("variables checked per service: %v", checked)
}

// validateEnv loads the container's environment into a fresh copy of the
// service's config struct, exactly as the binary does at start (envconf.Load:
// types, tags, then Validate; then the resolve step, which reads the files
// the variables name), with every other variable unset. Files the chart
// mounts from secrets (/etc/playpulse/...) are stood in for by temporary
// files: PEM for the TLS files (the resolve step parses them), text for
// the rest. The controller's resolve step is left out: it also needs the API
// server's address, which only a cluster gives a pod.
func validateEnv(t *testing.T, where, service string, env []map[string]any) {
	t.Helper()
	all, _ := serviceVars(t, service)
	for name := range all {
		t.Setenv(name, "") // restores the outer value after the test
		os.Unsetenv(name)
	}
	dir := t.TempDir()
	cert, key := standInCert(t)
	for _, e := range env {
		v := fmt.Sprint(e["value"])
		if strings.HasPrefix(v, "/etc/playpulse/") {
			content := []byte("stand-in-secret\n")
			switch name := fmt.Sprint(e["name"]); {
			case strings.HasSuffix(name, "_CA_FILE"), strings.HasSuffix(name, "_CERT_FILE"):
				content = cert
			case strings.HasSuffix(name, "_KEY_FILE"):
				content = key
			case strings.HasSuffix(name, "_ALERT_RULES"):
				content = []byte("rules: []\n") // what the controller writes when no QoEAlert is left
			}
			f := filepath.Join(dir, strings.ReplaceAll(strings.TrimPrefix(v, "/etc/playpulse/"), "/", "_"))
			if err := os.WriteFile(f, content, 0o600); err != nil {
				t.Fatal(err)
			}
			v = f
		}
		os.Setenv(fmt.Sprint(e["name"]), v)
	}
	spec := reflect.New(reflect.TypeOf(services[service]).Elem()).Interface()
	err := envconf.Load(spec)
	if err == nil {
		switch c := spec.(type) {
		case *fanoutcfg.Config:
			_, err = c.Resolve()
		case *producercfg.Config:
			_, err = c.Resolve()
		case *collectorcfg.Config:
			_, err = c.Resolve()
		}
	}
	if err != nil {
		t.Errorf("%s: the %s refuses the environment the chart gives it: %v", where, service, err)
	}
}

// standInCert returns a self-signed certificate and its key, PEM-encoded,
// to stand in for the mounted Kafka CA and client certificate.
func standInCert(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "stand-in"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}
