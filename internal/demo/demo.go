// Package demo holds the upstream services of wsgate's embedded default: a
// SOAP echo service and a REST echo service. They stand in for the legacy
// backends wsgate protects, so a newcomer can send a request end to end.
// They trust nothing but still bound what they read.
package demo

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"time"

	"github.com/beevik/etree"
)

// Namespaces of the two SOAP versions.
const (
	nsSOAP11 = "http://schemas.xmlsoap.org/soap/envelope/"
	nsSOAP12 = "http://www.w3.org/2003/05/soap-envelope"
)

// maxBody caps what the echo services read.
const maxBody = 1 << 20

// SOAPEcho answers a SOAP envelope with an envelope of the same version whose
// Body holds a copy of the request Body's children. Anything else gets 400.
func SOAPEcho() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			w.Header().Set("Allow", http.MethodPost)
			http.Error(w, "POST a SOAP envelope", http.StatusMethodNotAllowed)
			return
		}
		data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			http.Error(w, "body too large or unreadable", http.StatusBadRequest)
			return
		}
		out, contentType, err := echoEnvelope(data)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", contentType)
		_, _ = w.Write(out)
	})
}

// echoEnvelope builds the echo reply for a request envelope.
func echoEnvelope(data []byte) ([]byte, string, error) {
	if bytes.Contains(data, []byte("<!")) { // no DOCTYPE, no entities: not even in a demo
		return nil, "", errors.New("DOCTYPE or markup declarations refused")
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(data); err != nil {
		return nil, "", errors.New("not well-formed XML")
	}
	root := doc.Root()
	if root == nil || root.Tag != "Envelope" {
		return nil, "", errors.New("not a SOAP envelope")
	}
	var ns, contentType string
	switch root.NamespaceURI() {
	case nsSOAP11:
		ns, contentType = nsSOAP11, "text/xml; charset=utf-8"
	case nsSOAP12:
		ns, contentType = nsSOAP12, "application/soap+xml; charset=utf-8"
	default:
		return nil, "", errors.New("not a SOAP 1.1 or 1.2 envelope")
	}
	var body *etree.Element
	for _, c := range root.ChildElements() {
		if c.Tag == "Body" && c.NamespaceURI() == ns {
			body = c
		}
	}
	if body == nil {
		return nil, "", errors.New("envelope has no Body")
	}

	reply := etree.NewDocument()
	reply.CreateProcInst("xml", `version="1.0" encoding="UTF-8"`)
	env := reply.CreateElement("soap:Envelope")
	env.CreateAttr("xmlns:soap", ns)
	rbody := env.CreateElement("soap:Body")
	echo := rbody.CreateElement("echo:Echo")
	echo.CreateAttr("xmlns:echo", "urn:wsgate:demo:echo")
	for _, c := range body.ChildElements() {
		cp := c.Copy()
		// Carry the namespace declarations in scope so the copy stands alone.
		for _, a := range inScopeNamespaces(c) {
			if cp.SelectAttr(a.FullKey()) == nil {
				cp.CreateAttr(a.FullKey(), a.Value)
			}
		}
		echo.AddChild(cp)
	}
	out, err := reply.WriteToBytes()
	if err != nil {
		return nil, "", err
	}
	return out, contentType, nil
}

// inScopeNamespaces lists the xmlns declarations on e's ancestors, nearest first wins.
func inScopeNamespaces(e *etree.Element) []etree.Attr {
	seen := map[string]bool{}
	var out []etree.Attr
	for p := e.Parent(); p != nil; p = p.Parent() {
		for _, a := range p.Attr {
			if a.Space == "xmlns" || (a.Space == "" && a.Key == "xmlns") {
				if !seen[a.FullKey()] {
					seen[a.FullKey()] = true
					out = append(out, a)
				}
			}
		}
	}
	return out
}

// RESTEcho answers any request with JSON describing it: method, path, query
// and headers (sorted), so a newcomer can see what the gateway forwarded.
func RESTEcho() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
		if err != nil {
			http.Error(w, "body too large or unreadable", http.StatusBadRequest)
			return
		}
		names := make([]string, 0, len(r.Header))
		for k := range r.Header {
			names = append(names, k)
		}
		sort.Strings(names)
		headers := make(map[string][]string, len(names))
		for _, k := range names {
			headers[k] = r.Header.Values(k)
		}
		w.Header().Set("Content-Type", "application/json")
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		_ = enc.Encode(struct {
			Method  string              `json:"method"`
			Path    string              `json:"path"`
			Query   string              `json:"query,omitempty"`
			Headers map[string][]string `json:"headers"`
			Body    string              `json:"body,omitempty"`
		}{r.Method, r.URL.Path, r.URL.RawQuery, headers, string(body)})
	})
}

// Serve runs h on a fresh loopback port until ctx is canceled and returns
// the base URL, e.g. http://127.0.0.1:41234.
func Serve(ctx context.Context, h http.Handler, logger *slog.Logger) (string, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && logger != nil {
			logger.Error("demo upstream stopped", slog.String("error", err.Error()))
		}
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	return "http://" + ln.Addr().String(), nil
}
