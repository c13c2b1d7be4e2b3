package openapi

import (
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"wsgate/internal/reqscope"
	"wsgate/rest"
)

// upstream records whether anything reached it and what body it got.
type upstream struct {
	hits   atomic.Int32
	body   string
	status int
	reply  string
}

func (u *upstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	u.hits.Add(1)
	b, _ := io.ReadAll(r.Body)
	u.body = string(b)
	if u.reply != "" {
		w.Header().Set("Content-Type", "application/json")
	}
	status := u.status
	if status == 0 {
		status = http.StatusOK
	}
	w.WriteHeader(status)
	_, _ = io.WriteString(w, u.reply)
}

func newHandler(t *testing.T, up http.Handler, responses bool, lastErr *error) http.Handler {
	t.Helper()
	c, err := Load(filepath.Join("testdata", "billing.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	h, err := New(up, Options{
		Contract:          c,
		PathPrefix:        "/billing/",
		MaxBodyBytes:      4096,
		ValidateResponses: responses,
		Describe:          rest.Describe,
		OnError: func(w http.ResponseWriter, r *http.Request, status int, err error) {
			*lastErr = err
			rest.WriteError(w, r, status, err)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestRequests(t *testing.T) {
	const good = `{"amount": 12.5, "currency": "EUR", "items": [{"sku": "ABC-1234"}]}`
	tests := []struct {
		name, method, target, ctype, body string
		header                            map[string]string
		status                            int
		sentinel                          error
		location                          string // in error_description
		allow                             string
	}{
		{name: "get ok", method: "GET", target: "/billing/invoices?limit=10&tag=a&tag=b", status: 200},
		{name: "post ok", method: "POST", target: "/billing/invoices", ctype: "application/json", body: good, status: 200},
		{name: "path param ok", method: "GET", target: "/billing/invoices/inv-42", status: 200},
		{name: "security scheme not enforced", method: "GET", target: "/billing/invoices", status: 200},
		{name: "query out of range", method: "GET", target: "/billing/invoices?limit=1000", status: 400, sentinel: ErrInvalidRequest, location: "query.limit"},
		{name: "query not integer", method: "GET", target: "/billing/invoices?limit=ten", status: 400, sentinel: ErrInvalidRequest, location: "query.limit"},
		{name: "scalar query repeated", method: "GET", target: "/billing/invoices?limit=1&limit=1000", status: 400, sentinel: ErrAmbiguousQuery, location: "query.limit"},
		{name: "semicolon separator", method: "GET", target: "/billing/invoices?limit=5;limit=1000", status: 400, sentinel: ErrAmbiguousQuery, location: "query"},
		{name: "bad escape", method: "GET", target: "/billing/invoices?limit=5&x=%zz", status: 400, sentinel: ErrAmbiguousQuery, location: "query"},
		{name: "header pattern", method: "GET", target: "/billing/invoices", header: map[string]string{"X-Trace": "nothex!!"}, status: 400, sentinel: ErrInvalidRequest, location: "header.X-Trace"},
		{name: "path param pattern", method: "GET", target: "/billing/invoices/42", status: 400, sentinel: ErrInvalidRequest, location: "path.id"},
		{name: "body field", method: "POST", target: "/billing/invoices", ctype: "application/json", body: `{"amount": -1, "currency": "EUR"}`, status: 400, sentinel: ErrInvalidRequest, location: "body.amount"},
		{name: "body enum", method: "POST", target: "/billing/invoices", ctype: "application/json", body: `{"amount": 1, "currency": "GBP"}`, status: 400, sentinel: ErrInvalidRequest, location: "body.currency"},
		{name: "body nested", method: "POST", target: "/billing/invoices", ctype: "application/json", body: `{"amount": 1, "currency": "EUR", "items": [{"sku": "bad"}]}`, status: 400, sentinel: ErrInvalidRequest, location: "body.items.0.sku"},
		{name: "body missing field", method: "POST", target: "/billing/invoices", ctype: "application/json", body: `{"amount": 1}`, status: 400, sentinel: ErrInvalidRequest, location: "body.currency"},
		{name: "body extra field", method: "POST", target: "/billing/invoices", ctype: "application/json", body: `{"amount": 1, "currency": "EUR", "admin": true}`, status: 400, sentinel: ErrInvalidRequest, location: "body"},
		{name: "body absent", method: "POST", target: "/billing/invoices", ctype: "application/json", status: 400, sentinel: ErrInvalidRequest, location: "body"},
		{name: "body not json", method: "POST", target: "/billing/invoices", ctype: "application/json", body: `{"amount":`, status: 400, sentinel: ErrAmbiguousBody, location: "body"},
		{name: "duplicate key", method: "POST", target: "/billing/invoices", ctype: "application/json", body: `{"amount": 1, "currency": "EUR", "amount": -5}`, status: 400, sentinel: ErrAmbiguousBody, location: "body"},
		{name: "duplicate nested key", method: "POST", target: "/billing/invoices", ctype: "application/json", body: `{"amount": 1, "currency": "EUR", "items": [{"sku": "ABC-1234", "sku": "x"}]}`, status: 400, sentinel: ErrAmbiguousBody, location: "body"},
		{name: "invalid utf8", method: "POST", target: "/billing/invoices", ctype: "application/json", body: "{\"amount\": 1, \"currency\": \"EU\xffR\"}", status: 400, sentinel: ErrAmbiguousBody, location: "body"},
		{name: "wrong content type", method: "POST", target: "/billing/invoices", ctype: "text/plain", body: good, status: 400, sentinel: ErrInvalidRequest, location: "header.Content-Type"},
		{name: "body where none described", method: "GET", target: "/billing/invoices/inv-1", ctype: "application/json", body: good, status: 400, sentinel: ErrInvalidRequest},
		{name: "too large", method: "POST", target: "/billing/invoices", ctype: "application/json", body: `{"amount": 1, "currency": "EUR", "x": "` + strings.Repeat("a", 5000) + `"}`, status: 413, sentinel: ErrBodyTooLarge},
		{name: "unknown path", method: "GET", target: "/billing/admin", status: 404, sentinel: ErrNoSuchPath},
		{name: "unknown path under known", method: "GET", target: "/billing/invoices/inv-1/pay", status: 404, sentinel: ErrNoSuchPath},
		{name: "wrong method", method: "PUT", target: "/billing/invoices", ctype: "application/json", body: good, status: 405, sentinel: ErrMethodNotAllowed, allow: "GET, POST"},
		{name: "wrong method on param path", method: "POST", target: "/billing/invoices/inv-1", status: 405, sentinel: ErrMethodNotAllowed, allow: "GET, DELETE"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := &upstream{}
			var lastErr error
			h := newHandler(t, up, false, &lastErr)
			var body io.Reader
			if tc.body != "" {
				body = strings.NewReader(tc.body)
			}
			req := httptest.NewRequest(tc.method, tc.target, body)
			if tc.ctype != "" {
				req.Header.Set("Content-Type", tc.ctype)
			}
			for k, v := range tc.header {
				req.Header.Set(k, v)
			}
			scope := reqscope.New("rid", "192.0.2.1")
			req = req.WithContext(reqscope.With(req.Context(), scope))
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d (err %v) body %s", rec.Code, tc.status, lastErr, rec.Body)
			}
			wantOutcome := reqscope.Rejected
			if tc.sentinel == nil {
				wantOutcome = reqscope.Accepted
			}
			if o, _ := scope.Outcome(); o != wantOutcome {
				t.Fatalf("outcome %q, want %q", o, wantOutcome)
			}
			if tc.sentinel == nil {
				if up.hits.Load() != 1 {
					t.Fatalf("upstream hits %d, want 1", up.hits.Load())
				}
				if up.body != tc.body {
					t.Fatalf("upstream got body %q, want the validated bytes %q", up.body, tc.body)
				}
				return
			}
			if n := up.hits.Load(); n != 0 {
				t.Fatalf("refused request reached the upstream %d times", n)
			}
			if !errors.Is(lastErr, tc.sentinel) {
				t.Fatalf("error %v, want %v", lastErr, tc.sentinel)
			}
			var eb rest.ErrorBody
			if err := json.Unmarshal(rec.Body.Bytes(), &eb); err != nil {
				t.Fatal(err)
			}
			if tc.status == 400 && eb.Error != "invalid_request" {
				t.Fatalf("error code %q", eb.Error)
			}
			if tc.location != "" && !strings.HasPrefix(eb.Description, tc.location+" ") {
				t.Fatalf("description %q does not name %s", eb.Description, tc.location)
			}
			if got := rec.Header().Get("Allow"); got != tc.allow {
				t.Fatalf("Allow %q, want %q", got, tc.allow)
			}
		})
	}
}

func TestResponses(t *testing.T) {
	tests := []struct {
		name, target, reply string
		upStatus, status    int
	}{
		{name: "valid", target: "/billing/invoices/inv-1", reply: `{"amount": 1, "currency": "USD"}`, upStatus: 200, status: 200},
		{name: "schema violation", target: "/billing/invoices/inv-1", reply: `{"amount": "lots"}`, upStatus: 200, status: 502},
		{name: "undescribed status", target: "/billing/invoices/inv-1", reply: `{}`, upStatus: 500, status: 502},
		{name: "too large", target: "/billing/invoices/inv-1", reply: `{"amount": 1, "currency": "USD", "x":"` + strings.Repeat("a", 5000) + `"}`, upStatus: 200, status: 502},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			up := &upstream{status: tc.upStatus, reply: tc.reply}
			var lastErr error
			h := newHandler(t, up, true, &lastErr)
			rec := httptest.NewRecorder()
			scope := reqscope.New("rid", "192.0.2.1")
			req := httptest.NewRequest("GET", tc.target, nil)
			h.ServeHTTP(rec, req.WithContext(reqscope.With(req.Context(), scope)))
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d (err %v)", rec.Code, tc.status, lastErr)
			}
			wantOutcome := reqscope.Accepted
			if tc.status == 502 {
				wantOutcome = reqscope.Failed
			}
			if o, _ := scope.Outcome(); o != wantOutcome {
				t.Fatalf("outcome %q, want %q", o, wantOutcome)
			}
			if tc.status == 502 {
				if !errors.Is(lastErr, ErrInvalidResponse) {
					t.Fatalf("error %v", lastErr)
				}
				if strings.Contains(rec.Body.String(), "lots") {
					t.Fatal("the refused response leaked to the client")
				}
				return
			}
			if rec.Body.String() != tc.reply {
				t.Fatalf("body %q", rec.Body)
			}
		})
	}
}

func TestLoadRefusesNetworkRefs(t *testing.T) {
	_, err := Load(filepath.Join("testdata", "remote.yaml"))
	if !errors.Is(err, ErrDocument) {
		t.Fatalf("err %v, want ErrDocument", err)
	}
}

func TestLoadErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("openapi: 3.0.3\ninfo: {title: x}\npaths: {/x: {get: {}}}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{filepath.Join(dir, "missing.yaml"), bad} {
		if _, err := Load(p); !errors.Is(err, ErrDocument) {
			t.Fatalf("%s: err %v, want ErrDocument", p, err)
		}
	}
}

func FuzzCheckJSON(f *testing.F) {
	for _, s := range []string{`{}`, `{"a":1,"a":2}`, `[{"a":{"b":[1,{"c":1,"c":2}]}}]`, `{"a":[{"a":1}],"b":{"a":1}}`, "\"\xff\""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		err := checkJSON(b)
		if err == nil && !json.Valid(b) {
			t.Fatalf("accepted invalid JSON %q", b)
		}
	})
}

func TestCheckJSON(t *testing.T) {
	tests := []struct {
		in string
		ok bool
	}{
		{`{"a":[{"a":1}],"b":{"a":1},"c":[1,2,{"d":null}]}`, true},
		{`[{"a":1},{"a":2}]`, true},
		{`{"a":1,"a":1}`, false},
		{`{"a":{"b":1},"a":2}`, false},
		{`{"a":[1,{"x":1,"y":{"z":1,"z":2}}]}`, false},
		{`{"a\u0062":1,"ab":2}`, false}, // an escape is the same key
		{strings.Repeat("[", maxDepth+1) + strings.Repeat("]", maxDepth+1), false},
		{`{"a":1} {"b":2}`, false},
		{``, false},
		{`1`, true},
	}
	for _, tc := range tests {
		if err := checkJSON([]byte(tc.in)); (err == nil) != tc.ok {
			t.Errorf("checkJSON(%.40q) = %v, want ok=%v", tc.in, err, tc.ok)
		}
	}
}

// TestRefusalLogHoldsNoValue: kin-openapi's schema errors quote the value
// that failed, which may be a password or a card number; the log gets the
// location and the schema keyword only.
func TestRefusalLogHoldsNoValue(t *testing.T) {
	c, err := Load(filepath.Join("testdata", "billing.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var logs strings.Builder
	up := &upstream{}
	h, err := New(up, Options{Contract: c, PathPrefix: "/billing/", MaxBodyBytes: 4096, Describe: rest.Describe,
		OnError: rest.WriteError, Logger: slog.New(slog.NewJSONHandler(&logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	const secret = "4111-1111-SECRET"
	req := httptest.NewRequest("POST", "/billing/invoices", strings.NewReader(`{"amount":"`+secret+`","currency":"USD"}`))
	req.Header.Set("Content-Type", "application/json")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest || up.hits.Load() != 0 {
		t.Fatalf("status %d, upstream hits %d: want 400 and nothing upstream", rec.Code, up.hits.Load())
	}
	out := logs.String()
	if strings.Contains(out, secret) || strings.Contains(rec.Body.String(), secret) {
		t.Fatalf("the refused value reached the log or the client:\n%s\n%s", out, rec.Body)
	}
	for _, want := range []string{`"location":"body.amount"`, `"schema_field":"type"`, `"level":"WARN"`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %s:\n%s", want, out)
		}
	}
}
