package soap

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"wsgate/wssec"
)

// TestGoldenMessagesThroughTheHandler sends every golden message through
// the handler. One the route's verifier refuses must get the fault for
// exactly that failure (wsse code, or SOAP MustUnderstand) while the
// upstream gets nothing; one it accepts must reach the upstream as exactly
// the envelope verification made of it: for issue 11's sanitizing cases,
// the one in testdata/wssec/forwarded, with the Security header stripped
// or kept.
func TestGoldenMessagesThroughTheHandler(t *testing.T) {
	goldenNow := time.Date(2026, 1, 1, 0, 1, 0, 0, time.UTC)
	data, err := os.ReadFile("../testdata/pki/ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(data)
	ca, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	// UsernameToken messages go to a route that requires one.
	newVerifier := func(file string) *wssec.Verifier {
		v := &wssec.Verifier{
			Policy: wssec.Policy{RequireSigned: []wssec.Part{wssec.PartBody, wssec.PartTimestamp}},
			Trust:  certs{ca},
			Now:    func() time.Time { return goldenNow },
		}
		if strings.Contains(file, "usernametoken") {
			v.Users = users{"alice": "secret"}
		}
		return v
	}
	files, _ := filepath.Glob("../testdata/wssec/*.xml")
	rejected, sanitized := 0, 0
	for _, file := range files {
		msg, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(filepath.Base(file), ".xml")
		res, verr := newVerifier(file).Verify(context.Background(), msg)
		var action string
		if verr == nil {
			action = res.Action
			res.Release()
		}
		for _, strip := range []bool{true, false} {
			var want []byte
			if verr == nil {
				suffix := ".keep.xml"
				if strip {
					suffix = ".strip.xml"
				}
				want, err = os.ReadFile(filepath.Join("../testdata/wssec/forwarded", name+suffix))
				if err != nil || (!strip && strings.Contains(name, "usernametoken")) {
					continue // not a sanitizing case, or made on a route without users
				}
				sanitized++
			} else if !strip {
				continue
			} else {
				rejected++
			}
			t.Run(fmt.Sprintf("%s/strip=%t", name, strip), func(t *testing.T) {
				up := &recorder{}
				h := New(Options{
					Route:               "golden",
					Verifier:            newVerifier(file),
					StripSecurityHeader: strip,
					Upstream:            up,
					Logger:              slog.New(slog.NewJSONHandler(io.Discard, nil)),
					NewRequestID:        func() string { return "golden-id" },
				})
				rec := postGolden(h, msg, action)
				if verr == nil {
					if up.calls != 1 || rec.Code >= 300 {
						t.Fatalf("status %d, %d upstream calls for a message that verifies: %s", rec.Code, up.calls, rec.Body)
					}
					if !bytes.Equal(up.body, want) {
						t.Fatalf("upstream got\n%s\nwant\n%s", up.body, want)
					}
					return
				}
				if up.calls != 0 {
					t.Fatalf("upstream received %d request(s) for a message refused with %v", up.calls, verr)
				}
				wantStatus := http.StatusInternalServerError
				if wssec.DetectVersion(msg) == wssec.SOAPUnknown {
					wantStatus = http.StatusBadRequest
				}
				if rec.Code != wantStatus {
					t.Fatalf("status %d, want %d (%v)", rec.Code, wantStatus, verr)
				}
				code := "wsse:" + wssec.FaultCode(verr)
				if errors.Is(verr, wssec.ErrMustUnderstand) {
					code = ":MustUnderstand<" // soap: or env:, never a wsse code
				}
				if !strings.Contains(rec.Body.String(), code) {
					t.Fatalf("fault lacks %s (%v): %s", code, verr, rec.Body.String())
				}
				if strings.Contains(rec.Body.String(), verr.Error()) {
					t.Fatal("fault leaks the internal reason")
				}
			})
		}
	}
	if rejected < 100 || sanitized < 40 {
		t.Fatalf("only %d golden rejections and %d sanitized envelopes exercised", rejected, sanitized)
	}
}

// postGolden posts msg in the binding of its SOAP version, with the signed
// wsa:Action (if any) as SOAPAction or the action parameter.
func postGolden(h http.Handler, msg []byte, action string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodPost, "/soap/golden", bytes.NewReader(msg))
	if wssec.DetectVersion(msg) == wssec.SOAP12 {
		ct := ContentType12
		if action != "" {
			ct += `; action="` + action + `"`
		}
		req.Header.Set("Content-Type", ct)
	} else {
		req.Header.Set("Content-Type", ContentType11)
		req.Header.Set("SOAPAction", `"`+action+`"`)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

type users map[string]string

func (u users) Password(name string) (string, bool, error) {
	p, ok := u[name]
	return p, ok, nil
}
