package wssec

import (
	"bytes"
	"context"
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/beevik/etree"
)

// Verification with decryption: the Security header in document order.

func encVerifier(t testing.TB, p *DecryptPolicy) *Verifier {
	return &Verifier{
		Policy: Policy{
			RequireSigned: []Part{PartBody, PartTimestamp},
			// The test envelopes carry an unsigned mustUnderstand header.
			ForwardUnsignedHeaders: []HeaderName{{Namespace: "urn:example:orders", Local: "Trace"}},
			Decrypt:                p,
		},
		Trust: goldenCerts{goldenCert(t, "ca")},
		Now:   func() time.Time { return goldenNow },
	}
}

func encGoldenFile(t testing.TB, name string) []byte {
	b, err := os.ReadFile(filepath.Join(encDir, name+".xml"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestXMLEncVerifyBothOrders(t *testing.T) {
	for _, name := range []string{"enc-sign-then-encrypt", "enc-encrypt-then-sign"} {
		t.Run(name, func(t *testing.T) {
			msg := encGoldenFile(t, name)
			v := encVerifier(t, &DecryptPolicy{Identity: gatewayEnc(t), RequireEncrypted: []Part{PartBody}})
			got, err := v.Verify(context.Background(), msg)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if !got.Signer.Equal(goldenCert(t, "partner-rsa")) {
				t.Fatal("wrong signer")
			}
			out, err := got.Bytes(false)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Contains(out, []byte("<ord:ID>42</ord:ID>")) || bytes.Contains(out, []byte("Encrypted")) {
				t.Fatalf("forwarded envelope is not the decrypted one, or keeps the EncryptedKey:\n%s", out)
			}
			if !bytes.Contains(out, []byte("ds:Signature")) {
				t.Fatalf("forwarded Security lost the processed Signature:\n%s", out)
			}
			// The same message on a route that does not decrypt.
			v.Policy.Decrypt = nil
			if _, err := v.Verify(context.Background(), msg); !errors.Is(err, ErrUnprocessedSecurityElement) {
				t.Fatalf("no decrypt policy: err = %v", err)
			}
		})
	}
}

// TestXMLEncVerifyRefusals: the attacks on the combination.
func TestXMLEncVerifyRefusals(t *testing.T) {
	id := gatewayEnc(t)
	signer := encSigner(t)
	plain := encParse(t, []byte(encPlain11), Limits{})
	other := encParse(t, []byte(strings.Replace(encPlain11, ">42<", ">666<", 1)), Limits{})
	// The same IDs in every message, so that parts can be swapped between them.
	opts := EncryptOptions{Now: encFixedNow, NewID: func() string { return "x" }}
	ste, err := SignThenEncrypt(plain, signer, id.cert, opts)
	if err != nil {
		t.Fatal(err)
	}
	ets, err := EncryptThenSign(plain, signer, id.cert, opts)
	if err != nil {
		t.Fatal(err)
	}
	signedOnly, err := signer.Sign(plain)
	if err != nil {
		t.Fatal(err)
	}
	// Anyone can encrypt for the gateway: a different Body, encrypted anew,
	// put under the signed message's header.
	forged, err := EncryptBody(other, id.cert, opts)
	if err != nil {
		t.Fatal(err)
	}
	// The Body's EncryptedData of one message in another.
	swapBody := func(into, from []byte) []byte {
		a, b := bytes.Index(into, []byte("<xenc:EncryptedData")), bytes.Index(from, []byte("<xenc:EncryptedData"))
		ia, ib := bytes.Index(into, []byte("</xenc:EncryptedData>")), bytes.Index(from, []byte("</xenc:EncryptedData>"))
		out := append([]byte{}, into[:a]...)
		out = append(out, from[b:ib]...)
		return append(out, into[ia:]...)
	}
	// The Body's ciphertext stays, the EncryptedKey is one the attacker made
	// for another session key (encrypt-then-sign leaves the key unsigned).
	swapKey := func(msg, keyFrom []byte) []byte {
		d1, d2 := etree.NewDocument(), etree.NewDocument()
		if d1.ReadFromBytes(msg) != nil || d2.ReadFromBytes(keyFrom) != nil {
			t.Fatal("parse")
		}
		ek1, ek2 := d1.FindElement("//EncryptedKey"), d2.FindElement("//EncryptedKey")
		ek2.SelectElement("ReferenceList").SelectElement("DataReference").CreateAttr("URI", ek1.SelectElement("ReferenceList").SelectElement("DataReference").SelectAttrValue("URI", ""))
		p := ek1.Parent()
		i := ek1.Index()
		p.RemoveChildAt(i)
		p.InsertChildAt(i, ek2.Copy())
		b, _ := d1.WriteToBytes()
		return b
	}
	cases := []struct {
		name string
		msg  []byte
		pol  DecryptPolicy
		want error
	}{
		{"sign-then-encrypt accepted", ste, DecryptPolicy{}, nil},
		{"encrypt-then-sign accepted", ets, DecryptPolicy{}, nil},
		{"signed but plaintext where encryption is required", signedOnly, DecryptPolicy{RequireEncrypted: []Part{PartBody}}, ErrBodyNotEncrypted},
		{"signed plaintext without the requirement", signedOnly, DecryptPolicy{}, nil},
		{"sign-then-encrypt, Body re-encrypted by the attacker", swapBody(ste, forged), DecryptPolicy{}, ErrDecryptionFailed},
		{"sign-then-encrypt, Body and key replaced by the attacker", swapKey(swapBody(ste, forged), forged), DecryptPolicy{}, ErrDigestMismatch},
		{"encrypt-then-sign, key replaced by the attacker", swapKey(ets, forged), DecryptPolicy{}, ErrDecryptionFailed},
		{"encrypt-then-sign, ciphertext replaced", swapBody(ets, forged), DecryptPolicy{}, ErrDigestMismatch},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.pol.Identity = id
			_, err := encVerifier(t, &c.pol).Verify(context.Background(), c.msg)
			if c.want == nil && err != nil || c.want != nil && !errors.Is(err, c.want) {
				t.Fatalf("err = %v, want %v", err, c.want)
			}
		})
	}
}

// TestXMLEncVerifyEncryptedHeader: a signed WS-Addressing header, encrypted
// after signing into a wsse11:EncryptedHeader, is decrypted, verified by
// identity and forwarded in its place.
func TestXMLEncVerifyEncryptedHeader(t *testing.T) {
	id := gatewayEnc(t)
	const wsa = `<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:wsa="http://www.w3.org/2005/08/addressing" xmlns:ord="urn:example:orders"><soapenv:Header><wsa:To soapenv:mustUnderstand="1">https://orders.example.com/ws</wsa:To><wsa:Action>urn:example:orders:GetOrder</wsa:Action></soapenv:Header><soapenv:Body><ord:GetOrder><ord:ID>42</ord:ID></ord:GetOrder></soapenv:Body></soapenv:Envelope>`
	signed, err := encSigner(t).Sign(encParse(t, []byte(wsa), Limits{}))
	if err != nil {
		t.Fatal(err)
	}
	doc := encParse(t, signed, Limits{}).Doc.Copy()
	err = encryptDoc(doc, id.cert, EncryptOptions{Now: encFixedNow}, func(header, body *etree.Element) []encPart {
		return []encPart{{el: header.SelectElement("wsa:To"), header: true}, {el: body, content: true}}
	})
	if err != nil {
		t.Fatal(err)
	}
	msg, _ := writeDoc(doc)
	if bytes.Contains(msg, []byte("orders.example.com")) {
		t.Fatal("wsa:To not encrypted")
	}
	got, err := encVerifier(t, &DecryptPolicy{Identity: id, RequireEncrypted: []Part{PartBody}}).Verify(context.Background(), msg)
	if err != nil {
		t.Fatalf("Verify: %v\n%s", err, msg)
	}
	out, _ := got.Bytes(true)
	if !bytes.Contains(out, []byte(`>https://orders.example.com/ws</wsa:To><wsa:Action`)) || bytes.Contains(out, []byte("EncryptedHeader")) {
		t.Fatalf("decrypted header not forwarded in place:\n%s", out)
	}
}

// TestXMLEncVerifyLookAlikeInPlaintext: decrypted content gets the same
// look-alike checks as the rest of the message, in both orders.
func TestXMLEncVerifyLookAlikeInPlaintext(t *testing.T) {
	id := gatewayEnc(t)
	evil := strings.Replace(encPlain11, `<ord:GetOrder>`, `<ord:GetOrder><soapenv:Body/>`, 1)
	for name, f := range map[string]func(*Envelope, *Signer, *x509.Certificate, EncryptOptions) ([]byte, error){
		"sign-then-encrypt": SignThenEncrypt, "encrypt-then-sign": EncryptThenSign,
	} {
		msg, err := f(encParse(t, []byte(evil), Limits{}), encSigner(t), id.cert, EncryptOptions{Now: encFixedNow})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		_, err = encVerifier(t, &DecryptPolicy{Identity: id}).Verify(context.Background(), msg)
		if !errors.Is(err, ErrLookAlike) {
			t.Errorf("%s: err = %v, want %v", name, err, ErrLookAlike)
		}
	}
}

// TestXMLEncConcurrentRelease: decrypted nodes live in the message's pooled
// arena; concurrent verifications that release their trees never see
// another message's plaintext (run with -race).
func TestXMLEncConcurrentRelease(t *testing.T) {
	id := gatewayEnc(t)
	msgs := [][]byte{encGoldenFile(t, "enc-sign-then-encrypt"), encGoldenFile(t, "enc-encrypt-then-sign")}
	want := make([][]byte, len(msgs))
	v := encVerifier(t, &DecryptPolicy{Identity: id, RequireEncrypted: []Part{PartBody}})
	for i, m := range msgs {
		got, err := v.Verify(context.Background(), m)
		if err != nil {
			t.Fatal(err)
		}
		if want[i], err = got.Bytes(true); err != nil {
			t.Fatal(err)
		}
		want[i] = bytes.Clone(want[i])
		got.Release()
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 10; i++ {
				k := (g + i) % len(msgs)
				got, err := v.Verify(context.Background(), msgs[k])
				if err != nil {
					errs <- err
					return
				}
				out, err := got.Bytes(true)
				if err == nil && !bytes.Equal(out, want[k]) {
					err = errors.New("forwarded bytes differ from a lone verification's")
				}
				got.Release()
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}
