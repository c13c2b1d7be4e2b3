package openapi

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkBody5KB compares a ~5 KB JSON POST through the contract check
// with the same request straight to the handler (the validation cost ratio).
func BenchmarkBody5KB(b *testing.B) {
	var items []string
	for i := 0; len(strings.Join(items, ",")) < 5000; i++ {
		items = append(items, fmt.Sprintf(`{"sku":"ABC-%04d","note":"line item number %d of the invoice"}`, i%10000, i))
	}
	body := `{"amount": 1234.5, "currency": "EUR", "items": [` + strings.Join(items, ",") + `]}`
	c, err := Load(filepath.Join("testdata", "billing.yaml"))
	if err != nil {
		b.Fatal(err)
	}
	sink := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		buf := make([]byte, 8192)
		for {
			if _, err := r.Body.Read(buf); err != nil {
				break
			}
		}
	})
	checked, err := New(sink, Options{Contract: c, PathPrefix: "/billing", MaxBodyBytes: 1 << 16,
		OnError: func(w http.ResponseWriter, _ *http.Request, status int, err error) { b.Fatalf("%d %v", status, err) }})
	if err != nil {
		b.Fatal(err)
	}
	for name, h := range map[string]http.Handler{"unchecked": sink, "validated": checked} {
		b.Run(name, func(b *testing.B) {
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				r := httptest.NewRequest(http.MethodPost, "/billing/invoices", strings.NewReader(body))
				r.Header.Set("Content-Type", "application/json")
				h.ServeHTTP(httptest.NewRecorder(), r)
			}
		})
	}
}
