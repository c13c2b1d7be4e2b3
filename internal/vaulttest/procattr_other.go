//go:build unix && !linux

package vaulttest

import "syscall"

// procAttr puts the server in its own process group so Stop kills all of it.
func procAttr() *syscall.SysProcAttr { return &syscall.SysProcAttr{Setpgid: true} }
