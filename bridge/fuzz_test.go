package bridge

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
)

// roundTripper answers every request in process: it keeps the request body
// and replies with a fixed SOAP 1.1 response.
type roundTripper struct {
	mu    sync.Mutex
	last  []byte
	reply string
}

func (rt *roundTripper) RoundTrip(r *http.Request) (*http.Response, error) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return nil, err
	}
	rt.mu.Lock()
	rt.last = body
	rt.mu.Unlock()
	return &http.Response{
		StatusCode: http.StatusOK,
		Header:     http.Header{"Content-Type": {ContentType11}},
		Body:       io.NopCloser(strings.NewReader(rt.reply)),
		Request:    r,
	}, nil
}

// FuzzHandler: no JSON body makes the bridge panic, answer a 5xx, forward
// an array or object field, or send the upstream anything but a verifiable
// envelope whose Body has exactly the template's shape (one GetOrder
// holding two leaf elements).
func FuzzHandler(f *testing.F) {
	for _, s := range []string{getOrder, `{}`, `[]`, `null`, `{"orderId":{"a":[1,2]},"note":null}`,
		`{"orderId":"\u0000\ud800","note":"]]><!--"}`, `{"orderId":1e999,"note":true}`, `{"orderId":"x","note":"y"} x`} {
		f.Add(s)
	}
	rt := &roundTripper{reply: env11(`<r>ok</r>`)}
	h := newBridge(f, "http://upstream.invalid/ws", func(o *Options) { o.Transport = rt })
	v := verifierWith(staticTrust{loadCert(f, "ca")})
	f.Fuzz(func(t *testing.T, body string) {
		rt.mu.Lock()
		rt.last = nil
		rt.mu.Unlock()
		w := post(h, "/bridge/orders/get-order", "application/json", body)
		switch w.Code {
		case http.StatusOK:
			// Only scalars print: an array or object field is a 400.
			var m map[string]any
			if json.Unmarshal([]byte(body), &m) == nil {
				for _, k := range []string{"orderId", "note"} {
					switch m[k].(type) {
					case []any, map[string]any:
						t.Fatalf("%s is a JSON %T, yet %q was forwarded", k, m[k], body)
					}
				}
			}
		case http.StatusBadRequest, http.StatusRequestEntityTooLarge:
			return
		default:
			t.Fatalf("status %d for %q: %s", w.Code, body, w.Body)
		}
		rt.mu.Lock()
		sent := rt.last
		rt.mu.Unlock()
		got, err := v.Verify(context.Background(), sent)
		if err != nil {
			t.Fatalf("sent message does not verify: %v\n%s", err, sent)
		}
		kids := got.Body.ChildElements()
		if len(kids) != 1 || kids[0].Tag != "GetOrder" || len(kids[0].ChildElements()) != 2 {
			t.Fatalf("body %q changed the message's shape:\n%s", body, sent)
		}
		for _, c := range kids[0].ChildElements() {
			if len(c.ChildElements()) != 0 || len(c.Attr) != 0 {
				t.Fatalf("body %q added markup:\n%s", body, sent)
			}
		}
	})
}

// BenchmarkBridgeRequest is one whole bridged call without the network:
// JSON decoding, template, envelope parse, RSA-2048 signing, the HTTP
// exchange with an in-process transport, response parse and JSON mapping.
// Compare with wssec's BenchmarkSign and BenchmarkRawRSASign.
func BenchmarkBridgeRequest(b *testing.B) {
	rt := &roundTripper{reply: env11(orderReply)}
	h := newBridge(b, "http://upstream.invalid/ws", func(o *Options) { o.Transport = rt })
	body := []byte(getOrder)
	b.ReportAllocs()
	for b.Loop() {
		w := post(h, "/bridge/orders/get-order", "application/json", string(body))
		if w.Code != http.StatusOK || !bytes.Contains(w.Body.Bytes(), []byte("shipped")) {
			b.Fatalf("status %d: %s", w.Code, w.Body)
		}
	}
}
