package soap

import (
	"bytes"
	"encoding/xml"
	"errors"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"wsgate/internal/reqscope"
	"wsgate/wssec"
)

// Content types of the two SOAP HTTP bindings.
const (
	ContentType11 = "text/xml; charset=utf-8"
	ContentType12 = "application/soap+xml; charset=utf-8"
)

// Media types (without parameters) of the two SOAP HTTP bindings.
const (
	mediaType11 = "text/xml"
	mediaType12 = "application/soap+xml"
)

// NSFault is the namespace of the fault detail's RequestID element.
const NSFault = "urn:wsgate:fault"

// reasonUnavailable is the fault string when the gateway, not the client, failed.
const reasonUnavailable = "service unavailable"

// faultStrings are the generic fault strings of WSS 1.1 section 12; the
// specific cause goes only to the log.
var faultStrings = map[string]string{
	"UnsupportedSecurityToken": "An unsupported token was provided",
	"UnsupportedAlgorithm":     "An unsupported signature or encryption algorithm was used",
	"InvalidSecurity":          "An error was discovered processing the <wsse:Security> header",
	"InvalidSecurityToken":     "An invalid security token was provided",
	"FailedAuthentication":     "The security token could not be authenticated or authorized",
	"FailedCheck":              "The signature or decryption was invalid",
	"SecurityTokenUnavailable": "Referenced security token could not be retrieved",
	"MessageExpired":           "The message has expired",
}

// faultClass is the SOAP-level fault code: the faultcode of SOAP 1.1 and
// the Code/Value of SOAP 1.2.
type faultClass int

const (
	classSender          faultClass = iota // soap:Client / env:Sender
	classReceiver                          // soap:Server / env:Receiver
	classVersionMismatch                   // soap:VersionMismatch / env:VersionMismatch
	classMustUnderstand                    // soap:MustUnderstand / env:MustUnderstand
)

// fault is what a refused client sees: the one description every error
// path fills in and writeFault alone renders.
type fault struct {
	status  int
	version wssec.SOAPVersion // SOAPUnknown is answered in the SOAP 1.1 shape
	class   faultClass
	// wsse is the WS-Security code (local name in the wsse namespace): the
	// SOAP 1.1 faultcode, the SOAP 1.2 Subcode. Empty for faults that are
	// not about the security header (HTTP binding, gateway, upstream).
	wsse   string
	reason string
	// name labels the fault in logs, the request scope and metrics: the
	// wsse code, or what went wrong at the HTTP or SOAP level.
	name string
	// notUnderstood names the header block of a MustUnderstand fault (the
	// SOAP 1.2 NotUnderstood header), when known.
	notUnderstood *wssec.HeaderName
}

// Names of the faults that carry no wsse code (FaultName).
const (
	NameMethodNotAllowed     = "MethodNotAllowed"
	NameUnsupportedMediaType = "UnsupportedMediaType"
	NameVersionMismatch      = "VersionMismatch"
	NameMustUnderstand       = "MustUnderstand"
	NameServiceUnavailable   = "ServiceUnavailable"
	NameContract             = "ContractViolation"
)

// faultFor is the one place that maps an error to the fault the client sees:
//   - the HTTP binding (method, Content-Type, Content-Encoding): 405 or 415,
//     soap:Client / env:Sender; a Content-Type of the other SOAP version:
//     415, VersionMismatch in the envelope's version;
//   - a mustUnderstand header wsgate neither processes nor forwards: 500,
//     soap:MustUnderstand / env:MustUnderstand (SOAP 1.1 4.4.1, 1.2 5.4.8);
//   - the memory budget exhausted: 503, soap:Server / env:Receiver;
//   - other gateway failures (wssec.ClientError false: trust or replay store
//     unavailable; the sign_response identity not loaded) are 503,
//     wsse:InvalidSecurity, "service unavailable";
//   - everything else is the client's: wsse:<wssec.FaultCode(err)> with the
//     generic WSS fault string, HTTP 500 (413 for a body over the cap), or
//     400 when the SOAP version could not be told.
func faultFor(err error, v wssec.SOAPVersion) fault {
	if f, ok := bindingFault(err, v); ok {
		return f
	}
	if !wssec.ClientError(err) || errors.Is(err, errSigningUnavailable) || errors.Is(err, errEncryptionUnavailable) {
		return fault{status: http.StatusServiceUnavailable, version: v, class: classReceiver,
			wsse: "InvalidSecurity", reason: reasonUnavailable, name: "InvalidSecurity"}
	}
	code := wssec.FaultCode(err)
	reason, ok := faultStrings[code]
	if !ok {
		code, reason = "InvalidSecurity", faultStrings["InvalidSecurity"]
	}
	status := http.StatusInternalServerError
	switch {
	case errors.Is(err, wssec.ErrTooLarge):
		status = http.StatusRequestEntityTooLarge
	case v == wssec.SOAPUnknown:
		status = http.StatusBadRequest
	}
	return fault{status: status, version: v, wsse: code, reason: reason, name: code}
}

// bindingFault is the fault of an error that is not about the security
// header: soap's own sentinels and wssec.ErrMustUnderstand.
func bindingFault(err error, v wssec.SOAPVersion) (fault, bool) {
	switch {
	case err == nil:
		return fault{}, false
	case errors.Is(err, ErrMethodNotAllowed):
		return fault{status: http.StatusMethodNotAllowed, version: v, reason: "method not allowed",
			name: NameMethodNotAllowed}, true
	case errors.Is(err, ErrMediaType), errors.Is(err, ErrCharset), errors.Is(err, ErrContentEncoding):
		return fault{status: http.StatusUnsupportedMediaType, version: v, reason: "unsupported media type",
			name: NameUnsupportedMediaType}, true
	case errors.Is(err, ErrVersionMismatch):
		return fault{status: http.StatusUnsupportedMediaType, version: v, class: classVersionMismatch,
			reason: "the Content-Type does not match the envelope's SOAP version", name: NameVersionMismatch}, true
	case errors.Is(err, wssec.ErrMustUnderstand):
		f := fault{status: http.StatusInternalServerError, version: v, class: classMustUnderstand,
			reason: "a mandatory header block was not understood", name: NameMustUnderstand}
		var nu interface{ NotUnderstood() wssec.HeaderName }
		if errors.As(err, &nu) {
			if h := nu.NotUnderstood(); validQName(h) {
				f.notUnderstood = &h
			}
		}
		return f, true
	case errors.Is(err, ErrContract):
		return fault{status: http.StatusBadRequest, version: v, reason: "the message does not match the service contract",
			name: NameContract}, true
	case errors.Is(err, ErrBusy):
		return fault{status: http.StatusServiceUnavailable, version: v, class: classReceiver,
			reason: reasonUnavailable, name: NameServiceUnavailable}, true
	}
	return fault{}, false
}

// statusFault is the fault of a response the gateway makes without a more
// specific cause: client errors are soap:Client / env:Sender, server errors
// and 429 (the message may succeed later) soap:Server / env:Receiver; the
// reason is the status text.
func statusFault(status int, v wssec.SOAPVersion) fault {
	f := fault{status: status, version: v, reason: strings.ToLower(http.StatusText(status)),
		name: strings.ReplaceAll(http.StatusText(status), " ", "")}
	if status >= 500 || status == http.StatusTooManyRequests {
		f.class = classReceiver
	}
	return f
}

// WriteError answers r, a request on a SOAP route, with a SOAP Fault and
// HTTP status: the gateway's own responses (404, 405, 413, 415, 429, 502,
// 503, 504, and 400 or 500 from the router) speak the route's protocol. The
// fault is in the SOAP version r's Content-Type names (1.1 when it names
// none, or r is not a POST), carries r's request ID, and is generic: err
// chooses the fault code only when it is one of soap's sentinels (or
// wssec.ErrMustUnderstand), and never reaches the client as text. A status
// outside 400-599 is answered as 500. The caller logs the cause and sets
// headers such as Retry-After first; WriteError adds Allow: POST to a 405.
func WriteError(w http.ResponseWriter, r *http.Request, status int, err error) {
	if status < 400 || status > 599 {
		status = http.StatusInternalServerError
	}
	v := versionOf(r)
	f, ok := bindingFault(err, v)
	if !ok {
		f = statusFault(status, v)
	}
	f.status = status
	writeFault(w, f, reqscope.IDOf(r))
}

// versionOf is the SOAP version a request's Content-Type names, for the
// fault of a request whose envelope was not read: SOAP 1.2 for
// application/soap+xml on a POST, else SOAP 1.1 (also a method other than
// POST, which carries no SOAP message).
func versionOf(r *http.Request) wssec.SOAPVersion {
	if r.Method != http.MethodPost {
		return wssec.SOAP11
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if (err == nil || errors.Is(err, mime.ErrInvalidMediaParameter)) && mt == mediaType12 {
		return wssec.SOAP12
	}
	return wssec.SOAP11
}

// writeFault writes f as a SOAP Fault document: the one renderer of every
// fault wsgate answers on a SOAP route.
func writeFault(w http.ResponseWriter, f fault, requestID string) {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>`)
	if f.version == wssec.SOAP12 {
		b.WriteString(`<env:Envelope xmlns:env="` + wssec.NSSOAP12 + `" xmlns:wsse="` + wssec.NSWSSE + `">`)
		if f.notUnderstood != nil {
			b.WriteString(`<env:Header><env:NotUnderstood xmlns:h="`)
			escape(&b, f.notUnderstood.Namespace)
			b.WriteString(`" qname="h:` + f.notUnderstood.Local + `"/></env:Header>`)
		}
		b.WriteString(`<env:Body><env:Fault><env:Code><env:Value>` + f.class.qname12() + `</env:Value>`)
		if f.wsse != "" {
			b.WriteString(`<env:Subcode><env:Value>wsse:` + f.wsse + `</env:Value></env:Subcode>`)
		}
		b.WriteString(`</env:Code>`)
		b.WriteString(`<env:Reason><env:Text xml:lang="en">`)
		escape(&b, f.reason)
		b.WriteString(`</env:Text></env:Reason><env:Detail>`)
		writeDetail(&b, requestID)
		b.WriteString(`</env:Detail></env:Fault></env:Body></env:Envelope>`)
	} else {
		b.WriteString(`<soap:Envelope xmlns:soap="` + wssec.NSSOAP11 + `" xmlns:wsse="` + wssec.NSWSSE + `">`)
		code := f.class.qname11()
		if f.wsse != "" {
			code = "wsse:" + f.wsse
		}
		b.WriteString(`<soap:Body><soap:Fault><faultcode>` + code + `</faultcode><faultstring>`)
		escape(&b, f.reason)
		b.WriteString(`</faultstring><detail>`)
		writeDetail(&b, requestID)
		b.WriteString(`</detail></soap:Fault></soap:Body></soap:Envelope>`)
	}
	h := w.Header()
	// Nothing the handler's caller or an upstream put there may describe
	// this body but what is set here.
	for _, k := range representationHeaders {
		h.Del(k)
	}
	if f.version == wssec.SOAP12 {
		h.Set("Content-Type", ContentType12)
	} else {
		h.Set("Content-Type", ContentType11)
	}
	h.Set("Content-Length", strconv.Itoa(b.Len()))
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set(RequestIDHeader, requestID)
	switch f.status {
	case http.StatusMethodNotAllowed:
		h.Set("Allow", http.MethodPost)
	case http.StatusServiceUnavailable:
		if f.name == NameServiceUnavailable && h.Get("Retry-After") == "" {
			h.Set("Retry-After", "1")
		}
	}
	w.WriteHeader(f.status)
	_, _ = w.Write(b.Bytes())
}

func (c faultClass) qname11() string {
	switch c {
	case classReceiver:
		return "soap:Server"
	case classVersionMismatch:
		return "soap:VersionMismatch"
	case classMustUnderstand:
		return "soap:MustUnderstand"
	}
	return "soap:Client"
}

func (c faultClass) qname12() string {
	switch c {
	case classReceiver:
		return "env:Receiver"
	case classVersionMismatch:
		return "env:VersionMismatch"
	case classMustUnderstand:
		return "env:MustUnderstand"
	}
	return "env:Sender"
}

// validQName reports whether h can be written as a NotUnderstood qname: a
// namespace, and a local name of ASCII name characters (it came from the
// client; anything odd is left out rather than escaped into a QName).
func validQName(h wssec.HeaderName) bool {
	if h.Namespace == "" || len(h.Namespace) > 1024 || h.Local == "" || len(h.Local) > 256 {
		return false
	}
	for i := 0; i < len(h.Local); i++ {
		c := h.Local[i]
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '_' ||
			i > 0 && ('0' <= c && c <= '9' || c == '-' || c == '.')
		if !ok {
			return false
		}
	}
	return true
}

func writeDetail(b *bytes.Buffer, requestID string) {
	b.WriteString(`<wsgate:RequestID xmlns:wsgate="` + NSFault + `">`)
	escape(b, requestID)
	b.WriteString(`</wsgate:RequestID>`)
}

func escape(b *bytes.Buffer, s string) {
	_ = xml.EscapeText(b, []byte(s)) // writes to a bytes.Buffer cannot fail
}
