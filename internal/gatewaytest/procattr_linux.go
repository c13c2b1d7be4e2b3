package gatewaytest

import "syscall"

// SysProcAttr is for any child process a test starts: it kills the child
// if the test binary dies without cleaning up.
func SysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
