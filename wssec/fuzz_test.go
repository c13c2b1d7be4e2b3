package wssec

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func addGoldenSeeds(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("..", "testdata", "wssec", "*.xml"))
	for _, name := range files {
		if data, err := os.ReadFile(name); err == nil && len(data) < 64<<10 {
			f.Add(data)
		}
	}
}

// FuzzParseEnvelope looks for panics and hangs in the hardened parser, and
// checks that a recycled arena builds the same tree as a fresh one.
func FuzzParseEnvelope(f *testing.F) {
	addGoldenSeeds(f)
	f.Add([]byte(`<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body/></s:Envelope>`))
	reused := new(arena)
	f.Fuzz(func(t *testing.T, msg []byte) {
		env, err := ParseEnvelope(msg, Limits{})
		if err == nil && (env.Body == nil || env.Version == SOAPUnknown) {
			t.Fatal("accepted an envelope without a Body or version")
		}
		env.Release()
		sameTree(t, string(msg), reused)
		reused.reset()
	})
}

// FuzzVerify looks for panics in verification, and checks the invariant
// that anything accepted has its real Body covered by the signature.
func FuzzVerify(f *testing.F) {
	addGoldenSeeds(f)
	trust := readPEMCerts(f, "trust.pem", "partner-rsa.pem")
	f.Fuzz(func(t *testing.T, msg []byte) {
		v := &Verifier{
			Policy: Policy{RequireSigned: []Part{PartBody, PartTimestamp}},
			Trust:  trust,
			Now:    fixedNow,
		}
		res, err := v.Verify(context.Background(), msg)
		if err != nil {
			return
		}
		if res.Signer == nil || res.Body == nil || res.Body.Parent() != res.Envelope.Envelope {
			t.Fatal("accepted a message without a signer or with a detached Body")
		}
	})
}
