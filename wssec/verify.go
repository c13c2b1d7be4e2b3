package wssec

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/subtle"
	"crypto/x509"
	"fmt"
	"math/big"
	"time"

	"github.com/beevik/etree"
)

// Verify parses msg and verifies it; see VerifyEnvelope.
func (v *Verifier) Verify(ctx context.Context, msg []byte) (*Verified, error) {
	env, err := ParseEnvelope(msg, v.Policy.Limits)
	if err != nil {
		return nil, err
	}
	verified, err := v.VerifyEnvelope(ctx, env)
	if err != nil {
		env.Release() // errors carry strings only, never nodes
		return nil, err
	}
	return verified, nil
}

// VerifyEnvelope checks env's WS-Security header against the policy and
// returns what it verified. The order is cheap checks first (shape,
// algorithms, ID resolution, what is signed, freshness, trust), then the
// signature and digests, and the replay cache last, so that only messages
// that verified are remembered. On success the Verified shares env's tree:
// the caller must forward that tree, which is the one the checks ran on.
func (v *Verifier) VerifyEnvelope(ctx context.Context, env *Envelope) (*Verified, error) {
	if env == nil || env.Envelope == nil || env.Body == nil {
		return nil, ErrNotEnvelope
	}
	now := v.now()
	security, err := securityHeader(env)
	if err != nil {
		return nil, err
	}
	sigEl, tsEl, err := securityParts(security)
	if err != nil {
		return nil, err
	}
	sig, err := parseSignature(sigEl, v.Policy)
	if err != nil {
		return nil, err
	}

	ids := buildIDIndex(env.Envelope)
	targets := make([]*etree.Element, len(sig.refs))
	signed := make(map[*etree.Element]bool, len(sig.refs))
	for i, ref := range sig.refs {
		if targets[i], err = ids.lookup(ref.id); err != nil {
			return nil, err
		}
		signed[targets[i]] = true
	}
	// What is signed, by node identity: the Body that will be forwarded,
	// not some element that merely carries the same ID or name.
	if !signed[env.Body] {
		return nil, ErrBodyNotSigned
	}
	var ts *timestamp
	if tsEl != nil {
		if ts, err = parseTimestamp(tsEl); err != nil {
			return nil, err
		}
	}
	if v.Policy.requires(PartTimestamp) {
		switch {
		case ts == nil:
			return nil, ErrTimestampMissing
		case !signed[tsEl]:
			return nil, ErrTimestampNotSigned
		}
	}
	if v.Policy.requires(PartAddressing) {
		if err := addressingSigned(env, signed); err != nil {
			return nil, err
		}
	}
	if ts != nil {
		if err := ts.checkFreshness(v.Policy, now); err != nil {
			return nil, err
		}
	}

	if v.Trust == nil {
		return nil, fmt.Errorf("%w: no trust source configured", ErrTrustUnavailable)
	}
	certs, err := v.Trust.Certificates()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTrustUnavailable, err)
	}
	trust := v.trust.get(certs)
	token, err := resolveSigner(sig.keyInfo, ids, trust)
	if err != nil {
		return nil, err
	}
	if err := checkSigner(token, trust, now); err != nil {
		return nil, err
	}
	signer := token.cert

	if err := sig.verifyValue(signer); err != nil {
		return nil, err
	}
	for i := range sig.refs {
		if err := sig.refs[i].verifyDigest(targets[i]); err != nil {
			return nil, err
		}
	}

	verified := &Verified{Envelope: env, Security: security, Signer: signer}
	if ts != nil {
		verified.Created = ts.created
	}
	if v.Users != nil {
		if verified.Username, err = v.checkUsernameToken(ctx, security, now); err != nil {
			return nil, err
		}
	}
	if v.Replay != nil {
		if err := v.checkReplay(ctx, sig, ts, signer, now); err != nil {
			return nil, err
		}
	}
	return verified, nil
}

func (v *Verifier) now() time.Time {
	if v.Now != nil {
		return v.Now()
	}
	return time.Now()
}

// securityHeader returns the single wsse:Security header. A second one, for
// any actor, is refused: it is a classic place to hide a second Timestamp or
// Signature that a different component might process.
func securityHeader(env *Envelope) (*etree.Element, error) {
	if env.Header == nil {
		return nil, ErrNoSecurityHeader
	}
	var security *etree.Element
	for _, child := range childElements(env.Header) {
		if is(child, NSWSSE, "Security") {
			if security != nil {
				return nil, ErrMultipleSecurityHeaders
			}
			security = child
		}
	}
	if security == nil {
		return nil, ErrNoSecurityHeader
	}
	return security, nil
}

// securityParts returns the header's one Signature and at most one Timestamp.
func securityParts(security *etree.Element) (sig, ts *etree.Element, err error) {
	for _, child := range childElements(security) {
		switch {
		case is(child, NSDSig, "Signature"):
			if sig != nil {
				return nil, nil, ErrMultipleSignatures
			}
			sig = child
		case is(child, NSWSU, "Timestamp"):
			if ts != nil {
				return nil, nil, fmt.Errorf("%w: more than one Timestamp", ErrTimestampMalformed)
			}
			ts = child
		}
	}
	if sig == nil {
		return nil, nil, ErrNoSignature
	}
	return sig, ts, nil
}

// requiredAddressing are the WS-Addressing headers a route requiring
// addressing needs present and signed; any other wsa header present must be
// signed too.
var requiredAddressing = []string{"To", "Action", "MessageID"}

func addressingSigned(env *Envelope, signed map[*etree.Element]bool) error {
	seen := map[string]bool{}
	if env.Header != nil {
		for _, child := range childElements(env.Header) {
			if child.NamespaceURI() != NSWSA {
				continue
			}
			if seen[child.Tag] {
				return fmt.Errorf("%w: wsa:%s repeated", ErrAddressingNotSigned, child.Tag)
			}
			seen[child.Tag] = true
			if !signed[child] {
				return fmt.Errorf("%w: wsa:%s", ErrAddressingNotSigned, child.Tag)
			}
		}
	}
	for _, name := range requiredAddressing {
		if !seen[name] {
			return fmt.Errorf("%w: wsa:%s missing", ErrAddressingNotSigned, name)
		}
	}
	return nil
}

// verifyValue checks SignatureValue over the canonical SignedInfo.
func (sig *signature) verifyValue(cert *x509.Certificate) error {
	h := sig.method.hash.New()
	if err := writeExcC14N(h, sig.signedInfo, sig.c14nPrefix); err != nil {
		return fmt.Errorf("%w: canonicalizing SignedInfo: %v", ErrMalformedSignature, err)
	}
	var sum [64]byte
	digest := h.Sum(sum[:0])
	switch pub := cert.PublicKey.(type) {
	case *rsa.PublicKey:
		if sig.method.key != keyRSA {
			break
		}
		if rsa.VerifyPKCS1v15(pub, sig.method.hash, digest, sig.value) != nil {
			return ErrInvalidSignature
		}
		return nil
	case *ecdsa.PublicKey:
		if sig.method.key != keyECDSA {
			break
		}
		// XML-DSig 1.1: the value is r || s, each the curve's byte length.
		size := (pub.Curve.Params().BitSize + 7) / 8
		if len(sig.value) != 2*size {
			return fmt.Errorf("%w: ECDSA value has the wrong length", ErrInvalidSignature)
		}
		r := new(big.Int).SetBytes(sig.value[:size])
		s := new(big.Int).SetBytes(sig.value[size:])
		if !ecdsa.Verify(pub, digest, r, s) {
			return ErrInvalidSignature
		}
		return nil
	}
	return fmt.Errorf("%w: SignatureMethod does not match the signer's key type", ErrInvalidSignature)
}

// verifyDigest compares the reference's DigestValue with the digest of the
// canonical form of the element it resolved to, hashed as it is written.
func (ref *reference) verifyDigest(target *etree.Element) error {
	h := ref.hash.New()
	if err := writeExcC14N(h, target, ref.prefixList); err != nil {
		return fmt.Errorf("%w: canonicalizing #%.64s: %v", ErrDigestMismatch, ref.id, err)
	}
	var sum [64]byte
	if subtle.ConstantTimeCompare(h.Sum(sum[:0]), ref.digest) != 1 {
		return fmt.Errorf("%w: #%.64s", ErrDigestMismatch, ref.id)
	}
	return nil
}

// checkReplay remembers (Created, SignatureValue, signer key) for the
// message's lifetime, as WSS4J does, but under a cryptographic hash.
func (v *Verifier) checkReplay(ctx context.Context, sig *signature, ts *timestamp, signer *x509.Certificate, now time.Time) error {
	skew := v.Policy.futureSkew()
	until := now.Add(v.Policy.ttl() + skew)
	var created []byte
	if ts != nil {
		created = []byte(ts.createdRaw)
		until = ts.created.Add(v.Policy.ttl() + skew)
		if ts.expires.Add(skew).After(until) {
			until = ts.expires.Add(skew)
		}
	}
	key := replayKey("wsse-signature", created, sig.value, signer.RawSubjectPublicKeyInfo)
	seen, err := v.Replay.Remember(ctx, key, until)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrReplayUnavailable, err)
	}
	if seen {
		return ErrReplay
	}
	return nil
}

// Bytes serializes the verified envelope, without the processed Security
// header when stripSecurity is set. It detaches the header only for the
// duration of the call, so it must not run concurrently with other users of
// the same tree.
func (v *Verified) Bytes(stripSecurity bool) ([]byte, error) {
	if stripSecurity && v.Security != nil && v.Security.Parent() != nil {
		parent, index := v.Security.Parent(), v.Security.Index()
		parent.RemoveChildAt(index)
		defer parent.InsertChildAt(index, v.Security)
	}
	// Escape tabs, newlines and carriage returns in attribute values and
	// carriage returns in text as character references, so that the
	// upstream's parser reads exactly the values that were verified instead
	// of normalizing them to spaces (XML 1.0 3.3.3, 2.11).
	// serializeDoc writes what etree's WriteTo would with these settings.
	v.Doc.WriteSettings = etree.WriteSettings{CanonicalAttrVal: true, CanonicalText: true}
	return serializeDoc(v.Doc, v.size), nil
}
