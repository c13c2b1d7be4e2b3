package wssec

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"runtime"
	"strings"
	"sync"
	"testing"
)

// bstText returns the text of msg's one BinarySecurityToken as written.
func bstText(t testing.TB, msg []byte) string {
	t.Helper()
	doc, err := parseXML(msg, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	el := doc.FindElement("//BinarySecurityToken")
	if el == nil {
		t.Fatal("no BinarySecurityToken")
	}
	text := el.Text()
	if bytes.Count(msg, []byte(text)) != 1 {
		t.Fatal("BinarySecurityToken text is not unique in the message")
	}
	return text
}

// respell writes base64 text over lines of n characters with varying white
// space, one spelling per n, all decoding to the same DER. No CR: the parser
// would copy the text to normalize it, and the issue is about the text that
// is a slice of the message.
func respell(text string, n int) string {
	text = strings.Join(strings.Fields(text), "")
	var b strings.Builder
	breaks := []string{"\n", " ", "\t", "\n  "}
	for i := 0; len(text) > n; i++ {
		b.WriteString(text[:n])
		b.WriteString(breaks[i%len(breaks)])
		text = text[n:]
	}
	b.WriteString(text)
	return b.String()
}

// memoEntries counts what a trust index remembers.
func memoEntries(ti *trustIndex) (parsed, chained int) {
	ti.parsed.Range(func(any, any) bool { parsed++; return true })
	ti.chained.Range(func(any, any) bool { chained++; return true })
	return parsed, chained
}

// TestCertificateMemoPinsNothingBeforeTrust is issue 11 class 9: messages
// refused for an untrusted certificate, the certificate spelled a new way
// each time, leave nothing in the memo and no message in memory. With the
// memo keyed by the token text (a slice of the message) every one of them
// stayed reachable: 32 x 512 KiB here, over 16 MiB.
func TestCertificateMemoPinsNothingBeforeTrust(t *testing.T) {
	const (
		messages = 32
		size     = 512 << 10
		bound    = 4 << 20 // heap growth allowed after GC: a few trees' worth of pooled scratch, not a message each
	)
	base := signedEnvelope(t, size)
	text := bstText(t, base)
	v := defaultVerifier(t)
	v.Trust = readPEMCerts(t, "untrusted-ca.pem")
	variant := func(i int) []byte {
		return bytes.Replace(base, []byte(text), []byte(respell(text, 16+i)), 1)
	}
	// Warm up: pools, the trust index, lazily built tables.
	if _, err := v.Verify(context.Background(), variant(messages)); !errors.Is(err, ErrUntrustedCertificate) {
		t.Fatalf("warm-up: err = %v, want ErrUntrustedCertificate", err)
	}
	var before, after runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&before)
	for i := range messages {
		if _, err := v.Verify(context.Background(), variant(i)); !errors.Is(err, ErrUntrustedCertificate) {
			t.Fatalf("message %d: err = %v, want ErrUntrustedCertificate", i, err)
		}
	}
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	ti := v.trust.last.Load()
	if p, c := memoEntries(ti); p != 0 || c != 0 || ti.memoized.Load() != 0 {
		t.Fatalf("memo holds %d parsed and %d chained certificates (%d counted) after refusals only", p, c, ti.memoized.Load())
	}
	growth := int64(after.HeapAlloc) - int64(before.HeapAlloc)
	t.Logf("%d refused %d KiB messages: heap growth after GC %d KiB (bound %d KiB, %.2f%% of the %d KiB sent)",
		messages, len(base)>>10, growth>>10, bound>>10, 100*float64(growth)/float64(messages*len(base)), messages*len(base)>>10)
	if growth > bound {
		t.Fatalf("heap grew by %d bytes over %d refused messages: over the %d-byte bound", growth, messages, bound)
	}
}

// TestCertificateMemoKeysOnDER: a trusted certificate spelled two ways is
// parsed once and remembered once, under the hash of its DER, in memory of
// its own; a failed chain (an expired window, a new trust set) is not.
func TestCertificateMemoKeysOnDER(t *testing.T) {
	v := defaultVerifier(t)
	base := signedEnvelope(t, 256)
	text := bstText(t, base)
	for i, msg := range [][]byte{base, bytes.Replace(base, []byte(text), []byte(respell(text, 40)), 1)} {
		if _, err := v.Verify(context.Background(), msg); err != nil && !errors.Is(err, ErrDigestMismatch) {
			// The respelled token is signed: its digest no longer matches,
			// but only after the trust check that memoizes it.
			t.Fatalf("message %d: %v", i, err)
		}
	}
	ti := v.trust.last.Load()
	p, c := memoEntries(ti)
	if p != 1 || c != 1 {
		t.Fatalf("memo holds %d parsed and %d chained certificates, want 1 and 1", p, c)
	}
	der, err := decodeBase64(text)
	if err != nil {
		t.Fatal(err)
	}
	got, ok := ti.parsed.Load(sha256.Sum256(der))
	if !ok {
		t.Fatal("the certificate is not under the hash of its DER")
	}
	cert := got.(*x509.Certificate)
	if !bytes.Equal(cert.Raw, der) {
		t.Fatal("memoized certificate differs from the one sent")
	}
	// A hit returns the remembered certificate, whatever the spelling.
	tok, err := ti.parseCertificate(respell(text, 7))
	if err != nil || tok.cert != cert || tok.memoizable {
		t.Fatalf("memo hit: %v, %v", tok, err)
	}
}

// TestCertificateMemoConcurrent races first sightings of one certificate:
// the memo ends with one parsed entry, and -race sees no data race.
func TestCertificateMemoConcurrent(t *testing.T) {
	v := defaultVerifier(t)
	msg := signedEnvelope(t, 256)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			if _, err := v.Verify(context.Background(), msg); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if p, _ := memoEntries(v.trust.last.Load()); p != 1 {
		t.Fatalf("memo holds %d parsed certificates, want 1", p)
	}
}

// FuzzCertificateMemo feeds token text to the memo: whatever it is, a
// refused or untrusted certificate is never remembered, and a remembered one
// is exactly what a fresh decode of the text gives.
func FuzzCertificateMemo(f *testing.F) {
	trusted := bstText(f, signedEnvelope(f, 64))
	f.Add(trusted)
	f.Add(respell(trusted, 9))
	f.Add("")
	f.Add("AAAA")
	f.Add(" Zm9v\n")
	f.Add(trusted[:len(trusted)/2])
	for _, name := range []string{"untrusted-leaf.pem", "weak-rsa1024.pem", "expired.pem", "keyusage.pem"} {
		f.Add(base64Of(readPEMCerts(f, name)[0].Raw))
	}
	certs := readPEMCerts(f, "trust.pem")
	f.Fuzz(func(t *testing.T, text string) {
		ti := newTrustIndex(certs)
		tok, err := ti.parseCertificate(text)
		if err != nil {
			if p, c := memoEntries(ti); p != 0 || c != 0 {
				t.Fatal("a refused token was remembered")
			}
			return
		}
		chainErr := checkSigner(tok, ti, fixedNow())
		p, c := memoEntries(ti)
		if chainErr != nil {
			if p != 0 || c != 0 {
				t.Fatalf("remembered a certificate refused with %v", chainErr)
			}
			return
		}
		if p != 1 || c != 1 {
			t.Fatalf("a trusted certificate gave %d parsed and %d chained entries", p, c)
		}
		again, err := ti.parseCertificate(text)
		if err != nil || again.cert != tok.cert {
			t.Fatalf("second lookup: %v", err)
		}
		der, _ := decodeBase64(text)
		if !bytes.Equal(again.cert.Raw, der) {
			t.Fatal("memo returned another certificate")
		}
	})
}

func base64Of(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
