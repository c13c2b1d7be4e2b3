package gateway

import (
	"bytes"
	"context"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// net/http processes a request with both Content-Length and chunked
// Transfer-Encoding by the latter and deletes Content-Length before the
// handler runs (RFC 9112 section 6.3), so the handler cannot tell such a
// request from a plain chunked one. RFC 9112 section 6.1 asks for the
// connection to be closed after it: a front proxy that framed it by
// Content-Length is out of step with us for whatever follows. The framing
// tracker reads the request heads as they pass through a plain-text
// connection and marks the connection once a head carries both.

// maxFramingLine bounds one chunk-size or trailer line the tracker holds.
const maxFramingLine = 4096

type framingState int

const (
	framingHead framingState = iota
	framingBody
	framingChunkSize
	framingChunkData
	framingTrailer
	framingOff // lost track (malformed input: net/http refuses it itself)
)

// framingListener wraps each accepted connection in a framingConn.
type framingListener struct {
	net.Listener
	maxHead int
}

func (l *framingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &framingConn{Conn: c, maxHead: l.maxHead}, nil
}

// framingConn follows HTTP/1.1 message framing on the bytes net/http reads.
// net/http reads a connection from one goroutine at a time, so the state
// needs no lock. Each head read queues its verdict; the front door takes
// one per request, in order, so a pipelined request behind a good one
// does not taint it.
type framingConn struct {
	net.Conn
	maxHead int

	mu    sync.Mutex
	heads []bool // per head read and not yet served: both Content-Length and Transfer-Encoding

	state framingState
	buf   []byte // the head, or the chunk-size/trailer line, so far
	left  int64  // body or chunk bytes still to pass
}

func (c *framingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && c.state != framingOff {
		c.scan(p[:n])
	}
	return n, err
}

func (c *framingConn) scan(p []byte) {
	for len(p) > 0 && c.state != framingOff {
		switch c.state {
		case framingBody, framingChunkData:
			n := min(int64(len(p)), c.left)
			c.left -= n
			p = p[n:]
			if c.left == 0 {
				if c.state == framingBody {
					c.state = framingHead
				} else {
					c.state = framingChunkSize
				}
			}
		case framingHead:
			if len(c.buf) == 0 {
				for len(p) > 0 && (p[0] == '\r' || p[0] == '\n') {
					p = p[1:] // blank lines between requests
				}
				if len(p) == 0 {
					return
				}
			}
			prev := len(c.buf)
			c.buf = append(c.buf, p...)
			end := headEnd(c.buf, max(0, prev-3))
			if end < 0 {
				if len(c.buf) > c.maxHead+maxFramingLine {
					c.state = framingOff
				}
				return
			}
			p = p[end-prev:] // what follows the head is its body, or the next head
			c.head(c.buf[:end])
			c.buf = c.buf[:0]
		case framingChunkSize, framingTrailer:
			i := bytes.IndexByte(p, '\n')
			if i < 0 {
				c.buf = append(c.buf, p...)
				if len(c.buf) > maxFramingLine {
					c.state = framingOff
				}
				return
			}
			c.buf = append(c.buf, p[:i]...)
			p = p[i+1:]
			line := strings.TrimRight(string(c.buf), "\r")
			c.buf = c.buf[:0]
			if c.state == framingTrailer {
				if line == "" {
					c.state = framingHead
				}
				continue
			}
			size, _, _ := strings.Cut(line, ";")
			n, err := strconv.ParseInt(strings.TrimSpace(size), 16, 64)
			switch {
			case err != nil || n < 0:
				c.state = framingOff
			case n == 0:
				c.state = framingTrailer
			default:
				c.state, c.left = framingChunkData, n+2 // the data, then its CRLF
			}
		}
	}
}

// headEnd returns the index just past the blank line ending the head in
// b, searching from from, or -1.
func headEnd(b []byte, from int) int {
	for i := from; i < len(b); {
		j := bytes.IndexByte(b[i:], '\n')
		if j < 0 {
			return -1
		}
		i += j
		if i >= 1 && b[i-1] == '\n' || i >= 2 && b[i-1] == '\r' && b[i-2] == '\n' {
			return i + 1
		}
		i++
	}
	return -1
}

var (
	contentLength    = []byte("content-length")
	transferEncoding = []byte("transfer-encoding")
)

// head reads one request head: its framing headers decide what follows.
func (c *framingConn) head(h []byte) {
	var hasCL, hasTE, chunked bool
	var length int64
	first := true
	for len(h) > 0 {
		i := bytes.IndexByte(h, '\n')
		if i < 0 {
			i = len(h) - 1
		}
		line := bytes.TrimRight(h[:i+1], "\r\n")
		h = h[i+1:]
		if first { // the request line
			first = false
			continue
		}
		colon := bytes.IndexByte(line, ':')
		if colon < 0 {
			continue
		}
		name, value := bytes.TrimSpace(line[:colon]), bytes.TrimSpace(line[colon+1:])
		switch {
		case bytes.EqualFold(name, contentLength):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 || hasCL && n != length {
				c.state = framingOff // net/http refuses it
				return
			}
			hasCL, length = true, n
		case bytes.EqualFold(name, transferEncoding):
			hasTE = true
			last := value
			if k := bytes.LastIndexByte(value, ','); k >= 0 {
				last = bytes.TrimSpace(value[k+1:])
			}
			chunked = bytes.EqualFold(last, []byte("chunked"))
		}
	}
	c.mu.Lock()
	c.heads = append(c.heads, hasCL && hasTE)
	c.mu.Unlock()
	switch {
	case hasCL && hasTE:
		c.state = framingOff // the connection closes after this request
	case hasTE && chunked:
		c.state = framingChunkSize
	case hasTE:
		c.state = framingOff // net/http answers 501 and closes
	case length > 0:
		c.state, c.left = framingBody, length
	}
}

type framingKey struct{}

// framingContext is http.Server.ConnContext: it lets handlers reach the
// connection's framing tracker.
func framingContext(ctx context.Context, c net.Conn) context.Context {
	if fc, ok := c.(*framingConn); ok {
		return context.WithValue(ctx, framingKey{}, fc)
	}
	return ctx
}

// ambiguousFraming reports whether r's head carried both Content-Length
// and Transfer-Encoding. It takes r's verdict off its connection's queue:
// call it once per request.
func ambiguousFraming(r *http.Request) bool {
	fc, _ := r.Context().Value(framingKey{}).(*framingConn)
	if fc == nil || r.ProtoMajor != 1 {
		return false
	}
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if len(fc.heads) == 0 {
		return false // the tracker lost the thread (malformed input)
	}
	amb := fc.heads[0]
	fc.heads = fc.heads[1:]
	return amb
}

// framingTracked reports whether r's connection is followed by the tracker.
func framingTracked(r *http.Request) bool {
	_, ok := r.Context().Value(framingKey{}).(*framingConn)
	return ok
}
