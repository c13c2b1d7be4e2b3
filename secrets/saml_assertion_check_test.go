package secrets

import (
	"errors"
	"testing"
)

func TestCheckSAMLAssertion(t *testing.T) {
	const a = `<saml2:Assertion xmlns:saml2="urn:oasis:names:tc:SAML:2.0:assertion" ID="_a"/>`
	cases := []struct {
		fields map[string]string
		want   error
	}{
		{map[string]string{"assertion": a}, nil},
		{map[string]string{}, ErrNotFound},
		{map[string]string{"assertion": ""}, ErrNotFound},
		{map[string]string{"assertion": "not xml"}, ErrInvalidSecret},
	}
	for _, c := range cases {
		err := CheckFields("wsgate/bridge/alice", c.fields, UseSAMLAssertion)
		if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%v: err = %v, want %v", c.fields, err, c.want)
		}
	}
}
