package interop

// The other direction of interop: what wsgate signs (wssec.Signer, the
// bridge's outbound requests, sign_response on SOAP routes) must verify in
// stacks we did not write, xmlsec1 and zeep, for SOAP 1.1 and 1.2 and for
// RSA and ECDSA keys. And the bridge, end to end, against a SOAP service
// that checks our signature with xmlsec1 and answers signed.
//
// xmlsec1 does not implement the WS-Security token profile: it cannot follow
// a wsse:SecurityTokenReference to the BinarySecurityToken. ourXmlsec1
// therefore replaces the reference, inside ds:KeyInfo, with a ds:X509Data
// holding the certificate the message carries. KeyInfo is outside
// SignedInfo, so no signed byte changes; xmlsec1 then checks the signature
// with that certificate and the certificate against the CA (--trusted-pem),
// which a message from an untrusted signer fails.

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"encoding/xml"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"

	"wsgate/bridge"
	"wsgate/soap"
	"wsgate/wssec"
)

const pkiDir = "../testdata/pki"

// ourIdentity loads a committed test identity (certificate and PKCS#8 key).
func ourIdentity(t *testing.T, name string) ([]*x509.Certificate, crypto.Signer) {
	t.Helper()
	certPEM, err := os.ReadFile(filepath.Join(pkiDir, name+".pem"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(certPEM)
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	keyPEM, err := os.ReadFile(filepath.Join(pkiDir, name+".key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	block, _ = pem.Decode(keyPEM)
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return []*x509.Certificate{cert}, key.(crypto.Signer)
}

// ourStatic is a loaded identity, a bridge.IdentitySource and a soap.IdentitySource.
type ourStatic struct {
	chain []*x509.Certificate
	key   crypto.Signer
}

func (s ourStatic) Identity() ([]*x509.Certificate, crypto.Signer, error) { return s.chain, s.key, nil }

func ourSigner(t *testing.T, name string) *wssec.Signer {
	chain, key := ourIdentity(t, name)
	return &wssec.Signer{Chain: chain, Key: key}
}

func ourCA(t *testing.T) staticTrust {
	chain, _ := ourIdentity(t, "ca")
	return staticTrust(chain)
}

// ourMsg is an envelope wsgate signed.
type ourMsg struct {
	Name string
	Data []byte
	// Signer is the testdata/pki identity that signed it.
	Signer string
}

func ourEnvelope(soap12 bool, header, body string) string {
	ns := wssec.NSSOAP11
	if soap12 {
		ns = wssec.NSSOAP12
	}
	return `<?xml version="1.0" encoding="UTF-8"?>` + "\n" + `<env:Envelope xmlns:env="` + ns + `" xmlns:wsa="` + wssec.NSWSA + `">` +
		`<env:Header>` + header + `</env:Header><env:Body>` + body + `</env:Body></env:Envelope>`
}

const ourTransfer = `<m:Transfer xmlns:m="urn:wsgate:interop"><m:From>alice</m:From><m:To>bob &amp; co</m:To><m:Amount>100</m:Amount></m:Transfer>`

// ourSignerMessages: wssec.Signer's output, both SOAP versions, both key
// types, with and without WS-Addressing headers.
func ourSignerMessages(t *testing.T) []ourMsg {
	wsa := `<wsa:To>https://svc.example/ws</wsa:To><wsa:Action>urn:wsgate:interop:Transfer</wsa:Action><wsa:MessageID>urn:uuid:1b4e28ba-2fa1-11d2-883f-0016d3cca427</wsa:MessageID>`
	var msgs []ourMsg
	for _, signer := range []string{"partner-rsa", "partner-ecdsa"} {
		for _, soap12 := range []bool{false, true} {
			for _, addressing := range []bool{false, true} {
				header := ""
				if addressing {
					header = wsa
				}
				out, err := ourSigner(t, signer).SignBytes([]byte(ourEnvelope(soap12, header, ourTransfer)), wssec.Limits{})
				if err != nil {
					t.Fatal(err)
				}
				msgs = append(msgs, ourMsg{Name: fmt.Sprintf("signer/%s/soap12=%v/wsa=%v", signer, soap12, addressing), Data: out, Signer: signer})
			}
		}
	}
	return msgs
}

// ourBridgeMessages: what the bridge sends upstream, captured.
func ourBridgeMessages(t *testing.T) []ourMsg {
	var msgs []ourMsg
	for _, signer := range []string{"partner-rsa", "partner-ecdsa"} {
		for _, v := range []wssec.SOAPVersion{wssec.SOAP11, wssec.SOAP12} {
			var got []byte
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got, _ = io.ReadAll(r.Body)
				w.WriteHeader(http.StatusAccepted)
			}))
			h := ourBridge(t, up.URL, v, signer, nil)
			w := ourPost(h, "/bridge/transfer/transfer", `{"from":"alice","to":"bob & co","amount":100,"memo":"</a><evil/>"}`)
			up.Close()
			if w.Code != http.StatusOK || got == nil {
				t.Fatalf("bridge %s %v: %d %s", signer, v, w.Code, w.Body)
			}
			msgs = append(msgs, ourMsg{Name: fmt.Sprintf("bridge/%s/soap%v", signer, v), Data: got, Signer: signer})
		}
	}
	return msgs
}

// ourSignResponseMessages: responses a SOAP route with sign_response returns.
func ourSignResponseMessages(t *testing.T) []ourMsg {
	var msgs []ourMsg
	for _, signer := range []string{"partner-rsa", "partner-ecdsa"} {
		for _, soap12 := range []bool{false, true} {
			reply := ourEnvelope(soap12, "", strings.Replace(ourTransfer, "Transfer", "TransferResponse", 2))
			chain, key := ourIdentity(t, signer)
			h := soap.New(soap.Options{
				Route:        "orders",
				Verifier:     &wssec.Verifier{Policy: wssec.Policy{RequireSigned: []wssec.Part{wssec.PartBody}}, Trust: ourCA(t)},
				Upstream:     http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, reply) }),
				SignResponse: ourStatic{chain, key},
			})
			req, err := ourSigner(t, "partner-rsa").SignBytes([]byte(ourEnvelope(soap12, "", `<m:Q xmlns:m="urn:wsgate:interop"/>`)), wssec.Limits{})
			if err != nil {
				t.Fatal(err)
			}
			rec := httptest.NewRecorder()
			hr := httptest.NewRequest(http.MethodPost, "/soap/orders", bytes.NewReader(req))
			hr.Header.Set("Content-Type", soap.ContentType11)
			if soap12 {
				hr.Header.Set("Content-Type", soap.ContentType12)
			}
			h.ServeHTTP(rec, hr)
			if rec.Code != http.StatusOK {
				t.Fatalf("sign_response %s soap12=%v: %d %s", signer, soap12, rec.Code, rec.Body)
			}
			msgs = append(msgs, ourMsg{Name: fmt.Sprintf("sign_response/%s/soap12=%v", signer, soap12), Data: rec.Body.Bytes(), Signer: signer})
		}
	}
	return msgs
}

func ourAllMessages(t *testing.T) []ourMsg {
	msgs := ourSignerMessages(t)
	msgs = append(msgs, ourBridgeMessages(t)...)
	return append(msgs, ourSignResponseMessages(t)...)
}

var (
	bstRE = regexp.MustCompile(`<wsse:BinarySecurityToken\b[^>]*>([A-Za-z0-9+/=\s]+)</wsse:BinarySecurityToken>`)
	strRE = regexp.MustCompile(`(?s)<wsse:SecurityTokenReference\b.*?</wsse:SecurityTokenReference>`)
)

// withX509Data moves the carried certificate into ds:KeyInfo for xmlsec1
// (see the file comment).
func withX509Data(msg []byte) ([]byte, error) {
	bst := bstRE.FindSubmatch(msg)
	if bst == nil || len(strRE.FindAll(msg, -1)) != 1 {
		return nil, fmt.Errorf("want one BinarySecurityToken and one SecurityTokenReference")
	}
	x509Data := []byte(`<ds:X509Data><ds:X509Certificate>` + string(bst[1]) + `</ds:X509Certificate></ds:X509Data>`)
	return strRE.ReplaceAllLiteral(msg, x509Data), nil
}

// ourXmlsec1 verifies msg with xmlsec1, trusting only the test CA.
func ourXmlsec1(t *testing.T, xmlsec1 string, msg []byte) error {
	t.Helper()
	in, err := withX509Data(msg)
	if err != nil {
		return err
	}
	// No t.Fatal here: the SOAP service calls this from its own goroutine.
	f := filepath.Join(t.TempDir(), "msg.xml")
	if err := os.WriteFile(f, in, 0o600); err != nil {
		return err
	}
	args := []string{"--verify", "--trusted-pem", filepath.Join(pkiDir, "ca.pem"),
		"--id-attr:Id", wssec.NSSOAP11 + ":Body", "--id-attr:Id", wssec.NSSOAP12 + ":Body",
		"--id-attr:Id", wssec.NSWSU + ":Timestamp"}
	for _, h := range []string{"To", "Action", "MessageID", "ReplyTo", "RelatesTo", "From", "FaultTo"} {
		args = append(args, "--id-attr:Id", wssec.NSWSA+":"+h)
	}
	out, err := exec.Command(xmlsec1, append(args, f)...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("xmlsec1: %v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// requireZeepVerify checks what zeep_verify.py imports.
func requireZeepVerify(t *testing.T) {
	t.Helper()
	requireZeep(t)
	if out, err := exec.Command(pythonPath, "-c", "import cryptography.x509").CombinedOutput(); err != nil {
		missingTool(t, pythonPath+" with cryptography", fmt.Errorf("%v: %s", err, bytes.TrimSpace(out)))
	}
}

// ourZeep verifies msg with zeep's BinarySignature verifier (zeep_verify.py).
func ourZeep(t *testing.T, msg []byte, signer string) error {
	t.Helper()
	f := filepath.Join(t.TempDir(), "msg.xml")
	writeFile(t, f, msg)
	out, err := exec.Command(pythonPath, "zeep_verify.py", "--cert", filepath.Join(pkiDir, signer+".pem"), "--in", f).CombinedOutput()
	if err != nil {
		return fmt.Errorf("zeep_verify.py: %v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// TestOurSignaturesVerifyInXmlsec1: every message verifies against the CA;
// a tampered Body, or a signer the CA did not issue, does not.
func TestOurSignaturesVerifyInXmlsec1(t *testing.T) {
	xmlsec1 := requireXmlsec1(t)
	for _, m := range ourAllMessages(t) {
		t.Run(m.Name, func(t *testing.T) {
			if err := ourXmlsec1(t, xmlsec1, m.Data); err != nil {
				t.Fatalf("%v\n%s", err, m.Data)
			}
			if err := ourXmlsec1(t, xmlsec1, tamper(t, m.Data)); err == nil {
				t.Error("xmlsec1 accepts a tampered Body")
			}
		})
	}
	t.Run("untrusted signer", func(t *testing.T) {
		out, err := ourSigner(t, "untrusted-leaf").SignBytes([]byte(ourEnvelope(false, "", ourTransfer)), wssec.Limits{})
		if err != nil {
			t.Fatal(err)
		}
		if err := ourXmlsec1(t, xmlsec1, out); err == nil {
			t.Error("xmlsec1 --trusted-pem ca.pem accepts a signer the CA did not issue")
		}
	})
}

// TestOurSignaturesVerifyInZeep: zeep's verifier (xmlsec underneath)
// accepts every message, RSA and ECDSA alike, and refuses a tampered one.
func TestOurSignaturesVerifyInZeep(t *testing.T) {
	requireZeepVerify(t)
	for _, m := range ourAllMessages(t) {
		t.Run(m.Name, func(t *testing.T) {
			if err := ourZeep(t, m.Data, m.Signer); err != nil {
				t.Fatalf("%v\n%s", err, m.Data)
			}
			if err := ourZeep(t, tamper(t, m.Data), m.Signer); err == nil {
				t.Error("zeep accepts a tampered Body")
			}
		})
	}
}

func ourPost(h http.Handler, path, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

// ourBridge is a bridge to url with the transfer template, signing as signer.
func ourBridge(t *testing.T, url string, v wssec.SOAPVersion, signer string, mod func(*bridge.Options)) *bridge.Handler {
	t.Helper()
	text, err := os.ReadFile("../testdata/bridge/transfer.xml.tmpl")
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := bridge.ParseTemplate("transfer", string(text))
	if err != nil {
		t.Fatal(err)
	}
	chain, key := ourIdentity(t, signer)
	o := bridge.Options{
		Route:       "transfer",
		PathPrefix:  "/bridge/transfer",
		Upstream:    url,
		SOAPVersion: v,
		Operations: []bridge.Operation{
			{Name: "transfer", Action: "urn:wsgate:interop:Transfer", Template: tmpl},
			{Name: "refused", Action: "urn:wsgate:interop:Refused", Template: tmpl},
			{Name: "slow", Action: "urn:wsgate:interop:Slow", Template: tmpl},
		},
		Identity: ourStatic{chain, key},
		Timeout:  5 * time.Second,
		Logger:   slog.New(slog.DiscardHandler),
	}
	if mod != nil {
		mod(&o)
	}
	h, err := bridge.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// xmlsecService is a SOAP service that accepts only requests whose
// signature xmlsec1 verifies against the CA, and answers signed by the
// ECDSA partner: a TransferResponse, a Fault for the Refused action, or
// nothing in time for the Slow one.
type xmlsecService struct {
	t       *testing.T
	xmlsec1 string
	signer  *wssec.Signer
	mu      sync.Mutex
	bodies  [][]byte
	slow    chan struct{}
}

func (s *xmlsecService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.bodies = append(s.bodies, body)
	s.mu.Unlock()
	if err := ourXmlsec1(s.t, s.xmlsec1, body); err != nil {
		s.t.Errorf("the SOAP service refuses the bridge's signature: %v\n%s", err, body)
		http.Error(w, "signature", http.StatusBadRequest)
		return
	}
	env, err := wssec.ParseEnvelope(body, wssec.Limits{})
	if err != nil {
		http.Error(w, "envelope", http.StatusBadRequest)
		return
	}
	action := r.Header.Get("SOAPAction") + r.Header.Get("Content-Type")
	soap12 := env.Version == wssec.SOAP12
	var reply string
	status := http.StatusOK
	switch {
	case strings.Contains(action, "urn:wsgate:interop:Slow"):
		select {
		case <-s.slow:
		case <-r.Context().Done():
		case <-time.After(10 * time.Second):
		}
		return
	case strings.Contains(action, "urn:wsgate:interop:Refused"):
		status = http.StatusInternalServerError
		reply = `<env:Fault><faultcode>env:Client</faultcode><faultstring>Transfer refused</faultstring><detail><m:Limit xmlns:m="urn:wsgate:interop">50</m:Limit></detail></env:Fault>`
		if soap12 {
			reply = `<env:Fault><env:Code><env:Value>env:Sender</env:Value></env:Code><env:Reason><env:Text xml:lang="en">Transfer refused</env:Text></env:Reason><env:Detail><m:Limit xmlns:m="urn:wsgate:interop">50</m:Limit></env:Detail></env:Fault>`
		}
	default:
		// Echo the memo back, so the test sees it went through as text.
		memo := env.Body.FindElement(".//Memo")
		var b bytes.Buffer
		b.WriteString(`<m:TransferResponse xmlns:m="urn:wsgate:interop" id="t-1"><m:Status>booked</m:Status><m:Memo>`)
		if memo != nil {
			_ = xml.EscapeText(&b, []byte(memo.Text()))
		}
		b.WriteString(`</m:Memo></m:TransferResponse>`)
		reply = b.String()
	}
	signed, err := s.signer.SignBytes([]byte(ourEnvelope(soap12, "", reply)), wssec.Limits{})
	if err != nil {
		s.t.Error(err)
	}
	ct := "text/xml; charset=utf-8"
	if soap12 {
		ct = "application/soap+xml; charset=utf-8"
	}
	w.Header().Set("Content-Type", ct)
	w.WriteHeader(status)
	_, _ = w.Write(signed)
}

// TestBridgeEndToEndWithXmlsec: JSON in, our signed SOAP out (checked by
// xmlsec1 at the service), the service's signed answer verified, JSON back
// as documented; a Fault is 502, a timeout 504, a template error 400; a
// value holding markup arrives as text.
func TestBridgeEndToEndWithXmlsec(t *testing.T) {
	xmlsec1 := requireXmlsec1(t)
	for _, v := range []wssec.SOAPVersion{wssec.SOAP11, wssec.SOAP12} {
		t.Run(v.String(), func(t *testing.T) {
			svc := &xmlsecService{t: t, xmlsec1: xmlsec1, signer: ourSigner(t, "partner-ecdsa"), slow: make(chan struct{})}
			defer close(svc.slow)
			srv := httptest.NewServer(svc)
			defer srv.Close()
			h := ourBridge(t, srv.URL+"/ws", v, "partner-rsa", func(o *bridge.Options) {
				o.Timeout = 700 * time.Millisecond // xmlsec1 at the service takes ~50 ms
				o.VerifyResponse = &wssec.Verifier{
					Policy: wssec.Policy{RequireSigned: []wssec.Part{wssec.PartBody, wssec.PartTimestamp}},
					Trust:  ourCA(t),
				}
			})
			transfer := `{"from":"alice","to":"bob","amount":100,"memo":"</a><evil/>"}`

			tests := []struct {
				name, path, body string
				status           int
				want             string // exact JSON, or the "error" member
			}{
				{"booked", "/bridge/transfer/transfer", transfer, 200,
					`{"status":200,"body":{"TransferResponse":{"@id":"t-1","Status":"booked","Memo":"\u003c/a\u003e\u003cevil/\u003e"}}}`},
				{"fault", "/bridge/transfer/refused", transfer, 502,
					map[bool]string{false: `{"fault":{"code":"env:Client","string":"Transfer refused","detail":{"Limit":"50"}}}`,
						true: `{"fault":{"code":"env:Sender","string":"Transfer refused","detail":{"Limit":"50"}}}`}[v == wssec.SOAP12]},
				{"timeout", "/bridge/transfer/slow", transfer, 504, "upstream_timeout"},
				{"missing field", "/bridge/transfer/transfer", `{"from":"alice","to":"bob","amount":100}`, 400, "invalid_request"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					w := ourPost(h, tt.path, tt.body)
					if w.Code != tt.status {
						t.Fatalf("status = %d, want %d: %s", w.Code, tt.status, w.Body)
					}
					got := strings.TrimSpace(w.Body.String())
					if strings.HasPrefix(tt.want, "{") {
						if got != tt.want {
							t.Errorf("body = %s\nwant   %s", got, tt.want)
						}
						return
					}
					var eb bridge.ErrorBody
					if err := json.Unmarshal(w.Body.Bytes(), &eb); err != nil || eb.Error != tt.want {
						t.Errorf("error = %q (%v), want %q: %s", eb.Error, err, tt.want, got)
					}
					if tt.status == 400 && !strings.Contains(eb.Description, `"memo"`) {
						t.Errorf("the 400 does not name the missing field: %q", eb.Description)
					}
				})
			}

			// The hostile memo reached the service as text inside m:Memo.
			svc.mu.Lock()
			defer svc.mu.Unlock()
			if len(svc.bodies) != 3 {
				t.Fatalf("the service got %d requests, want 3 (no request for the template error)", len(svc.bodies))
			}
			doc := etree.NewDocument()
			if err := doc.ReadFromBytes(svc.bodies[0]); err != nil {
				t.Fatal(err)
			}
			memo := doc.FindElement("//Transfer/Memo")
			if memo == nil || memo.Text() != "</a><evil/>" || len(memo.ChildElements()) != 0 || doc.FindElement("//evil") != nil {
				t.Errorf("the memo did not arrive as text:\n%s", svc.bodies[0])
			}
		})
	}
}
