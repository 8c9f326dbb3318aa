// Command devstack is what `make run` starts: an embedded Kafka-protocol
// broker (kfake, in memory), then bin/producer and bin/fanout as separate
// processes, exactly as they run in a cluster. Ctrl-C stops all of them.
// With KAFKA_BROKERS set it starts no broker and uses that cluster.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	binDir := flag.String("bin", "bin", "directory holding the producer and fanout binaries")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, `Usage: devstack [-bin DIR]

Starts the Playpulse pipeline on this machine: an in-memory Kafka (unless
KAFKA_BROKERS is set), one producer and one fan-out. Variables passed on:

  KAFKA_BROKERS    use this Kafka instead of the embedded broker
  PRODUCER_RATE    events per second (default 200)
  FANOUT_ADDR      dashboard address (default :8080)
  any other PRODUCER_*, FANOUT_*, KAFKA_* variable (see bin/producer -h, bin/fanout -h)
`)
	}
	flag.Parse()
	if err := run(*binDir); err != nil {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(1)
	}
}

const topic = "playback-events"

func run(binDir string) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	env := os.Environ()
	brokers := os.Getenv("KAFKA_BROKERS")
	if brokers == "" {
		port, err := freePort(9092)
		if err != nil {
			return err
		}
		cluster, err := kfake.NewCluster(kfake.Ports(port), kfake.SeedTopics(3, topic))
		if err != nil {
			return fmt.Errorf("embedded broker: %w", err)
		}
		defer cluster.Close()
		brokers = cluster.ListenAddrs()[0]
		env = append(env, "KAFKA_BROKERS="+brokers)
		fmt.Printf("embedded Kafka (kfake, in memory) on %s, topic %q with 3 partitions\n", brokers, topic)
	} else {
		fmt.Printf("using Kafka at %s (topic %q must exist)\n", brokers, topic)
	}
	addr := os.Getenv("FANOUT_ADDR")
	if addr == "" {
		addr = ":8080"
	}
	if os.Getenv("PRODUCER_RATE") == "" {
		env = append(env, "PRODUCER_RATE=200")
	}
	// The two services share the host: give the producer's ops port its own
	// default only when the user did not choose one.
	if os.Getenv("PRODUCER_ADDR") == "" {
		env = append(env, "PRODUCER_ADDR=127.0.0.1:0")
	}

	procs := []*proc{
		{name: "producer", path: filepath.Join(binDir, "producer")},
		{name: "fanout", path: filepath.Join(binDir, "fanout")},
	}
	for _, p := range procs {
		if err := p.start(env); err != nil {
			stopAll(procs)
			return err
		}
	}
	_, port, _ := net.SplitHostPort(addr)
	fmt.Printf("\n  Dashboard: http://localhost:%s\n\n  Ctrl-C stops everything.\n\n", port)

	exited := make(chan *proc, len(procs))
	for _, p := range procs {
		go func() { <-p.done; exited <- p }()
	}
	select {
	case <-ctx.Done():
		fmt.Println("\nstopping…")
		stopAll(procs)
		return nil
	case p := <-exited:
		stopAll(procs)
		return fmt.Errorf("%s exited unexpectedly: %v", p.name, p.err)
	}
}

type proc struct {
	name, path string
	cmd        *exec.Cmd
	done       chan struct{}
	err        error
}

func (p *proc) start(env []string) error {
	p.cmd = exec.Command(p.path)
	p.cmd.Env = env
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	stdout, _ := p.cmd.StdoutPipe()
	stderr, _ := p.cmd.StderrPipe()
	if err := p.cmd.Start(); err != nil {
		return fmt.Errorf("start %s (run `make build` first): %w", p.name, err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); prefix(p.name, stdout) }()
	go func() { defer wg.Done(); prefix(p.name, stderr) }()
	p.done = make(chan struct{})
	go func() {
		wg.Wait()
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	return nil
}

func prefix(name string, r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		fmt.Printf("%-8s | %s\n", name, sc.Text())
	}
}

// stopAll sends SIGTERM to each process group and waits up to 10 s, then
// kills what is left, so nothing keeps running after devstack.
func stopAll(procs []*proc) {
	for _, p := range procs {
		if p.cmd != nil && p.cmd.Process != nil {
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
		}
	}
	deadline := time.After(10 * time.Second)
	for _, p := range procs {
		if p.done == nil {
			continue
		}
		select {
		case <-p.done:
		case <-deadline:
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
	}
}

// freePort returns preferred if it is free, else any free port.
func freePort(preferred int) (int, error) {
	if ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(preferred)); err == nil {
		ln.Close()
		return preferred, nil
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
