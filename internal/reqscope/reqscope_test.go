package reqscope

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestFirstDecisionWins(t *testing.T) {
	s := New("id-1", "192.0.2.1")
	s.Decide(Rejected, "FailedCheck")
	s.Decide(Accepted, "")
	if o, reason := s.Outcome(); o != Rejected || reason != "FailedCheck" {
		t.Fatalf("outcome = %q %q, want rejected FailedCheck", o, reason)
	}
}

func TestNilScopeIsZero(t *testing.T) {
	var s *Scope
	s.Decide(Accepted, "")
	s.SetRoute("r", "soap")
	if s.ID() != "" || s.ClientIP() != "" {
		t.Fatal("nil scope has values")
	}
	if o, _ := s.Outcome(); o != Unknown {
		t.Fatalf("nil scope outcome %q", o)
	}
	if From(context.Background()) != nil {
		t.Fatal("empty context has a scope")
	}
}

func TestIDOf(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r = r.WithContext(With(r.Context(), New("front-door-id", "")))
	r.Header.Set(Header, "client-id")
	if got := IDOf(r); got != "front-door-id" {
		t.Fatalf("IDOf = %q, want the scope's", got)
	}
	bare := httptest.NewRequest("GET", "/", nil)
	bare.Header.Set(Header, "client-id")
	if got := IDOf(bare); got != "client-id" {
		t.Fatalf("IDOf without scope = %q, want the sane client ID", got)
	}
	bare.Header.Set(Header, "bad id\r\nX-Injected: 1")
	if got := IDOf(bare); !SaneID(got) || strings.Contains(got, " ") {
		t.Fatalf("IDOf kept an insane ID: %q", got)
	}
}

func TestSaneID(t *testing.T) {
	for _, tc := range []struct {
		id   string
		want bool
	}{
		{"abc-123_X.y", true},
		{"", false},
		{strings.Repeat("a", 64), true},
		{strings.Repeat("a", 65), false},
		{"a b", false},
		{"a\nb", false},
		{"ä", false},
	} {
		if got := SaneID(tc.id); got != tc.want {
			t.Errorf("SaneID(%q) = %v, want %v", tc.id, got, tc.want)
		}
	}
}

func TestIDWriterKeepsOneRequestID(t *testing.T) {
	for _, tc := range []struct {
		name     string
		upstream []string // X-Request-ID values the upstream sets
	}{
		{"none", nil},
		{"echo", []string{"ours"}},
		{"own", []string{"theirs"}},
		{"two", []string{"ours", "theirs"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			rec.Header().Set(Header, "ours")
			w := &IDWriter{ResponseWriter: rec, ID: "ours"}
			for _, v := range tc.upstream {
				w.Header().Add(Header, v)
			}
			if _, err := w.Write([]byte("x")); err != nil {
				t.Fatal(err)
			}
			if got := rec.Result().Header.Values(Header); len(got) != 1 || got[0] != "ours" {
				t.Fatalf("X-Request-ID = %q, want exactly [ours]", got)
			}
		})
	}
}
