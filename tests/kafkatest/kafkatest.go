// Package kafkatest runs a real single-node Apache Kafka 4.x broker (KRaft,
// broker+controller in one JVM) for integration tests, in the "RunServer"
// style: the test starts a broker, talks to it over the Kafka protocol at
// Addr(), and the broker is stopped when the test ends.
//
// The broker is started by hack/kafka.sh (found by walking up from the working
// directory to the directory containing go.work), which runs it from jars in
// ${PLAYPULSE_CACHE:-$HOME/.cache/playpulse}/kafka/4.3.1/libs. Java (17+) and a
// filled cache are required: run `hack/kafka.sh fetch` once. A missing
// prerequisite fails the test; it is never skipped.
//
// Per test:
//
//	b := kafkatest.Start(t)
//	b.CreateTopic(t, "playback-events", 3)
//	... sarama.NewSyncProducer([]string{b.Addr()}, cfg) ...
//
// One broker shared by a package:
//
//	var broker *kafkatest.Broker
//
//	func TestMain(m *testing.M) {
//		b, stop, err := kafkatest.StartMain()
//		if err != nil {
//			fmt.Fprintln(os.Stderr, err)
//			os.Exit(1)
//		}
//		broker = b
//		code := m.Run()
//		stop()
//		os.Exit(code)
//	}
//
// A secured three-node cluster (hack/kafka.sh cluster-init and node: TLS,
// SCRAM-SHA-512 and mutual-TLS listeners, replication factor 3, Strimzi's
// Secrets as files), whose nodes a test can kill and restart one by one:
//
//	c := kafkatest.StartCluster(t)
//	c.CreateTopic(t, "playback-events", 3)
//	... KAFKA_BROKERS=c.Bootstrap(kafkatest.SCRAM),
//	    KAFKA_TLS_CA_FILE=c.Secret(kafkatest.ClusterCASecret)+"/ca.crt" ...
//	c.Node(c.Leader(t, "playback-events", 0)).Kill(t)
package kafkatest

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// KafkaVersion is the Apache Kafka version hack/kafka.sh runs.
const KafkaVersion = "4.3.1"

const (
	defaultReadyTimeout = 240 * time.Second // hack/kafka.sh gives up after 180 s itself
	stopTimeout         = 30 * time.Second  // hack/kafka.sh SIGKILLs the JVM after 15 s
	topicTimeout        = 60 * time.Second
	logLines            = 200
)

// Option configures Start / StartMain.
type Option func(*config)

type config struct {
	host         string
	port         int
	dataDir      string
	readyTimeout time.Duration
	nodes        int               // StartCluster: number of nodes
	proxies      map[string]string // StartCluster: listener name -> advertised addresses
	scram        map[string]bool   // StartCluster: proxy listeners that are SASL_SSL with SCRAM
}

// WithHost makes the broker's client listener bind and advertise host (an
// IPv4 address of this machine) instead of 127.0.0.1: the test-bed cluster's
// pods reach it on the node address (tests/cluster). The KRaft controller
// listener stays on 127.0.0.1.
func WithHost(host string) Option { return func(c *config) { c.host = host } }

// WithPort makes the broker listen on port instead of a free port.
func WithPort(port int) Option { return func(c *config) { c.port = port } }

// WithDataDir runs the broker on dir (created if missing, reused if already
// formatted). The directory is left in place afterwards; by default a
// temporary directory is used and removed when the broker is cleaned up.
func WithDataDir(dir string) Option { return func(c *config) { c.dataDir = dir } }

// WithReadyTimeout bounds how long Start and Restart wait for the broker.
func WithReadyTimeout(d time.Duration) Option { return func(c *config) { c.readyTimeout = d } }

// Broker is a running (or stopped) Kafka broker started by hack/kafka.sh.
type Broker struct {
	script       string
	host         string // client listener address; "" = hack/kafka.sh's 127.0.0.1
	dataDir      string
	ownsDataDir  bool
	shared       bool // started by StartMain, not owned by one test
	readyTimeout time.Duration
	logs         *ringLog
	// args replaces `start --data DIR [--host] [--port]` for a node of a
	// cluster (`node --dir DIR --node I`).
	args []string
	id   int32 // node id of a cluster node; 0 for a single broker

	mu   sync.Mutex
	port int      // fixed after the first start
	addr string   // "127.0.0.1:PORT"
	proc *process // nil while stopped
}

// Start starts a broker and registers t.Cleanup to stop it (and to remove its
// data directory unless WithDataDir was given). It fails the test if Java or
// the jar cache is missing or the broker does not become ready.
func Start(t testing.TB, opts ...Option) *Broker {
	t.Helper()
	b, err := newBroker(opts)
	if err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			b.logTo(t)
		}
		if err := b.close(); err != nil {
			t.Errorf("kafkatest: %v", err)
		}
	})
	if err := b.start(); err != nil {
		t.Fatalf("kafkatest: %v", err) // the cleanup above prints the broker output
	}
	return b
}

// StartMain starts a broker without a testing.TB, for a TestMain that shares
// one broker across a package. stop stops the broker and removes its
// temporary data directory; call it before os.Exit. On error the broker's
// last output lines are included in the error.
func StartMain(opts ...Option) (b *Broker, stop func(), err error) {
	b, err = newBroker(opts)
	if err != nil {
		return nil, nil, fmt.Errorf("kafkatest: %w", err)
	}
	b.shared = true
	if err := b.start(); err != nil {
		_ = b.close()
		return nil, nil, fmt.Errorf("kafkatest: %w\n%s", err, b.logs.String())
	}
	var once sync.Once
	stop = func() {
		once.Do(func() {
			if err := b.close(); err != nil {
				fmt.Fprintf(os.Stderr, "kafkatest: %v\n%s", err, b.logs.String())
			}
		})
	}
	return b, stop, nil
}

// Addr is the broker's bootstrap address, "HOST:PORT" (HOST 127.0.0.1 unless
// WithHost). It stays the same
// across Stop and Restart.
func (b *Broker) Addr() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.addr
}

// DataDir is the broker's data directory (kept across Stop and Restart).
func (b *Broker) DataDir() string { return b.dataDir }

// Logs returns the last lines the broker and hack/kafka.sh printed.
func (b *Broker) Logs() string { return b.logs.String() }

// Stop stops the broker process (SIGTERM, then SIGKILL to its process group
// if it does not exit). The data directory is kept, so Restart can follow.
func (b *Broker) Stop(t testing.TB) {
	t.Helper()
	if err := b.stop(); err != nil {
		b.fatal(t, "%v", err)
	}
}

// Kill kills the broker with SIGKILL (its JVM and hack/kafka.sh together,
// as a crash would) and waits until it is gone. The data directory is kept,
// so Restart can follow.
func (b *Broker) Kill(t testing.TB) {
	t.Helper()
	b.mu.Lock()
	p := b.proc
	b.proc = nil
	b.mu.Unlock()
	if p == nil {
		return
	}
	killGroup(p, syscall.SIGKILL)
	<-p.done
}

// Pid is the process id of the running broker's hack/kafka.sh (the leader
// of its process group), or 0 while it is stopped.
func (b *Broker) Pid() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.proc == nil || b.proc.cmd.Process == nil {
		return 0
	}
	return b.proc.cmd.Process.Pid
}

// JVMPid is the process id of the broker's JVM (found by its data
// directory on the command line), or 0 when it is not running: the process
// whose CPU a benchmark measures.
func (b *Broker) JVMPid() int {
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, err := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		if err != nil {
			continue
		}
		if s := string(cmd); strings.Contains(s, "kafka.Kafka") && strings.Contains(s, b.DataDir()) {
			return pid
		}
	}
	return 0
}

// Restart starts the broker again on the same data directory and port (a
// running broker is stopped first) and waits until it is ready.
func (b *Broker) Restart(t testing.TB) {
	t.Helper()
	if err := b.stop(); err != nil {
		b.fatal(t, "%v", err)
	}
	if err := b.start(); err != nil {
		b.fatal(t, "restart: %v", err)
	}
}

// CreateTopic creates a topic with the given number of partitions
// (replication factor 1) and waits until the metadata shows every partition
// with a leader.
func (b *Broker) CreateTopic(t testing.TB, name string, partitions int32) {
	t.Helper()
	if err := b.createTopic(name, partitions); err != nil {
		b.fatal(t, "create topic %q: %v", name, err)
	}
}

func newBroker(opts []Option) (*Broker, error) {
	cfg := config{readyTimeout: defaultReadyTimeout}
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
	b := &Broker{
		script:       script,
		host:         cfg.host,
		dataDir:      cfg.dataDir,
		readyTimeout: cfg.readyTimeout,
		port:         cfg.port,
		logs:         newRingLog(logLines),
	}
	if b.dataDir == "" {
		dir, err := os.MkdirTemp("", "kafkatest-")
		if err != nil {
			return nil, err
		}
		b.dataDir, b.ownsDataDir = dir, true
	} else if b.dataDir, err = filepath.Abs(b.dataDir); err != nil {
		return nil, err
	}
	return b, nil
}

// findScript walks up from the working directory to the directory holding
// go.work and returns its hack/kafka.sh.
func findScript() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for dir := wd; ; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
			script := filepath.Join(dir, "hack", "kafka.sh")
			if _, err := os.Stat(script); err != nil {
				return "", fmt.Errorf("%s not found: %w", script, err)
			}
			return script, nil
		}
		if filepath.Dir(dir) == dir {
			return "", fmt.Errorf("no go.work found above %s; cannot locate hack/kafka.sh", wd)
		}
	}
}

// checkPrereqs mirrors what hack/kafka.sh start needs, to fail with a clear
// message before spawning anything.
func checkPrereqs() error {
	if _, err := exec.LookPath("bash"); err != nil {
		return errors.New("bash not found on PATH (needed for hack/kafka.sh)")
	}
	if !haveJava() {
		return errors.New("java not found (install openjdk-17-jre-headless or set JAVA_HOME), then run `hack/kafka.sh fetch`")
	}
	cache := os.Getenv("PLAYPULSE_CACHE")
	if cache == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return fmt.Errorf("cannot locate the Kafka jar cache: %w; run `hack/kafka.sh fetch`", err)
		}
		cache = filepath.Join(home, ".cache", "playpulse")
	}
	dir := filepath.Join(cache, "kafka", KafkaVersion)
	if _, err := os.Stat(filepath.Join(dir, ".complete")); err != nil {
		return fmt.Errorf("Kafka %s jars are not cached in %s: run `hack/kafka.sh fetch` first", KafkaVersion, filepath.Join(dir, "libs"))
	}
	return nil
}

func haveJava() bool {
	if jh := os.Getenv("JAVA_HOME"); jh != "" {
		if isExecutable(filepath.Join(jh, "bin", "java")) {
			return true
		}
	}
	if isExecutable("/usr/lib/jvm/java-17-openjdk-amd64/bin/java") {
		return true
	}
	_, err := exec.LookPath("java")
	return err == nil
}

func isExecutable(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// process is one run of `hack/kafka.sh start`.
type process struct {
	cmd   *exec.Cmd
	ready chan string   // receives the address from the READY line
	done  chan struct{} // closed when the script has exited
	err   error         // cmd.Wait's result, valid after done is closed
}

func (b *Broker) start() error {
	b.mu.Lock()
	running, port := b.proc != nil, b.port
	b.mu.Unlock()
	if running {
		return errors.New("broker already running")
	}
	p, addr, port, err := b.launch(port)
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.proc, b.port, b.addr = p, port, addr
	b.mu.Unlock()
	// The script waited for "Kafka Server started" and an open port; also
	// check that the broker answers a Metadata request before handing it out.
	if err := waitMetadata(addr, p, time.Now().Add(b.readyTimeout)); err != nil {
		_ = b.stop()
		return err
	}
	return nil
}

// launch runs `hack/kafka.sh start` and waits for its READY line.
func (b *Broker) launch(port int) (*process, string, int, error) {
	args := []string{b.script, "start", "--data", b.dataDir}
	if b.host != "" {
		args = append(args, "--host", b.host)
	}
	if port != 0 {
		args = append(args, "--port", strconv.Itoa(port))
	}
	if b.args != nil {
		args = append([]string{b.script}, b.args...)
	}
	cmd := exec.Command("bash", args...)
	cmd.Dir = filepath.Dir(b.script)
	cmd.SysProcAttr = sysProcAttr()
	// Kafka's JVM and the script's log tail inherit these pipes; do not let a
	// stray holder keep Wait from returning.
	cmd.WaitDelay = 5 * time.Second
	p := &process{cmd: cmd, ready: make(chan string, 1), done: make(chan struct{})}
	cmd.Stdout = &lineWriter{fn: func(line string) {
		b.logs.add(line)
		if addr, ok := strings.CutPrefix(line, "READY "); ok {
			select {
			case p.ready <- strings.TrimSpace(addr):
			default:
			}
		}
	}}
	cmd.Stderr = &lineWriter{fn: b.logs.add}
	b.logs.add("--- kafkatest: " + strings.Join(cmd.Args, " "))
	if err := cmd.Start(); err != nil {
		return nil, "", 0, fmt.Errorf("start %s: %w", b.script, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()

	abort := func(err error) (*process, string, int, error) {
		killGroup(p, syscall.SIGTERM)
		waitOrKill(p, stopTimeout)
		return nil, "", 0, err
	}
	timer := time.NewTimer(b.readyTimeout)
	defer timer.Stop()
	select {
	case addr := <-p.ready:
		host, portStr, ok := strings.Cut(addr, ":")
		got, err := strconv.Atoi(portStr)
		if !ok || host == "" || err != nil {
			return abort(fmt.Errorf("unexpected READY line %q", addr))
		}
		return p, addr, got, nil
	case <-p.done:
		return nil, "", 0, fmt.Errorf("hack/kafka.sh start exited before the broker was ready: %v", p.err)
	case <-timer.C:
		return abort(fmt.Errorf("broker not ready after %v", b.readyTimeout))
	}
}

func waitMetadata(addr string, p *process, deadline time.Time) error {
	cfg := sarama.NewConfig()
	cfg.Net.DialTimeout = 5 * time.Second
	cfg.Metadata.Retry.Max = 0
	for {
		client, err := sarama.NewClient([]string{addr}, cfg)
		if err == nil {
			n := len(client.Brokers())
			_ = client.Close()
			if n > 0 {
				return nil
			}
			err = errors.New("metadata lists no brokers")
		}
		select {
		case <-p.done:
			return fmt.Errorf("broker exited after READY: %v", p.err)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("broker at %s does not answer Metadata: %w", addr, err)
		}
		time.Sleep(50 * time.Millisecond) // poll interval of a condition wait
	}
}

func (b *Broker) stop() error {
	b.mu.Lock()
	p := b.proc
	b.proc = nil
	b.mu.Unlock()
	if p == nil {
		return nil
	}
	// SIGTERM to the whole group: the JVM starts its clean shutdown at once
	// and the script waits for it (SIGKILL after 15 s) before exiting.
	killGroup(p, syscall.SIGTERM)
	if !waitOrKill(p, stopTimeout) {
		return fmt.Errorf("broker did not stop within %v; killed", stopTimeout)
	}
	if p.err != nil {
		return fmt.Errorf("hack/kafka.sh start exited uncleanly: %v", p.err)
	}
	return nil
}

// close stops the broker and removes a data directory that Start created.
func (b *Broker) close() error {
	err := b.stop()
	if b.ownsDataDir {
		if rerr := os.RemoveAll(b.dataDir); rerr != nil && err == nil {
			err = rerr
		}
	}
	return err
}

func killGroup(p *process, sig syscall.Signal) {
	if p.cmd.Process == nil {
		return
	}
	// Negative pid: the process group (Setpgid made the script its leader).
	_ = syscall.Kill(-p.cmd.Process.Pid, sig)
}

// waitOrKill waits for the script to exit; after timeout it SIGKILLs the
// process group and reports false.
func waitOrKill(p *process, timeout time.Duration) bool {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case <-p.done:
		return true
	case <-timer.C:
		killGroup(p, syscall.SIGKILL)
		<-p.done
		return false
	}
}

func (b *Broker) createTopic(name string, partitions int32) error {
	addr := b.Addr()
	if addr == "" {
		return errors.New("broker not started")
	}
	cfg := sarama.NewConfig()
	admin, err := sarama.NewClusterAdmin([]string{addr}, cfg)
	if err != nil {
		return err
	}
	defer admin.Close()
	if err := admin.CreateTopic(name, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false); err != nil {
		return err
	}

	client, err := sarama.NewClient([]string{addr}, cfg)
	if err != nil {
		return err
	}
	defer client.Close()
	deadline := time.Now().Add(topicTimeout)
	for {
		err := topicReady(client, name, partitions)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %w", topicTimeout, err)
		}
		time.Sleep(50 * time.Millisecond) // poll interval of a condition wait
	}
}

func topicReady(client sarama.Client, name string, partitions int32) error {
	if err := client.RefreshMetadata(name); err != nil {
		return err
	}
	ids, err := client.Partitions(name)
	if err != nil {
		return err
	}
	if int32(len(ids)) != partitions {
		return fmt.Errorf("metadata shows %d of %d partitions", len(ids), partitions)
	}
	for _, id := range ids {
		if _, err := client.Leader(name, id); err != nil {
			return fmt.Errorf("partition %d: %w", id, err)
		}
	}
	return nil
}

// fatal fails t. The broker output goes with it for a shared (StartMain)
// broker; a Start broker prints it from its cleanup when the test failed.
func (b *Broker) fatal(t testing.TB, format string, args ...any) {
	t.Helper()
	if b.shared {
		b.logTo(t)
	}
	t.Fatalf("kafkatest: "+format, args...)
}

func (b *Broker) logTo(t testing.TB) {
	t.Helper()
	if s := b.logs.String(); s != "" {
		t.Logf("kafkatest: last broker output (data dir %s):\n%s", b.dataDir, s)
	}
}

// ringLog keeps the last n lines written to it.
type ringLog struct {
	mu    sync.Mutex
	lines []string
	next  int
	full  bool
}

func newRingLog(n int) *ringLog { return &ringLog{lines: make([]string, n)} }

func (r *ringLog) add(line string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lines[r.next] = line
	r.next = (r.next + 1) % len(r.lines)
	if r.next == 0 {
		r.full = true
	}
}

func (r *ringLog) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var sb strings.Builder
	if r.full {
		for _, l := range r.lines[r.next:] {
			sb.WriteString(l)
			sb.WriteByte('\n')
		}
	}
	for _, l := range r.lines[:r.next] {
		sb.WriteString(l)
		sb.WriteByte('\n')
	}
	return sb.String()
}

// lineWriter calls fn for each complete line written to it.
type lineWriter struct {
	mu  sync.Mutex
	buf []byte
	fn  func(string)
}

func (w *lineWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := bytes.IndexByte(w.buf, '\n')
		if i < 0 {
			break
		}
		w.fn(strings.TrimRight(string(w.buf[:i]), "\r"))
		w.buf = w.buf[i+1:]
	}
	return len(p), nil
}
