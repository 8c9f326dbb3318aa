package kafkatest_test

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"playpulse.dev/tests/kafkatest"
)

// TestBrokerProduceConsumeRestart runs a real broker: it creates a
// 3-partition topic, produces and consumes a record, then stops and restarts
// the broker on the same data dir and port and reads the record again.
func TestBrokerProduceConsumeRestart(t *testing.T) {
	t0 := time.Now()
	b := kafkatest.Start(t)
	t.Logf("broker ready at %s in %v", b.Addr(), time.Since(t0).Round(time.Millisecond))
	addr := b.Addr()
	if addr == "" {
		t.Fatal("empty broker address")
	}

	const topic = "kafkatest-playback-events"
	b.CreateTopic(t, topic, 3)

	cfg := sarama.NewConfig()
	cfg.Producer.Return.Successes = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Partitioner = sarama.NewManualPartitioner

	admin, err := sarama.NewClusterAdmin([]string{addr}, cfg)
	if err != nil {
		t.Fatalf("cluster admin: %v", err)
	}
	meta, err := admin.DescribeTopics([]string{topic})
	admin.Close()
	if err != nil || len(meta) != 1 || !errors.Is(meta[0].Err, sarama.ErrNoError) || len(meta[0].Partitions) != 3 {
		t.Fatalf("describe %s: err=%v meta=%+v", topic, err, meta)
	}

	producer, err := sarama.NewSyncProducer([]string{addr}, cfg)
	if err != nil {
		t.Fatalf("producer: %v", err)
	}
	msg := &sarama.ProducerMessage{
		Topic:     topic,
		Partition: 1,
		Key:       sarama.StringEncoder("session-42"),
		Value:     sarama.StringEncoder(`{"event":"play","position_ms":0}`),
	}
	partition, offset, err := producer.SendMessage(msg)
	if cerr := producer.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		t.Fatalf("produce: %v", err)
	}
	if partition != 1 {
		t.Fatalf("produced to partition %d, want 1", partition)
	}

	check := func(when string) {
		t.Helper()
		got := consumeOne(t, addr, cfg, topic, partition, offset)
		if string(got.Key) != "session-42" || string(got.Value) != `{"event":"play","position_ms":0}` {
			t.Fatalf("%s: consumed key=%q value=%q", when, got.Key, got.Value)
		}
	}
	check("before restart")

	t0 = time.Now()
	b.Stop(t)
	t.Logf("stopped in %v", time.Since(t0).Round(time.Millisecond))
	if _, err := sarama.NewClient([]string{addr}, quickConfig()); err == nil {
		t.Fatalf("broker still answers at %s after Stop", addr)
	}

	t0 = time.Now()
	b.Restart(t)
	t.Logf("restarted in %v", time.Since(t0).Round(time.Millisecond))
	if b.Addr() != addr {
		t.Fatalf("address changed across restart: %s -> %s", addr, b.Addr())
	}
	check("after restart")
}

func consumeOne(t *testing.T, addr string, cfg *sarama.Config, topic string, partition int32, offset int64) *sarama.ConsumerMessage {
	t.Helper()
	consumer, err := sarama.NewConsumer([]string{addr}, cfg)
	if err != nil {
		t.Fatalf("consumer: %v", err)
	}
	defer consumer.Close()
	pc, err := consumer.ConsumePartition(topic, partition, offset)
	if err != nil {
		t.Fatalf("consume partition %d: %v", partition, err)
	}
	defer pc.Close()
	select {
	case m := <-pc.Messages():
		if m.Offset != offset {
			t.Fatalf("consumed offset %d, want %d", m.Offset, offset)
		}
		return m
	case err := <-pc.Errors():
		t.Fatalf("consume: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatalf("no record at %s/%d@%d within 30s", topic, partition, offset)
	}
	return nil
}

func quickConfig() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Net.DialTimeout = 2 * time.Second
	cfg.Metadata.Retry.Max = 0
	return cfg
}

// TestBrokerOnHost runs the broker's client listener on another address of
// this machine, as the test-bed cluster does with its node address: the
// broker advertises that address, and nothing of it listens on 127.0.0.1.
func TestBrokerOnHost(t *testing.T) {
	const host = "127.0.0.2" // all of 127.0.0.0/8 is this machine's
	b := kafkatest.Start(t, kafkatest.WithHost(host))
	h, port, err := net.SplitHostPort(b.Addr())
	if err != nil || h != host {
		t.Fatalf("Addr() = %q, want %s:PORT", b.Addr(), host)
	}
	client, err := sarama.NewClient([]string{b.Addr()}, quickConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	brokers := client.Brokers()
	if len(brokers) != 1 || brokers[0].Addr() != b.Addr() {
		t.Fatalf("metadata advertises %v, want [%s]", brokerAddrs(brokers), b.Addr())
	}
	if c, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.1", port), 2*time.Second); err == nil {
		c.Close()
		t.Fatalf("the broker also listens on 127.0.0.1:%s", port)
	}
}

// TestStartRefusesAnyAddress: hack/kafka.sh never binds every interface of
// the machine, and exits 2 saying so.
func TestStartRefusesAnyAddress(t *testing.T) {
	for _, host := range []string{"0.0.0.0", "kafka.example", "192.0.2.1"} {
		out, err := exec.Command("bash", scriptPath(t), "start", "--host", host).CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "--host") {
			t.Errorf("start --host %s: err=%v, output %q; want exit 2 naming --host", host, err, out)
		}
	}
}

func brokerAddrs(bs []*sarama.Broker) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.Addr()
	}
	return out
}

// scriptPath is hack/kafka.sh of this repository.
func scriptPath(t *testing.T) string {
	t.Helper()
	p, err := filepath.Abs(filepath.Join("..", "..", "hack", "kafka.sh"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestCluster starts the secured three-node cluster and checks that each
// listener is what hack/kafka.sh says it is, with the files laid out as
// Strimzi's Secrets: plaintext answers; SCRAM takes the user's password and
// refuses another; mutual TLS takes the user's certificate and refuses a
// client without one; the expired listener's certificate has expired. Then
// a node is killed and restarted, and comes back into the in-sync replicas.
func TestCluster(t *testing.T) {
	t0 := time.Now()
	c := kafkatest.StartCluster(t)
	t.Logf("3 nodes ready in %v", time.Since(t0).Round(time.Millisecond))
	const topic = "kafkatest-cluster"
	c.CreateTopic(t, topic, 3)
	ps, err := c.Partitions(topic)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if len(p.Replicas) != 3 || len(p.ISR) != 3 {
			t.Fatalf("partition %+v: want 3 replicas, all in sync", p)
		}
	}

	secret := func(name, key string) []byte {
		b, err := os.ReadFile(filepath.Join(c.Secret(name), key))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(secret(kafkatest.ClusterCASecret, "ca.crt")) {
		t.Fatal("no CA in the cluster CA secret")
	}
	tlsConfig := func(cert bool) *sarama.Config {
		cfg := quickConfig()
		cfg.Net.TLS.Enable = true
		cfg.Net.TLS.Config = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		if cert {
			kp, err := tls.X509KeyPair(secret(kafkatest.TLSUser, "user.crt"), secret(kafkatest.TLSUser, "user.key"))
			if err != nil {
				t.Fatal(err)
			}
			cfg.Net.TLS.Config.Certificates = []tls.Certificate{kp}
		}
		return cfg
	}
	scram := func(password string) *sarama.Config {
		cfg := tlsConfig(false)
		cfg.Net.SASL.Enable = true
		cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
		cfg.Net.SASL.User = kafkatest.SCRAMUser
		cfg.Net.SASL.Password = password
		cfg.Net.SASL.SCRAMClientGeneratorFunc = kafkatest.NewSCRAMClient
		return cfg
	}
	tries := []struct {
		what     string
		listener string
		cfg      *sarama.Config
		ok       func(error) bool
	}{
		{"plaintext", kafkatest.Plaintext, quickConfig(), func(err error) bool { return err == nil }},
		{"SCRAM, the user's password", kafkatest.SCRAM, scram(string(secret(kafkatest.SCRAMUser, "password"))), func(err error) bool { return err == nil }},
		{"SCRAM, another password", kafkatest.SCRAM, scram("not-the-password"), func(err error) bool { return errors.Is(err, sarama.ErrSASLAuthenticationFailed) }},
		{"mutual TLS, the user's certificate", kafkatest.MTLS, tlsConfig(true), func(err error) bool { return err == nil }},
		{"mutual TLS, no certificate", kafkatest.MTLS, tlsConfig(false), func(err error) bool { return err != nil }},
		{"expired broker certificate", kafkatest.Expired, tlsConfig(false), func(err error) bool {
			var ce x509.CertificateInvalidError
			return errors.As(err, &ce) && ce.Reason == x509.Expired
		}},
	}
	for _, tr := range tries {
		client, err := sarama.NewClient(c.Brokers(tr.listener), tr.cfg)
		if client != nil {
			if n := len(client.Brokers()); n != 3 && tr.listener != kafkatest.Expired {
				t.Errorf("%s: metadata lists %d brokers", tr.what, n)
			}
			client.Close()
		}
		if !tr.ok(err) {
			t.Errorf("%s on %s: %v", tr.what, tr.listener, err)
		}
	}

	// A node killed (SIGKILL) and restarted comes back in sync.
	victim := c.Leader(t, topic, 0)
	c.Node(victim).Kill(t)
	for deadline := time.Now().Add(30 * time.Second); c.Leader(t, topic, 0) == victim; {
		if time.Now().After(deadline) {
			t.Fatalf("partition 0 still led by the killed node %d after 30 s", victim)
		}
		time.Sleep(100 * time.Millisecond) // poll interval of a condition wait
	}
	c.Node(victim).Restart(t)
	c.WaitBrokers(t)
	c.WaitInSync(t, topic, 60*time.Second)
}
