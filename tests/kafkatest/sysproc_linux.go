package kafkatest

import "syscall"

// The script leads its own process group (so Stop can signal the script, the
// JVM and the log tail together), and gets SIGTERM if the test binary dies;
// the script then stops the JVM, which hack/kafka.sh also runs with a parent
// death signal of its own.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
