package soap

import (
	"bytes"
	"encoding/xml"
	"errors"
	"net/http"
	"strconv"

	"wsgate/wssec"
)

// Content types of the two SOAP HTTP bindings.
const (
	ContentType11 = "text/xml; charset=utf-8"
	ContentType12 = "application/soap+xml; charset=utf-8"
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

// fault is what a rejected client sees.
type fault struct {
	status   int
	version  wssec.SOAPVersion // SOAPUnknown is answered in the SOAP 1.1 shape
	code     string            // local name in the wsse namespace
	reason   string
	receiver bool // the gateway's failure: env:Receiver in SOAP 1.2
	// upstream marks a failure of the upstream's response (sign_response):
	// soap:Server / env:Receiver without a wsse code, which would blame
	// the client's security header.
	upstream bool
}

// faultFor is the one place that maps an error to the fault the client sees:
//   - gateway failures (wssec.ClientError false: trust or replay store
//     unavailable; the sign_response identity not loaded) are 503,
//     wsse:InvalidSecurity, "service unavailable";
//   - everything else is the client's: wsse:<wssec.FaultCode(err)> with the
//     generic WSS fault string, HTTP 500, or 400 when the SOAP version could
//     not be told.
func faultFor(err error, v wssec.SOAPVersion) fault {
	if !wssec.ClientError(err) || errors.Is(err, errSigningUnavailable) {
		return fault{status: http.StatusServiceUnavailable, version: v, code: "InvalidSecurity",
			reason: reasonUnavailable, receiver: true}
	}
	code := wssec.FaultCode(err)
	reason, ok := faultStrings[code]
	if !ok {
		code, reason = "InvalidSecurity", faultStrings["InvalidSecurity"]
	}
	status := http.StatusInternalServerError
	if v == wssec.SOAPUnknown {
		status = http.StatusBadRequest
	}
	return fault{status: status, version: v, code: code, reason: reason}
}

// writeFault writes f as a SOAP Fault document.
func writeFault(w http.ResponseWriter, f fault, requestID string) {
	var b bytes.Buffer
	b.WriteString(`<?xml version="1.0" encoding="UTF-8"?>`)
	if f.version == wssec.SOAP12 {
		value := "env:Sender"
		if f.receiver {
			value = "env:Receiver"
		}
		b.WriteString(`<env:Envelope xmlns:env="` + wssec.NSSOAP12 + `" xmlns:wsse="` + wssec.NSWSSE + `">`)
		b.WriteString(`<env:Body><env:Fault><env:Code><env:Value>` + value + `</env:Value>`)
		if !f.upstream {
			b.WriteString(`<env:Subcode><env:Value>wsse:` + f.code + `</env:Value></env:Subcode>`)
		}
		b.WriteString(`</env:Code>`)
		b.WriteString(`<env:Reason><env:Text xml:lang="en">`)
		escape(&b, f.reason)
		b.WriteString(`</env:Text></env:Reason><env:Detail>`)
		writeDetail(&b, requestID)
		b.WriteString(`</env:Detail></env:Fault></env:Body></env:Envelope>`)
		w.Header().Set("Content-Type", ContentType12)
	} else {
		b.WriteString(`<soap:Envelope xmlns:soap="` + wssec.NSSOAP11 + `" xmlns:wsse="` + wssec.NSWSSE + `">`)
		code := "wsse:" + f.code
		if f.upstream {
			code = "soap:Server"
		}
		b.WriteString(`<soap:Body><soap:Fault><faultcode>` + code + `</faultcode><faultstring>`)
		escape(&b, f.reason)
		b.WriteString(`</faultstring><detail>`)
		writeDetail(&b, requestID)
		b.WriteString(`</detail></soap:Fault></soap:Body></soap:Envelope>`)
		w.Header().Set("Content-Type", ContentType11)
	}
	w.Header().Set("Content-Length", strconv.Itoa(b.Len()))
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(f.status)
	_, _ = w.Write(b.Bytes())
}

func writeDetail(b *bytes.Buffer, requestID string) {
	b.WriteString(`<wsgate:RequestID xmlns:wsgate="` + NSFault + `">`)
	escape(b, requestID)
	b.WriteString(`</wsgate:RequestID>`)
}

func escape(b *bytes.Buffer, s string) {
	_ = xml.EscapeText(b, []byte(s)) // writes to a bytes.Buffer cannot fail
}
