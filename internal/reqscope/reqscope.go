// Package reqscope carries what the gateway's front door learns about one
// request (its ID, the client's address) and what the layers below decide
// (the route, the outcome) through the request's context. The front door
// creates the Scope once; every other layer reads it through getters and
// reports its decision with Decide, so there is one request ID, one client
// IP and one outcome per request, whoever asks.
package reqscope

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"sync"
)

// Header carries the request ID in both directions.
const Header = "X-Request-ID"

// canonicalHeader is Header as net/http keys it in a header map.
const canonicalHeader = "X-Request-Id"

// Outcome is what became of a request, for the access log and metrics.
type Outcome string

// The outcomes; each is a label value of wsgate_requests_total.
const (
	Unknown     Outcome = ""             // nothing decided yet
	Accepted    Outcome = "accepted"     // a protected route let the request through
	Forwarded   Outcome = "forwarded"    // a public route forwarded it
	Rejected    Outcome = "rejected"     // a security or protocol check refused it
	RateLimited Outcome = "rate_limited" // the route's rate limit refused it
	Unavailable Outcome = "unavailable"  // the gateway could not decide (secret, replay store, IdP, memory budget)
	Invalid     Outcome = "invalid"      // refused before any route ran (no route, bad path, bad framing)
	Failed      Outcome = "upstream_failed"
)

// Scope is one request's shared state. Its zero value is not usable: make
// it with New. Getters are safe on a nil *Scope (they return zero values),
// so a handler tested without a front door still works.
type Scope struct {
	id       string
	clientIP string

	mu       sync.Mutex
	route    string
	protocol string
	outcome  Outcome
	reason   string
}

// New starts the scope of one request.
func New(id, clientIP string) *Scope { return &Scope{id: id, clientIP: clientIP} }

type key struct{}

// With returns ctx carrying s.
func With(ctx context.Context, s *Scope) context.Context { return context.WithValue(ctx, key{}, s) }

// From returns the scope in ctx, or nil.
func From(ctx context.Context) *Scope {
	s, _ := ctx.Value(key{}).(*Scope)
	return s
}

// Of returns the scope of r, or nil.
func Of(r *http.Request) *Scope { return From(r.Context()) }

// ID is the request ID.
func (s *Scope) ID() string {
	if s == nil {
		return ""
	}
	return s.id
}

// ClientIP is the client's address as the front door determined it.
func (s *Scope) ClientIP() string {
	if s == nil {
		return ""
	}
	return s.clientIP
}

// SetRoute records the route that matched and its protocol (soap, rest,
// bridge, public).
func (s *Scope) SetRoute(name, protocol string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	s.route, s.protocol = name, protocol
	s.mu.Unlock()
}

// Route returns the matched route and its protocol, empty when none matched.
func (s *Scope) Route() (name, protocol string) {
	if s == nil {
		return "", ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.route, s.protocol
}

// Decide records the outcome and a short machine-readable reason (a
// sentinel's name or a fault code, never a token, key or body). The first
// decision wins: a later layer cannot turn a refusal into an acceptance.
func (s *Scope) Decide(o Outcome, reason string) {
	if s == nil {
		return
	}
	s.mu.Lock()
	if s.outcome == Unknown {
		s.outcome, s.reason = o, reason
	}
	s.mu.Unlock()
}

// Outcome returns the decision and its reason.
func (s *Scope) Outcome() (Outcome, string) {
	if s == nil {
		return Unknown, ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.outcome, s.reason
}

// SaneID reports whether id may be used as a request ID: 1 to 64 characters
// of [A-Za-z0-9._-], so it cannot inject into logs, headers or faults.
func SaneID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// NewID returns a fresh request ID: 16 random bytes in hex.
func NewID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// IDOf returns the request ID of r's scope, or, where r has none (a
// handler used without the front door, in tests), a sane client-sent
// X-Request-ID or a fresh one.
func IDOf(r *http.Request) string {
	if id := Of(r).ID(); id != "" {
		return id
	}
	if id := r.Header.Get(Header); SaneID(id) {
		return id
	}
	return NewID()
}

// IDWriter keeps exactly one X-Request-ID on the response, ID, even when
// the upstream sends or echoes its own. It is the one response wrapper of
// the gateway: the front door wraps every response with it, and a protocol
// handler used on its own (tests, offline tools) may wrap with it too.
type IDWriter struct {
	http.ResponseWriter
	ID    string
	wrote bool
}

// WriteHeader writes the header once with ID as the only request ID.
func (w *IDWriter) WriteHeader(code int) {
	if !w.wrote && code >= 200 { // 1xx responses come first and clear the header map
		w.wrote = true
		if h := w.Header(); len(h[canonicalHeader]) != 1 || h[canonicalHeader][0] != w.ID {
			h[canonicalHeader] = []string{w.ID}
		}
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *IDWriter) Write(p []byte) (int, error) {
	if !w.wrote {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

// Unwrap lets http.ResponseController reach Flush on the real writer.
func (w *IDWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
