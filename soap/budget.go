package soap

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"wsgate/wssec"
)

// MemoryFactor is how many bytes of memory a request is assumed to need per
// byte of body: the body, its parsed tree, canonical forms and the
// forwarded copy (issue 7 bounds the peak under ten times the message).
const MemoryFactor = 10

// DefaultBudgetWait bounds how long a request waits for memory when
// Options.BudgetWait is zero.
const DefaultBudgetWait = 5 * time.Second

// ErrBusy means the memory budget could not be had in time; the client gets
// a 503 with Retry-After and its body is never read. It is the gateway's
// condition, not the client's (metrics should count it as unavailable).
var ErrBusy = errors.New("soap: memory budget exhausted")

// Budget is a weighted semaphore of bytes shared by every SOAP route of a
// gateway, so that concurrent large messages wait or are refused instead
// of exhausting memory. Waiters are served first come, first served, so a
// large request is not starved by a stream of small ones. Safe for
// concurrent use.
type Budget struct {
	mu      sync.Mutex
	limit   int64
	used    int64
	waiters []*budgetWaiter // FIFO
}

type budgetWaiter struct {
	n     int64
	ready chan struct{} // closed once n is granted
}

// NewBudget returns a budget of limit bytes; limit must be positive.
func NewBudget(limit int64) *Budget {
	if limit <= 0 {
		panic("soap: NewBudget: limit must be positive")
	}
	return &Budget{limit: limit}
}

// Limit is the budget's size in bytes.
func (b *Budget) Limit() int64 { return b.limit }

// InUse is the number of bytes currently reserved.
func (b *Budget) InUse() int64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.used
}

// Acquire reserves n bytes, waiting until they are free or ctx is done
// (then it returns ctx's error and reserves nothing). A request for more
// than the whole budget is clamped to the budget, so it runs alone rather
// than never. It returns the amount reserved, to be passed to Release.
func (b *Budget) Acquire(ctx context.Context, n int64) (int64, error) {
	if n <= 0 {
		return 0, nil
	}
	if n > b.limit {
		n = b.limit
	}
	b.mu.Lock()
	if len(b.waiters) == 0 && b.used+n <= b.limit {
		b.used += n
		b.mu.Unlock()
		return n, nil
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()

	select {
	case <-w.ready:
		return n, nil
	case <-ctx.Done():
		b.mu.Lock()
		select {
		case <-w.ready:
			// Granted while giving up: hand it back (which may wake others).
			b.mu.Unlock()
			b.Release(n)
		default:
			for i, x := range b.waiters {
				if x == w {
					b.waiters = append(b.waiters[:i], b.waiters[i+1:]...)
					break
				}
			}
			// Leaving the head of the queue may let the next ones in.
			b.grantLocked()
			b.mu.Unlock()
		}
		return 0, ctx.Err()
	}
}

// Release returns n bytes reserved by Acquire.
func (b *Budget) Release(n int64) {
	if n <= 0 {
		return
	}
	b.mu.Lock()
	b.used -= n
	if b.used < 0 {
		b.mu.Unlock()
		panic("soap: Budget.Release of more than was acquired")
	}
	b.grantLocked()
	b.mu.Unlock()
}

// grantLocked admits waiters in order while the head fits.
func (b *Budget) grantLocked() {
	for len(b.waiters) > 0 {
		w := b.waiters[0]
		if b.used+w.n > b.limit {
			return
		}
		b.used += w.n
		b.waiters[0] = nil
		b.waiters = b.waiters[1:]
		close(w.ready)
	}
}

// reservation is what a request of this size must hold: MemoryFactor times
// its declared length, or times the body cap when the length is unknown
// (chunked) or over the cap (the read stops at the cap).
func reservation(contentLength, maxBody int64) int64 {
	n := maxBody
	if contentLength >= 0 && contentLength < maxBody {
		n = contentLength
	}
	return MemoryFactor * n
}

// reserve takes the request's share of the budget, waiting at most the
// bounded wait. It returns the amount to release, or ErrBusy.
func (h *Handler) reserve(r *http.Request) (int64, error) {
	if h.opts.Budget == nil {
		return 0, nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.budgetWait)
	defer cancel()
	n, err := h.opts.Budget.Acquire(ctx, reservation(r.ContentLength, h.maxBody))
	if err != nil {
		return 0, ErrBusy
	}
	return n, nil
}

// rejectBusy answers a request refused for lack of memory, before its body
// was read: 503, Retry-After, and a soap:Server / env:Receiver fault with
// no wsse code (the client's security header is not at fault). The SOAP
// version comes from the Content-Type, since the body is not read.
func (h *Handler) rejectBusy(w http.ResponseWriter, r *http.Request, id string) {
	v := wssec.SOAP11
	if ct := r.Header.Get("Content-Type"); len(ct) >= len("application/soap+xml") &&
		equalFoldASCII(ct[:len("application/soap+xml")], "application/soap+xml") {
		v = wssec.SOAP12
	}
	h.logRejected(r, id, v, ErrBusy, "ServiceUnavailable", http.StatusServiceUnavailable)
	h.decide(r, ErrBusy)
	w.Header().Set("Retry-After", "1")
	writeFault(w, fault{status: http.StatusServiceUnavailable, version: v, reason: reasonUnavailable,
		receiver: true, upstream: true}, id)
}

func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// readBody reads at most maxBody bytes of r into one buffer sized from the
// declared length, so a large body is not copied through repeated growth.
// The body comes back as a string, built in place: the parser keeps slices
// of it instead of a copy.
func readBody(w http.ResponseWriter, r *http.Request, maxBody int64) (string, error) {
	src := http.MaxBytesReader(w, r.Body, maxBody)
	size := int64(512)
	if r.ContentLength > 0 {
		size = min(r.ContentLength, maxBody)
	}
	var body strings.Builder
	// One spare byte lets the final read see EOF without growing the buffer.
	body.Grow(int(size) + 1)
	chunk := chunkPool.Get().(*[chunkSize]byte)
	defer chunkPool.Put(chunk)
	for {
		n, err := src.Read(chunk[:])
		body.Write(chunk[:n])
		if err == io.EOF {
			return body.String(), nil
		}
		if err != nil {
			return body.String(), err
		}
	}
}

// chunkSize is the read buffer between the connection and the body.
const chunkSize = 16 << 10

var chunkPool = sync.Pool{New: func() any { return new([chunkSize]byte) }}
