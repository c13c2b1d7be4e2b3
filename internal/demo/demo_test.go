package demo

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestSOAPEcho(t *testing.T) {
	tests := []struct {
		name        string
		method      string
		body        string
		status      int
		contentType string
		contains    string
	}{
		{"soap 1.1", "POST", `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" xmlns:m="urn:m"><s:Body><m:Ping>hi</m:Ping></s:Body></s:Envelope>`,
			200, "text/xml; charset=utf-8", `<echo:Echo xmlns:echo="urn:wsgate:demo:echo"><m:Ping `},
		{"soap 1.2", "POST", `<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope"><e:Body><Ping xmlns="urn:m">hi</Ping></e:Body></e:Envelope>`,
			200, "application/soap+xml; charset=utf-8", `<echo:Echo xmlns:echo="urn:wsgate:demo:echo"><Ping xmlns="urn:m"`},
		{"not xml", "POST", `hello`, 400, "", ""},
		{"doctype", "POST", `<!DOCTYPE x [<!ENTITY a "b">]><x/>`, 400, "", ""},
		{"not an envelope", "POST", `<x/>`, 400, "", ""},
		{"wrong namespace", "POST", `<Envelope xmlns="urn:x"><Body/></Envelope>`, 400, "", ""},
		{"no body", "POST", `<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"/>`, 400, "", ""},
		{"get", "GET", ``, 405, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			SOAPEcho().ServeHTTP(rec, httptest.NewRequest(tt.method, "/ws", strings.NewReader(tt.body)))
			if rec.Code != tt.status {
				t.Fatalf("status = %d, want %d (%s)", rec.Code, tt.status, rec.Body)
			}
			if tt.contentType != "" {
				if got := rec.Header().Get("Content-Type"); got != tt.contentType {
					t.Errorf("Content-Type = %q, want %q", got, tt.contentType)
				}
			}
			if !strings.Contains(rec.Body.String(), tt.contains) {
				t.Errorf("body %q does not contain %q", rec.Body, tt.contains)
			}
		})
	}
}

func TestRESTEcho(t *testing.T) {
	req := httptest.NewRequest("PUT", "/things/1?x=y", strings.NewReader("payload"))
	req.Header.Set("X-Test", "v")
	rec := httptest.NewRecorder()
	RESTEcho().ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d", rec.Code)
	}
	var got struct {
		Method  string              `json:"method"`
		Path    string              `json:"path"`
		Query   string              `json:"query"`
		Headers map[string][]string `json:"headers"`
		Body    string              `json:"body"`
	}
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Method != "PUT" || got.Path != "/things/1" || got.Query != "x=y" || got.Body != "payload" ||
		len(got.Headers["X-Test"]) != 1 || got.Headers["X-Test"][0] != "v" {
		t.Errorf("echo = %+v", got)
	}
}
