package wssec

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/beevik/etree"
)

// addEncSeeds adds the golden encrypted messages, or (with elements set)
// their EncryptedKey, EncryptedData and ReferenceList elements, standalone.
func addEncSeeds(f *testing.F, elements bool) {
	files, _ := filepath.Glob(filepath.Join(encDir, "enc-*.xml"))
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil || len(data) > 64<<10 {
			continue
		}
		if !elements {
			f.Add(data)
			continue
		}
		doc := etree.NewDocument()
		if doc.ReadFromBytes(data) != nil {
			continue
		}
		for _, path := range []string{"//xenc:EncryptedKey", "//xenc:EncryptedData", "//xenc:ReferenceList"} {
			for _, el := range doc.FindElements(path) {
				c := etree.NewDocument()
				c.SetRoot(el.Copy())
				c.Root().CreateAttr("xmlns:xenc", NSXMLEnc)
				c.Root().CreateAttr("xmlns:ds", NSDSig)
				c.Root().CreateAttr("xmlns:wsse", NSWSSE)
				if b, err := c.WriteToBytes(); err == nil {
					f.Add(b)
				}
			}
		}
	}
}

// fuzzRoot parses data as XML with the message's parser and returns its root.
func fuzzRoot(data []byte) *etree.Element {
	doc, err := parseXMLString(string(data), Limits{}, new(arena))
	if err != nil {
		return nil
	}
	return doc.Root()
}

func FuzzParseEncryptedKey(f *testing.F) {
	addEncSeeds(f, true)
	f.Fuzz(func(t *testing.T, data []byte) {
		root := fuzzRoot(data)
		if root == nil {
			return
		}
		for _, rsa15 := range []bool{false, true} {
			ek, err := parseEncryptedKey(root, rsa15)
			if err != nil {
				continue
			}
			if ek.keyRef == nil || len(ek.cipher) == 0 || len(ek.dataRefs) == 0 || len(ek.dataRefs) > maxDataRefs {
				t.Fatalf("accepted an EncryptedKey without key reference, cipher or references: %+v", ek)
			}
			if ek.method.rsa15 && !rsa15 {
				t.Fatal("accepted RSA v1.5 without AllowRSA15")
			}
		}
	})
}

func FuzzParseEncryptedData(f *testing.F) {
	addEncSeeds(f, true)
	f.Fuzz(func(t *testing.T, data []byte) {
		root := fuzzRoot(data)
		if root == nil {
			return
		}
		for _, cbc := range []bool{false, true} {
			ed, err := parseEncryptedData(root, cbc, 1<<20)
			if err != nil {
				continue
			}
			if ed.typ != TypeContent && ed.typ != TypeElement || len(ed.value) == 0 || len(ed.value) > 1<<20 {
				t.Fatalf("accepted a bad EncryptedData: type %q, %d bytes", ed.typ, len(ed.value))
			}
			if !ed.cipher.gcm && !cbc {
				t.Fatal("accepted CBC without AllowCBC")
			}
		}
	})
}

func FuzzParseReferenceList(f *testing.F) {
	addEncSeeds(f, true)
	f.Fuzz(func(t *testing.T, data []byte) {
		root := fuzzRoot(data)
		if root == nil {
			return
		}
		refs, err := parseReferenceList(root)
		if err != nil {
			return
		}
		if len(refs) == 0 || len(refs) > maxDataRefs {
			t.Fatalf("accepted %d references", len(refs))
		}
		for _, r := range refs {
			if r == "" {
				t.Fatal("accepted an empty reference")
			}
		}
	})
}

func FuzzDecodeCipherValue(f *testing.F) {
	f.Add("AAAA", 16)
	f.Add("QUJD\nREVG\r\n R0g=", 6)
	f.Add("====", 10)
	f.Add("", 0)
	f.Fuzz(func(t *testing.T, text string, max int) {
		if max < 0 || max > 1<<20 {
			return
		}
		v, err := decodeCipherValue(text, max)
		if err == nil && (len(v) == 0 || len(v) > max) {
			t.Fatalf("decoded %d bytes with max %d", len(v), max)
		}
	})
}

// FuzzDecrypt runs whole messages through decryption: no panic, and what
// decrypts leaves no EncryptedData behind and keeps the Body in place.
func FuzzDecrypt(f *testing.F) {
	addEncSeeds(f, false)
	id := gatewayEnc(f)
	f.Fuzz(func(t *testing.T, msg []byte) {
		env, err := ParseEnvelope(msg, Limits{MaxElements: 5000})
		if err != nil {
			return
		}
		defer env.Release()
		p := DecryptPolicy{Identity: id, AllowRSA15: true, AllowCBC: true}
		d, err := p.Decrypt(env, Limits{MaxElements: 5000})
		if err != nil {
			return
		}
		if findEncrypted(env.Envelope) != nil || env.Body.Parent() != env.Envelope {
			t.Fatal("decryption left ciphertext or moved the Body")
		}
		if countElements(env.Envelope) > 5000 {
			t.Fatal("decryption exceeded the element limit")
		}
		_ = d
	})
}

// FuzzVerifyDecrypt runs whole messages through verification with
// decryption on: anything accepted was signed by the partner over the very
// Body that is forwarded, holds no ciphertext, and serializes.
func FuzzVerifyDecrypt(f *testing.F) {
	addEncSeeds(f, false)
	id := gatewayEnc(f)
	trust := goldenCerts{goldenCert(f, "ca")}
	f.Fuzz(func(t *testing.T, msg []byte) {
		v := &Verifier{
			Policy: Policy{
				RequireSigned:          []Part{PartBody, PartTimestamp},
				Limits:                 Limits{MaxElements: 5000},
				ForwardUnsignedHeaders: []HeaderName{{Namespace: "urn:example:orders"}},
				Decrypt:                &DecryptPolicy{Identity: id, AllowRSA15: true, AllowCBC: true},
			},
			Trust: trust,
			Now:   func() time.Time { return goldenNow },
		}
		res, err := v.Verify(context.Background(), msg)
		if err != nil {
			return
		}
		defer res.Release()
		if res.Signer == nil || res.Body == nil || res.Body.Parent() != res.Envelope.Envelope || findEncrypted(res.Envelope.Envelope) != nil {
			t.Fatal("accepted a message without a signer, with a detached Body or with ciphertext left")
		}
		if _, err := res.Bytes(false); err != nil {
			t.Fatalf("accepted a message it cannot forward: %v", err)
		}
	})
}
