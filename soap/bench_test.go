package soap

import (
	"bytes"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"testing"
)

// BenchmarkHandler is the SOAP route's hot path in-process: read a 2 KB
// signed body, parse, verify, serialize, forward to an upstream that only
// answers 200. No replay cache (the same message is sent every time), logs
// discarded. Profile it with -cpuprofile to see where a request's time goes.
func BenchmarkHandler(b *testing.B) {
	msg := signBig(b, 2<<10, "bench")
	up := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.WriteHeader(http.StatusOK)
	})
	hs := newHarness(b, func(o *Options) {
		o.Verifier.Replay = nil
		o.Upstream = up
		o.Logger = slog.New(slog.NewJSONHandler(io.Discard, nil))
	})
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/soap/orders", bytes.NewReader(msg))
		req.Header.Set("Content-Type", ContentType11)
		rec := httptest.NewRecorder()
		hs.h.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			b.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
	}
}
