package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

func TestCmdPolicy(t *testing.T) {
	dir := filepath.Join("..", "..", "contract", "wspolicy", "testdata")
	for _, tc := range []struct {
		args       []string
		code       int
		out, errIs string
	}{
		{[]string{"-wsdl", filepath.Join(dir, "asymmetric-x509.wsdl")}, exitOK, "require_signed: [body, timestamp, addressing]", ""},
		{[]string{"-wsdl", filepath.Join(dir, "symmetric-kerberos.wsdl"), "-service", "OrdersService", "-port", "OrdersPort"}, exitFail, "soap:", "cannot enforce sp:SymmetricBinding"},
		{[]string{"-wsdl", filepath.Join(dir, "asymmetric-x509.wsdl"), "-port", "Nope"}, exitUsage, "", "no SOAP port"},
		{[]string{"-wsdl", filepath.Join(dir, "missing.wsdl")}, exitFail, "", "document unusable"},
		{nil, exitUsage, "", "-wsdl is required"},
	} {
		var out, errb bytes.Buffer
		code := run(t.Context(), append([]string{"policy"}, tc.args...), nil, &out, &errb)
		if code != tc.code || !strings.Contains(out.String(), tc.out) || !strings.Contains(errb.String(), tc.errIs) {
			t.Errorf("%v: code %d\nstdout %s\nstderr %s", tc.args, code, out.String(), errb.String())
		}
	}
}
