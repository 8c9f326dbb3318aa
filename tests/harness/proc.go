package harness

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// CPUSeconds is the user+system CPU time process pid has used, from
// /proc; 0 when it cannot be read (no such process). Benchmarks take its
// difference over a window.
func CPUSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	// Fields after the command name, which is in parentheses and may hold
	// spaces: utime and stime are the 14th and 15th of the line.
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / userHZ
}

// MachineBusySeconds is the non-idle CPU time of the whole machine (all
// cores), from /proc/stat; 0 when it cannot be read.
func MachineBusySeconds() float64 {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	var busy float64
	for i, x := range strings.Fields(line)[1:] {
		if i == 3 || i == 4 { // idle, iowait
			continue
		}
		v, _ := strconv.ParseFloat(x, 64)
		busy += v
	}
	return busy / userHZ
}

// userHZ is the unit of /proc's CPU times on Linux.
const userHZ = 100
