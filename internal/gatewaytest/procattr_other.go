//go:build !linux

package gatewaytest

import "syscall"

// SysProcAttr: only Linux can tie a child's life to the test binary's.
func SysProcAttr() *syscall.SysProcAttr { return nil }
