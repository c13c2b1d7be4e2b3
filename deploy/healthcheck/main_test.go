package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestProbe(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/ok":
		case "/slow":
			time.Sleep(300 * time.Millisecond)
		default:
			w.WriteHeader(http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	cases := []struct {
		path    string
		timeout time.Duration
		ok      bool
	}{
		{"/ok", time.Second, true},
		{"/not-ready", time.Second, false},
		{"/slow", 50 * time.Millisecond, false},
	}
	for _, c := range cases {
		err := probe(srv.URL+c.path, c.timeout)
		if (err == nil) != c.ok {
			t.Errorf("probe(%s) = %v, want ok=%v", c.path, err, c.ok)
		}
	}
	if err := probe("http://127.0.0.1:1/", time.Second); err == nil {
		t.Error("probe of a closed port succeeded")
	}
}
