package e2e

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// metricSum adds up every sample of a metric family (all label sets) from a
// Prometheus text endpoint, optionally only samples whose labels contain
// labelMatch.
func metricSum(url, name, labelMatch string) (float64, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	sum, found := 0.0, false
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, name) {
			continue
		}
		rest := line[len(name):]
		if rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue
		}
		if labelMatch != "" && !strings.Contains(rest, labelMatch) {
			continue
		}
		f := strings.Fields(rest)
		v, err := strconv.ParseFloat(f[len(f)-1], 64)
		if err != nil {
			return 0, err
		}
		sum += v
		found = true
	}
	if !found {
		return 0, fmt.Errorf("metric %s not found at %s", name, url)
	}
	return sum, nil
}

func metricAtLeast(url, name string, min float64) error {
	v, err := metricSum(url, name, "")
	if err != nil {
		return err
	}
	if v < min {
		return fmt.Errorf("%s = %v, want >= %v", name, v, min)
	}
	return nil
}
