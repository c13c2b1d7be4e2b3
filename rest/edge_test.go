package rest

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"wsgate/internal/reqscope"
	"wsgate/oauth"
)

// TestOverrideHeadersStripped (issue 12, item 6b): a read-only token's GET
// that asks, by header, for DELETE (or for another path) is authorized and
// forwarded as the GET it is, without the header: the upstream cannot run
// a method or path other than the one the scopes were checked for.
func TestOverrideHeadersStripped(t *testing.T) {
	k, _ := rsaKeys(t)
	f := newFixture(t, nil)
	tok := "Bearer " + mint(t, jose.RS256, k, "k1", "at+jwt", claims()) // billing.read only
	for _, h := range []string{
		"X-HTTP-Method-Override", "x-http-method-override", "X_HTTP_Method_Override", "X-HTTP-Method",
		"X-Method-Override", "X-Original-URL", "X-Rewrite-URL", "X-Original-Method",
	} {
		r := get(prefix+"/invoices/1", tok)
		r.Header[h] = []string{"DELETE"}
		if strings.HasSuffix(strings.ToLower(h), "url") {
			r.Header[h] = []string{prefix + "/admin"}
		}
		w := f.do(r)
		if w.Code != 200 {
			t.Fatalf("%s: status %d, want 200 (authorized as GET)", h, w.Code)
		}
		f.up.mu.Lock()
		got, method := f.up.last, f.up.method
		f.up.mu.Unlock()
		if method != http.MethodGet {
			t.Errorf("%s: upstream method %s", h, method)
		}
		for name := range got {
			canon := http.CanonicalHeaderKey(strings.ReplaceAll(name, "_", "-"))
			if overrideHeaders[canon] {
				t.Errorf("%s: upstream got %s: %q", h, name, got[name])
			}
		}
	}
}

// TestParamsRefused (issue 12, items 6b and 6d): a second token or a
// _method in the query or in a form body, in any spelling a backend folds
// into those names, is 400 invalid_request and never reaches the upstream.
func TestParamsRefused(t *testing.T) {
	k, _ := rsaKeys(t)
	f := newFixture(t, nil)
	good := mint(t, jose.RS256, k, "k1", "at+jwt", claims("scope", "billing.read billing.write"))
	const (
		form   = "application/x-www-form-urlencoded"
		realm  = `Bearer realm="wsgate", error="invalid_request", error_description=`
		inBody = realm + `"send the token in the Authorization header only, not in the body too"`
		inQry  = realm + `"send the token in the Authorization header, not the query string"`
		method = realm + `"method override parameters are not accepted"`
	)
	multi := func(field string) (string, string) {
		var b bytes.Buffer
		mw := multipart.NewWriter(&b)
		_ = mw.WriteField("amount", "10")
		_ = mw.WriteField(field, "x")
		_ = mw.Close()
		return mw.FormDataContentType(), b.String()
	}
	tests := []struct {
		name, query, ct, body string
		want                  error
		challenge             string
	}{
		{"form access_token", "", form, "amount=10&access_token=" + good, ErrTokenInBody, inBody},
		{"form access_token with charset", "", form + "; charset=utf-8", "access_token=x", ErrTokenInBody, inBody},
		{"form Access_Token", "", form, "Access_Token=x", ErrTokenInBody, inBody},
		{"form access.token (PHP folds . into _)", "", form, "access.token=x", ErrTokenInBody, inBody},
		{"form access token (PHP folds space into _)", "", form, "access+token=x", ErrTokenInBody, inBody},
		{"form access_token[]", "", form, "access_token%5B%5D=x", ErrTokenInBody, inBody},
		{"form with a bad escape elsewhere", "", form, "a=%zz&access_token=x", ErrTokenInBody, inBody},
		{"form _method", "", form, "_method=DELETE", ErrMethodOverride, method},
		{"form _METHOD", "", form, "amount=1&_METHOD=delete", ErrMethodOverride, method},
		{"query _method", "_method=DELETE", "", "", ErrMethodOverride, method},
		{"query _method[]", "_method%5B%5D=DELETE", "", "", ErrMethodOverride, method},
		{"query access.token", "access.token=x", "", "", oauth.ErrTokenInQuery, inQry},
		{"query ACCESS_TOKEN", "ACCESS_TOKEN=x", "", "", oauth.ErrTokenInQuery, inQry},
		{"query access_token", "access_token=x", "", "", oauth.ErrTokenInQuery, inQry},
	}
	for _, field := range []string{"access_token", "access.token", "_method"} {
		ct, body := multi(field)
		want, ch := error(ErrTokenInBody), inBody
		if field == "_method" {
			want, ch = ErrMethodOverride, method
		}
		tests = append(tests, struct {
			name, query, ct, body string
			want                  error
			challenge             string
		}{"multipart " + field, "", ct, body, want, ch})
	}
	tests = append(tests, struct {
		name, query, ct, body string
		want                  error
		challenge             string
	}{"multipart without an end", "", "multipart/form-data; boundary=xyz", "--xyz\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1", ErrUnreadableBody, ""})

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			target := prefix + "/invoices"
			if tc.query != "" {
				target += "?" + tc.query
			}
			r := httptest.NewRequest(http.MethodPost, target, strings.NewReader(tc.body))
			r.Header.Set("Authorization", "Bearer "+good)
			if tc.ct != "" {
				r.Header.Set("Content-Type", tc.ct)
			}
			before := f.up.hits.Load()
			w := f.do(r)
			if f.up.hits.Load() != before {
				t.Fatal("the upstream saw a refused request")
			}
			if w.Code != 400 || w.Header().Get("WWW-Authenticate") != tc.challenge {
				t.Fatalf("status %d, WWW-Authenticate %q; body %s", w.Code, w.Header().Get("WWW-Authenticate"), w.Body)
			}
			var body ErrorBody
			if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil || body.Error != "invalid_request" || body.RequestID != "req-1" {
				t.Fatalf("body %s", w.Body)
			}
			if d := f.lastDecision(); !errors.Is(d.Err, tc.want) || d.Outcome != reqscope.Rejected {
				t.Fatalf("decision %+v, want %v", d, tc.want)
			}
			if o, _ := f.scope.Outcome(); o != reqscope.Rejected {
				t.Fatalf("scope outcome %q", o)
			}
		})
	}
}

// TestFormForwardedIntact: a form body without a token or _method is read
// to check it and reaches the upstream byte for byte; one over MaxFormBytes
// is 413.
func TestFormForwardedIntact(t *testing.T) {
	k, _ := rsaKeys(t)
	f := newFixture(t, func(o *Options) { o.MaxFormBytes = 64 })
	tok := "Bearer " + mint(t, jose.RS256, k, "k1", "at+jwt", claims("scope", "billing.write"))
	body := url.Values{"amount": {"10"}, "token_type": {"x"}, "note": {"a&b"}}.Encode()
	r := httptest.NewRequest(http.MethodPost, prefix+"/invoices", strings.NewReader(body))
	r.Header.Set("Authorization", tok)
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if w := f.do(r); w.Code != 200 {
		t.Fatalf("status %d: %s", w.Code, w.Body)
	}
	f.up.mu.Lock()
	got := string(f.up.lastBody)
	f.up.mu.Unlock()
	if got != body {
		t.Fatalf("upstream body %q, want %q", got, body)
	}
	r = httptest.NewRequest(http.MethodPost, prefix+"/invoices", strings.NewReader("a="+strings.Repeat("x", 64)))
	r.Header.Set("Authorization", tok)
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	before := f.up.hits.Load()
	if w := f.do(r); w.Code != http.StatusRequestEntityTooLarge || f.up.hits.Load() != before {
		t.Fatalf("status %d, upstream hits %d", w.Code, f.up.hits.Load()-before)
	}
	if d := f.lastDecision(); !errors.Is(d.Err, ErrBodyTooLarge) {
		t.Fatalf("decision %+v", d)
	}
	// A JSON body is not read: it streams.
	r = httptest.NewRequest(http.MethodPost, prefix+"/invoices", strings.NewReader(`{"access_token":"`+strings.Repeat("x", 100)+`"}`))
	r.Header.Set("Authorization", tok)
	r.Header.Set("Content-Type", "application/json")
	if w := f.do(r); w.Code != 200 {
		t.Fatalf("JSON body: status %d", w.Code)
	}
}

// TestRefusalLogs: refusals are WARN (503 ERROR), accepted requests INFO,
// each with route, request_id, outcome, reason and status, as on SOAP routes.
func TestRefusalLogs(t *testing.T) {
	k, _ := rsaKeys(t)
	f := newFixture(t, nil)
	good := "Bearer " + mint(t, jose.RS256, k, "k1", "at+jwt", claims())
	f.do(get(prefix+"/x", good))
	f.do(get(prefix + "/x"))
	down := newFixture(t, nil) // its keys never load
	down.jwksDown.Store(true)
	down.do(get(prefix+"/x", good))
	want := []struct {
		level, outcome, reason string
		status                 float64
	}{
		{"INFO", "accepted", "ok", 0},
		{"WARN", "rejected", "no_token", 401},
		{"ERROR", "unavailable", "keys_unavailable", 503},
	}
	lines := strings.Split(strings.TrimSpace(f.logs.String()+down.logs.String()), "\n")
	if len(lines) != len(want) {
		t.Fatalf("%d records:\n%s", len(lines), f.logs)
	}
	for i, line := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		w := want[i]
		if m["level"] != w.level || m["outcome"] != w.outcome || m["reason"] != w.reason ||
			m["route"] != "billing" || m["request_id"] != "req-1" {
			t.Errorf("record %d: %v", i, m)
		}
		if st, ok := m["status"]; (w.status != 0) != ok || (ok && st != w.status) {
			t.Errorf("record %d: status %v, want %v", i, st, w.status)
		}
	}
}

// FuzzCheckForm: no form body or query makes checkForm/checkQuery panic;
// a refusal is one of the sentinels; an accepted body is put back byte for
// byte; and whatever url.ParseQuery finds named access_token or _method
// (the names a backend reads) is refused.
func FuzzCheckForm(f *testing.F) {
	for _, s := range []string{"a=1", "access_token=x", "a=%zz&access.token=x", "_method=DELETE", "x[]=1&access_token[a]=2",
		"--b\r\nContent-Disposition: form-data; name=\"access_token\"\r\n\r\nx\r\n--b--\r\n", "", "%", "&&=="} {
		f.Add(s, "a=1", true)
		f.Add(s, s, false)
	}
	h := &handler{o: Options{MaxFormBytes: 1 << 16}}
	f.Fuzz(func(t *testing.T, body, query string, multi bool) {
		ct := "application/x-www-form-urlencoded"
		if multi {
			ct = "multipart/form-data; boundary=b"
		}
		r := httptest.NewRequest(http.MethodPost, "/x", strings.NewReader(body))
		r.URL.RawQuery = query
		r.Header.Set("Content-Type", ct)
		qerr := checkQuery(r)
		ferr := h.checkForm(r)
		for _, err := range []error{qerr, ferr} {
			if err != nil && !errors.Is(err, oauth.ErrTokenInQuery) && !errors.Is(err, ErrTokenInBody) &&
				!errors.Is(err, ErrMethodOverride) && !errors.Is(err, ErrUnreadableBody) && !errors.Is(err, ErrBodyTooLarge) {
				t.Fatalf("unexpected error %v", err)
			}
		}
		if q, _ := url.ParseQuery(query); qerr == nil && (q.Has("access_token") || q.Has("_method")) {
			t.Fatalf("query %q passed", query)
		}
		if multi {
			return
		}
		if ferr == nil {
			got, _ := io.ReadAll(r.Body)
			if string(got) != body {
				t.Fatalf("body changed: %q -> %q", body, got)
			}
			if form, _ := url.ParseQuery(body); form.Has("access_token") || form.Has("_method") {
				t.Fatalf("form %q passed", body)
			}
		}
	})
}
