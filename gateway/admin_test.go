package gateway

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"wsgate/config"

	"wsgate/internal/pki"
	"wsgate/secrets"
)

func TestAdminReadiness(t *testing.T) {
	now := time.Date(2026, 3, 14, 12, 0, 0, 0, time.UTC)
	ca, err := pki.Issuer{Now: func() time.Time { return now }}.Issue(pki.Options{CommonName: "ca", IsCA: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	mem := secrets.NewMemory()
	mgr := secrets.NewManager(mem, nil, func() time.Time { return now })
	mgr.Trust("wsgate/trust/partners")
	g := &generation{cfg: &config.Config{Routes: []config.Route{
		{Name: "orders", SOAP: &config.SOAP{Trust: "wsgate/trust/partners"}},
	}}, secrets: mgr}
	h := adminHandler(func() *generation { return g }, prometheus.NewRegistry())

	get := func(path string) (int, readiness) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		var r readiness
		if path == "/readyz" {
			if err := json.Unmarshal(rec.Body.Bytes(), &r); err != nil {
				t.Fatalf("%s: %v: %s", path, err, rec.Body)
			}
		}
		return rec.Code, r
	}

	if code, _ := get("/healthz"); code != http.StatusOK {
		t.Errorf("healthz = %d", code)
	}
	steps := []struct {
		name   string
		before func()
		code   int
		ready  bool
		stale  bool
	}{
		{"never loaded", func() {}, 503, false, false},
		{"loaded", func() {
			mem.Set("wsgate/trust/partners", map[string]string{"certificates": string(pki.CertPEM(ca.Cert))})
		}, 200, true, false},
		{"backend down keeps last good value", func() { mem.Fail(errors.New("down")) }, 200, true, true},
	}
	for _, s := range steps {
		s.before()
		_ = mgr.Refresh(t.Context())
		code, r := get("/readyz")
		if code != s.code || r.Ready != s.ready || r.Stale != s.stale || len(r.Secrets) != 1 {
			t.Errorf("%s: %d %+v", s.name, code, r)
		}
		if len(r.Routes) != 1 || r.Routes[0].Name != "orders" || r.Routes[0].Ready != s.ready ||
			!slices.Equal(r.Routes[0].Secrets, []string{"wsgate/trust/partners"}) {
			t.Errorf("%s: routes %+v", s.name, r.Routes)
		}
	}
	if code, _ := get("/metrics"); code != http.StatusOK {
		t.Errorf("metrics = %d", code)
	}
}
