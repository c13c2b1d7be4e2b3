package soap

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"wsgate/wssec"
)

// signBig signs a SOAP 1.1 envelope whose Body carries pad bytes of text.
func signBig(t testing.TB, pad int, tag string) []byte {
	t.Helper()
	env := `<soap:Envelope xmlns:soap="` + wssec.NSSOAP11 + `"><soap:Header/><soap:Body>` +
		`<m:Data xmlns:m="urn:test" m:tag="` + tag + `">` + strings.Repeat("x", pad) + `</m:Data></soap:Body></soap:Envelope>`
	id := getFixture(t).partner
	s := wssec.Signer{Chain: []*x509.Certificate{id.Cert}, Key: id.Key, Now: fixedNow}
	out, err := s.SignBytes([]byte(env), wssec.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestBudgetAcquireRelease(t *testing.T) {
	b := NewBudget(100)
	ctx := context.Background()
	tests := []struct {
		name      string
		n, want   int64
		wantInUse int64
	}{
		{"zero takes nothing", 0, 0, 0},
		{"part", 60, 60, 60},
		{"rest", 40, 40, 100},
	}
	for _, tt := range tests {
		got, err := b.Acquire(ctx, tt.n)
		if err != nil || got != tt.want || b.InUse() != tt.wantInUse {
			t.Fatalf("%s: Acquire(%d) = %d, %v; in use %d, want %d, nil; %d", tt.name, tt.n, got, err, b.InUse(), tt.want, tt.wantInUse)
		}
	}

	// Full: a waiter gives up when its context ends and holds nothing.
	short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if got, err := b.Acquire(short, 1); !errors.Is(err, context.DeadlineExceeded) || got != 0 {
		t.Fatalf("Acquire on a full budget = %d, %v, want 0, DeadlineExceeded", got, err)
	}

	// A request over the whole budget is clamped, so it runs alone.
	b.Release(100)
	if got, err := b.Acquire(ctx, 1000); err != nil || got != 100 {
		t.Fatalf("Acquire(1000) = %d, %v, want 100 (clamped)", got, err)
	}
	b.Release(100)
	if b.InUse() != 0 {
		t.Fatalf("in use after release = %d", b.InUse())
	}
}

// Waiters are served in order, and one leaving the queue lets the next in.
func TestBudgetFIFOAndCancel(t *testing.T) {
	b := NewBudget(10)
	ctx := context.Background()
	if _, err := b.Acquire(ctx, 10); err != nil {
		t.Fatal(err)
	}
	bigCtx, cancelBig := context.WithCancel(ctx)
	bigDone := make(chan error, 1)
	go func() { _, err := b.Acquire(bigCtx, 8); bigDone <- err }()
	waitFor(t, func() bool { return waiters(b) == 1 })
	smallDone := make(chan error, 1)
	go func() { _, err := b.Acquire(ctx, 2); smallDone <- err }()
	waitFor(t, func() bool { return waiters(b) == 2 })

	// 5 free: not enough for the head (8); the small one must not overtake.
	b.Release(5)
	select {
	case err := <-smallDone:
		t.Fatalf("a later, smaller waiter overtook the head: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	// The head gives up: the small one gets in.
	cancelBig()
	if err := <-bigDone; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled waiter: %v", err)
	}
	if err := <-smallDone; err != nil {
		t.Fatalf("small waiter: %v", err)
	}
	if got := b.InUse(); got != 7 {
		t.Fatalf("in use = %d, want 7", got)
	}
}

// Growing requests go before admissions; a grower that gives up takes its
// held bytes out of the count; growers may not wait holding more than half
// the budget between them.
func TestBudgetGrow(t *testing.T) {
	b := NewBudget(100)
	ctx := context.Background()
	// Two admitted requests of 10, and 70 taken by a third: 90 in use.
	for _, n := range []int64{10, 10, 70} {
		if _, err := b.Acquire(ctx, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Grow(ctx, 10, 5); err != nil || b.InUse() != 95 {
		t.Fatalf("Grow that fits: %v, in use %d", err, b.InUse())
	}
	// The first grower waits for 20; an admission queued after it must
	// not overtake it when 20 come free.
	growDone := make(chan error, 1)
	go func() { growDone <- b.Grow(ctx, 15, 20) }()
	waitFor(t, func() bool { return growers(b) == 1 })
	admitDone := make(chan error, 1)
	go func() { _, err := b.Acquire(ctx, 10); admitDone <- err }()
	waitFor(t, func() bool { return waiters(b) == 1 })
	b.Release(20)
	if err := <-growDone; err != nil {
		t.Fatalf("grower: %v", err)
	}
	select {
	case err := <-admitDone:
		t.Fatalf("the admission went before or with the grower: %v", err)
	case <-time.After(20 * time.Millisecond):
	}
	b.Release(5)
	if err := <-admitDone; err != nil {
		t.Fatalf("admission: %v", err)
	}

	// Growers may wait only while what they hold plus the largest step
	// any of them waits for fits: the next one is refused at once, and one
	// giving up makes room again.
	b = NewBudget(100)
	if _, err := b.Acquire(ctx, 100); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithCancel(ctx)
	first := make(chan error, 1)
	go func() { first <- b.Grow(short, 40, 10) }()
	waitFor(t, func() bool { return growers(b) == 1 })
	start := time.Now()
	if err := b.Grow(ctx, 20, 50); !errors.Is(err, ErrBusy) || time.Since(start) > time.Second {
		t.Fatalf("grower that could block the queue: %v after %v, want ErrBusy at once", err, time.Since(start))
	}
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled grower: %v", err)
	}
	timeout, cancel2 := context.WithTimeout(ctx, 10*time.Millisecond)
	defer cancel2()
	if err := b.Grow(timeout, 20, 50); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("grower after the other gave up: %v, want it to wait (and time out)", err)
	}
	if growers(b) != 0 || b.growHeld != 0 || b.InUse() != 100 {
		t.Fatalf("after the growers left: %d waiting holding %d, in use %d", growers(b), b.growHeld, b.InUse())
	}
	if err := b.Grow(ctx, 0, 101); !errors.Is(err, ErrBusy) {
		t.Fatalf("Grow past the whole budget: %v, want ErrBusy", err)
	}
}

func growers(b *Budget) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.growers)
}

func waiters(b *Budget) int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.waiters)
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 10s")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestAdmission(t *testing.T) {
	const maxBody = 1 << 20
	tests := []struct {
		name                 string
		contentLength        int64
		wantInitial, wantMax int64
	}{
		{"small declared: all of it", 1000, 10000, 1000},
		{"empty", 0, 0, 0},
		{"large declared: the admission share", 500 << 10, 10 * admissionShare, 500 << 10},
		{"unknown (chunked)", -1, 10 * admissionShare, maxBody},
		{"over the cap", 2 << 20, 10 * admissionShare, maxBody},
	}
	for _, tt := range tests {
		initial, bodyMax := admission(tt.contentLength, maxBody)
		if initial != tt.wantInitial || bodyMax != tt.wantMax {
			t.Errorf("%s: admission(%d) = %d, %d; want %d, %d", tt.name, tt.contentLength, initial, bodyMax, tt.wantInitial, tt.wantMax)
		}
	}
}

// cover grows a reservation geometrically up to what the body may need,
// fails after its bounded wait when the budget stays full, and lets a body
// larger than the whole budget have all of it.
func TestReservationCover(t *testing.T) {
	tests := []struct {
		name     string
		limit    int64
		held     int64 // already taken by others
		bodyMax  int64
		steps    []int64 // body sizes to cover, in order
		wantHeld []int64
		wantErr  error // of the last step
	}{
		{"doubles", 1 << 30, 0, 100 << 10, []int64{1000, 70 << 10, 100 << 10}, []int64{10000, 10 * (70 << 10), 10 * (100 << 10)}, nil},
		{"never past the body", 1 << 30, 0, 5000, []int64{3000, 5000}, []int64{30000, 50000}, nil},
		{"geometric", 1 << 30, 0, 1 << 20, []int64{1000, 1100, 2500}, []int64{10000, 20000, 40000}, nil},
		{"full budget: busy", 100000, 90000, 1 << 20, []int64{500, 2000}, []int64{5000, 5000}, ErrBusy},
		{"larger than the budget: all of it", 100000, 0, 1 << 20, []int64{50000}, []int64{100000}, nil},
	}
	for _, tt := range tests {
		b := NewBudget(tt.limit)
		if _, err := b.Acquire(context.Background(), tt.held); err != nil {
			t.Fatal(err)
		}
		r := &reservation{budget: b, bodyMax: tt.bodyMax, wait: 10 * time.Millisecond}
		var err error
		for i, n := range tt.steps {
			err = r.cover(context.Background(), n)
			if r.held != tt.wantHeld[i] {
				t.Errorf("%s: after cover(%d) held %d, want %d", tt.name, n, r.held, tt.wantHeld[i])
			}
		}
		if err != tt.wantErr {
			t.Errorf("%s: err %v, want %v", tt.name, err, tt.wantErr)
		}
		r.release()
		if got := b.InUse(); got != tt.held {
			t.Errorf("%s: in use after release %d, want %d", tt.name, got, tt.held)
		}
	}
}

// blockingUpstream holds every request until release is closed.
type blockingUpstream struct {
	calls   atomic.Int32
	entered chan struct{}
	release chan struct{}
}

func (u *blockingUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.calls.Add(1)
	_, _ = io.Copy(io.Discard, r.Body)
	u.entered <- struct{}{}
	<-u.release
	w.WriteHeader(http.StatusOK)
}

// Three held 1 MB requests fill a 30 MiB budget; a fourth is admitted for
// the start of its body, waits its bounded time to grow, gets 503 and never
// reaches the upstream; once they finish, a new request gets through.
func TestBudgetRefusesBeyondItWith503(t *testing.T) {
	msgs := make([][]byte, 5)
	for i := range msgs {
		msgs[i] = signBig(t, 1_000_000, strconv.Itoa(i))
		if n := len(msgs[i]); n < 1_000_000 || 10*n > (30<<20)/3 {
			t.Fatalf("message %d is %d bytes, want about 1 MB", i, n)
		}
	}
	budget := NewBudget(30 << 20)
	up := &blockingUpstream{entered: make(chan struct{}, 5), release: make(chan struct{})}
	hs := newHarness(t, func(o *Options) {
		o.MaxBodyBytes = 2 << 20
		o.Budget = budget
		o.BudgetWait = 200 * time.Millisecond
		o.Upstream = up
	})

	var wg sync.WaitGroup
	codes := make([]int, 3)
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = post(hs.h, msgs[i], ContentType11, "").Code
		}()
	}
	for range 3 {
		<-up.entered
	}

	rec := post(hs.h, msgs[3], ContentType12, "fourth")
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("fourth request: %d, Retry-After %q; want 503, 1", rec.Code, rec.Header().Get("Retry-After"))
	}
	body := rec.Body.String()
	if rec.Header().Get("Content-Type") != ContentType12 || !strings.Contains(body, "<env:Value>env:Receiver</env:Value>") ||
		strings.Contains(body, "wsse:InvalidSecurity") || !strings.Contains(body, reasonUnavailable) ||
		!strings.Contains(body, ">fourth<") {
		t.Errorf("fourth request fault:\n%s", body)
	}
	if got := up.calls.Load(); got != 3 {
		t.Fatalf("upstream calls = %d, want 3 (the refused request must not reach it)", got)
	}
	if !strings.Contains(hs.logs.String(), ErrBusy.Error()) {
		t.Errorf("no audit record of the refusal:\n%s", hs.logs)
	}

	close(up.release)
	wg.Wait()
	for i, c := range codes {
		if c != http.StatusOK {
			t.Errorf("held request %d = %d, want 200", i, c)
		}
	}
	if got := budget.InUse(); got != 0 {
		t.Fatalf("budget in use after all answered = %d", got)
	}
	if rec := post(hs.h, msgs[4], ContentType11, ""); rec.Code != http.StatusOK {
		t.Fatalf("request after release = %d %s", rec.Code, rec.Body)
	}
	if got := up.calls.Load(); got != 4 {
		t.Fatalf("upstream calls = %d, want 4", got)
	}
}

// A client that declares a large body and stalls holds only its admission
// share, not MemoryFactor times what it declared: it cannot starve the
// budget without sending the bytes. Here it would have taken the whole
// budget and refused everyone else.
func TestSlowSenderHoldsOnlyWhatItSent(t *testing.T) {
	budget := NewBudget(10 << 20)
	hs := newHarness(t, func(o *Options) {
		o.MaxBodyBytes = 1 << 20
		o.Budget = budget
		o.BudgetWait = 200 * time.Millisecond
	})
	pr, pw := io.Pipe()
	slow := httptest.NewRequest(http.MethodPost, "/soap/orders", pr)
	slow.ContentLength = 1 << 20
	slow.Header.Set("Content-Type", ContentType11)
	slowRec := httptest.NewRecorder()
	slowDone := make(chan struct{})
	go func() { hs.h.ServeHTTP(slowRec, slow); close(slowDone) }()
	if _, err := pw.Write([]byte(`<soap:Envelope xmlns:soap="` + wssec.NSSOAP11 + `">`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return budget.InUse() == MemoryFactor*admissionShare })

	if rec := post(hs.h, sign(t, wssec.SOAP11, getFixture(t).partner, now), ContentType11, ""); rec.Code != http.StatusAccepted {
		t.Fatalf("request beside a stalled sender = %d\n%s", rec.Code, rec.Body)
	}
	if got := budget.InUse(); got != MemoryFactor*admissionShare {
		t.Errorf("in use while the sender stalls = %d, want its admission share %d", got, MemoryFactor*admissionShare)
	}
	pw.CloseWithError(io.ErrUnexpectedEOF) // the client gives up
	<-slowDone
	if slowRec.Code < 400 || hs.upstream.calls != 1 {
		t.Errorf("stalled request = %d, upstream calls %d; want a refusal and only the other request", slowRec.Code, hs.upstream.calls)
	}
	if got := budget.InUse(); got != 0 {
		t.Errorf("in use after both answered = %d", got)
	}
}

// A SOAP 1.1 request refused for lack of memory gets soap:Server, no wsse code.
func TestBudgetBusyFault11(t *testing.T) {
	budget := NewBudget(1)
	if _, err := budget.Acquire(context.Background(), 1); err != nil {
		t.Fatal(err)
	}
	var decided error
	hs := newHarness(t, func(o *Options) {
		o.Budget = budget
		o.BudgetWait = time.Millisecond
		o.OnDecision = func(d Decision) { decided = d.Err }
	})
	rec := post(hs.h, sign(t, wssec.SOAP11, getFixture(t).partner, now), ContentType11, "")
	if rec.Code != http.StatusServiceUnavailable || !strings.Contains(rec.Body.String(), "<faultcode>soap:Server</faultcode>") ||
		rec.Header().Get("Retry-After") != "1" {
		t.Fatalf("response = %d %v\n%s", rec.Code, rec.Header(), rec.Body)
	}
	if !errors.Is(decided, ErrBusy) {
		t.Errorf("decision = %v, want ErrBusy", decided)
	}
	if hs.upstream.calls != 0 {
		t.Errorf("upstream calls = %d", hs.upstream.calls)
	}
}

// readBody reads declared, undeclared and over-cap bodies.
func TestReadBody(t *testing.T) {
	data := bytes.Repeat([]byte("a"), 3000)
	tests := []struct {
		name    string
		clen    int64
		max     int64
		wantLen int
		wantErr bool
	}{
		{"declared", 3000, 4096, 3000, false},
		{"unknown", -1, 4096, 3000, false},
		{"declared too small", 100, 4096, 3000, false},
		{"over the cap", 3000, 1000, 1000, true},
	}
	for _, tt := range tests {
		r := httptest.NewRequest(http.MethodPost, "/", bytes.NewReader(data))
		r.ContentLength = tt.clen
		_, bodyMax := admission(tt.clen, tt.max)
		got, err := readBody(httptest.NewRecorder(), r, tt.max, &reservation{bodyMax: bodyMax})
		var tooBig *http.MaxBytesError
		if (err != nil) != tt.wantErr || (tt.wantErr && !errors.As(err, &tooBig)) || (!tt.wantErr && got != string(data)) {
			t.Errorf("%s: %d bytes, %v", tt.name, len(got), err)
		}
	}
}

// 100 concurrent 1 MB signed requests against a 200 MiB budget: each ends
// in 200 or 503, some get through, and the heap stays under the budget plus
// a margin. The Go memory limit is set to that bound, so the collector
// reclaims garbage before it; the heap can exceed it only if what the
// requests hold live does.
func TestBudgetBoundsMemoryUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("heavy: 100 concurrent 1 MB requests")
	}
	const (
		budgetBytes = 200 << 20
		margin      = 96 << 20
		clients     = 100
	)
	msg := signBig(t, 1_000_000, "load")

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapInuse
	bound := base + budgetBytes + margin
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(int64(bound)))

	// The upstream holds each request a while, so that without the budget
	// all 100 would be in flight at once.
	var upCalls, inFlight, maxInFlight atomic.Int32
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upCalls.Add(1)
		n := inFlight.Add(1)
		defer inFlight.Add(-1)
		for m := maxInFlight.Load(); n > m && !maxInFlight.CompareAndSwap(m, n); m = maxInFlight.Load() {
		}
		held, _ := io.ReadAll(r.Body)
		time.Sleep(50 * time.Millisecond)
		runtime.KeepAlive(held)
		w.WriteHeader(http.StatusOK)
	})
	hs := newHarness(t, func(o *Options) {
		o.MaxBodyBytes = 2 << 20
		o.Budget = NewBudget(budgetBytes)
		o.BudgetWait = 5 * time.Second
		o.Upstream = up
		o.Verifier.Replay = nil // the same message, sent 100 times
	})

	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}()

	codes := make([]int, clients)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = post(hs.h, msg, ContentType11, "").Code
		}()
	}
	wg.Wait()
	close(stop)
	<-sampled

	ok, busy := 0, 0
	for i, c := range codes {
		switch c {
		case http.StatusOK:
			ok++
		case http.StatusServiceUnavailable:
			busy++
		default:
			t.Errorf("request %d = %d, want 200 or 503", i, c)
		}
	}
	if ok == 0 {
		t.Errorf("no request got through (%d refused)", busy)
	}
	if int(upCalls.Load()) != ok {
		t.Errorf("upstream calls = %d, accepted = %d", upCalls.Load(), ok)
	}
	if limit := int32(budgetBytes / (MemoryFactor * len(msg))); maxInFlight.Load() > limit {
		t.Errorf("%d requests in flight at once, the budget admits %d", maxInFlight.Load(), limit)
	}
	p := peak.Load()
	t.Logf("%d accepted, %d refused, at most %d in flight; peak heap in use %d MiB over a base of %d MiB (bound %d MiB)",
		ok, busy, maxInFlight.Load(), (p-base)>>20, base>>20, bound>>20)
	if p > bound {
		t.Errorf("peak heap in use %d MiB > budget + margin %d MiB", p>>20, bound>>20)
	}
	if got := hs.h.opts.Budget.InUse(); got != 0 {
		t.Errorf("budget in use after all answered = %d", got)
	}
}
