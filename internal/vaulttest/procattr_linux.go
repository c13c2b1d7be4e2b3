package vaulttest

import "syscall"

// procAttr puts the server in its own process group (so Stop kills all of
// it) and kills it if the test binary dies without cleaning up.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
