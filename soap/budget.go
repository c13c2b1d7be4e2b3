package soap

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"
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
// of exhausting memory. A request is admitted with a share for the start
// of its body (Acquire) and grows it as the body arrives (Grow). Growing
// requests are served before new ones, and each queue first come, first
// served, so a large request is not starved by a stream of small ones.
// Safe for concurrent use.
type Budget struct {
	mu       sync.Mutex
	limit    int64
	used     int64
	growers  []*budgetWaiter // admitted requests waiting to grow, FIFO; served first
	growHeld int64           // what the waiting growers hold
	waiters  []*budgetWaiter // requests waiting for admission, FIFO
}

type budgetWaiter struct {
	n     int64
	held  int64         // growers: what the request holds while it waits
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
	n = min(n, b.limit)
	b.mu.Lock()
	if len(b.growers) == 0 && len(b.waiters) == 0 && b.used+n <= b.limit {
		b.used += n
		b.mu.Unlock()
		return n, nil
	}
	w := &budgetWaiter{n: n, ready: make(chan struct{})}
	b.waiters = append(b.waiters, w)
	b.mu.Unlock()
	if err := b.wait(ctx, w, &b.waiters); err != nil {
		return 0, err
	}
	return n, nil
}

// Grow adds n bytes to a share of held bytes taken earlier, waiting until
// they are free or ctx is done (then it returns ctx's error and adds
// nothing). A request may wait only if, with it, what the waiting growers
// hold plus the largest step any of them waits for still fits in the
// budget; otherwise Grow fails at once with ErrBusy. So the requests that
// hold memory and do not wait (being read or processed) always finish and
// leave room for the head of the queue: waiting never deadlocks.
func (b *Budget) Grow(ctx context.Context, held, n int64) error {
	if n <= 0 {
		return nil
	}
	if held+n > b.limit {
		return ErrBusy // could never be granted
	}
	b.mu.Lock()
	if len(b.growers) == 0 && b.used+n <= b.limit {
		b.used += n
		b.mu.Unlock()
		return nil
	}
	step := n
	for _, g := range b.growers {
		step = max(step, g.n)
	}
	if b.growHeld+held+step > b.limit {
		b.mu.Unlock()
		return ErrBusy
	}
	w := &budgetWaiter{n: n, held: held, ready: make(chan struct{})}
	b.growers = append(b.growers, w)
	b.growHeld += held
	b.mu.Unlock()
	return b.wait(ctx, w, &b.growers)
}

// wait blocks until w, queued in *queue, is granted or ctx is done.
func (b *Budget) wait(ctx context.Context, w *budgetWaiter, queue *[]*budgetWaiter) error {
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
		b.mu.Lock()
		select {
		case <-w.ready:
			// Granted while giving up: hand it back (which may wake others).
			b.mu.Unlock()
			b.Release(w.n)
		default:
			for i, x := range *queue {
				if x == w {
					*queue = append((*queue)[:i], (*queue)[i+1:]...)
					break
				}
			}
			b.growHeld -= w.held
			// Leaving the head of the queue may let the next ones in.
			b.grantLocked()
			b.mu.Unlock()
		}
		return ctx.Err()
	}
}

// Release returns n bytes reserved by Acquire or Grow.
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

// grantLocked serves the growers in order while the head fits, then, once
// none is left waiting, the admissions.
func (b *Budget) grantLocked() {
	for len(b.growers) > 0 {
		w := b.growers[0]
		if b.used+w.n > b.limit {
			return
		}
		b.used += w.n
		b.growHeld -= w.held
		b.growers[0] = nil
		b.growers = b.growers[1:]
		close(w.ready)
	}
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

// admissionShare is the most body a request reserves for before its first
// byte arrives; a larger body reserves the rest as it arrives. A client
// that declares a large body and sends it slowly, or not at all, so holds
// MemoryFactor times what it has sent, not what it declared.
const admissionShare = 64 << 10

// reservation is a request's share of the budget: MemoryFactor bytes per
// body byte it has buffered or is about to.
type reservation struct {
	budget  *Budget // nil: no budget, nothing to hold
	held    int64
	bodyMax int64         // the most body bytes the request may buffer
	wait    time.Duration // the most one Grow may wait
}

// admission is what a request must hold before its body is read: MemoryFactor
// times its declared length up to admissionShare, or times admissionShare
// when the length is unknown (chunked) or larger. bodyMax is its declared
// length, or the body cap when unknown or over the cap (the read stops there).
func admission(contentLength, maxBody int64) (initial, bodyMax int64) {
	bodyMax = maxBody
	if contentLength >= 0 && contentLength < maxBody {
		bodyMax = contentLength
	}
	return MemoryFactor * min(bodyMax, admissionShare), bodyMax
}

// cover makes the reservation hold MemoryFactor times body bytes, growing
// it geometrically so that a large body takes a few steps, not one per
// read, and waiting at most r.wait for each step: ErrBusy if the budget
// has no room in time. A body larger than the whole budget allows runs
// alone with all of it.
func (r *reservation) cover(ctx context.Context, body int64) error {
	need := MemoryFactor * body
	if r.budget == nil || need <= r.held || r.held == r.budget.Limit() {
		return nil
	}
	want := min(max(need, 2*r.held), MemoryFactor*r.bodyMax, r.budget.Limit())
	want = max(want, min(need, r.budget.Limit()))
	ctx, cancel := context.WithTimeout(ctx, r.wait)
	defer cancel()
	if err := r.budget.Grow(ctx, r.held, want-r.held); err != nil {
		return ErrBusy
	}
	r.held = want
	return nil
}

// release hands the whole share back.
func (r *reservation) release() {
	if r.budget != nil {
		r.budget.Release(r.held)
		r.held = 0
	}
}

// reserve admits the request into the budget, waiting at most the bounded
// wait for its admission share. It returns the reservation to grow while
// the body arrives and to release once answered, or ErrBusy.
func (h *Handler) reserve(r *http.Request) (*reservation, error) {
	initial, bodyMax := admission(r.ContentLength, h.maxBody)
	res := &reservation{budget: h.opts.Budget, bodyMax: bodyMax, wait: h.budgetWait}
	if res.budget == nil {
		return res, nil
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.budgetWait)
	defer cancel()
	n, err := res.budget.Acquire(ctx, initial)
	if err != nil {
		return nil, ErrBusy
	}
	res.held = n
	return res, nil
}

// readBody reads at most maxBody bytes of r, growing res to cover each
// chunk before it is buffered. The body comes back as a string, built in
// place: the parser keeps slices of it instead of a copy. It fails with
// ErrBusy when res cannot grow.
func readBody(w http.ResponseWriter, r *http.Request, maxBody int64, res *reservation) (string, error) {
	src := http.MaxBytesReader(w, r.Body, maxBody)
	var body strings.Builder
	// A declared body up to the admission share gets its buffer at once,
	// with one spare byte so the final read sees EOF without growing it;
	// past that, the buffer grows with what arrives.
	body.Grow(int(min(res.bodyMax, admissionShare)) + 1)
	chunk := chunkPool.Get().(*[chunkSize]byte)
	defer chunkPool.Put(chunk)
	for {
		n, err := src.Read(chunk[:])
		if n > 0 {
			if err := res.cover(r.Context(), int64(body.Len()+n)); err != nil {
				return "", err
			}
			body.Write(chunk[:n])
		}
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
