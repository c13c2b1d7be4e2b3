package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The demo's contracts are wired: GET /soap/echo?wsdl serves the WSDL the
// demo wrote, with the gateway's own address, and a REST request outside
// the OpenAPI document is refused with the route's JSON error before the
// echo sees it (the echo would answer 200 with its own JSON to anything).
func TestDemoContracts(t *testing.T) {
	d := startDemo(t)
	for _, f := range []string{"contracts/echo.wsdl", "contracts/rest-echo.yaml"} {
		if _, err := os.Stat(filepath.Join(d.dir, f)); err != nil {
			t.Errorf("demo dir: %v", err)
		}
	}
	get := func(url string, hdr map[string]string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, url, nil)
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, string(b)
	}

	res, body := get(d.base+"/soap/echo?wsdl", nil)
	if res.StatusCode != http.StatusOK || !strings.Contains(body, `<soap:address location="`+d.base+`/soap/echo"/>`) ||
		!strings.Contains(body, `<wsdl:operation name="Hello">`) || strings.Contains(body, "echo.invalid") {
		t.Errorf("?wsdl: %d %s", res.StatusCode, body)
	}

	m := regexp.MustCompile(`curl -sS -H "Authorization: Bearer ([A-Za-z0-9_.-]+)" (\S+)/rest/echo/hello\n`).FindStringSubmatch(d.stdout.String())
	if m == nil {
		t.Fatalf("demo instructions lack the REST call:\n%s", d.stdout.String())
	}
	auth := map[string]string{"Authorization": "Bearer " + m[1]}
	if res, body := get(d.base+"/rest/echo/hello?lang=en", auth); res.StatusCode != http.StatusOK || !strings.Contains(body, `"path": "/hello"`) {
		t.Fatalf("request inside the contract: %d %s", res.StatusCode, body)
	}
	for _, tc := range []struct {
		path, errCode string
		status        int
	}{
		{"/rest/echo/nope", "not_found", http.StatusNotFound},
		{"/rest/echo/hello?lang=EVIL", "invalid_request", http.StatusBadRequest},
	} {
		res, body := get(d.base+tc.path, auth)
		var eb map[string]any
		if err := json.Unmarshal([]byte(body), &eb); err != nil {
			t.Fatalf("%s: not JSON: %d %s", tc.path, res.StatusCode, body)
		}
		if res.StatusCode != tc.status || eb["error"] != tc.errCode || eb["request_id"] == nil {
			t.Errorf("%s: %d %s, want %d %s", tc.path, res.StatusCode, body, tc.status, tc.errCode)
		}
		if _, echoed := eb["method"]; echoed || strings.Contains(body, "X-Auth-Subject") {
			t.Errorf("%s reached the echo: %s", tc.path, body)
		}
	}
	if code := d.stop(); code != exitOK {
		t.Errorf("demo exit code after cancel = %d", code)
	}
	logs := d.stderr.String()
	for _, want := range []string{"path=/rest/echo/nope route=rest-echo protocol=rest outcome=rejected reason=contract status=404",
		"route=rest-echo protocol=rest outcome=rejected reason=contract status=400"} {
		if !strings.Contains(logs, want) {
			t.Errorf("access log lacks %q:\n%s", want, logs)
		}
	}
}
