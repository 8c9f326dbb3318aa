// Package bench measures the fan-out against a real Kafka broker, with the
// real binaries, on this machine, and prints one table (`make bench`):
//
//	go test -run '^$' -bench . -benchtime 1x -timeout 30m ./tests/bench/
//
// Each Benchmark runs its scenario once (they take seconds to minutes);
// the figures are also reported as benchmark metrics.
package bench

import (
	"bufio"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"
	"text/tabwriter"

	"playpulse.dev/tests/kafkatest"
)

var broker *kafkatest.Broker

type row struct {
	name, value, target, verdict string
}

var (
	rowsMu sync.Mutex
	rows   []row
)

// report adds a line to the table; ok is nil when there is no target.
func report(name, value, target string, ok *bool) {
	v := ""
	if ok != nil {
		v = "MISS"
		if *ok {
			v = "ok"
		}
	}
	rowsMu.Lock()
	rows = append(rows, row{name, value, target, v})
	rowsMu.Unlock()
}

func pass(b bool) *bool { return &b }

func TestMain(m *testing.M) {
	b, stop, err := kafkatest.StartMain()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench: cannot start Kafka:", err)
		os.Exit(1)
	}
	broker = b
	load := loadAvg()
	code := m.Run()
	stop()
	if len(rows) > 0 {
		printTable(load)
	}
	os.Exit(code)
}

func printTable(loadBefore string) {
	fmt.Println()
	fmt.Printf("Playpulse fan-out benchmarks (real Kafka %s, real binaries)\n", kafkatest.KafkaVersion)
	fmt.Printf("machine: %d cores, %s, %s, %s/%s; load average before: %s, after: %s\n\n",
		runtime.NumCPU(), cpuModel(), runtime.Version(), runtime.GOOS, runtime.GOARCH, loadBefore, loadAvg())
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "figure\tmeasured\ttarget\t")
	fmt.Fprintln(tw, "------\t--------\t------\t")
	for _, r := range rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", r.name, r.value, r.target, r.verdict)
	}
	tw.Flush()
}

func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
