package demo

import (
	"os"
	"path/filepath"
	"testing"

	"wsgate/contract/openapi"
	"wsgate/contract/wsdl"
)

// The demo's contracts load with the gateway's loaders, and the WSDL's
// schema is inside the subset validate_body enforces.
func TestContractsLoad(t *testing.T) {
	dir := t.TempDir()
	w, o := filepath.Join(dir, "echo.wsdl"), filepath.Join(dir, "rest-echo.yaml")
	if err := os.WriteFile(w, []byte(EchoWSDL), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(o, []byte(EchoOpenAPI), 0o644); err != nil {
		t.Fatal(err)
	}
	svc, err := wsdl.Load(w)
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.ValidateBodies(); err != nil {
		t.Fatal(err)
	}
	ops := svc.Operations()
	if len(ops) != 1 || ops[0].Name != "Hello" {
		t.Fatalf("operations %+v", ops)
	}
	if _, err := openapi.Load(o); err != nil {
		t.Fatal(err)
	}
}
