package gateway

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"wsgate/internal/testclock"
)

// bodyUpstream records the requests it gets, bodies included.
type bodyUpstream struct {
	*httptest.Server
	hits atomic.Int64
	mu   sync.Mutex
	body []byte
	hdr  http.Header
}

func newBodyUpstream(t *testing.T) *bodyUpstream {
	u := &bodyUpstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		u.hits.Add(1)
		u.mu.Lock()
		u.body, u.hdr = b, r.Header.Clone()
		u.mu.Unlock()
		w.Header().Set("Content-Type", "text/xml; charset=utf-8")
		_, _ = w.Write([]byte(`<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><m:ok xmlns:m="urn:example:orders">done</m:ok></soap:Body></soap:Envelope>`))
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *bodyUpstream) last() ([]byte, http.Header) {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.body, u.hdr
}

func readTestdata(t *testing.T, parts ...string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(append([]string{".."}, parts...)...))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// securityGateway serves one soap route (soap: block soapYAML, indented
// for the route) plus a public route, with the test PKI's trust set.
func securityGateway(t *testing.T, soapYAML string, logs *syncBuffer) (*Gateway, *bodyUpstream, string) {
	t.Helper()
	dir := t.TempDir()
	up := newBodyUpstream(t)
	writeSecretJSON(t, dir, "wsgate/trust/partners", map[string]string{"certificates": readTestdata(t, "testdata", "pki", "trust.pem")})
	writeSecretJSON(t, dir, "wsgate/trust/idp", map[string]string{"certificates": readTestdata(t, "testdata", "pki", "saml-idp.pem")})
	writeSecretJSON(t, dir, "wsgate/encryption/orders", map[string]string{
		"certificate": readTestdata(t, "testdata", "wssec", "xmlenc", "gateway-enc.pem"),
		"private_key": readTestdata(t, "testdata", "wssec", "xmlenc", "gateway-enc.key.pem"),
	})
	if logs == nil {
		logs = &syncBuffer{}
	}
	g := newTestGateway(t, dir, `
log: {level: info}
secrets: {backend: file, file: {dir: secrets}}
routes:
  - name: orders
    path_prefix: /soap/orders
    upstream: "`+up.URL+`"
    soap:
      trust: wsgate/trust/partners
`+soapYAML+`
  - {name: open, path_prefix: /open, upstream: "`+up.URL+`", public: true}
`, testclock.New(goldenAt), logs)
	_ = g.Refresh(t.Context())
	return g, up, dir
}

// checkForwarded fails the test unless w has status want and up got the
// request only when want is 200 (and none when refused); it reports want == 200.
func checkForwarded(t *testing.T, w *httptest.ResponseRecorder, want int, up *bodyUpstream) bool {
	t.Helper()
	if w.Code != want {
		t.Fatalf("status %d, want %d: %s", w.Code, want, w.Body)
	}
	if want == 200 {
		if up.hits.Load() != 1 {
			t.Fatal("valid request not forwarded")
		}
		return true
	}
	if up.hits.Load() != 0 {
		t.Fatal("refused request reached the upstream")
	}
	return false
}

func postTestdata(t *testing.T, g *Gateway, name string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(http.MethodPost, "/soap/orders", strings.NewReader(readTestdata(t, "testdata", "wssec", name)))
	ct := "text/xml; charset=utf-8"
	if strings.Contains(name, "soap12") {
		ct = "application/soap+xml; charset=utf-8"
	}
	r.Header.Set("Content-Type", ct)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	return serveReq(g, r)
}

// An encrypted and signed request is decrypted and verified, in either
// order, and the upstream gets the plaintext verified envelope; what should
// have arrived encrypted, or does not decrypt, never reaches it.
func TestSOAPDecryptEndToEnd(t *testing.T) {
	// The goldens carry an unsigned mustUnderstand ord:Trace header block:
	// forwarded only because the route names it.
	g, up, _ := securityGateway(t, `      decrypt: {identity: wsgate/encryption/orders, require_encrypted: [body]}
      forward_unsigned_headers: ["{urn:example:orders}Trace"]`, nil)
	for _, name := range []string{"xmlenc/enc-sign-then-encrypt.xml", "xmlenc/enc-encrypt-then-sign.xml"} {
		before := up.hits.Load()
		w := postTestdata(t, g, name, nil)
		if w.Code != http.StatusOK || up.hits.Load() != before+1 {
			t.Fatalf("%s: %d %s (upstream hits %d)", name, w.Code, w.Body, up.hits.Load()-before)
		}
		body, _ := up.last()
		for _, bad := range []string{"EncryptedData", "EncryptedKey", "CipherValue", "xmlenc"} {
			if bytes.Contains(body, []byte(bad)) {
				t.Errorf("%s: upstream got %s:\n%s", name, bad, body)
			}
		}
		if !bytes.Contains(body, []byte("Trace")) {
			t.Errorf("%s: the listed unsigned header was not forwarded:\n%s", name, body)
		}
		if !bytes.Contains(body, []byte("Body")) || bytes.Contains(body, []byte("<soap:Body/>")) ||
			bytes.Contains(body, []byte("<soap:Body></soap:Body>")) {
			t.Errorf("%s: upstream body has no plaintext Body content:\n%s", name, body)
		}
	}
	for _, tt := range []struct{ name, fault string }{
		{"valid-soap11-rsa.xml", "InvalidSecurity"}, // plaintext Body on a require_encrypted route
		{"xmlenc/enc-tampered.xml", "FailedCheck"},
		{"xmlenc/enc-wrapped.xml", "InvalidSecurity"},
		{"xmlenc/enc-rsa15-cbc.xml", "UnsupportedAlgorithm"},
	} {
		before := up.hits.Load()
		w := postTestdata(t, g, tt.name, nil)
		if w.Code != http.StatusInternalServerError || !strings.Contains(w.Body.String(), "wsse:"+tt.fault) || up.hits.Load() != before {
			t.Errorf("%s: %d %s (upstream hits %d), want wsse:%s", tt.name, w.Code, w.Body, up.hits.Load()-before, tt.fault)
		}
	}
}

// SAML holder-of-key, sender-vouches and bearer assertions are accepted;
// forward_attributes reach the upstream from the verified assertion, and a
// client's copies of those headers never do, on any route.
func TestSOAPSAMLEndToEnd(t *testing.T) {
	samlRoute := `      saml:
        trust: wsgate/trust/idp
        audience: [urn:wsgate:orders]
        confirmation: [holder-of-key, sender-vouches, bearer]
        required: true
        forward_attributes: {NameID: X-Saml-Subject, role: X-Saml-Roles, department: X-Saml-Department}`
	forged := map[string]string{"X-Saml-Subject": "mallory", "x-saml-roles": "admin", "X_Saml_Department": "Finance"}
	// The goldens share their Timestamp and Body: one gateway each, so
	// that none is a replay of another.
	for _, name := range []string{"saml-hok.xml", "saml-sv-str.xml", "saml-bearer.xml"} {
		logs := &syncBuffer{}
		g, up, _ := securityGateway(t, samlRoute, logs)
		before := up.hits.Load()
		w := postTestdata(t, g, name, forged)
		if w.Code != http.StatusOK || up.hits.Load() != before+1 {
			t.Fatalf("%s: %d %s", name, w.Code, w.Body)
		}
		_, h := up.last()
		if got := h.Values("X-Saml-Subject"); len(got) != 1 || got[0] != "alice@example.com" {
			t.Errorf("%s: X-Saml-Subject %q", name, got)
		}
		if got := h.Values("X-Saml-Roles"); len(got) != 1 || got[0] != "buyer,approver" {
			t.Errorf("%s: X-Saml-Roles %q", name, got)
		}
		if got := h.Values("X-Saml-Department"); len(got) != 1 || got[0] != "Purchasing" {
			t.Errorf("%s: X-Saml-Department %q", name, got)
		}
		if _, ok := h["X_saml_department"]; ok {
			t.Errorf("%s: the client's X_Saml_Department passed", name)
		}
		recs := logRecords(logs, "soap request accepted")
		if len(recs) != 1 || recs[0]["assertion_id"] != "_a75adf55-01d7-40cc-929f-dbd8372ebdfc" ||
			recs[0]["assertion_issuer"] != "https://idp.example.com/sts" || recs[0]["assertion_subject"] != "alice@example.com" {
			t.Errorf("%s: audit records: %v", name, recs)
		}
	}
	g, up, _ := securityGateway(t, samlRoute, nil)
	// Refused: no assertion (required), assertion-level wrapping, a second
	// assertion, a wrong audience.
	for _, name := range []string{"valid-soap11-rsa.xml", "saml-wrapped.xml", "saml-second-assertion.xml", "saml-audience.xml", "saml-nameid-comment.xml"} {
		before := up.hits.Load()
		w := postTestdata(t, g, name, forged)
		if w.Code != http.StatusInternalServerError || up.hits.Load() != before {
			t.Errorf("%s: %d %s (upstream hits %d)", name, w.Code, w.Body, up.hits.Load()-before)
		}
	}
	// A public route never passes a client's copy either.
	r := httptest.NewRequest(http.MethodGet, "/open/x", nil)
	r.Header.Set("x-saml-roles", "admin")
	if w := serveReq(g, r); w.Code != http.StatusOK {
		t.Fatalf("public: %d", w.Code)
	}
	if _, h := up.last(); h.Get("X-Saml-Roles") != "" {
		t.Errorf("public route forwarded X-Saml-Roles %q", h.Get("X-Saml-Roles"))
	}
}

func certFingerprint(t *testing.T, pemText string) string {
	t.Helper()
	block, _ := pem.Decode([]byte(pemText))
	sum := sha256.Sum256(block.Bytes)
	return hex.EncodeToString(sum[:])
}

// A denied signer is refused with wsse:InvalidSecurityToken; a deny list
// changed in the backend takes effect on Refresh, without a restart.
func TestSOAPRevocationDenyRefresh(t *testing.T) {
	dir := ""
	other := certFingerprint(t, readTestdata(t, "testdata", "pki", "untrusted-leaf.pem"))
	partner := certFingerprint(t, readTestdata(t, "testdata", "pki", "partner-rsa.pem"))
	g, up, d := securityGateway(t, `      revocation: {deny: wsgate/trust/denied}`, nil)
	dir = d
	writeSecretJSON(t, dir, "wsgate/trust/denied", map[string]string{"sha256": other})
	if err := g.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if w := postTestdata(t, g, "valid-soap11-rsa.xml", nil); w.Code != http.StatusOK || up.hits.Load() != 1 {
		t.Fatalf("before deny: %d %s", w.Code, w.Body)
	}
	writeSecretJSON(t, dir, "wsgate/trust/denied", map[string]string{"sha256": other + "\n" + strings.ToUpper(partner)})
	if err := g.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	w := postTestdata(t, g, "valid-soap12-rsa.xml", nil)
	if w.Code != http.StatusInternalServerError || !strings.Contains(w.Body.String(), "InvalidSecurityToken") || up.hits.Load() != 1 {
		t.Errorf("after deny: %d %s (upstream hits %d)", w.Code, w.Body, up.hits.Load())
	}
}

// newCRL is a CRL of the test CA listing serials, valid from goldenAt-1h
// until next.
func newCRL(t *testing.T, next time.Time, serials ...int64) string {
	t.Helper()
	caCert, err := x509.ParseCertificate(mustPEM(t, readTestdata(t, "testdata", "pki", "ca.pem")))
	if err != nil {
		t.Fatal(err)
	}
	key, err := x509.ParsePKCS8PrivateKey(mustPEM(t, readTestdata(t, "testdata", "pki", "ca.key.pem")))
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.RevocationList{Number: big.NewInt(1), ThisUpdate: goldenAt.Add(-time.Hour), NextUpdate: next}
	for _, s := range serials {
		tmpl.RevokedCertificateEntries = append(tmpl.RevokedCertificateEntries,
			x509.RevocationListEntry{SerialNumber: big.NewInt(s), RevocationTime: goldenAt.Add(-time.Hour)})
	}
	der, err := x509.CreateRevocationList(rand.Reader, tmpl, caCert, key.(crypto.Signer))
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "X509 CRL", Bytes: der}))
}

func mustPEM(t *testing.T, s string) []byte {
	t.Helper()
	b, _ := pem.Decode([]byte(s))
	if b == nil {
		t.Fatal("not PEM")
	}
	return b.Bytes
}

func routeReady(t *testing.T, g *Gateway, name string) (bool, []string) {
	t.Helper()
	rec := httptest.NewRecorder()
	g.AdminHandler().ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/readyz", nil))
	var st readiness
	if err := json.Unmarshal(rec.Body.Bytes(), &st); err != nil {
		t.Fatal(err)
	}
	for _, r := range st.Routes {
		if r.Name == name {
			return r.Ready && st.Ready == (rec.Code == http.StatusOK), r.NotLoaded
		}
	}
	t.Fatalf("no route %s in /readyz", name)
	return false, nil
}

// A CRL that lists the signer refuses it; a CRL past its nextUpdate makes
// the route not ready and its requests 503, never accepted; a fresh CRL on
// the next refresh makes it ready again.
func TestSOAPRevocationCRL(t *testing.T) {
	g, up, dir := securityGateway(t, `      revocation: {crl: [wsgate/trust/partners-crl]}`, nil)
	writeSecretJSON(t, dir, "wsgate/trust/partners-crl", map[string]string{"crl": newCRL(t, goldenAt.Add(time.Hour), 2)})
	if err := g.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if ok, _ := routeReady(t, g, "orders"); !ok {
		t.Fatal("route not ready with a fresh CRL")
	}
	w := postTestdata(t, g, "valid-soap11-rsa.xml", nil)
	if w.Code != http.StatusInternalServerError || !strings.Contains(w.Body.String(), "InvalidSecurityToken") || up.hits.Load() != 0 {
		t.Fatalf("revoked signer: %d %s (upstream hits %d)", w.Code, w.Body, up.hits.Load())
	}

	writeSecretJSON(t, dir, "wsgate/trust/partners-crl", map[string]string{"crl": newCRL(t, goldenAt.Add(-time.Minute), 99)})
	if err := g.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if ok, notLoaded := routeReady(t, g, "orders"); ok || !strings.Contains(strings.Join(notLoaded, ","), "revocation") {
		t.Errorf("stale CRL: ready %v, not_loaded %v", ok, notLoaded)
	}
	if w := postTestdata(t, g, "valid-soap12-rsa.xml", nil); w.Code != http.StatusServiceUnavailable || up.hits.Load() != 0 {
		t.Errorf("stale CRL: %d %s (upstream hits %d)", w.Code, w.Body, up.hits.Load())
	}

	writeSecretJSON(t, dir, "wsgate/trust/partners-crl", map[string]string{"crl": newCRL(t, goldenAt.Add(time.Hour), 99)})
	if err := g.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if ok, _ := routeReady(t, g, "orders"); !ok {
		t.Error("fresh CRL again: route not ready")
	}
	if w := postTestdata(t, g, "valid-soap12-rsa.xml", nil); w.Code != http.StatusOK || up.hits.Load() != 1 {
		t.Errorf("fresh CRL again: %d %s", w.Code, w.Body)
	}
}
