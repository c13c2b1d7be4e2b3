package soap

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"wsgate/wssec"
)

// TestGoldenRejectionsNeverReachUpstream sends every golden message that the
// route's verifier refuses through the handler, and checks that the client
// gets the fault for exactly that failure and the upstream gets nothing.
func TestGoldenRejectionsNeverReachUpstream(t *testing.T) {
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
	rejected := 0
	for _, file := range files {
		msg, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		_, verr := newVerifier(file).Verify(context.Background(), msg)
		if verr == nil {
			continue
		}
		rejected++
		t.Run(filepath.Base(file), func(t *testing.T) {
			up := &recorder{}
			h := New(Options{
				Route:               "golden",
				Verifier:            newVerifier(file),
				StripSecurityHeader: true,
				Upstream:            up,
				Logger:              slog.New(slog.NewJSONHandler(io.Discard, nil)),
				NewRequestID:        func() string { return "golden-id" },
			})
			rec := post(h, msg, ContentType11, "")
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
			if code := "wsse:" + wssec.FaultCode(verr); !strings.Contains(rec.Body.String(), code) {
				t.Fatalf("fault lacks %s (%v): %s", code, verr, rec.Body.String())
			}
			if strings.Contains(rec.Body.String(), verr.Error()) {
				t.Fatal("fault leaks the internal reason")
			}
		})
	}
	if rejected < 30 {
		t.Fatalf("only %d golden rejections exercised", rejected)
	}
}

type users map[string]string

func (u users) Password(name string) (string, bool, error) {
	p, ok := u[name]
	return p, ok, nil
}
