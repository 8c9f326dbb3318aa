package sim

import (
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"playpulse.dev/services/playback/event"
)

func threadCPU() time.Duration {
	var ts syscall.Timespec
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 3, uintptr(unsafe.Pointer(&ts)), 0)
	return time.Duration(ts.Nano())
}

func TestCPUScratch(t *testing.T) {
	runtime.LockOSThread()
	s := warmSim(nil)
	var e event.Event
	buf := make([]byte, 0, 1024)
	for round := 0; round < 3; round++ {
		const n = 2000000
		c0 := threadCPU()
		for range n {
			benchNow = benchNow.Add(time.Second / benchRate)
			s.Next(benchNow, &e)
		}
		c1 := threadCPU()
		for range n {
			benchNow = benchNow.Add(time.Second / benchRate)
			s.Next(benchNow, &e)
			buf = e.AppendJSON(buf[:0])
		}
		c2 := threadCPU()
		fmt.Printf("Next %v/op  Next+Append %v/op\n", (c1-c0)/n, (c2-c1)/n)
	}
}
