package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"wsgate/internal/gatewaytest"
	"wsgate/internal/pki"
	"wsgate/wssec"
)

// The mix of the 10,000 requests. Every kind but kindValid must be refused
// and must never reach the upstream.
const (
	totalRequests = 10000
	slowLoris     = 16 // senders that dribble bytes; part of the total
	workers       = 8

	maxBodyBytes = 64 << 10
	readTimeout  = 2 * time.Second
	// rssBudget bounds wsgate's peak RSS (VmHWM) over the whole run.
	rssBudget = 128 << 20
)

type kind int

const (
	kindValid     kind = iota // fresh, correctly signed: 200 and forwarded
	kindReplay                // a valid message sent again after it was accepted
	kindTampered              // signed, then the Body changed
	kindUntrusted             // signed by a key outside the trust set
	kindOversized             // signed, but over max_body_bytes
	kindMalformed             // not XML, DOCTYPE, too deep, empty, two Bodies
	kindSlowLoris             // dribbles its headers or body slower than read_timeout
	numKinds
)

var kindNames = [numKinds]string{"valid", "replay", "tampered", "untrusted", "oversized", "malformed", "slow-loris"}

// share is each kind's part of the requests, in percent (slow-loris is a fixed count).
var share = [numKinds]int{kindValid: 50, kindReplay: 15, kindTampered: 15, kindUntrusted: 6, kindOversized: 4, kindMalformed: 10}

type job struct {
	kind  kind
	id    string
	body  []byte
	orig  int // kindReplay: index of the valid job it repeats
	done  chan struct{}
	valid bool
}

const replyBody = `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><lt:Ack xmlns:lt="urn:wsgate:loadtest"/></soap:Body></soap:Envelope>`

// TestMixedLoad runs 10,000 mixed requests from a few goroutines against a
// real `wsgate serve` on loopback and checks that every valid one is
// forwarded exactly once and unchanged from what was verified, that every
// invalid one is refused and never reaches the upstream, and that wsgate's
// memory and this process's goroutines stay bounded.
func TestMain(m *testing.M) { os.Exit(gatewaytest.Main(m)) }

func TestMixedLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test: skipped with -short")
	}
	baseGoroutines := runtime.NumGoroutine()

	var is pki.Issuer
	ca, err := is.Issue(pki.Options{CommonName: "loadtest CA", IsCA: true, Key: pki.ECP256}, nil)
	if err != nil {
		t.Fatal(err)
	}
	partner, err := is.Issue(pki.Options{CommonName: "loadtest partner", Key: pki.ECP256}, ca)
	if err != nil {
		t.Fatal(err)
	}
	stranger, err := is.Issue(pki.Options{CommonName: "stranger", Key: pki.ECP256}, nil)
	if err != nil {
		t.Fatal(err)
	}

	jobs, expected := buildJobs(t, partner, stranger, ca)
	up := newUpstream(expected)
	upSrv := httptest.NewServer(up)

	dir := t.TempDir()
	gatewaytest.WriteSecret(t, filepath.Join(dir, "secrets"), "wsgate/trust/partners",
		map[string]string{"certificates": string(pki.CertPEM(ca.Cert))})
	cfg := filepath.Join(dir, "wsgate.yaml")
	gatewaytest.WriteFile(t, cfg, fmt.Appendf(nil, `listen: 127.0.0.1:0
admin_listen: 127.0.0.1:0
log: {level: info, format: json}
limits: {max_body_bytes: %d, read_timeout: %s}
secrets:
  backend: file
  file: {dir: secrets}
routes:
  - name: orders
    path_prefix: /soap/orders
    upstream: %s/ws/orders
    soap:
      trust: wsgate/trust/partners
      require_signed: [body, timestamp]
`, maxBodyBytes, readTimeout, upSrv.URL))

	gw := gatewaytest.Start(t, "loadtest", cfg)
	url := gw.Base + "/soap/orders"

	transport := &http.Transport{MaxIdleConnsPerHost: workers, IdleConnTimeout: 30 * time.Second}
	client := &http.Client{Transport: transport, Timeout: 30 * time.Second}

	start := time.Now()
	results := make([]result, len(jobs))
	queue := make(chan int)
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range queue {
				j := &jobs[i]
				if j.kind == kindReplay {
					<-jobs[j.orig].done // the original must have been accepted first
				}
				results[i] = send(client, url, j)
				close(j.done)
			}
		})
	}
	// The slow-loris senders get their own goroutines: each holds its
	// connection for read_timeout, and there are few of them.
	var slow sync.WaitGroup
	for i := range jobs {
		if jobs[i].kind == kindSlowLoris {
			slow.Go(func() { results[i] = sendSlowly(gw.Addr, &jobs[i], i%2 == 0); close(jobs[i].done) })
		}
	}
	for i := range jobs {
		if jobs[i].kind != kindSlowLoris {
			queue <- i
		}
	}
	close(queue)
	wg.Wait()
	slow.Wait()
	elapsed := time.Since(start)

	// Outcomes, by kind.
	var counts, failures [numKinds]int
	for i, r := range results {
		j := &jobs[i]
		counts[j.kind]++
		ok := r.err == nil && r.status == http.StatusOK
		switch {
		case j.kind == kindValid && (!ok || r.body != replyBody):
			failures[j.kind]++
			if failures[j.kind] <= 5 {
				t.Errorf("valid %s: status %d, err %v, body %.200q", j.id, r.status, r.err, r.body)
			}
		case j.kind != kindValid && (ok || r.status >= 200 && r.status < 300):
			failures[j.kind]++
			if failures[j.kind] <= 5 {
				t.Errorf("%s %s was accepted: status %d", kindNames[j.kind], j.id, r.status)
			}
		case j.kind != kindValid && j.kind != kindSlowLoris && j.kind != kindOversized && r.err != nil:
			// Refused messages get a fault, not a dropped connection.
			failures[j.kind]++
			if failures[j.kind] <= 5 {
				t.Errorf("%s %s: transport error instead of a fault: %v", kindNames[j.kind], j.id, r.err)
			}
		}
	}
	for k := range numKinds {
		t.Logf("%-10s %5d sent, %d wrong", kindNames[k], counts[k], failures[k])
	}
	t.Logf("%d requests in %s (%.0f/s)", len(jobs), elapsed.Round(time.Millisecond), float64(len(jobs))/elapsed.Seconds())

	// The upstream saw exactly the valid messages, each once, each exactly
	// as wsgate's verifier hands it on.
	if v := up.violations(); len(v) > 0 {
		t.Errorf("upstream received %d messages it must not have, e.g. %s", len(v), v[0])
	}
	if got, want := int(up.hits.Load()), counts[kindValid]; got != want {
		t.Errorf("upstream received %d messages, want %d (the valid ones)", got, want)
	}

	// wsgate stayed up, within its memory budget, and never panicked.
	if gw.Exited() {
		t.Fatalf("wsgate exited during the run:\n%s", tail(gw.Logs.String(), 4000))
	}
	hwm, err := vmHWM(gw.Cmd.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("wsgate peak RSS (VmHWM) %.1f MiB", float64(hwm)/(1<<20))
	if hwm > rssBudget {
		t.Errorf("wsgate peak RSS %d bytes, budget %d", hwm, rssBudget)
	}
	if strings.Contains(gw.Logs.String(), "panic") {
		t.Errorf("wsgate logged a panic:\n%s", tail(gw.Logs.String(), 4000))
	}
	// Every request, refused or cut off mid-body, gave its memory back (a
	// handler may still be returning just after its response arrived).
	inUse := scrape(t, gw.AdminBase, "wsgate_memory_budget_in_use_bytes")
	for end := time.Now().Add(5 * time.Second); inUse != "0" && time.Now().Before(end); {
		time.Sleep(20 * time.Millisecond)
		inUse = scrape(t, gw.AdminBase, "wsgate_memory_budget_in_use_bytes")
	}
	if inUse != "0" {
		t.Errorf("memory budget in use after the run = %s bytes, want 0", inUse)
	}

	// No goroutine of this process outlives the run.
	transport.CloseIdleConnections()
	gw.Stop(t)
	upSrv.Close()
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > baseGoroutines && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > baseGoroutines {
		buf := make([]byte, 1<<20)
		t.Errorf("%d goroutines after the run, %d before:\n%s", n, baseGoroutines, buf[:runtime.Stack(buf, true)])
	}
}

// buildJobs makes the requests in a fixed pseudo-random order, and the
// exact bytes wsgate must forward for each valid one: the envelope its
// verifier accepted, without the Security header.
func buildJobs(t *testing.T, partner, stranger, ca *pki.Identity) ([]job, map[string][]byte) {
	t.Helper()
	signer := &wssec.Signer{Chain: []*x509.Certificate{partner.Cert}, Key: partner.Key}
	outsider := &wssec.Signer{Chain: []*x509.Certificate{stranger.Cert}, Key: stranger.Key}
	verifier := &wssec.Verifier{
		Policy: wssec.Policy{RequireSigned: []wssec.Part{wssec.PartBody, wssec.PartTimestamp}},
		Trust:  staticCerts{ca.Cert},
	}
	sign := func(s *wssec.Signer, id string, pad int) []byte {
		env := fmt.Sprintf(`<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Header/><soap:Body>`+
			`<lt:Order xmlns:lt="urn:wsgate:loadtest"><lt:ID>%s</lt:ID><lt:Pad>%s</lt:Pad></lt:Order></soap:Body></soap:Envelope>`,
			id, strings.Repeat("x", pad))
		msg, err := s.SignBytes([]byte(env), wssec.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		return msg
	}

	rng := rand.New(rand.NewPCG(7, 7))
	var kinds []kind
	for k := range numKinds {
		n := share[k] * (totalRequests - slowLoris) / 100
		if k == kindSlowLoris {
			n = slowLoris
		}
		for range n {
			kinds = append(kinds, k)
		}
	}
	for len(kinds) < totalRequests {
		kinds = append(kinds, kindValid)
	}
	rng.Shuffle(len(kinds), func(i, j int) { kinds[i], kinds[j] = kinds[j], kinds[i] })

	// Signing ~8,000 messages is the slow part of the setup: spread it.
	jobs := make([]job, len(kinds))
	var wg sync.WaitGroup
	for w := range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := w; i < len(jobs); i += runtime.GOMAXPROCS(0) {
				j := &jobs[i]
				j.kind, j.done = kinds[i], make(chan struct{})
				j.id = fmt.Sprintf("%s-%05d", kindNames[j.kind], i)
				switch j.kind {
				case kindValid:
					j.body, j.valid = sign(signer, j.id, 64+i%512), true
				case kindTampered:
					msg := sign(signer, j.id, 64+i%512)
					j.body = bytes.Replace(msg, []byte(j.id), []byte("forged-"+j.id[len("tampered-"):]), 1)
				case kindUntrusted:
					j.body = sign(outsider, j.id, 64)
				case kindOversized:
					j.body = sign(signer, j.id, maxBodyBytes+1024)
				case kindMalformed:
					j.body = malformed(j.id, i)
				case kindSlowLoris:
					j.body = sign(signer, j.id, 256)
				}
			}
		})
	}
	wg.Wait()

	// Replays repeat an earlier valid message; one with none before it
	// becomes a valid message of its own.
	expected := map[string][]byte{}
	var valid []int
	for i := range jobs {
		j := &jobs[i]
		if j.kind == kindReplay {
			if len(valid) == 0 {
				j.kind, j.valid = kindValid, true
				j.id = fmt.Sprintf("valid-%05d", i)
				j.body = sign(signer, j.id, 64)
			} else {
				j.orig = valid[rng.IntN(len(valid))]
				j.body, j.id = jobs[j.orig].body, jobs[j.orig].id
			}
		}
		if j.kind == kindValid {
			valid = append(valid, i)
			res, err := verifier.Verify(context.Background(), j.body)
			if err != nil {
				t.Fatalf("%s does not verify: %v", j.id, err)
			}
			out, err := res.Bytes(true)
			if err != nil {
				t.Fatal(err)
			}
			expected[j.id] = out
		}
	}
	return jobs, expected
}

// malformed cycles through messages the parser must refuse.
func malformed(id string, i int) []byte {
	switch i % 5 {
	case 0:
		return []byte("not xml at all " + id)
	case 1:
		return []byte(`<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>` +
			`<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>&lol2;` + id + `</soap:Body></soap:Envelope>`)
	case 2:
		return []byte(`<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>` +
			strings.Repeat("<a>", 200) + id + strings.Repeat("</a>", 200) + `</soap:Body></soap:Envelope>`)
	case 3:
		return nil
	}
	return []byte(`<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>` + id +
		`</soap:Body><soap:Body/></soap:Envelope>`)
}

type result struct {
	status int
	body   string
	err    error
}

func send(client *http.Client, url string, j *job) result {
	req, err := http.NewRequest(http.MethodPost, url, bytes.NewReader(j.body))
	if err != nil {
		return result{err: err}
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	res, err := client.Do(req)
	if err != nil {
		return result{err: err}
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	return result{status: res.StatusCode, body: string(b), err: err}
}

// sendSlowly sends j over a raw connection one byte every 100ms: the
// headers (headers true) or, after complete headers, the body. wsgate must
// cut it off at read_timeout; the result is whatever it answered, if anything.
func sendSlowly(addr string, j *job, headers bool) result {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return result{err: err}
	}
	defer conn.Close()
	head := fmt.Sprintf("POST /soap/orders HTTP/1.1\r\nHost: %s\r\nContent-Type: text/xml\r\nContent-Length: %d\r\n\r\n", addr, len(j.body))
	stop := make(chan struct{})
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		fast, slow := head, string(j.body)
		if headers {
			fast, slow = "", head+slow
		}
		if _, err := io.WriteString(conn, fast); err != nil {
			return
		}
		for k := 0; k < len(slow); k++ {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			if _, err := io.WriteString(conn, slow[k:k+1]); err != nil {
				return
			}
		}
	}()
	defer func() { close(stop); <-writerDone }()
	_ = conn.SetReadDeadline(time.Now().Add(readTimeout + 10*time.Second))
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return result{err: fmt.Errorf("not cut off within read_timeout: %w", err), status: http.StatusOK}
		}
		return result{err: err} // closed without an answer: refused
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	return result{status: res.StatusCode, body: string(b)}
}

// upstream checks everything it receives against the expected forwards.
type upstream struct {
	expected map[string][]byte
	hits     atomic.Int64

	mu   sync.Mutex
	seen map[string]bool
	bad  []string
}

func newUpstream(expected map[string][]byte) *upstream {
	return &upstream{expected: expected, seen: map[string]bool{}}
}

var idPattern = regexp.MustCompile(`<lt:ID>([^<]*)</lt:ID>`)

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	u.hits.Add(1)
	var id string
	if m := idPattern.FindSubmatch(body); m != nil {
		id = string(m[1])
	}
	u.mu.Lock()
	switch want, ok := u.expected[id]; {
	case err != nil:
		u.bad = append(u.bad, fmt.Sprintf("unreadable request: %v", err))
	case !ok:
		u.bad = append(u.bad, fmt.Sprintf("%q (not a valid message): %.200q", id, body))
	case u.seen[id]:
		u.bad = append(u.bad, fmt.Sprintf("%q a second time (a replay got through)", id))
	case !bytes.Equal(body, want):
		u.bad = append(u.bad, fmt.Sprintf("%q not as verified:\n got %.300q\nwant %.300q", id, body, want))
	}
	u.seen[id] = true
	u.mu.Unlock()
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	_, _ = io.WriteString(w, replyBody)
}

func (u *upstream) violations() []string {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]string(nil), u.bad...)
}

type staticCerts []*x509.Certificate

func (s staticCerts) Certificates() ([]*x509.Certificate, error) { return s, nil }

// vmHWM reads a process's peak resident set size.
func vmHWM(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(b)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, errors.New("no VmHWM in /proc status")
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// scrape returns the value of the unlabelled metric name from the admin
// listener's /metrics.
func scrape(t *testing.T, adminBase, name string) string {
	t.Helper()
	res, err := http.Get(adminBase + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), name+" "); ok {
			return v
		}
	}
	t.Fatalf("no %s in /metrics", name)
	return ""
}
