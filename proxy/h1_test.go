package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// step is a scripted upstream's move for one request.
type step struct {
	raw      string // written as is
	close    bool   // close the connection after writing raw
	noAnswer bool   // close without writing anything
	stall    bool   // write raw, then hold the connection open until the test ends
	early    bool   // answer after the head, before reading the body (then drain it)
}

// rawUpstream serves scripted answers: script(conn, n, req) for the n-th
// request (from 0) on the conn-th connection (from 0).
type rawUpstream struct {
	ln    net.Listener
	conns atomic.Int32
	reqs  atomic.Int32
	mu    sync.Mutex
	open  []net.Conn
	done  chan struct{}
}

func newRawUpstream(t testing.TB, script func(conn, n int, req *http.Request) step) *rawUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := &rawUpstream{ln: ln, done: make(chan struct{})}
	var wg sync.WaitGroup
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u.mu.Lock()
			u.open = append(u.open, c)
			u.mu.Unlock()
			idx := int(u.conns.Add(1)) - 1
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				br := bufio.NewReader(c)
				for n := 0; ; n++ {
					req, err := http.ReadRequest(br)
					if err != nil {
						return
					}
					u.reqs.Add(1)
					s := script(idx, n, req)
					if !s.early {
						io.Copy(io.Discard, req.Body)
					}
					if s.noAnswer {
						return
					}
					io.WriteString(c, s.raw)
					if s.early {
						io.Copy(io.Discard, req.Body)
					}
					if s.stall {
						<-u.done
						return
					}
					if s.close {
						return
					}
				}
			}()
		}
	}()
	t.Cleanup(func() {
		close(u.done)
		ln.Close()
		u.mu.Lock()
		for _, c := range u.open {
			c.Close()
		}
		u.mu.Unlock()
		wg.Wait()
	})
	return u
}

func (u *rawUpstream) url() string { return "http://" + u.ln.Addr().String() }

// newH1 is an H1Transport to u whose fallback counts its dials.
func newH1(t testing.TB, upstream string, fallbackDials *atomic.Int32) *H1Transport {
	t.Helper()
	d := &net.Dialer{Timeout: time.Second}
	fb := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if fallbackDials != nil {
			fallbackDials.Add(1)
		}
		return d.DialContext(ctx, network, addr)
	}}
	h, err := NewH1Transport(upstream, d.DialContext, fb, 4, time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.CloseIdleConnections)
	return h
}

const (
	ok5      = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
	okChunk  = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n"
	okClose  = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello"
	okEOF    = "HTTP/1.1 200 OK\r\n\r\nhello"
	ok10     = "HTTP/1.0 200 OK\r\nContent-Length: 5\r\n\r\nhello"
	no204    = "HTTP/1.1 204 No Content\r\n\r\n"
	no304    = "HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n"
	early413 = "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
)

// h1Do sends one request and reads the whole body.
func h1Do(ctx context.Context, rt http.RoundTripper, method, url, body string, hdr ...string) (int, string, error) {
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		return 0, "", err
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := rt.RoundTrip(req)
	if err != nil {
		return 0, "", err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	return res.StatusCode, string(b), err
}

// TestH1Exchanges runs two requests per case and checks the answers and
// how many connections they took: reused only when the framing allowed it.
func TestH1Exchanges(t *testing.T) {
	tests := []struct {
		name      string
		method    string
		body      string
		raw       string
		wantCode  int
		wantBody  string
		wantConns int32
	}{
		{"content-length reused", "GET", "", ok5, 200, "hello", 1},
		{"chunked reused", "GET", "", okChunk, 200, "hello", 1},
		{"POST with body reused", "POST", strings.Repeat("x", 5000), ok5, 200, "hello", 1},
		{"HEAD has no body", "HEAD", "", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", 200, "", 1},
		{"204 has no body", "GET", "", no204, 204, "", 1},
		{"304 has no body", "GET", "", no304, 304, "", 1},
		{"Connection: close", "GET", "", okClose, 200, "hello", 2},
		{"body to EOF", "GET", "", okEOF, 200, "hello", 2},
		{"HTTP/1.0 without keep-alive", "GET", "", ok10, 200, "hello", 2},
		{"1xx skipped", "GET", "", "HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + ok5, 200, "hello", 1},
		{"bytes beyond the response", "GET", "", ok5 + ok5, 200, "hello", 2},
		{"304 with a body sent anyway", "GET", "", no304 + "hello", 304, "", 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := newRawUpstream(t, func(_, _ int, _ *http.Request) step {
				return step{raw: tc.raw, close: strings.Contains(tc.raw, "close") || tc.raw == okEOF || tc.raw == ok10}
			})
			h := newH1(t, u.url(), nil)
			for i := range 2 {
				code, body, err := h1Do(context.Background(), h, tc.method, u.url()+"/x", tc.body)
				if err != nil || code != tc.wantCode || body != tc.wantBody {
					t.Fatalf("request %d: %d %q %v, want %d %q", i, code, body, err, tc.wantCode, tc.wantBody)
				}
			}
			if got := u.conns.Load(); got != tc.wantConns {
				t.Errorf("connections: %d, want %d", got, tc.wantConns)
			}
		})
	}
}

// TestH1RequestClose: a request that asks to close its connection does
// not leave it in the pool, even when the upstream does not say so.
func TestH1RequestClose(t *testing.T) {
	tests := []struct {
		name     string
		set      func(*http.Request)
		wantIdle int
	}{
		{"keep-alive", func(*http.Request) {}, 1},
		{"Request.Close", func(r *http.Request) { r.Close = true }, 0},
		{"Connection: close header", func(r *http.Request) { r.Header.Set("Connection", "foo, Close") }, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := newRawUpstream(t, func(_, _ int, _ *http.Request) step { return step{raw: ok5} })
			h := newH1(t, u.url(), nil)
			req, _ := http.NewRequest("GET", u.url(), nil)
			tc.set(req)
			res, err := h.RoundTrip(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			idle := idleConns(h)
			if idle != tc.wantIdle {
				t.Errorf("%d idle, want %d", idle, tc.wantIdle)
			}
		})
	}
}

// TestH1DeadReusedConn: an idle connection the upstream closed is not
// used; one it closes after reading the request is retried only when
// http.Transport would retry it, and a POST is never sent twice.
func TestH1DeadReusedConn(t *testing.T) {
	tests := []struct {
		name     string
		second   step // the answer to the second request on the first connection
		method   string
		hdr      []string
		wantErr  bool
		wantReqs int32 // requests the upstream read
	}{
		{"closed while idle, GET", step{}, "GET", nil, false, 2},
		{"closed while idle, POST", step{}, "POST", nil, false, 2},
		{"closed unanswered, GET retried", step{noAnswer: true}, "GET", nil, false, 3},
		{"closed unanswered, POST not resent", step{noAnswer: true}, "POST", nil, true, 2},
		{"closed unanswered, POST with Idempotency-Key retried", step{noAnswer: true}, "POST", []string{"Idempotency-Key", "k1"}, false, 3},
		{"garbage then close, GET not retried", step{raw: "HTTP/1.1 2", close: true}, "GET", nil, true, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			idleClose := tc.second == step{}
			u := newRawUpstream(t, func(conn, n int, _ *http.Request) step {
				if conn == 0 && n == 1 {
					return tc.second
				}
				return step{raw: ok5, close: conn == 0 && idleClose}
			})
			h := newH1(t, u.url(), nil)
			if _, _, err := h1Do(context.Background(), h, "GET", u.url(), ""); err != nil {
				t.Fatal(err)
			}
			if idleClose {
				waitFor(t, func() bool { c := h.takeIdle(); ok := c != nil && !c.alive(); h.putBack(c); return ok })
			}
			body := ""
			if tc.method == "POST" {
				body = "payload"
			}
			code, got, err := h1Do(context.Background(), h, tc.method, u.url(), body, tc.hdr...)
			if (err != nil) != tc.wantErr || (err == nil && (code != 200 || got != "hello")) {
				t.Fatalf("%d %q %v, want error %v", code, got, err, tc.wantErr)
			}
			if r := u.reqs.Load(); r != tc.wantReqs {
				t.Errorf("upstream read %d requests, want %d", r, tc.wantReqs)
			}
		})
	}
}

// putBack returns a connection taken by a test to the idle pool unchanged.
func (t *H1Transport) putBack(c *h1Conn) {
	if c == nil {
		return
	}
	t.mu.Lock()
	t.idle = append(t.idle, c)
	t.mu.Unlock()
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for range 200 {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("condition not met in 1s")
}

// TestH1Failures: what cannot be read as one HTTP answer is an error with
// its sentinel, and the connection is not used again.
func TestH1Failures(t *testing.T) {
	tests := []struct {
		name    string
		raw     string
		want    error
		bodyErr bool // the head parses; reading the body fails
	}{
		{"garbled status line", "HTTP/1.1 abc OK\r\n\r\n", ErrBadResponse, false},
		{"not HTTP", "SSH-2.0-OpenSSH\r\n\r\n", ErrBadResponse, false},
		{"two different Content-Lengths", "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab", ErrBadResponse, false},
		{"too many 1xx", strings.Repeat("HTTP/1.1 102 Processing\r\n\r\n", 6) + ok5, ErrBadResponse, false},
		{"head too large", "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", maxResponseHeader) + "\r\n\r\n", ErrResponseHeaderTooLarge, false},
		{"truncated body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", io.ErrUnexpectedEOF, true},
		{"bad chunk", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := newRawUpstream(t, func(_, _ int, _ *http.Request) step { return step{raw: tc.raw, close: true} })
			h := newH1(t, u.url(), nil)
			req, _ := http.NewRequest("GET", u.url(), nil)
			res, err := h.RoundTrip(req)
			if tc.bodyErr {
				if err != nil {
					t.Fatal(err)
				}
				_, err = io.ReadAll(res.Body)
				res.Body.Close()
				if err == nil || (tc.want != nil && !errors.Is(err, tc.want)) {
					t.Fatalf("body error %v, want %v", err, tc.want)
				}
			} else if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			idle := idleConns(h)
			if idle != 0 {
				t.Errorf("%d idle connections after a failure", idle)
			}
		})
	}
}

// TestH1EarlyAnswer: an upstream that answers before reading the body.
func TestH1EarlyAnswer(t *testing.T) {
	u := newRawUpstream(t, func(_, _ int, _ *http.Request) step { return step{raw: early413, early: true, close: true} })
	h := newH1(t, u.url(), nil)
	for range 2 {
		code, _, err := h1Do(context.Background(), h, "POST", u.url(), strings.Repeat("x", maxFastBody))
		if err != nil || code != http.StatusRequestEntityTooLarge {
			t.Fatalf("%d %v", code, err)
		}
	}
	if c := u.conns.Load(); c != 2 {
		t.Errorf("%d connections, want 2 (Connection: close)", c)
	}
}

// TestH1ContextEnds: a deadline or cancellation ends the wait for the head
// and a body read, closes the connection, and reports the context's error.
func TestH1ContextEnds(t *testing.T) {
	tests := []struct {
		name   string
		raw    string // written, then the upstream stalls
		inBody bool
	}{
		{"no answer", "", false},
		{"half a head", "HTTP/1.1 200 OK\r\nContent-Le", false},
		{"half a body", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhel", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u := newRawUpstream(t, func(_, _ int, _ *http.Request) step { return step{raw: tc.raw, stall: true} })
			h := newH1(t, u.url(), nil)
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			start := time.Now()
			_, _, err := h1Do(ctx, h, "GET", u.url(), "")
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("error %v, want %v", err, context.DeadlineExceeded)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %s", d)
			}
			idle := idleConns(h)
			if idle != 0 {
				t.Errorf("%d idle connections after a cancelled exchange", idle)
			}
		})
	}
}

// TestH1Fallback: what the H1Transport does not send itself goes to
// http.Transport: Expect, a body not in memory, another host.
func TestH1Fallback(t *testing.T) {
	u := newRawUpstream(t, func(_, _ int, _ *http.Request) step { return step{raw: ok5} })
	tests := []struct {
		name string
		req  func() *http.Request
		want int32 // fallback dials
	}{
		{"plain GET", func() *http.Request { r, _ := http.NewRequest("GET", u.url(), nil); return r }, 0},
		{"POST from memory", func() *http.Request { r, _ := http.NewRequest("POST", u.url(), strings.NewReader("abc")); return r }, 0},
		{"Expect", func() *http.Request {
			r, _ := http.NewRequest("POST", u.url(), strings.NewReader("abc"))
			r.Header.Set("Expect", "100-continue")
			return r
		}, 1},
		{"streamed body", func() *http.Request {
			r, _ := http.NewRequest("POST", u.url(), io.NopCloser(strings.NewReader("abc")))
			r.ContentLength = 3
			return r
		}, 1},
		{"body too large to hold", func() *http.Request {
			r, _ := http.NewRequest("POST", u.url(), bytes.NewReader(make([]byte, maxFastBody+1)))
			return r
		}, 1},
		{"another host", func() *http.Request {
			r, _ := http.NewRequest("GET", "http://localhost:"+strings.Split(u.ln.Addr().String(), ":")[1], nil)
			return r
		}, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var dials atomic.Int32
			h := newH1(t, u.url(), &dials)
			res, err := h.RoundTrip(tc.req())
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, res.Body)
			res.Body.Close()
			if got := dials.Load(); got != tc.want {
				t.Errorf("fallback dials %d, want %d", got, tc.want)
			}
		})
	}
}

// TestH1Refuses: a dial failure is the *net.OpError the Pool fails over
// on, and a header http.Transport would refuse is refused.
func TestH1Refuses(t *testing.T) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	dead := "http://" + ln.Addr().String()
	ln.Close()
	h := newH1(t, dead, nil)
	_, _, err := h1Do(context.Background(), h, "GET", dead, "")
	if !isDialError(err) {
		t.Errorf("dial failure: %v, want a dial *net.OpError", err)
	}
	u := newRawUpstream(t, func(_, _ int, _ *http.Request) step { return step{raw: ok5} })
	h = newH1(t, u.url(), nil)
	for _, hdr := range [][]string{{"X-Bad", "a\r\nInjected: 1"}, {"Bad Name", "v"}} {
		req, _ := http.NewRequest("GET", u.url(), nil)
		req.Header[hdr[0]] = []string{hdr[1]}
		if _, err := h.RoundTrip(req); !errors.Is(err, ErrBadRequestHeader) {
			t.Errorf("%q: %v, want %v", hdr, err, ErrBadRequestHeader)
		}
	}
	if r := u.reqs.Load(); r != 0 {
		t.Errorf("upstream read %d requests", r)
	}
}

// idleConns is how many idle connections h holds.
func idleConns(h *H1Transport) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.idle)
}

// TestH1IdlePool: at most maxIdle idle connections, dropped after the idle
// timeout and by CloseIdleConnections.
func TestH1IdlePool(t *testing.T) {
	u := newRawUpstream(t, func(_, _ int, _ *http.Request) step { return step{raw: ok5} })
	h := newH1(t, u.url(), nil)
	h.idleTimeout = 50 * time.Millisecond
	var bodies []io.ReadCloser
	for range 6 { // six in flight at once: six connections
		req, _ := http.NewRequest("GET", u.url(), nil)
		res, err := h.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		bodies = append(bodies, res.Body)
	}
	for _, b := range bodies {
		io.Copy(io.Discard, b)
		b.Close()
	}
	if n := idleConns(h); n != 4 {
		t.Errorf("%d idle, want maxIdle 4", n)
	}
	waitFor(t, func() bool { return idleConns(h) == 0 })
	if _, _, err := h1Do(context.Background(), h, "GET", u.url(), ""); err != nil {
		t.Fatal(err)
	}
	h.CloseIdleConnections()
	if n := idleConns(h); n != 0 {
		t.Errorf("%d idle after CloseIdleConnections", n)
	}
	if _, _, err := h1Do(context.Background(), h, "GET", u.url(), ""); err != nil {
		t.Fatal(err)
	}
	if c := u.conns.Load(); c != 8 {
		t.Errorf("%d connections, want 8", c)
	}
}

// TestH1MatchesTransport sends the same requests through http.Transport
// and the H1Transport to the same scripted upstream and compares what
// comes back: status, body, whether it failed.
func TestH1MatchesTransport(t *testing.T) {
	raws := []string{ok5, okChunk, okClose, okEOF, ok10, no204, no304,
		"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nnop",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 99\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 100 Continue\r\n\r\n" + ok5,
		"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nhello",
		"HTTP/1.1 999 Odd\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
		"garbage\r\n\r\n",
		"",
	}
	for _, raw := range raws {
		for _, method := range []string{"GET", "HEAD", "POST"} {
			u := newRawUpstream(t, func(_, _ int, _ *http.Request) step { return step{raw: raw, close: true} })
			std := &http.Transport{DisableCompression: true}
			h := newH1(t, u.url(), nil)
			body := ""
			if method == "POST" {
				body = "abc"
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			c1, b1, e1 := h1Do(ctx, std, method, u.url(), body)
			c2, b2, e2 := h1Do(ctx, h, method, u.url(), body)
			cancel()
			std.CloseIdleConnections()
			if c1 != c2 || b1 != b2 || (e1 == nil) != (e2 == nil) {
				t.Errorf("%s %q:\nhttp.Transport %d %q %v\nH1Transport    %d %q %v", method, raw, c1, b1, e1, c2, b2, e2)
			}
		}
	}
}

// FuzzH1Response feeds hostile bytes as the first answer on a connection
// and a known answer to the next request: no panic, no hang, and the
// second request never reads leftovers of the first as its answer.
func FuzzH1Response(f *testing.F) {
	for _, s := range []string{ok5, okChunk, okClose, okEOF, no204, no304, ok5 + ok5,
		"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n" + "HTTP/1.1 200 OK\r\nX-Smuggled: 1\r\nContent-Length: 6\r\n\r\nsecond",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\nabc",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No\r\n\r\n", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;x=y\r\na\r\n0\r\nT: v\r\n\r\n"} {
		f.Add([]byte(s))
	}
	const second = "HTTP/1.1 200 OK\r\nX-Second: 1\r\nContent-Length: 6\r\n\r\nsecond"
	f.Fuzz(func(t *testing.T, raw []byte) {
		var sent atomic.Bool
		u := newRawUpstream(t, func(_, _ int, _ *http.Request) step {
			if !sent.Swap(true) {
				return step{raw: string(raw)}
			}
			return step{raw: second}
		})
		h := newH1(t, u.url(), nil)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		first, cancelFirst := context.WithTimeout(ctx, 50*time.Millisecond) // an open-ended answer stalls
		req, _ := http.NewRequestWithContext(first, "GET", u.url(), nil)
		if res, err := h.RoundTrip(req); err == nil {
			io.Copy(io.Discard, io.LimitReader(res.Body, 1<<20))
			res.Body.Close()
		}
		cancelFirst()
		req, _ = http.NewRequestWithContext(ctx, "GET", u.url(), nil)
		res, err := h.RoundTrip(req)
		if err != nil {
			return // a reused connection may fail; never with leftovers as an answer
		}
		b, _ := io.ReadAll(res.Body)
		res.Body.Close()
		if res.Header.Get("X-Second") != "1" || string(b) != "second" {
			t.Fatalf("second answer %d %v %q: leftovers of %q", res.StatusCode, res.Header, b, raw)
		}
	})
}
