package soap

import (
	"bytes"
	"crypto"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"strings"

	"wsgate/internal/reqscope"
	"wsgate/wssec"
)

// IdentitySource yields a signing certificate chain (leaf first) and the
// leaf's key as one consistent pair per call. *secrets.IdentitySet satisfies
// it; a Vault Transit key fits as a crypto.Signer.
type IdentitySource interface {
	Identity() (chain []*x509.Certificate, key crypto.Signer, err error)
}

// Errors of sign_response. errSigningUnavailable is answered like the
// other gateway failures (503) before the upstream is called; the others
// are the upstream's (502, or 504 when the proxy timed out).
var (
	errSigningUnavailable = errors.New("soap: the response signing identity is not available")
	errResponseTooLarge   = errors.New("soap: the upstream response is too large to sign")
	errResponseIncomplete = errors.New("soap: the upstream response ended early")
	errResponseEncoded    = errors.New("soap: the upstream response has a content encoding")
	errResponseNotSOAP    = errors.New("soap: the upstream response is not a SOAP envelope")
	errResponseSign       = errors.New("soap: signing the upstream response failed")
)

// responseSigner builds the Signer for one request from the identity as it
// is now, so a rotated key is used from the next request on.
func (h *Handler) responseSigner() (*wssec.Signer, error) {
	chain, key, err := h.opts.SignResponse.Identity()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errSigningUnavailable, err)
	}
	return &wssec.Signer{Chain: chain, Key: key, TTL: h.opts.ResponseTTL, Now: h.opts.Now}, nil
}

// forwardSigned sends req upstream, holds the whole response, and answers
// with it signed: the upstream's status and headers, the signed envelope
// as the body with a fixed Content-Length and the SOAP version's content
// type. A client that asked for signed responses never gets an unsigned
// one: a response that is not a SOAP envelope (an error page, an empty
// 202, the proxy's own 502/504), is compressed with an encoding we would
// have to pass through, ends early, is larger than the cap, or already
// carries a wsse:Security header becomes a SOAP Fault (soap:Server /
// env:Receiver, HTTP 502, or 504 when the upstream timed out). That fault
// is the gateway's own and, like request rejections, is not signed.
func (h *Handler) forwardSigned(w http.ResponseWriter, req *http.Request, id string, v wssec.SOAPVersion, s *protection) {
	// Without Accept-Encoding the body arrives as XML: the plain-http
	// transport (proxy.H1Transport) asks for no encoding, and over https
	// http.Transport asks for gzip itself and decompresses.
	req.Header.Del("Accept-Encoding")
	buf := &responseBuffer{header: http.Header{}, limit: h.maxResponse()}
	complete := h.runUpstream(buf, req)
	signed, version, err := h.signBuffered(buf, complete, s)
	if err != nil {
		status := http.StatusBadGateway
		if buf.status == http.StatusGatewayTimeout {
			status = http.StatusGatewayTimeout
		}
		f := statusFault(status, v)
		// The upstream's failure, not the client's: logged as an error.
		h.log.LogAttrs(req.Context(), slog.LevelError, "soap response not signed",
			slog.String("route", h.opts.Route),
			slog.String("request_id", id),
			slog.String("outcome", string(reqscope.Failed)),
			slog.Int("upstream_status", buf.status),
			slog.String("reason", err.Error()),
			slog.Int("status", f.status),
		)
		writeFault(w, f, id)
		return
	}

	hdr := w.Header()
	for k, vals := range buf.header {
		if !droppedResponseHeader(k) {
			hdr[k] = vals
		}
	}
	ct := ContentType11
	if version == wssec.SOAP12 {
		ct = ContentType12
	}
	hdr.Set("Content-Type", ct)
	hdr.Set("Content-Length", strconv.Itoa(len(signed)))
	hdr.Set(RequestIDHeader, id)
	w.WriteHeader(buf.status)
	_, _ = w.Write(signed)
}

// maxResponse is the cap on a response to be signed.
func (h *Handler) maxResponse() int64 {
	if h.opts.MaxResponseBytes > 0 {
		return h.opts.MaxResponseBytes
	}
	return h.maxBody
}

// runUpstream serves req into buf and reports whether the response arrived
// whole. httputil.ReverseProxy aborts with http.ErrAbortHandler when the
// body copy fails (the upstream dropped the connection, or buf refused
// more): nothing has reached the client yet, so that abort is turned into a
// fault instead of a reset connection. Any other panic is not ours.
func (h *Handler) runUpstream(buf *responseBuffer, req *http.Request) (complete bool) {
	defer func() {
		if v := recover(); v != nil {
			if v != http.ErrAbortHandler { //nolint:errorlint // sentinel panic value, compared as net/http does
				panic(v)
			}
			complete = false
		}
	}()
	h.opts.Upstream.ServeHTTP(buf, req)
	return !buf.overflow
}

// signBuffered checks the buffered response and returns it signed, with
// its SOAP version.
func (h *Handler) signBuffered(buf *responseBuffer, complete bool, s *protection) ([]byte, wssec.SOAPVersion, error) {
	switch {
	case buf.overflow:
		return nil, 0, fmt.Errorf("%w: over %d bytes", errResponseTooLarge, buf.limit)
	case !complete:
		return nil, 0, errResponseIncomplete
	}
	if ce := buf.header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		return nil, 0, fmt.Errorf("%w: %q", errResponseEncoded, ce)
	}
	limits := h.opts.Limits
	limits.MaxBytes = buf.limit
	env, err := wssec.ParseEnvelope(buf.body.Bytes(), limits)
	if err != nil {
		return nil, 0, fmt.Errorf("%w (HTTP %d): %w", errResponseNotSOAP, buf.status, err)
	}
	out, err := s.apply(env)
	if err != nil {
		return nil, 0, err
	}
	return out, env.Version, nil
}

// droppedResponseHeader names upstream headers that describe the body we
// replaced (or framing we set ourselves).
func droppedResponseHeader(k string) bool {
	if strings.HasPrefix(k, http.TrailerPrefix) {
		return true
	}
	switch http.CanonicalHeaderKey(k) {
	case "Content-Length", "Content-Type", "Content-Encoding", "Transfer-Encoding", "Trailer",
		"Etag", "Content-Md5", "Digest", "Content-Digest", "Repr-Digest", "Content-Range", "Accept-Ranges",
		RequestIDHeader:
		return true
	}
	return false
}

// responseBuffer is a ResponseWriter that holds a response of at most limit
// bytes. Over the limit, Write fails (the copy stops) and overflow is set.
type responseBuffer struct {
	header   http.Header
	status   int
	body     bytes.Buffer
	limit    int64
	overflow bool
}

func (b *responseBuffer) Header() http.Header { return b.header }

func (b *responseBuffer) WriteHeader(code int) {
	if code < 200 || b.status != 0 {
		return // 1xx are not relayed: the client gets one, final, signed response
	}
	b.status = code
}

func (b *responseBuffer) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	if int64(b.body.Len())+int64(len(p)) > b.limit {
		b.overflow = true
		return 0, errResponseTooLarge
	}
	return b.body.Write(p)
}
