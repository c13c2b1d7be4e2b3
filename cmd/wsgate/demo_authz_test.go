package main

import (
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// The demo's "beyond scopes" commands do what the instructions say: the
// claim rule refuses, the printed API key is accepted (and reaches the
// echo only as its subject), and a preflight is answered without a token.
func TestDemoBeyondScopes(t *testing.T) {
	d := startDemo(t)
	help := d.stdout.String()
	del := regexp.MustCompile(`curl -sS -X DELETE -H "Authorization: Bearer ([A-Za-z0-9_.-]+)" (\S+)\n`).FindStringSubmatch(help)
	key := regexp.MustCompile(`curl -sS -H "X-API-Key: (wsgate_[A-Za-z0-9_-]+)" (\S+)\n`).FindStringSubmatch(help)
	if del == nil || key == nil || !strings.Contains(help, "Access-Control-Request-Method: GET") {
		t.Fatalf("demo instructions lack the beyond-scopes commands:\n%s", help)
	}
	do := func(method, url string, hdr map[string]string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, url, nil)
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
	res, body := do(http.MethodDelete, del[2], map[string]string{"Authorization": "Bearer " + del[1]})
	var eb struct {
		Error string `json:"error"`
	}
	_ = json.Unmarshal([]byte(body), &eb)
	if res.StatusCode != http.StatusForbidden || eb.Error != "access_denied" {
		t.Fatalf("claim rule: %d %s", res.StatusCode, body)
	}
	res, body = do(http.MethodGet, key[2], map[string]string{"X-API-Key": key[1]})
	if res.StatusCode != http.StatusOK || !strings.Contains(body, "demo-batch") || strings.Contains(body, key[1]) {
		t.Fatalf("API key: %d %s", res.StatusCode, body)
	}
	res, _ = do(http.MethodOptions, d.base+"/rest/echo/hello", map[string]string{
		"Origin": "http://localhost:3000", "Access-Control-Request-Method": "GET"})
	if res.StatusCode != http.StatusNoContent || res.Header.Get("Access-Control-Allow-Origin") != "http://localhost:3000" {
		t.Fatalf("preflight: %d %v", res.StatusCode, res.Header)
	}
}
