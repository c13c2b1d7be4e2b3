package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"io"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"

	"wsgate/internal/gatewaytest"
	"wsgate/internal/pki"
	"wsgate/wssec"
)

// requireTool returns the path of an executable: skipped locally when
// missing, failed under CI (CI must not skip).
func requireTool(t *testing.T, name, hint string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s not found (%s): %v", name, hint, err)
		}
		t.Skipf("%s not found (%s); skipping", name, hint)
	}
	return p
}

func TestMain(m *testing.M) { os.Exit(gatewaytest.Main(m)) }

// response is a finished HTTP exchange.
type response struct {
	status int
	header http.Header
	body   string
}

func do(t *testing.T, req *http.Request) response {
	t.Helper()
	client := &http.Client{Timeout: 30 * time.Second}
	res, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: res.StatusCode, header: res.Header, body: string(b)}
}

func postSOAP(t *testing.T, url string, msg []byte) response {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url, bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/xml; charset=utf-8")
	return do(t, req)
}

func getBearer(t *testing.T, url, token string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	return do(t, req)
}

// auditRecord finds the log record of a request by ID. The process's
// output reaches the buffer through a pipe, so a record written before the
// response may arrive after it: wait a little.
func auditRecord(g *gatewaytest.Gateway, id string) map[string]any {
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, rec := range g.Logs.LogRecords() {
			if rec["request_id"] == id {
				return rec
			}
		}
		if time.Now().After(deadline) {
			return nil
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func mustReadString(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// partnerPKI is a demo CA and a partner identity it issued.
type partnerPKI struct {
	ca, partner *pki.Identity
}

func newPartnerPKI(t *testing.T) partnerPKI {
	t.Helper()
	var is pki.Issuer
	ca, err := is.Issue(pki.Options{CommonName: "e2e CA", IsCA: true, Key: pki.ECP256}, nil)
	if err != nil {
		t.Fatal(err)
	}
	partner, err := is.Issue(pki.Options{CommonName: "e2e partner", Key: pki.ECP256}, ca)
	if err != nil {
		t.Fatal(err)
	}
	return partnerPKI{ca: ca, partner: partner}
}

// sampleEnvelope is the SOAP 1.1 request the tests sign.
const sampleEnvelope = `<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Header/>` +
	`<soap:Body><echo:Hello xmlns:echo="urn:wsgate:demo:echo"><echo:Name>World</echo:Name></echo:Hello></soap:Body></soap:Envelope>`

// signEnvelope signs sampleEnvelope now (the gateways run on the real clock).
func signEnvelope(t *testing.T, id *pki.Identity) []byte {
	t.Helper()
	return signMessage(t, id, []byte(sampleEnvelope))
}

// signMessage signs env with id now.
func signMessage(t *testing.T, id *pki.Identity, env []byte) []byte {
	t.Helper()
	s := &wssec.Signer{Chain: []*x509.Certificate{id.Cert}, Key: id.Key}
	msg, err := s.SignBytes(env, wssec.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	return msg
}

// newHMACSecret is a base64 HS256 key, as the `secret` field holds it.
func newHMACSecret(t *testing.T) (raw []byte, b64 string) {
	t.Helper()
	raw = make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		t.Fatal(err)
	}
	return raw, base64.StdEncoding.EncodeToString(raw)
}

// mintHS256 mints a bearer token valid for ten minutes.
func mintHS256(t *testing.T, key []byte, issuer, audience, subject string) string {
	t.Helper()
	sig, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.HS256, Key: key},
		(&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok, err := jwt.Signed(sig).Claims(jwt.Claims{
		Issuer:   issuer,
		Audience: jwt.Audience{audience},
		Subject:  subject,
		IssuedAt: jwt.NewNumericDate(now),
		Expiry:   jwt.NewNumericDate(now.Add(10 * time.Minute)),
	}).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
