package harness

import (
	"os"
	"testing"
	"time"
)

func TestCPUSeconds(t *testing.T) {
	self, machine := CPUSeconds(os.Getpid()), MachineBusySeconds()
	for end := time.Now().Add(300 * time.Millisecond); time.Now().Before(end); {
	}
	if d := CPUSeconds(os.Getpid()) - self; d < 0.1 || d > 5 {
		t.Errorf("this process used %.2f CPU seconds spinning for 0.3 s", d)
	}
	if d := MachineBusySeconds() - machine; d < 0.1 {
		t.Errorf("the machine was busy %.2f CPU seconds while this process spun for 0.3 s", d)
	}
	if CPUSeconds(0) != 0 {
		t.Error("CPUSeconds(0) should be 0: there is no process 0 in /proc")
	}
}
