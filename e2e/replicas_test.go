package e2e

import (
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"wsgate/internal/gatewaytest"
	"wsgate/internal/pki"
	"wsgate/redisstore/redistest"
)

// countingUpstream answers every request with a fixed body and counts them.
type countingUpstream struct {
	*httptest.Server
	hits atomic.Int32
}

func newCountingUpstream(t *testing.T, contentType, body string) *countingUpstream {
	t.Helper()
	u := &countingUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		u.hits.Add(1)
		w.Header().Set("Content-Type", contentType)
		_, _ = io.WriteString(w, body)
	}))
	t.Cleanup(u.Close)
	return u
}

const soapReply = `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body>` +
	`<echo:HelloResponse xmlns:echo="urn:wsgate:demo:echo">upstream-reply</echo:HelloResponse></soap:Body></soap:Envelope>`

// replicaConfig is the config both replicas share: JSON logs, port 0
// listeners, file secrets beside it, the replay cache (and with it the rate
// limits) on the shared Redis.
const replicaConfig = `listen: 127.0.0.1:0
log: {level: info, format: json}
secrets:
  backend: file
  file: {dir: secrets}
replay:
  store: redis
  redis: {address: %[1]q, prefix: "e2e:"}
routes:
  - name: orders
    path_prefix: /soap/orders
    upstream: %[2]s/ws/orders
    soap:
      trust: wsgate/trust/partners
      require_signed: [body, timestamp]
  - name: billing
    path_prefix: /api/billing
    upstream: %[3]s/
    oauth:
      issuer: https://idp.e2e.invalid/
      audience: [billing]
      jwks_secret: wsgate/jwks/billing
      algorithms: [HS256]
    rate_limit: {per: subject, rate: 0.01, burst: 3}
`

// fleet is two wsgate replicas sharing one Redis, with their upstreams.
type fleet struct {
	redis      *redistest.Server
	a, b       *gatewaytest.Gateway
	soapUp     *countingUpstream
	restUp     *countingUpstream
	pki        partnerPKI
	hmacKey    []byte
	configPath string
}

// startFleet needs cmd/wsgate to build the redis replay store and
// Redis-backed rate limits for `replay.store: redis` (redisstore).
func startFleet(t *testing.T) *fleet {
	t.Helper()
	f := &fleet{redis: redistest.Start(t), pki: newPartnerPKI(t)}
	f.soapUp = newCountingUpstream(t, "text/xml; charset=utf-8", soapReply)
	f.restUp = newCountingUpstream(t, "application/json", `{"ok":true}`)
	dir := t.TempDir()
	secrets := filepath.Join(dir, "secrets")
	gatewaytest.WriteSecret(t, secrets, "wsgate/trust/partners", map[string]string{"certificates": string(pki.CertPEM(f.pki.ca.Cert))})
	var b64 string
	f.hmacKey, b64 = newHMACSecret(t)
	gatewaytest.WriteSecret(t, secrets, "wsgate/jwks/billing", map[string]string{"secret": b64})
	f.configPath = filepath.Join(dir, "wsgate.yaml")
	gatewaytest.WriteFile(t, f.configPath, fmt.Appendf(nil, replicaConfig, f.redis.Addr, f.soapUp.URL, f.restUp.URL))
	f.a = gatewaytest.Start(t, "replica-a", f.configPath)
	f.b = gatewaytest.Start(t, "replica-b", f.configPath)
	return f
}

func TestReplayRefusedByAnotherReplica(t *testing.T) {
	f := startFleet(t)

	msg := signEnvelope(t, f.pki.partner)
	ra := postSOAP(t, f.a.Base+"/soap/orders", msg)
	if ra.status != http.StatusOK || !strings.Contains(ra.body, "upstream-reply") {
		t.Fatalf("replica A: %d %q, want 200 with the upstream's reply", ra.status, ra.body)
	}

	rb := postSOAP(t, f.b.Base+"/soap/orders", msg)
	if rb.status != http.StatusInternalServerError ||
		!strings.HasPrefix(rb.header.Get("Content-Type"), "text/xml") ||
		!strings.Contains(rb.body, "<faultcode>wsse:InvalidSecurity</faultcode>") {
		t.Fatalf("replica B on the replay: %d %s %q, want 500 text/xml wsse:InvalidSecurity",
			rb.status, rb.header.Get("Content-Type"), rb.body)
	}
	// It is refused as a replay, not for some other reason.
	id := rb.header.Get("X-Request-ID")
	rec := auditRecord(f.b, id)
	if reason, _ := rec["reason"].(string); !strings.Contains(reason, "replay") {
		t.Fatalf("replica B's audit record for %s: %v, want a replay reason", id, rec)
	}
	if n := f.soapUp.hits.Load(); n != 1 {
		t.Fatalf("upstream reached %d times, want once: the replay must not get through", n)
	}

	// The replay is refused by A too, and a fresh message passes on B.
	if r := postSOAP(t, f.a.Base+"/soap/orders", msg); r.status != http.StatusInternalServerError {
		t.Fatalf("replica A on the replay: %d, want 500", r.status)
	}
	if r := postSOAP(t, f.b.Base+"/soap/orders", signEnvelope(t, f.pki.partner)); r.status != http.StatusOK {
		t.Fatalf("replica B on a fresh message: %d %q, want 200", r.status, r.body)
	}

	// Redis down: replay protection fails closed, 503, nothing forwarded.
	f.redis.Stop()
	before := f.soapUp.hits.Load()
	r := postSOAP(t, f.a.Base+"/soap/orders", signEnvelope(t, f.pki.partner))
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("with Redis down: %d %q, want 503", r.status, r.body)
	}
	if f.soapUp.hits.Load() != before {
		t.Fatal("a message was forwarded while the replay store was down")
	}
}

func TestRateLimitHoldsAcrossReplicas(t *testing.T) {
	f := startFleet(t)
	alice := mintHS256(t, f.hmacKey, "https://idp.e2e.invalid/", "billing", "alice")
	bob := mintHS256(t, f.hmacKey, "https://idp.e2e.invalid/", "billing", "bob")

	// burst 3, one token per 100 s: 3 requests pass in total, whichever replica takes them.
	replicas := []*gatewaytest.Gateway{f.a, f.b, f.a, f.b, f.a, f.b}
	want := []int{200, 200, 200, 429, 429, 429}
	for i, g := range replicas {
		r := getBearer(t, g.Base+"/api/billing/invoices", alice)
		if r.status != want[i] {
			t.Fatalf("request %d via %s: %d %q, want %d", i+1, g.Name, r.status, r.body, want[i])
		}
		if r.status == http.StatusTooManyRequests && r.header.Get("Retry-After") == "" {
			t.Fatalf("request %d via %s: 429 without Retry-After", i+1, g.Name)
		}
	}
	if n := f.restUp.hits.Load(); n != 3 {
		t.Fatalf("upstream reached %d times, want 3", n)
	}
	// Another subject has its own bucket.
	if r := getBearer(t, f.b.Base+"/api/billing/invoices", bob); r.status != http.StatusOK {
		t.Fatalf("bob via replica B: %d %q, want 200", r.status, r.body)
	}
}
