package harness

import (
	"os"
	"syscall"
	"testing"
	"time"
)

// rusageSeconds is this process's CPU time as the kernel reports it through
// getrusage: an independent source to check /proc's parser against.
func rusageSeconds(t *testing.T) float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

func TestCPUSeconds(t *testing.T) {
	self, machine, ru := CPUSeconds(os.Getpid()), MachineBusySeconds(), rusageSeconds(t)
	// Spin until the kernel has charged this process 0.3 CPU seconds, not for
	// 0.3 s of wall time: beside make test's other lanes a wall-clock spin may
	// get a fraction of a core.
	for deadline := time.Now().Add(time.Minute); rusageSeconds(t)-ru < 0.3; {
		if time.Now().After(deadline) {
			t.Fatal("this process was not charged 0.3 CPU seconds in a minute of spinning")
		}
	}
	used := rusageSeconds(t) - ru
	// /proc counts in clock ticks (10 ms), so allow a few ticks either way.
	if d := CPUSeconds(os.Getpid()) - self; d < used-0.05 || d > used+0.05 {
		t.Errorf("/proc says this process used %.2f CPU seconds; getrusage says %.2f", d, used)
	}
	if d := MachineBusySeconds() - machine; d < used-0.05 {
		t.Errorf("the machine was busy %.2f CPU seconds while this process alone used %.2f", d, used)
	}
	if CPUSeconds(0) != 0 {
		t.Error("CPUSeconds(0) should be 0: there is no process 0 in /proc")
	}
}
