package wssec

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"strings"
	"testing"
	"time"
)

// signatureValueText returns the text of msg's one SignatureValue as written.
func signatureValueText(t *testing.T, msg []byte) string {
	t.Helper()
	doc, err := parseXML(msg, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	el := doc.FindElement("//SignatureValue")
	if el == nil {
		t.Fatal("no SignatureValue")
	}
	text := el.Text()
	if bytes.Count(msg, []byte(text)) != 1 {
		t.Fatal("SignatureValue text is not unique in the message")
	}
	return text
}

// withSignatureValue returns msg with its SignatureValue text replaced.
func withSignatureValue(t *testing.T, msg []byte, text string) []byte {
	t.Helper()
	return bytes.Replace(msg, []byte(signatureValueText(t, msg)), []byte(text), 1)
}

// highLowS re-encodes an ECDSA r || s value as r || n-s, the other
// signature of the same message under the same key.
func highLowS(t *testing.T, value []byte, pub *ecdsa.PublicKey) []byte {
	t.Helper()
	size := (pub.Curve.Params().BitSize + 7) / 8
	if len(value) != 2*size {
		t.Fatalf("ECDSA value of %d bytes", len(value))
	}
	s := new(big.Int).SetBytes(value[size:])
	s.Sub(pub.Curve.Params().N, s)
	out := bytes.Clone(value)
	s.FillBytes(out[size:])
	return out
}

// rewrap spells base64 text over lines of n characters, with the CR LF,
// tab and space line breaks a sender may use.
func rewrap(text string, n int) string {
	text = strings.Join(strings.Fields(text), "")
	var b strings.Builder
	b.WriteString("\n\t")
	for len(text) > n {
		b.WriteString(text[:n])
		b.WriteString("\r\n  ")
		text = text[n:]
	}
	b.WriteString(text)
	b.WriteString("\n")
	return b.String()
}

// noncanonical sets the unused low bits of the last base64 character before
// "==", which lenient decoders (Go's, Java's) ignore: other text, same bytes.
func noncanonical(t *testing.T, text string) string {
	t.Helper()
	text = strings.TrimSpace(text)
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
	i := len(text) - 3
	if !strings.HasSuffix(text, "==") || strings.IndexByte(alphabet, text[i])&0xF != 0 {
		t.Fatalf("%q does not end in a canonical one-byte group", text)
	}
	return text[:i] + string(alphabet[strings.IndexByte(alphabet, text[i])|0x5]) + "=="
}

// TestReplayMalleableEncodings: the replay cache keys on what was signed,
// so a second encoding of the same signature over the same SignedInfo is a
// replay, though each verifies on its own.
func TestReplayMalleableEncodings(t *testing.T) {
	ecdsaMsg := goldenMessage(t, "valid-soap11-ecdsa")
	pub := goldenCert(t, "partner-ecdsa").PublicKey.(*ecdsa.PublicKey)
	value, err := base64.StdEncoding.DecodeString(strings.TrimSpace(signatureValueText(t, ecdsaMsg)))
	if err != nil {
		t.Fatal(err)
	}
	flipped := highLowS(t, value, pub)
	if bytes.Equal(flipped, value) {
		t.Fatal("n-s is s")
	}
	rsaMsg := goldenMessage(t, "valid-soap11-rsa")

	tests := []struct {
		name          string
		first, second []byte
	}{
		{"ecdsa s then n-s", ecdsaMsg, withSignatureValue(t, ecdsaMsg, base64.StdEncoding.EncodeToString(flipped))},
		{"ecdsa n-s then s", withSignatureValue(t, ecdsaMsg, base64.StdEncoding.EncodeToString(flipped)), ecdsaMsg},
		{"ecdsa n-s wrapped", ecdsaMsg, withSignatureValue(t, ecdsaMsg, rewrap(base64.StdEncoding.EncodeToString(flipped), 8))},
		{"rsa base64 wrapped at 64", rsaMsg, withSignatureValue(t, rsaMsg, rewrap(signatureValueText(t, rsaMsg), 64))},
		{"rsa base64 wrapped at 76 then 4", withSignatureValue(t, rsaMsg, rewrap(signatureValueText(t, rsaMsg), 76)),
			withSignatureValue(t, rsaMsg, rewrap(signatureValueText(t, rsaMsg), 4))},
		{"rsa base64 padding bits", rsaMsg, withSignatureValue(t, rsaMsg, noncanonical(t, signatureValueText(t, rsaMsg)))},
		{"ecdsa base64 padding bits", ecdsaMsg, withSignatureValue(t, ecdsaMsg, noncanonical(t, signatureValueText(t, ecdsaMsg)))},
		{"rsa base64 with references", rsaMsg, withSignatureValue(t, rsaMsg, "&#10;"+strings.TrimSpace(signatureValueText(t, rsaMsg))+"&#13;&#10;&#9;")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if bytes.Equal(tt.first, tt.second) {
				t.Fatal("the two messages are the same bytes")
			}
			// Each verifies on its own: this is a replay, not a forgery.
			for i, msg := range [][]byte{tt.first, tt.second} {
				v := goldenVerifier(t, goldenCase{})
				v.Replay = NewMemoryReplayCache(v.Now)
				if _, err := v.Verify(context.Background(), msg); err != nil {
					t.Fatalf("message %d alone: %v", i+1, err)
				}
			}
			cache := NewMemoryReplayCache(func() time.Time { return goldenNow })
			for i, want := range []error{nil, ErrReplay} {
				v := goldenVerifier(t, goldenCase{})
				v.Replay = cache
				_, err := v.Verify(context.Background(), [][]byte{tt.first, tt.second}[i])
				if !errors.Is(err, want) {
					t.Fatalf("message %d with a shared cache: err = %v, want %v", i+1, err, want)
				}
			}
		})
	}
}

// signTestClock is signTestVerifier's clock, for its replay caches.
func signTestClock() time.Time { return signTestNow.Add(time.Minute) }

// TestReplayDistinctSignedContent: messages that differ in what was signed
// are not replays of each other, while the same SignedInfo signed twice
// (ECDSA: another random k, another value) is.
func TestReplayDistinctSignedContent(t *testing.T) {
	sign := func(body string, seed byte) []byte {
		s := signTestSigner(t, "partner-ecdsa")
		s.Rand = mrand.NewChaCha8([32]byte{seed}) // ECDSA's randomness
		n := 0
		s.NewID = func() string { n++; return fmt.Sprint("id-", n) } // the same IDs every time
		out, err := s.Sign(signTestParse(t, strings.Replace(signTestEnv11, "42", body, 1)))
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	cache := NewMemoryReplayCache(signTestClock)
	verify := func(msg []byte) error {
		v := signTestVerifier(t)
		v.Replay = cache
		_, err := v.Verify(context.Background(), msg)
		return err
	}
	a, b := sign("42", 1), sign("43", 1)
	if err := verify(a); err != nil {
		t.Fatal(err)
	}
	if err := verify(b); err != nil {
		t.Fatalf("a message with another Body: %v", err)
	}
	// The same IDs, clock and Body, other ECDSA randomness: the same
	// SignedInfo under another value.
	again := sign("42", 2)
	if signatureValueText(t, again) == signatureValueText(t, a) {
		t.Fatal("two ECDSA signatures with different randomness are equal")
	}
	if err := verify(again); !errors.Is(err, ErrReplay) {
		t.Fatalf("the same SignedInfo signed again: err = %v, want ErrReplay", err)
	}
}

// TestReplayUsernameTokenNonce: the UsernameToken nonce cache is separate
// from the signature's and still refuses a reused nonce in a message whose
// signature is new.
func TestReplayUsernameTokenNonce(t *testing.T) {
	sign := func(body string, seed byte) []byte {
		s := signTestSigner(t, "partner-rsa")
		s.Rand = mrand.NewChaCha8([32]byte{seed}) // the seed fixes the nonce
		s.UsernameToken = &UsernameTokenOptions{Username: "alice", Password: "secret", Digest: true}
		out, err := s.Sign(signTestParse(t, strings.Replace(signTestEnv11, "42", body, 1)))
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	nonceOf := func(msg []byte) string {
		doc, err := parseXML(msg, Limits{})
		if err != nil {
			t.Fatal(err)
		}
		return doc.FindElement("//UsernameToken/Nonce").Text()
	}
	first, sameNonce, otherNonce := sign("42", 7), sign("43", 7), sign("44", 8)
	if nonceOf(first) != nonceOf(sameNonce) || nonceOf(first) == nonceOf(otherNonce) {
		t.Fatal("the seeds do not give the nonces this test needs")
	}
	cache := NewMemoryReplayCache(signTestClock)
	verify := func(msg []byte, replay ReplayCache) error {
		v := signTestVerifier(t)
		v.Users = goldenUsers{"alice": "secret"}
		v.Replay = replay
		_, err := v.Verify(context.Background(), msg)
		return err
	}
	if err := verify(sameNonce, NewMemoryReplayCache(signTestClock)); err != nil {
		t.Fatalf("the second message alone: %v", err)
	}
	if err := verify(first, cache); err != nil {
		t.Fatal(err)
	}
	if err := verify(sameNonce, cache); !errors.Is(err, ErrReplay) {
		t.Fatalf("a reused nonce under a new signature: err = %v, want ErrReplay", err)
	}
	if err := verify(otherNonce, cache); err != nil {
		t.Fatalf("a fresh nonce: %v", err)
	}
}

// FuzzReplayReencoded re-encodes a golden SignatureValue (ECDSA: s or n-s;
// white space of any kind anywhere in the base64): every such message
// verifies on its own and is a replay of the original.
func FuzzReplayReencoded(f *testing.F) {
	type golden struct {
		msg   []byte
		value []byte
		pub   *ecdsa.PublicKey
	}
	var messages []golden
	for _, name := range []string{"valid-soap11-rsa", "valid-soap11-ecdsa", "valid-soap12-rsa"} {
		msg := goldenMessage(f, name)
		doc, err := parseXML(msg, Limits{})
		if err != nil {
			f.Fatal(err)
		}
		value, err := decodeBase64(doc.FindElement("//SignatureValue").Text())
		if err != nil {
			f.Fatal(err)
		}
		g := golden{msg: msg, value: value}
		if strings.Contains(name, "ecdsa") {
			g.pub = goldenCert(f, "partner-ecdsa").PublicKey.(*ecdsa.PublicKey)
		}
		messages = append(messages, g)
	}
	f.Add(uint8(1), true, uint16(0), uint8(0), uint16(0))
	f.Add(uint8(0), false, uint16(17), uint8(9), uint16(40))
	f.Add(uint8(2), true, uint16(300), uint8(255), uint16(3))
	f.Fuzz(func(t *testing.T, which uint8, flipS bool, pos uint16, ws uint8, pos2 uint16) {
		g := messages[int(which)%len(messages)]
		value := g.value
		if flipS && g.pub != nil {
			value = highLowS(t, value, g.pub)
		}
		enc := base64.StdEncoding.EncodeToString(value)
		insert := func(s string, at uint16, w uint8) string {
			i := int(at) % (len(s) + 1)
			return s[:i] + strings.Repeat(string(" \t\n\r"[w%4]), int(w/4%4)+1) + s[i:]
		}
		enc = insert(insert(enc, pos, ws), pos2, ws/16)
		variant := withSignatureValue(t, g.msg, enc)
		alone := goldenVerifier(t, goldenCase{})
		alone.Replay = NewMemoryReplayCache(alone.Now)
		if _, err := alone.Verify(context.Background(), variant); err != nil {
			t.Fatalf("re-encoded %q alone: %v", enc, err)
		}
		cache := NewMemoryReplayCache(alone.Now)
		for i, msg := range [][]byte{g.msg, variant} {
			v := goldenVerifier(t, goldenCase{})
			v.Replay = cache
			_, err := v.Verify(context.Background(), msg)
			if want := []error{nil, ErrReplay}[i]; !errors.Is(err, want) {
				t.Fatalf("message %d (%q): err = %v, want %v", i+1, enc, err, want)
			}
		}
	})
}
