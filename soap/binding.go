package soap

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"wsgate/wssec"
)

// The HTTP binding's refusals. Each is answered before the body is parsed
// (ErrVersionMismatch before it is verified, the action errors before it is
// forwarded) and never reaches the upstream.
var (
	// ErrMethodNotAllowed: a SOAP route takes POST only (405, Allow: POST).
	ErrMethodNotAllowed = errors.New("soap: SOAP routes take POST only")
	// ErrMediaType: the Content-Type is missing, repeated, malformed, or
	// neither text/xml nor application/soap+xml (415).
	ErrMediaType = errors.New("soap: Content-Type is not text/xml or application/soap+xml")
	// ErrCharset: the Content-Type names a charset other than UTF-8 (415).
	ErrCharset = errors.New("soap: Content-Type charset other than UTF-8")
	// ErrContentEncoding: the body has a Content-Encoding other than
	// identity (415); wsgate verifies and forwards plain bytes only.
	ErrContentEncoding = errors.New("soap: Content-Encoding other than identity")
	// ErrVersionMismatch: a SOAP 1.1 envelope sent as application/soap+xml
	// or a SOAP 1.2 envelope sent as text/xml (415, a VersionMismatch fault
	// in the envelope's version).
	ErrVersionMismatch = errors.New("soap: the envelope's SOAP version does not match the Content-Type")
	// ErrActionMismatch: the SOAPAction header or the action parameter of
	// the Content-Type names another operation than the signed wsa:Action
	// (wsse:InvalidSecurity). A backend that dispatches on it would run an
	// operation nobody signed.
	ErrActionMismatch = errors.New("soap: SOAPAction or the action parameter differs from the signed wsa:Action")
	// ErrActionNotForwardable: the signed wsa:Action cannot be written as an
	// HTTP header value (wsse:InvalidSecurity).
	ErrActionNotForwardable = errors.New("soap: the signed wsa:Action cannot be carried in an HTTP header")
)

// binding is what a request's HTTP metadata claims about its message.
type binding struct {
	version wssec.SOAPVersion // named by the media type
	action  string            // the Content-Type's action parameter, "" when absent
}

// readBinding checks the HTTP metadata of a POST before its body is read:
// no Content-Encoding but identity, exactly one Content-Type that is
// text/xml or application/soap+xml, and a charset, when given, of UTF-8.
func readBinding(r *http.Request) (binding, error) {
	for _, ce := range r.Header.Values("Content-Encoding") {
		for tok := range strings.SplitSeq(ce, ",") {
			if !strings.EqualFold(strings.TrimSpace(tok), "identity") {
				return binding{}, fmt.Errorf("%w: %.40q", ErrContentEncoding, ce)
			}
		}
	}
	cts := r.Header.Values("Content-Type")
	if len(cts) != 1 {
		return binding{}, fmt.Errorf("%w: %d Content-Type headers", ErrMediaType, len(cts))
	}
	// Most clients send exactly one of the canonical forms.
	switch cts[0] {
	case ContentType11:
		return binding{version: wssec.SOAP11}, nil
	case ContentType12:
		return binding{version: wssec.SOAP12}, nil
	}
	mt, params, err := mime.ParseMediaType(cts[0])
	if err != nil {
		return binding{}, fmt.Errorf("%w: %.80q", ErrMediaType, cts[0])
	}
	var b binding
	switch mt {
	case mediaType11:
		b.version = wssec.SOAP11
	case mediaType12:
		b.version = wssec.SOAP12
	default:
		return binding{}, fmt.Errorf("%w: %.80q", ErrMediaType, mt)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return binding{}, fmt.Errorf("%w: %.40q", ErrCharset, cs)
	}
	b.action = params["action"]
	return b, nil
}

// forwardedAction returns the action the upstream request carries: the
// signed wsa:Action, or "" when none is signed. Every action the client
// claims outside the envelope (SOAPAction headers, the Content-Type's action
// parameter, in either SOAP version) must be empty or equal to the signed
// one (WS-Addressing 1.0 SOAP Binding 3.3 allows SOAPAction ""); with no
// signed Action the claims are not checked but dropped, since nothing
// vouches for them.
func forwardedAction(signed string, b binding, r *http.Request) (string, error) {
	if signed == "" {
		return "", nil
	}
	if !headerSafe(signed) {
		return "", fmt.Errorf("%w: %.80q", ErrActionNotForwardable, signed)
	}
	if b.action != "" && b.action != signed {
		return "", fmt.Errorf("%w: action parameter %.80q, signed %.80q", ErrActionMismatch, b.action, signed)
	}
	for _, sa := range r.Header.Values("SOAPAction") {
		claim := strings.TrimSpace(sa)
		if len(claim) >= 2 && claim[0] == '"' && claim[len(claim)-1] == '"' {
			claim = claim[1 : len(claim)-1]
		}
		if claim != "" && claim != signed {
			return "", fmt.Errorf("%w: SOAPAction %.80q, signed %.80q", ErrActionMismatch, sa, signed)
		}
	}
	return signed, nil
}

// headerSafe reports whether s can be written inside a quoted-string of an
// HTTP header as is: visible ASCII without '"' and '\'. A URI always is.
func headerSafe(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x21 || c > 0x7e || c == '"' || c == '\\' {
			return false
		}
	}
	return true
}

// representationHeaders describe the bytes of a message body (their
// coding, integrity, range or framing). The upstream request and a fault
// carry only the ones wsgate sets for the body it writes: a client's
// Content-Encoding: gzip or charset, applied to the verified bytes, would
// make a backend read something else. Content-Language is kept: it says
// who the content is for, not how to read the bytes.
var representationHeaders = []string{
	"Content-Type", "Content-Length", "Content-Encoding", "Content-Transfer-Encoding",
	"Content-Md5", "Digest", "Content-Digest", "Repr-Digest", "Content-Range",
	"Transfer-Encoding", "Trailer",
}

// requestIDKey is RequestIDHeader as a key of an http.Header map.
var requestIDKey = http.CanonicalHeaderKey(RequestIDHeader)

// forwardRequest is r carrying exactly the verified bytes, with HTTP
// metadata made from them: the SOAP version's Content-Type (UTF-8, the
// signed action in SOAP 1.2), SOAPAction in SOAP 1.1 (the signed action,
// or "" which sends the backend to the Body), the length, and no header
// that describes the bytes that came in.
func forwardRequest(r *http.Request, body []byte, v wssec.SOAPVersion, action, id string) *http.Request {
	out := r.Clone(r.Context())
	out.Body = io.NopCloser(bytes.NewReader(body))
	out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	out.ContentLength = int64(len(body))
	out.TransferEncoding = nil
	out.Trailer = nil
	h := out.Header
	for _, k := range representationHeaders {
		h.Del(k)
	}
	h.Del("SOAPAction")
	// One backing array for the values set here: this runs per request.
	vals := [4]string{ContentType11, `""`, strconv.Itoa(len(body)), id}
	switch {
	case v == wssec.SOAP12 && action != "":
		vals[0] = ContentType12 + `; action="` + action + `"`
	case v == wssec.SOAP12:
		vals[0] = ContentType12
	case action != "":
		vals[1] = `"` + action + `"`
	}
	vs := vals[:]
	h["Content-Type"] = vs[0:1:1]
	if v == wssec.SOAP11 {
		h["Soapaction"] = vs[1:2:2]
	}
	h["Content-Length"] = vs[2:3:3]
	h[requestIDKey] = vs[3:4:4]
	return out
}
