package interop

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"

	"wsgate/internal/gatewaytest"
	"wsgate/wssec"
)

// upstreamRecorder is the SOAP service behind wsgate: it records every
// request it receives and answers with a small SOAP 1.1 response.
type upstreamRecorder struct {
	mu   sync.Mutex
	reqs []recordedRequest
}

type recordedRequest struct {
	Path string
	Body []byte
}

const upstreamResponse = `<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body><m:TransferResponse xmlns:m="urn:wsgate:interop">done</m:TransferResponse></soapenv:Body></soapenv:Envelope>`

func (u *upstreamRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	u.mu.Lock()
	u.reqs = append(u.reqs, recordedRequest{Path: r.URL.Path, Body: body})
	u.mu.Unlock()
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	_, _ = io.WriteString(w, upstreamResponse)
}

func (u *upstreamRecorder) snapshot() []recordedRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]recordedRequest(nil), u.reqs...)
}

// routeName is the gateway route whose policy matches m.
func routeName(m signedMsg) string {
	alg, trust := "sha256", "ca"
	if m.SHA1 {
		alg = "sha1"
	}
	if m.Pinned {
		trust = "pinned"
	}
	return alg + "-" + trust
}

// writeSecrets writes the file backend's trust secrets: the CA alone, and the
// CA with the partner leaf pinned.
func writeSecrets(t *testing.T, dir string, p *testPKI) {
	t.Helper()
	for path, pem := range map[string][]byte{
		"interop/trust/ca":     p.CAPEM,
		"interop/trust/pinned": append(append([]byte(nil), p.CAPEM...), p.CertPEM...),
	} {
		data, err := json.Marshal(map[string]string{"certificates": string(pem)})
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, filepath.FromSlash(path)+".json"), data)
	}
}

// writeConfig writes a config with one soap route per policy, each forwarding
// to upstream/backend/<route>.
func writeConfig(t *testing.T, path, listen, admin, secretsDir, upstream string) {
	t.Helper()
	var b strings.Builder
	fmt.Fprintf(&b, "listen: %q\nadmin_listen: %q\n", listen, admin)
	b.WriteString("log: {level: debug, format: json}\n")
	fmt.Fprintf(&b, "secrets:\n  backend: file\n  file:\n    dir: %q\n", secretsDir)
	b.WriteString("routes:\n")
	for _, alg := range []string{"sha256", "sha1"} {
		for _, trust := range []string{"ca", "pinned"} {
			name := alg + "-" + trust
			fmt.Fprintf(&b, "  - name: %s\n    path_prefix: /soap/%s\n    upstream: %q\n", name, name, upstream+"/backend/"+name)
			fmt.Fprintf(&b, "    soap:\n      trust: interop/trust/%s\n      require_signed: [body, timestamp]\n", trust)
			fmt.Fprintf(&b, "      algorithms: {allow_sha1: %t}\n      strip_security_header: true\n", alg == "sha1")
		}
	}
	writeFile(t, path, []byte(b.String()))
}

// post sends a SOAP 1.1 (or 1.2) request and returns status, content type and body.
func post(t *testing.T, url string, msg []byte, soap12 bool) (int, string, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	if soap12 {
		req.Header.Set("Content-Type", `application/soap+xml; charset=utf-8; action="urn:wsgate:interop:Transfer"`)
	} else {
		req.Header.Set("Content-Type", "text/xml; charset=utf-8")
		req.Header.Set("SOAPAction", `"urn:wsgate:interop:Transfer"`)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header.Get("Content-Type"), body
}

// resolveQName resolves a "prefix:local" element text against the
// namespace declarations in scope at el.
func resolveQName(el *etree.Element) (string, string) {
	qname := strings.TrimSpace(el.Text())
	prefix, local, ok := strings.Cut(qname, ":")
	if !ok {
		return "", qname
	}
	for e := el; e != nil; e = e.Parent() {
		if ns := e.SelectAttrValue("xmlns:"+prefix, ""); ns != "" {
			return ns, local
		}
	}
	return "", local
}

// childNS returns el's first child with the given local name and namespace.
func childNS(el *etree.Element, ns, local string) *etree.Element {
	if el == nil {
		return nil
	}
	for _, c := range el.ChildElements() {
		if c.Tag == local && c.NamespaceURI() == ns {
			return c
		}
	}
	return nil
}

// faultCode returns the WS-Security fault code of a SOAP fault as namespace
// URI and local name: SOAP 1.1 faultcode, or SOAP 1.2 Code/Subcode/Value
// under a Code/Value of env:Sender.
func faultCode(t *testing.T, body []byte, soap12 bool) (string, string) {
	t.Helper()
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(body); err != nil {
		t.Fatalf("fault is not XML: %v\n%s", err, body)
	}
	b := findBody(doc)
	if b == nil {
		t.Fatalf("fault has no SOAP Body:\n%s", body)
	}
	if !soap12 {
		var code *etree.Element
		if f := childNS(b, wssec.NSSOAP11, "Fault"); f != nil {
			code = f.SelectElement("faultcode")
		}
		if code == nil {
			t.Fatalf("no soap:Fault/faultcode in:\n%s", body)
		}
		return resolveQName(code)
	}
	code := childNS(childNS(b, wssec.NSSOAP12, "Fault"), wssec.NSSOAP12, "Code")
	value := childNS(code, wssec.NSSOAP12, "Value")
	sub := childNS(childNS(code, wssec.NSSOAP12, "Subcode"), wssec.NSSOAP12, "Value")
	if value == nil || sub == nil {
		t.Fatalf("no env:Fault/env:Code/env:Value and Subcode/Value in:\n%s", body)
	}
	if ns, local := resolveQName(value); ns != wssec.NSSOAP12 || local != "Sender" {
		t.Errorf("SOAP 1.2 fault Code/Value = {%s}%s, want env:Sender", ns, local)
	}
	return resolveQName(sub)
}

// TestGatewayEndToEnd runs the wsgate binary in front of a recording upstream
// and sends it every foreign-signed message, then a tampered copy of each.
func TestMain(m *testing.M) { os.Exit(gatewaytest.Main(m)) }

func TestGatewayEndToEnd(t *testing.T) {
	p := newTestPKI(t)
	msgs := append(zeepMessages(t, p), xmlsec1Messages(t, p)...)

	dir := t.TempDir()

	up := &upstreamRecorder{}
	upstream := httptest.NewServer(up)
	t.Cleanup(upstream.Close)

	secretsDir := filepath.Join(dir, "secrets")
	writeSecrets(t, secretsDir, p)
	listen, admin := gatewaytest.FreeAddr(t), gatewaytest.FreeAddr(t)
	cfg := filepath.Join(dir, "wsgate.yaml")
	writeConfig(t, cfg, listen, admin, secretsDir, upstream.URL)

	if out, err := exec.Command(gatewaytest.Binary(t), "check-config", "-config", cfg).CombinedOutput(); err != nil {
		t.Fatalf("wsgate check-config: %v\n%s", err, out)
	}
	gatewaytest.Start(t, "interop", cfg).WaitReady(t)

	for _, m := range msgs {
		t.Run(m.Name, func(t *testing.T) {
			route := routeName(m)
			url := "http://" + listen + "/soap/" + route
			wantBody, _ := bodyCanonical(t, m.Data)

			before := len(up.snapshot())
			status, ctype, resp := post(t, url, m.Data, m.SOAP12)
			if status != http.StatusOK {
				t.Fatalf("signed message: status %d, want 200\n%s", status, resp)
			}
			if string(resp) != upstreamResponse {
				t.Errorf("response not the upstream's unchanged: got\n%s", resp)
			}
			if !strings.HasPrefix(ctype, "text/xml") {
				t.Errorf("response Content-Type = %q, want the upstream's text/xml", ctype)
			}
			got := up.snapshot()
			if len(got) != before+1 {
				t.Fatalf("upstream received %d requests, want 1", len(got)-before)
			}
			fwd := got[len(got)-1]
			if !strings.HasPrefix(fwd.Path, "/backend/"+route) {
				t.Errorf("upstream path = %q, want under /backend/%s", fwd.Path, route)
			}
			gotBody, doc := bodyCanonical(t, fwd.Body)
			if hasSecurityHeader(doc.Root()) {
				t.Errorf("forwarded envelope still has wsse:Security:\n%s", fwd.Body)
			}
			if gotBody != wantBody {
				t.Errorf("forwarded Body differs\n got: %s\nwant: %s", gotBody, wantBody)
			}

			// A tampered copy gets a fault in the request's SOAP version and
			// never reaches the upstream.
			faultType := "text/xml"
			if m.SOAP12 {
				faultType = "application/soap+xml"
			}
			before = len(up.snapshot())
			status, ctype, resp = post(t, url, tamper(t, m.Data), m.SOAP12)
			if status != http.StatusInternalServerError {
				t.Errorf("tampered message: status %d, want 500\n%s", status, resp)
			}
			if !strings.HasPrefix(ctype, faultType) {
				t.Errorf("fault Content-Type = %q, want %s", ctype, faultType)
			}
			if ns, local := faultCode(t, resp, m.SOAP12); ns != wssec.NSWSSE || local != "FailedCheck" {
				t.Errorf("fault code = {%s}%s, want wsse:FailedCheck\n%s", ns, local, resp)
			}
			if n := len(up.snapshot()) - before; n != 0 {
				t.Errorf("tampered message reached the upstream (%d requests)", n)
			}
		})
	}
}
