package faults

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"playpulse.dev/services/playback/kafkacfg/kafkacfgtest"
	"playpulse.dev/tests/harness"
	"playpulse.dev/tests/kafkatest"
)

// TestSecuredPipeline: the producer and the fan-out connect to the SCRAM
// listener (TLS + SCRAM-SHA-512) and to the mutual-TLS listener with the
// files of Strimzi's Secrets, and every event the producer had
// acknowledged is in Kafka (counted by kcat by event_id) and in the
// fan-out's figures.
func TestSecuredPipeline(t *testing.T) {
	for _, tc := range []struct {
		name string
		env  map[string]string
	}{
		{"scram-sha-512", scramEnv(cluster.Bootstrap(kafkatest.SCRAM))},
		{"mutual-tls", mtlsEnv()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			topic := "secured-" + tc.name
			cluster.CreateTopic(t, topic, 3)
			f := startFanout(t, harness.Bin(t), tc.env, topic, nil)
			p := startProducer(t, harness.Bin(t), tc.env, topic, 300, nil)
			p.waitReady(t, 60*time.Second)
			f.waitReady(t, 60*time.Second)
			harness.Eventually(t, 30*time.Second, "1,000 events acknowledged", func() error {
				if n := p.metrics(t).Sum("playpulse_producer_events_total"); n < 1000 {
					return fmt.Errorf("%v", n)
				}
				return nil
			})
			c := stopProducer(t, p)
			if c.Failed != 0 {
				t.Errorf("%d events failed", c.Failed)
			}
			checkExactlyOnce(t, readEvents(t, topic), c.Acknowledged)
			waitFanoutCount(t, f, c.Acknowledged)
			t.Logf("%s: %d events acknowledged, in Kafka once each, counted by the fan-out", tc.name, c.Acknowledged)
		})
	}
}

// TestCredentialFailures: with a wrong password, an untrusted CA, an
// expired client certificate, a client certificate of a CA the broker does
// not trust, and a broker whose certificate expired, the producer and the
// fan-out stay up and say why on /readyz (naming the variable and the
// file), in a log line and in playpulse_kafka_errors_total; once the
// mounted Secret is fixed (the kubelet's symlink swap) they connect by
// themselves, without a restart.
func TestCredentialFailures(t *testing.T) {
	clusterCA := readSecret(t, kafkatest.ClusterCASecret, "ca.crt")
	password := readSecret(t, kafkatest.SCRAMUser, "password")
	rogue, clients := kafkacfgtest.NewCA(t, "cluster-ca v0"), clientsCA(t) // rogue: a CA nothing of the cluster trusts
	now := time.Now()
	scram := func(s *kafkacfgtest.Secret) map[string]string {
		return map[string]string{
			"KAFKA_BROKERS": cluster.Bootstrap(kafkatest.SCRAM), "KAFKA_TLS_CA_FILE": s.Path("ca.crt"),
			"KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "KAFKA_SASL_USERNAME": kafkatest.SCRAMUser, "KAFKA_SASL_PASSWORD_FILE": s.Path("password"),
		}
	}
	mtls := func(s *kafkacfgtest.Secret) map[string]string {
		return map[string]string{
			"KAFKA_BROKERS": cluster.Bootstrap(kafkatest.MTLS), "KAFKA_TLS_CA_FILE": s.Path("ca.crt"),
			"KAFKA_TLS_CERT_FILE": s.Path("user.crt"), "KAFKA_TLS_KEY_FILE": s.Path("user.key"),
		}
	}
	cases := []struct {
		name      string
		env       func(s *kafkacfgtest.Secret) map[string]string
		bad, good map[string][]byte // good nil: no client setting fixes it
		reason    string
		mentions  func(s *kafkacfgtest.Secret) []string // in the readiness message
	}{
		{
			name: "wrong password", env: scram,
			bad:    map[string][]byte{"ca.crt": clusterCA, "password": []byte("not-the-password")},
			good:   map[string][]byte{"ca.crt": clusterCA, "password": password},
			reason: "sasl_authentication_failed",
			mentions: func(s *kafkacfgtest.Secret) []string {
				return []string{"wrong password", "KAFKA_SASL_PASSWORD_FILE", s.Path("password")}
			},
		},
		{
			name: "untrusted CA", env: scram,
			bad:    map[string][]byte{"ca.crt": rogue.PEM, "password": password},
			good:   map[string][]byte{"ca.crt": clusterCA, "password": password},
			reason: "untrusted_broker_certificate",
			mentions: func(s *kafkacfgtest.Secret) []string {
				return []string{"untrusted CA", "KAFKA_TLS_CA_FILE", s.Path("ca.crt")}
			},
		},
		{
			name: "client certificate expired", env: mtls,
			bad:    tlsUserFiles(t, clients, now.Add(-48*time.Hour), now.Add(-24*time.Hour)),
			good:   tlsUserFiles(t, clients, now.Add(-time.Hour), now.Add(24*time.Hour)),
			reason: "client_certificate_expired",
			mentions: func(s *kafkacfgtest.Secret) []string {
				return []string{"expired", "KAFKA_TLS_CERT_FILE", s.Path("user.crt")}
			},
		},
		{
			name: "client certificate rejected", env: mtls,
			bad:    tlsUserFiles(t, rogue, now.Add(-time.Hour), now.Add(24*time.Hour)),
			good:   tlsUserFiles(t, clients, now.Add(-time.Hour), now.Add(24*time.Hour)),
			reason: "client_certificate_rejected",
			mentions: func(s *kafkacfgtest.Secret) []string {
				return []string{"rejected the client certificate", "KAFKA_TLS_CERT_FILE", s.Path("user.crt")}
			},
		},
		{
			name: "broker certificate expired",
			env: func(s *kafkacfgtest.Secret) map[string]string {
				return map[string]string{"KAFKA_BROKERS": cluster.Bootstrap(kafkatest.Expired), "KAFKA_TLS_CA_FILE": s.Path("ca.crt")}
			},
			bad:    map[string][]byte{"ca.crt": clusterCA},
			reason: "broker_certificate_expired",
			mentions: func(*kafkacfgtest.Secret) []string {
				return []string{"broker's certificate", "expired", "must renew it"}
			},
		},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			topic := fmt.Sprintf("credentials-%d", i)
			cluster.CreateTopic(t, topic, 3)
			s := kafkacfgtest.MountSecret(t, tc.bad)
			env := tc.env(s)
			p := startProducer(t, harness.Bin(t), env, topic, 100, nil)
			f := startFanout(t, harness.Bin(t), env, topic, nil)
			for _, svc := range []*service{p, f} {
				var msg string
				harness.Eventually(t, 30*time.Second, svc.Name+" not ready, saying why", func() error {
					code, failing, err := svc.readiness()
					if err != nil {
						return err
					}
					msg = failing["kafka"]
					if code != http.StatusServiceUnavailable {
						return fmt.Errorf("/readyz %d", code)
					}
					for _, want := range tc.mentions(s) {
						if !strings.Contains(msg, want) {
							return fmt.Errorf("the readiness message does not say %q: %s", want, msg)
						}
					}
					return nil
				})
				t.Logf("%s /readyz: %s", svc.Name, msg)
				if m := svc.metrics(t).Get(`playpulse_kafka_errors_total{reason="` + tc.reason + `"}`); m < 1 {
					t.Errorf("%s: playpulse_kafka_errors_total{reason=%q} = %v", svc.Name, tc.reason, m)
				}
				if !strings.Contains(svc.Output(), `"reason":"`+tc.reason+`"`) {
					t.Errorf("%s logged no line with reason %s:\n%s", svc.Name, tc.reason, svc.Output())
				}
				if svc.Exited() {
					t.Fatalf("%s exited", svc.Name)
				}
			}
			if tc.good == nil {
				return
			}
			fixed := time.Now()
			s.Update(tc.good)
			p.waitReady(t, 30*time.Second)
			f.waitReady(t, 30*time.Second)
			harness.Eventually(t, 30*time.Second, "events acknowledged and served", func() error {
				if n := p.metrics(t).Sum("playpulse_producer_events_total"); n < 100 {
					return fmt.Errorf("%v acknowledged", n)
				}
				if n := f.metrics(t).Sum("playpulse_fanout_events_total"); n < 100 {
					return fmt.Errorf("%v served", n)
				}
				return nil
			})
			t.Logf("ready and flowing %v after the Secret was fixed", time.Since(fixed).Round(100*time.Millisecond))
			// The log says it at a bounded rate: a line per place and
			// reason per 10 s, whatever the number of attempts.
			if n := len(logLines(p, "Kafka not reachable or topic not ready, retrying")); n > 1+int(time.Since(fixed)/(10*time.Second))+3 {
				t.Errorf("the producer logged the failure %d times", n)
			}
		})
	}
}

// TestCredentialRotation: the SCRAM password of a running producer and
// fan-out is rotated as Strimzi does it (Kafka first, then the Secret
// changes under the pods), every connection is then cut, and both
// reconnect with the new password by themselves: no event fails, no
// authentication fails, nothing restarts.
func TestCredentialRotation(t *testing.T) {
	const user = "rotated"
	first, second := newPassword(t), newPassword(t)
	setSCRAMPassword(t, user, first)
	topic := "rotation"
	cluster.CreateTopic(t, topic, 3)
	s := kafkacfgtest.MountSecret(t, map[string][]byte{"ca.crt": readSecret(t, kafkatest.ClusterCASecret, "ca.crt"), "password": []byte(first)})
	env := map[string]string{
		"KAFKA_BROKERS": links[linkSecure].bootstrap(), "KAFKA_TLS_CA_FILE": s.Path("ca.crt"),
		"KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "KAFKA_SASL_USERNAME": user, "KAFKA_SASL_PASSWORD_FILE": s.Path("password"),
	}
	p := startProducer(t, harness.Bin(t), env, topic, 300, nil)
	f := startFanout(t, harness.Bin(t), env, topic, nil)
	p.waitReady(t, 60*time.Second)
	f.waitReady(t, 60*time.Second)
	acked := func() float64 { return p.metrics(t).Sum("playpulse_producer_events_total") }
	harness.Eventually(t, 30*time.Second, "events flowing", func() error {
		if n := acked(); n < 300 {
			return fmt.Errorf("%v acknowledged", n)
		}
		return nil
	})

	setSCRAMPassword(t, user, second)
	if err := scramLogin(user, first); !errors.Is(err, sarama.ErrSASLAuthenticationFailed) {
		t.Fatalf("the old password still logs in (%v): the rotation did not happen in Kafka", err)
	}
	s.Update(map[string][]byte{"ca.crt": readSecret(t, kafkatest.ClusterCASecret, "ca.crt"), "password": []byte(second)})
	before := acked()
	links[linkSecure].cut(t)
	harness.Eventually(t, 60*time.Second, "events flowing again after every connection was cut", func() error {
		if n := acked(); n < before+1000 {
			return fmt.Errorf("%v acknowledged since the cut", n-before)
		}
		return nil
	})
	p.waitReady(t, 30*time.Second)
	f.waitReady(t, 30*time.Second)
	for _, svc := range []*service{p, f} {
		if n := svc.metrics(t).Get(`playpulse_kafka_errors_total{reason="sasl_authentication_failed"}`); n != 0 {
			t.Errorf("%s: %v authentication failures: a connection used the old password", svc.Name, n)
		}
	}
	c := stopProducer(t, p)
	if c.Failed != 0 {
		t.Errorf("%d events failed across the rotation", c.Failed)
	}
	checkExactlyOnce(t, readEvents(t, topic), c.Acknowledged)
	waitFanoutCount(t, f, c.Acknowledged)
}

func newPassword(t testing.TB) string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// setSCRAMPassword creates or updates a SCRAM-SHA-512 user, as Strimzi's
// User Operator does for a KafkaUser.
func setSCRAMPassword(t testing.TB, user, password string) {
	t.Helper()
	admin, err := sarama.NewClusterAdmin(cluster.Brokers(kafkatest.Plaintext), cluster.Config())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	salt := make([]byte, 16)
	_, _ = rand.Read(salt)
	res, err := admin.UpsertUserScramCredentials([]sarama.AlterUserScramCredentialsUpsert{{
		Name: user, Mechanism: sarama.SCRAM_MECHANISM_SHA_512, Iterations: 4096, Salt: salt, Password: []byte(password),
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.ErrorCode != sarama.ErrNoError {
			t.Fatalf("setting %s's password: %v %v", user, r.ErrorCode, r.ErrorMessage)
		}
	}
	// Every broker must know it before a client logs in with it.
	harness.Eventually(t, 30*time.Second, user+" logs in with the new password", func() error {
		return scramLogin(user, password)
	})
}

// scramLogin opens a client on the SCRAM listener as user with password.
func scramLogin(user, password string) error {
	cfg := cluster.Config()
	cfg.Net.TLS.Enable = true
	cfg.Net.TLS.Config = clusterTLS()
	cfg.Net.SASL.Enable = true
	cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
	cfg.Net.SASL.User, cfg.Net.SASL.Password = user, password
	cfg.Net.SASL.SCRAMClientGeneratorFunc = kafkatest.NewSCRAMClient
	var last error
	for _, b := range cluster.Brokers(kafkatest.SCRAM) { // each broker must know it
		client, err := sarama.NewClient([]string{b}, cfg)
		if err != nil {
			return err
		}
		client.Close()
		last = err
	}
	return last
}
