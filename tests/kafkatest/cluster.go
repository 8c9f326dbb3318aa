package kafkatest

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/xdg-go/scram"
)

// Listeners of a Cluster node (hack/kafka/cluster.sh).
const (
	Plaintext = "PLAINTEXT" // plaintext: fast tests, and counting records
	SCRAM     = "SCRAM"     // SASL_SSL with SCRAM-SHA-512
	MTLS      = "MTLS"      // SSL with client authentication
	// Expired is node 1's SSL listener whose broker certificate expired.
	Expired = "EXPIRED"
)

// The users and Secrets a Cluster is made with, named as Strimzi names them
// for a Kafka cluster "playpulse" and KafkaUsers "playpulse" (scram-sha-512)
// and "playpulse-tls" (tls).
const (
	ClusterName     = "playpulse"
	ClusterCASecret = ClusterName + "-cluster-ca-cert" // ca.crt, ca.p12, ca.password
	ClientsCASecret = ClusterName + "-clients-ca-cert" // ca.crt
	SCRAMUser       = "playpulse"                      // password, sasl.jaas.config
	TLSUser         = "playpulse-tls"                  // ca.crt, user.crt, user.key, user.p12, user.password
)

// WithNodes sets the number of nodes of StartCluster (default 3).
func WithNodes(n int) Option { return func(c *config) { c.nodes = n } }

// WithProxyListener gives every node of StartCluster one more plaintext
// listener, PROXY_<name>, that advertises advertised[i] for node i+1: a test
// runs a proxy on each of those addresses forwarding to
// Cluster.ProxyUpstreams(name), and every connection of a client
// bootstrapped there goes through the proxies (name: capitals and digits).
func WithProxyListener(name string, advertised ...string) Option {
	return func(c *config) {
		if c.proxies == nil {
			c.proxies = map[string]string{}
		}
		c.proxies[name] = strings.Join(advertised, ",")
	}
}

// WithSCRAMProxyListener is WithProxyListener for a SASL_SSL listener with
// SCRAM-SHA-512, like SCRAM (the proxies forward TLS as it is; the broker
// certificates name 127.0.0.1).
func WithSCRAMProxyListener(name string, advertised ...string) Option {
	return func(c *config) {
		WithProxyListener(name, advertised...)(c)
		if c.scram == nil {
			c.scram = map[string]bool{}
		}
		c.scram[name] = true
	}
}

// Cluster is a secured KRaft cluster of broker+controller nodes, prepared
// by `hack/kafka.sh cluster-init` (certificates, users, storage) and run
// node by node with `hack/kafka.sh node`, so that a test can kill, stop and
// restart each. See hack/kafka.sh help for its listeners and files.
type Cluster struct {
	dir    string
	owns   bool
	env    map[string]string
	nodes  []*Broker // node i+1
	shared bool
}

// StartCluster prepares and starts a cluster (3 nodes unless WithNodes) and
// stops it, removing its directory unless WithDataDir, when the test ends.
func StartCluster(t testing.TB, opts ...Option) *Cluster {
	t.Helper()
	c, err := startCluster(opts)
	if c != nil {
		t.Cleanup(func() {
			if t.Failed() {
				c.logTo(t)
			}
			if err := c.close(); err != nil {
				t.Errorf("kafkatest: %v", err)
			}
		})
	}
	if err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	return c
}

// StartClusterMain is StartCluster for a TestMain that shares one cluster
// across a package; call stop before os.Exit.
func StartClusterMain(opts ...Option) (c *Cluster, stop func(), err error) {
	c, err = startCluster(opts)
	if err != nil {
		if c != nil {
			logs := c.allLogs()
			_ = c.close()
			return nil, nil, fmt.Errorf("kafkatest: %w\n%s", err, logs)
		}
		return nil, nil, fmt.Errorf("kafkatest: %w", err)
	}
	c.shared = true
	for _, n := range c.nodes {
		n.shared = true
	}
	var once sync.Once
	return c, func() {
		once.Do(func() {
			if err := c.close(); err != nil {
				fmt.Fprintf(os.Stderr, "kafkatest: %v\n", err)
			}
		})
	}, nil
}

func startCluster(opts []Option) (*Cluster, error) {
	cfg := config{readyTimeout: defaultReadyTimeout, nodes: 3}
	for _, o := range opts {
		o(&cfg)
	}
	script, err := findScript()
	if err != nil {
		return nil, err
	}
	if err := checkPrereqs(); err != nil {
		return nil, err
	}
	c := &Cluster{dir: cfg.dataDir}
	if c.dir == "" {
		if c.dir, err = os.MkdirTemp("", "kafkatest-cluster-"); err != nil {
			return nil, err
		}
		c.owns = true
	} else if c.dir, err = filepath.Abs(c.dir); err != nil {
		return nil, err
	}
	args := []string{script, "cluster-init", "--dir", c.dir, "--nodes", strconv.Itoa(cfg.nodes)}
	if cfg.host != "" {
		args = append(args, "--host", cfg.host)
	}
	names := make([]string, 0, len(cfg.proxies))
	for name := range cfg.proxies {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		flag := "--proxy"
		if cfg.scram[name] {
			flag = "--proxy-scram"
		}
		args = append(args, flag, name+"="+cfg.proxies[name])
	}
	cmd := exec.Command("bash", args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if c.owns {
			_ = os.RemoveAll(c.dir)
		}
		return nil, fmt.Errorf("hack/kafka.sh cluster-init: %v\n%s", err, stderr.String())
	}
	c.env = map[string]string{}
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), "="); ok {
			c.env[k] = v
		}
	}
	n, _ := strconv.Atoi(c.env["NODES"])
	if n != cfg.nodes {
		return c, fmt.Errorf("hack/kafka.sh cluster-init printed NODES=%q, want %d", c.env["NODES"], cfg.nodes)
	}
	for i := 1; i <= n; i++ {
		c.nodes = append(c.nodes, &Broker{
			script:       script,
			dataDir:      filepath.Join(c.dir, fmt.Sprintf("node-%d", i)),
			readyTimeout: cfg.readyTimeout,
			logs:         newRingLog(logLines),
			args:         []string{"node", "--dir", c.dir, "--node", strconv.Itoa(i)},
			id:           int32(i),
		})
	}
	// The nodes start together: each waits for a quorum of the others.
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, b := range c.nodes {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = b.start() }()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return c, err
	}
	if err := c.waitBrokers(n, time.Now().Add(cfg.readyTimeout)); err != nil {
		return c, err
	}
	return c, nil
}

// Dir is the cluster's directory (hack/kafka.sh cluster-init's DIR).
func (c *Cluster) Dir() string { return c.dir }

// Env is one value of DIR/cluster.env (see hack/kafka.sh help).
func (c *Cluster) Env(key string) string { return c.env[key] }

// Bootstrap is the comma-separated bootstrap list of a listener:
// Plaintext, SCRAM, MTLS or Expired (node 1 only). A proxy listener is
// bootstrapped at the addresses given to WithProxyListener.
func (c *Cluster) Bootstrap(listener string) string {
	switch listener {
	case Plaintext, SCRAM, MTLS, Expired:
		return c.env[listener]
	}
	return ""
}

// Brokers is Bootstrap as a list.
func (c *Cluster) Brokers(listener string) []string {
	return strings.Split(c.Bootstrap(listener), ",")
}

// ProxyUpstreams are the addresses the proxy listener name is bound to,
// node by node: what a proxy on the advertised addresses forwards to.
func (c *Cluster) ProxyUpstreams(name string) []string {
	v := c.env["PROXY_"+name]
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

// Secret is the directory holding the files of one of the cluster's
// Secrets, laid out as Strimzi's Secret of that name mounts (ClusterCASecret,
// ClientsCASecret, SCRAMUser, TLSUser).
func (c *Cluster) Secret(name string) string { return filepath.Join(c.env["SECRETS"], name) }

// PKI is the directory holding the cluster CA's and the clients CA's keys
// and certificates (cluster-ca.{key,crt}, clients-ca.{key,crt}), for tests
// that mint certificates of their own.
func (c *Cluster) PKI() string { return c.env["PKI"] }

// Nodes is the number of nodes.
func (c *Cluster) Nodes() int { return len(c.nodes) }

// Node is node id (1-based, as Kafka's node.id).
func (c *Cluster) Node(id int32) *Broker { return c.nodes[id-1] }

// ID is the node id of a cluster node.
func (b *Broker) ID() int32 { return b.id }

// Config is a sarama configuration for the plaintext listener, with
// timeouts short enough for tests that wait on conditions.
func (c *Cluster) Config() *sarama.Config {
	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_9_0_0
	cfg.Net.DialTimeout = 5 * time.Second
	cfg.Net.ReadTimeout = 10 * time.Second
	cfg.Metadata.Retry.Max = 0
	return cfg
}

// Client is a sarama client of the plaintext listener, closed when the
// test ends.
func (c *Cluster) Client(t testing.TB) sarama.Client {
	t.Helper()
	var client sarama.Client
	c.eventually(t, 30*time.Second, "a client of the cluster", func() (err error) {
		client, err = sarama.NewClient(c.runningBrokers(), c.Config())
		return err
	})
	t.Cleanup(func() { client.Close() })
	return client
}

// runningBrokers is the plaintext addresses of the nodes that run.
func (c *Cluster) runningBrokers() []string {
	var out []string
	for _, n := range c.nodes {
		if n.Pid() != 0 {
			out = append(out, n.Addr())
		}
	}
	return out
}

// CreateTopic creates a topic with replication factor min(nodes, 3) and
// waits until every partition has a leader and all its replicas in sync.
func (c *Cluster) CreateTopic(t testing.TB, name string, partitions int32) {
	t.Helper()
	rf := int16(min(len(c.nodes), 3))
	admin, err := sarama.NewClusterAdmin(c.runningBrokers(), c.Config())
	if err != nil {
		c.fatal(t, "create topic %q: %v", name, err)
	}
	defer admin.Close()
	if err := admin.CreateTopic(name, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: rf}, false); err != nil {
		c.fatal(t, "create topic %q: %v", name, err)
	}
	c.WaitInSync(t, name, topicTimeout)
}

// Partition is a partition's leader and in-sync replicas.
type Partition struct {
	ID       int32
	Leader   int32
	Replicas []int32
	ISR      []int32
}

// Partitions describes a topic's partitions as the cluster's metadata has
// them now.
func (c *Cluster) Partitions(topic string) ([]Partition, error) {
	admin, err := sarama.NewClusterAdmin(c.runningBrokers(), c.Config())
	if err != nil {
		return nil, err
	}
	defer admin.Close()
	mds, err := admin.DescribeTopics([]string{topic})
	if err != nil {
		return nil, err
	}
	if len(mds) != 1 || !errors.Is(mds[0].Err, sarama.ErrNoError) {
		return nil, fmt.Errorf("describe %s: %+v", topic, mds)
	}
	var out []Partition
	for _, p := range mds[0].Partitions {
		out = append(out, Partition{ID: p.ID, Leader: p.Leader, Replicas: p.Replicas, ISR: p.Isr})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// WaitInSync waits until every partition of topic has a leader and every
// replica in sync (after CreateTopic, or after a node came back).
func (c *Cluster) WaitInSync(t testing.TB, topic string, d time.Duration) {
	t.Helper()
	c.eventually(t, d, "every replica of "+topic+" in sync", func() error {
		ps, err := c.Partitions(topic)
		if err != nil {
			return err
		}
		if len(ps) == 0 {
			return errors.New("no partitions")
		}
		for _, p := range ps {
			if p.Leader < 0 || len(p.ISR) != len(p.Replicas) {
				return fmt.Errorf("partition %d: leader %d, replicas %v, in sync %v", p.ID, p.Leader, p.Replicas, p.ISR)
			}
		}
		return nil
	})
}

// Leader is the node leading a partition now.
func (c *Cluster) Leader(t testing.TB, topic string, partition int32) int32 {
	t.Helper()
	var leader int32
	c.eventually(t, 30*time.Second, fmt.Sprintf("the leader of %s/%d", topic, partition), func() error {
		ps, err := c.Partitions(topic)
		if err != nil {
			return err
		}
		for _, p := range ps {
			if p.ID == partition && p.Leader > 0 {
				leader = p.Leader
				return nil
			}
		}
		return fmt.Errorf("no leader in %+v", ps)
	})
	return leader
}

// WaitBrokers waits until the cluster's metadata lists every node
// (registered and unfenced), e.g. after a node was restarted.
func (c *Cluster) WaitBrokers(t testing.TB) {
	t.Helper()
	if err := c.waitBrokers(len(c.nodes), time.Now().Add(60*time.Second)); err != nil {
		c.fatal(t, "%v", err)
	}
}

func (c *Cluster) waitBrokers(n int, deadline time.Time) error {
	for {
		err := func() error {
			client, err := sarama.NewClient(c.runningBrokers(), c.Config())
			if err != nil {
				return err
			}
			defer client.Close()
			var ids []int32
			for _, b := range client.Brokers() {
				ids = append(ids, b.ID())
			}
			if len(ids) != n {
				return fmt.Errorf("metadata lists brokers %v, want %d", ids, n)
			}
			return nil
		}()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the cluster's brokers are not all up: %w", err)
		}
		time.Sleep(100 * time.Millisecond) // poll interval of a condition wait
	}
}

// close stops every node and removes a directory StartCluster created.
func (c *Cluster) close() error {
	errs := make([]error, len(c.nodes))
	var wg sync.WaitGroup
	for i, n := range c.nodes {
		wg.Add(1)
		go func() { defer wg.Done(); errs[i] = n.stop() }()
	}
	wg.Wait()
	err := errors.Join(errs...)
	if c.owns {
		if rerr := os.RemoveAll(c.dir); rerr != nil && err == nil {
			err = rerr
		}
	}
	return err
}

func (c *Cluster) eventually(t testing.TB, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			c.fatal(t, "%s: not within %v: %v", what, d, err)
		}
		time.Sleep(100 * time.Millisecond) // poll interval of a condition wait
	}
}

func (c *Cluster) fatal(t testing.TB, format string, args ...any) {
	t.Helper()
	if c.shared {
		c.logTo(t)
	}
	t.Fatalf("kafkatest: "+format, args...)
}

func (c *Cluster) logTo(t testing.TB) {
	t.Helper()
	t.Logf("kafkatest: cluster %s:\n%s", c.dir, c.allLogs())
}

func (c *Cluster) allLogs() string {
	var sb strings.Builder
	for _, n := range c.nodes {
		fmt.Fprintf(&sb, "--- node %d (log %s):\n%s", n.id, filepath.Join(n.dataDir, "broker.log"), n.Logs())
	}
	return sb.String()
}

// InSync reports whether node is in the in-sync replicas of every
// partition of ps.
func InSync(ps []Partition, node int32) bool {
	for _, p := range ps {
		if !slices.Contains(p.ISR, node) {
			return false
		}
	}
	return true
}

// NewSCRAMClient is a SCRAM-SHA-512 client (xdg-go/scram) for a test's own
// sarama clients of the SCRAM listener: sarama leaves SCRAM to the
// application, and a test checking the cluster or the services must not
// lean on the code under test (kafkacfg's).
func NewSCRAMClient() sarama.SCRAMClient { return &scramClient{} }

type scramClient struct{ conv *scram.ClientConversation }

func (s *scramClient) Begin(user, password, authzID string) error {
	c, err := scram.SHA512.NewClient(user, password, authzID)
	if err != nil {
		return err
	}
	s.conv = c.NewConversation()
	return nil
}
func (s *scramClient) Step(challenge string) (string, error) { return s.conv.Step(challenge) }
func (s *scramClient) Done() bool                            { return s.conv.Done() }
