package proxy

import "syscall"

// alive peeks at an idle connection without blocking: the upstream closed
// it (EOF), reset it, or sent bytes nobody asked for (framing in doubt).
// http.Transport learns the same from its read loop, blocked on every idle
// connection; one non-blocking peek when the connection is taken costs
// less than that goroutine.
func (c *h1Conn) alive() bool {
	sc, ok := c.nc.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	var buf [1]byte
	idle := false
	err = rc.Read(func(fd uintptr) bool {
		_, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		idle = rerr == syscall.EAGAIN
		return true
	})
	return err == nil && idle
}
