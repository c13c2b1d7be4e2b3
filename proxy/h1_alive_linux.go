package proxy

import "syscall"

// alive peeks at an idle connection without blocking: the upstream closed
// it (EOF), reset it, or sent bytes nobody asked for (framing in doubt).
// http.Transport learns the same from its read loop, blocked on every idle
// connection; one non-blocking peek when the connection is taken costs
// less than that goroutine.
func (c *h1Conn) alive() bool {
	if c.raw == nil {
		sc, ok := c.nc.(syscall.Conn)
		if !ok {
			return true
		}
		raw, err := sc.SyscallConn()
		if err != nil {
			return false
		}
		c.raw, c.peekFn = raw, c.peek // once per connection, not per request
	}
	c.peekIdle = false
	return c.raw.Read(c.peekFn) == nil && c.peekIdle
}

func (c *h1Conn) peek(fd uintptr) bool {
	var buf [1]byte
	_, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	c.peekIdle = err == syscall.EAGAIN
	return true // never wait for readability
}
