package bridge

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"wsgate/wssec"
)

// bridge.sign.saml_assertion: every outbound message carries the
// configured assertion, signed with the Body and Timestamp, and verifies
// on a sender-vouches route.

// svNow is inside the SAML goldens' assertion window.
var svNow = time.Date(2026, 1, 1, 0, 0, 30, 0, time.UTC)

type assertionFunc func() ([]byte, error)

func (f assertionFunc) Assertion() ([]byte, error) { return f() }

func goldenAssertion(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "wssec", "saml-sv-direct.xml"))
	if err != nil {
		t.Fatal(err)
	}
	a := regexp.MustCompile(`(?s)<saml2:Assertion\b.*?</saml2:Assertion>`).Find(b)
	if a == nil {
		t.Fatal("no assertion in saml-sv-direct.xml")
	}
	return a
}

// svUpstream verifies requests on a sender-vouches route and records them.
type svUpstream struct {
	t    *testing.T
	mu   sync.Mutex
	got  []*wssec.Assertion
	errs []error
}

func (u *svUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	v := &wssec.Verifier{
		Policy: wssec.Policy{RequireSigned: []wssec.Part{wssec.PartBody, wssec.PartTimestamp}},
		Trust:  staticTrust{loadCert(u.t, "ca")},
		SAML: &wssec.SAMLPolicy{Trust: staticTrust{loadCert(u.t, "saml-idp")},
			Audience: []string{"urn:wsgate:orders"}, Confirmation: []string{"sender-vouches"}},
		Now: func() time.Time { return svNow },
	}
	res, err := v.Verify(context.Background(), body)
	u.mu.Lock()
	defer u.mu.Unlock()
	if err != nil {
		u.errs = append(u.errs, err)
		http.Error(w, "bad", http.StatusBadRequest)
		return
	}
	u.got = append(u.got, res.Assertion)
	w.Header().Set("Content-Type", ContentType11)
	io.WriteString(w, `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body><ok/></soap:Body></soap:Envelope>`)
}

func TestBridgeSAMLAssertion(t *testing.T) {
	good := goldenAssertion(t)
	cases := []struct {
		name   string
		source AssertionSource
		status int // 0: 200 and the upstream saw a sender-vouches assertion
	}{
		{name: "assertion", source: assertionFunc(func() ([]byte, error) { return good, nil })},
		{name: "secret unavailable", status: http.StatusServiceUnavailable,
			source: assertionFunc(func() ([]byte, error) { return nil, errors.New("vault down") })},
		{name: "not an assertion", status: http.StatusInternalServerError,
			source: assertionFunc(func() ([]byte, error) { return []byte(`<x/>`), nil })},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			up := &svUpstream{t: t}
			srv := httptest.NewServer(up)
			defer srv.Close()
			h := newBridge(t, srv.URL, func(o *Options) {
				o.SAMLAssertion = c.source
				o.Now = func() time.Time { return svNow }
			})
			w := post(h, "/bridge/orders/get-order", "application/json", getOrder)
			up.mu.Lock()
			defer up.mu.Unlock()
			if len(up.errs) > 0 {
				t.Fatalf("upstream refused: %v", up.errs)
			}
			if c.status != 0 {
				if w.Code != c.status || len(up.got) != 0 {
					t.Fatalf("status %d (want %d), upstream got %d requests", w.Code, c.status, len(up.got))
				}
				return
			}
			if w.Code != http.StatusOK || len(up.got) != 1 {
				t.Fatalf("status %d, upstream got %d: %s", w.Code, len(up.got), w.Body)
			}
			if a := up.got[0]; a == nil || a.Confirmation != wssec.ConfirmSenderVouches || a.Subject != "alice@example.com" {
				t.Fatalf("assertion = %+v", a)
			}
		})
	}
}
