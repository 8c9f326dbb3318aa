//go:build unix && !linux

package kafkatest

import "syscall"

// The script leads its own process group so Stop can signal it, the JVM and
// the log tail together. (No parent-death signal outside Linux.)
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
