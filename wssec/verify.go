package wssec

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/subtle"
	"crypto/x509"
	"fmt"
	"hash"
	"math/big"
	"strings"
	"sync"
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
// that verified are remembered. On success the Verified is a view of env's
// tree, the one the checks ran on, which the caller forwards through
// Verified.Bytes; one Release, of either, empties both.
func (v *Verifier) VerifyEnvelope(ctx context.Context, env *Envelope) (*Verified, error) {
	if env == nil || env.Envelope == nil || env.Body == nil {
		return nil, ErrNotEnvelope
	}
	if err := env.checkShape(); err != nil {
		return nil, err
	}
	now := v.now()
	security, err := securityHeader(env)
	if err != nil {
		return nil, err
	}
	dec, err := v.decryptBeforeSignature(env, security)
	if err != nil {
		return nil, err
	}
	sc := verifyScratchPool.Get().(*verifyScratch)
	defer sc.release()
	parts := &sc.parts
	if err := parts.read(security, dec.decrypting()); err != nil {
		return nil, err
	}
	if err := v.samlChildrenAllowed(parts.saml); err != nil {
		return nil, err
	}
	sig := &sc.sig
	sig.hashes = &sc.hashes
	if err := sig.parse(parts.sig, v.Policy, sc.refs[:]); err != nil {
		return nil, err
	}

	// One walk indexes every ID and refuses look-alikes outside their place.
	ids := &sc.ids
	if err := ids.indexEnvelope(env, security); err != nil {
		return nil, err
	}
	targets := sc.targets[:0]
	if len(sig.refs) > len(sc.targets) {
		targets = make([]*etree.Element, 0, len(sig.refs))
	}
	targets = targets[:len(sig.refs)]
	signed := make(map[*etree.Element]bool, len(sig.refs))
	for i, ref := range sig.refs {
		if targets[i], err = ids.lookup(ref.id); err != nil {
			return nil, err
		}
		if ref.strTransform { // the token it names is signed, not the reference
			if targets[i], err = dereferenceSTR(targets[i], security, env.Envelope, ids); err != nil {
				return nil, err
			}
		}
		signed[targets[i]] = true
	}
	// What is signed, by node identity: the Body that will be forwarded,
	// not some element that merely carries the same ID or name.
	if !signed[env.Body] {
		return nil, ErrBodyNotSigned
	}
	var ts *timestamp
	if parts.ts != nil {
		if ts, err = parseTimestamp(parts.ts); err != nil {
			return nil, err
		}
	}
	if v.Policy.requires(PartTimestamp) {
		switch {
		case ts == nil:
			return nil, ErrTimestampMissing
		case !signed[parts.ts]:
			return nil, ErrTimestampNotSigned
		}
	}
	plan, err := v.planHeaders(env, security, signed, parts.headersBuf[:0])
	if err != nil {
		return nil, err
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
	signer, trusted, err := v.verifierSigner(env, security, sig.keyInfo, now, func() (*x509.Certificate, error) {
		token, err := resolveSigner(sig.keyInfo, ids, trust)
		if err != nil {
			return nil, err
		}
		if err := checkSigner(token, trust, now); err != nil {
			return nil, err
		}
		return token.cert, nil
	})
	if err != nil {
		return nil, err
	}

	if err := sig.verifyValue(signer); err != nil {
		return nil, err
	}
	for i := range sig.refs {
		if err := sig.refs[i].verifyDigest(targets[i], sig.hashes); err != nil {
			return nil, err
		}
	}
	if err := dec.afterSignature(env, plan.forward); err != nil {
		return nil, err
	}

	assertion, samlKept, err := v.verifySAML(ctx, env, security, signer, trusted, signed, now)
	if err != nil {
		return nil, err
	}

	verified := &Verified{Envelope: env, Security: security, Signer: signer, Action: plan.action,
		Assertion: assertion}
	// plan.forward and the processed children live in sc, which goes back to
	// its pool: the Verified keeps copies.
	verified.headers = append(verified.headersBuf[:0], plan.forward...)
	if ts != nil {
		verified.Created = ts.created
	}
	if v.Users != nil {
		if verified.Username, err = v.checkUsernameToken(ctx, security, now); err != nil {
			return nil, err
		}
	}
	verified.securityKept = append(verified.keptBuf[:0],
		keepInOrder(parts.order, parts.processed(keyToken(sig.keyInfo, ids), v.Users != nil), samlKept)...)
	if v.Replay != nil {
		if err := v.checkReplay(ctx, sig, ts, signer, now); err != nil {
			return nil, err
		}
	}
	env.verified = verified
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

// verifyScratch is what one VerifyEnvelope works with and nothing it
// returns keeps, pooled: verifying a usual message then leaves about half
// the garbage (less malloc work, less heap for the scavenger to return and
// fault back in). release zeroes it, so a pooled one holds no node.
type verifyScratch struct {
	parts   securityChildren
	sig     signature
	refs    [4]reference
	ids     idIndex
	targets [4]*etree.Element
	hashes  hashCache
}

var verifyScratchPool = sync.Pool{New: func() any { return new(verifyScratch) }}

func (sc *verifyScratch) release() {
	hashes := sc.hashes
	*sc = verifyScratch{hashes: hashes}
	verifyScratchPool.Put(sc)
}

// hashCache hands out one hash per algorithm, reset, for one use at a time
// (verifyValue, then each verifyDigest), so that a pooled verifyScratch
// allocates none.
type hashCache struct {
	algs [2]crypto.Hash
	hs   [2]hash.Hash
}

func (c *hashCache) get(alg crypto.Hash) hash.Hash {
	if c == nil {
		return alg.New()
	}
	for i := range c.algs {
		switch c.algs[i] {
		case alg:
			c.hs[i].Reset()
			return c.hs[i]
		case 0:
			c.algs[i], c.hs[i] = alg, alg.New()
			return c.hs[i]
		}
	}
	return alg.New()
}

// securityChildren are the children of the processed Security header.
type securityChildren struct {
	sig, ts *etree.Element
	saml    []*etree.Element // SAML assertions and token references to them (saml.go)
	order   []*etree.Element // all of the above, in document order

	// Backing arrays: one allocation for a usual header.
	orderBuf, keptBuf, headersBuf [6]*etree.Element
}

// read finds, into the zero p, the header's one Signature, at most one
// Timestamp, and its BinarySecurityTokens and UsernameTokens; EncryptedKeys,
// where the route decrypts, are the decryptHook's. Anything else (an
// EncryptedKey on a route that does not decrypt, a ReferenceList, a SAML
// assertion, a SignatureConfirmation, a Timestamp or token in another
// namespace, text) is something wssec does not process, and a backend
// trusting the header to have been processed might act on it: refused.
func (p *securityChildren) read(security *etree.Element, decrypting bool) error {
	p.order = p.orderBuf[:0]
	for _, tok := range security.Child {
		child, ok := tok.(*etree.Element)
		if !ok {
			if !blankToken(tok) {
				return fmt.Errorf("%w: text", ErrUnprocessedSecurityElement)
			}
			continue
		}
		switch {
		case is(child, NSDSig, "Signature"):
			if p.sig != nil {
				return ErrMultipleSignatures
			}
			p.sig = child
		case is(child, NSWSU, "Timestamp"):
			if p.ts != nil {
				return fmt.Errorf("%w: more than one Timestamp", ErrTimestampMalformed)
			}
			p.ts = child
		case is(child, NSWSSE, "BinarySecurityToken"), is(child, NSWSSE, "UsernameToken"):
		case isSAMLSecurityChild(child):
			p.saml = append(p.saml, child)
		case decrypting && is(child, nsXMLEnc, "EncryptedKey"):
			continue // processed by the decryptHook, never forwarded
		default:
			return fmt.Errorf("%w: %.64s", ErrUnprocessedSecurityElement, child.Tag)
		}
		p.order = append(p.order, child)
	}
	if p.sig == nil {
		return ErrNoSignature
	}
	return nil
}

// processed returns the children of Security that verification processed,
// in document order: the Signature, the Timestamp, the token the signature's
// key came from, and the UsernameTokens when they were checked. An
// unreferenced token or an unchecked UsernameToken is never forwarded in a
// header the backend trusts to have been processed.
func (p *securityChildren) processed(key *etree.Element, usernameChecked bool) []*etree.Element {
	kept := p.keptBuf[:0]
	for _, c := range p.order {
		switch {
		case c == p.sig, c == p.ts, c == key && key != nil:
		case usernameChecked && c.Tag == "UsernameToken":
		default:
			continue
		}
		kept = append(kept, c)
	}
	return kept
}

// keyToken returns the element KeyInfo's direct token reference resolved
// to (the BinarySecurityToken resolveSigner used), or nil.
func keyToken(keyInfo *etree.Element, ids *idIndex) *etree.Element {
	str := firstChildElement(keyInfo)
	if str == nil {
		return nil
	}
	ref := firstChildElement(str)
	if !is(ref, NSWSSE, "Reference") {
		return nil
	}
	uri := ref.SelectAttrValue("URI", "")
	if len(uri) < 2 || uri[0] != '#' {
		return nil
	}
	el, err := ids.lookup(uri[1:])
	if err != nil {
		return nil
	}
	return el
}

func firstChildElement(el *etree.Element) *etree.Element {
	if el == nil {
		return nil
	}
	for _, t := range el.Child {
		if c, ok := t.(*etree.Element); ok {
			return c
		}
	}
	return nil
}

// WS-Addressing namespaces: every version counts, so that an unsigned
// header in an older one cannot pass the "addressing must be signed" policy
// and be read by a backend that speaks that version.
var addressingNamespaces = [...]string{NSWSA, NSWSA200408, NSWSA200403, NSWSA200303}

func isAddressing(ns string) bool {
	for _, a := range addressingNamespaces {
		if ns == a {
			return true
		}
	}
	return false
}

// requiredAddressing are the WS-Addressing headers a route requiring
// addressing needs present and signed; any other wsa header present must be
// signed too.
var requiredAddressing = []string{"To", "Action", "MessageID"}

// headerPlan is what verification decided about the header blocks.
type headerPlan struct {
	forward []*etree.Element // blocks to forward, in order; Security included
	action  string           // the signed wsa:Action, if any
}

// planHeaders decides which header blocks are forwarded: the processed
// Security, every block a verified reference covers, and unsigned blocks the
// route allows (Policy.ForwardUnsignedHeaders). Any other block is dropped;
// one that carries mustUnderstand (and is not SOAP 1.2's role "none") is
// refused instead, since dropping it would change what the message means.
// It also applies the WS-Addressing rules: one header of each name, in one
// version, a plain-text Action, and all of them signed where required.
func (v *Verifier) planHeaders(env *Envelope, security *etree.Element, signed map[*etree.Element]bool, buf []*etree.Element) (headerPlan, error) {
	plan := headerPlan{forward: buf}
	requireWSA := v.Policy.requires(PartAddressing)
	var wsaNS string
	var seenBuf [8]string
	seen := seenBuf[:0]
	if env.Header != nil {
		for _, t := range env.Header.Child {
			child, ok := t.(*etree.Element)
			if !ok {
				continue
			}
			ns := child.NamespaceURI()
			if isAddressing(ns) {
				if wsaNS != "" && ns != wsaNS {
					return plan, fmt.Errorf("%w: two WS-Addressing versions", ErrAddressingMalformed)
				}
				wsaNS = ns
				for _, name := range seen {
					if name == child.Tag {
						return plan, fmt.Errorf("%w: wsa:%.64s repeated", ErrAddressingMalformed, child.Tag)
					}
				}
				seen = append(seen, child.Tag)
				if child.Tag == "Action" {
					if hasChildElement(child) {
						return plan, fmt.Errorf("%w: wsa:Action holds an element", ErrAddressingMalformed)
					}
					if signed[child] {
						plan.action = strings.TrimSpace(textContent(child))
					}
				}
				if requireWSA && !signed[child] {
					return plan, fmt.Errorf("%w: wsa:%.64s", ErrAddressingNotSigned, child.Tag)
				}
			}
			switch {
			case child == security, signed[child], v.Policy.forwardsUnsigned(ns, child.Tag):
				plan.forward = append(plan.forward, child)
			case mustUnderstand(child, env.Version):
				return plan, &mustUnderstandError{HeaderName{Namespace: ns, Local: child.Tag}}
			}
		}
	}
	if requireWSA {
	required:
		for _, name := range requiredAddressing {
			for _, s := range seen {
				if s == name {
					continue required
				}
			}
			return plan, fmt.Errorf("%w: wsa:%s missing", ErrAddressingNotSigned, name)
		}
	}
	return plan, nil
}

// mustUnderstandError is ErrMustUnderstand naming the header block, so that
// a SOAP edge can write the SOAP 1.2 NotUnderstood header.
type mustUnderstandError struct{ header HeaderName }

func (e *mustUnderstandError) Error() string {
	return fmt.Sprintf("%v: {%.100s}%.64s", ErrMustUnderstand, e.header.Namespace, e.header.Local)
}

func (e *mustUnderstandError) Unwrap() error { return ErrMustUnderstand }

// NotUnderstood is the header block that was neither processed nor forwarded.
func (e *mustUnderstandError) NotUnderstood() HeaderName { return e.header }

// forwardsUnsigned reports whether the route forwards the header {ns}local
// without a signature.
func (p Policy) forwardsUnsigned(ns, local string) bool {
	for _, h := range p.ForwardUnsignedHeaders {
		if h.Namespace == ns && (h.Local == "" || h.Local == local) {
			return true
		}
	}
	return false
}

// SOAP 1.2's role for headers no node processes.
const roleNone = "http://www.w3.org/2003/05/soap-envelope/role/none"

// mustUnderstand reports whether the header block carries mustUnderstand in
// the envelope's namespace with any value other than 0 or false (a sloppy
// backend may read "TRUE" as true), and is not addressed to SOAP 1.2's none.
func mustUnderstand(block *etree.Element, version SOAPVersion) bool {
	ns := NSSOAP11
	if version == SOAP12 {
		ns = NSSOAP12
	}
	mu := false
	for i := range block.Attr {
		a := &block.Attr[i]
		if a.Space == "" || a.Space == "xmlns" || a.NamespaceURI() != ns {
			continue
		}
		switch a.Key {
		case "mustUnderstand":
			switch strings.TrimSpace(a.Value) {
			case "0", "false":
			default:
				mu = true
			}
		case "role":
			if version == SOAP12 && strings.TrimSpace(a.Value) == roleNone {
				return false
			}
		}
	}
	return mu
}

// textContent is the character data directly in el, comments skipped and
// CDATA included: what a reader of the forwarded bytes sees as one text.
func textContent(el *etree.Element) string {
	var b strings.Builder
	for _, t := range el.Child {
		if cd, ok := t.(*etree.CharData); ok {
			b.WriteString(cd.Data)
		}
	}
	return b.String()
}

// verifyValue checks SignatureValue over the canonical SignedInfo, and keeps
// the digest of the latter for the replay check.
func (sig *signature) verifyValue(cert *x509.Certificate) error {
	h := sig.hashes.get(sig.method.hash)
	if err := writeExcC14N(h, sig.signedInfo, sig.c14nPrefix); err != nil {
		return fmt.Errorf("%w: canonicalizing SignedInfo: %v", ErrMalformedSignature, err)
	}
	digest := h.Sum(sig.signedInfoSum[:0])
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
func (ref *reference) verifyDigest(target *etree.Element, hashes *hashCache) error {
	h := hashes.get(ref.hash)
	write := writeExcC14N
	if ref.strTransform {
		write = writeSTRTransform
	}
	if err := write(h, target, ref.prefixList); err != nil {
		return fmt.Errorf("%w: canonicalizing #%.64s: %v", ErrDigestMismatch, ref.id, err)
	}
	if subtle.ConstantTimeCompare(h.Sum(ref.sum[:0]), ref.digest) != 1 {
		return fmt.Errorf("%w: #%.64s", ErrDigestMismatch, ref.id)
	}
	return nil
}

// checkReplay remembers what was signed, the digest of the canonical
// SignedInfo, under the signer's key, for the message's lifetime. Not the
// SignatureValue (as WSS4J does): its encoding is malleable (ECDSA (r, s)
// and (r, n-s) both verify, base64 may be wrapped any way), what it signs is
// not. A signed Timestamp's Created is in the digest; an unsigned one is the
// sender's to change, so it is not part of the key. The entry lives at least
// the policy's TTL plus skew from now, longer if the Timestamp says so.
func (v *Verifier) checkReplay(ctx context.Context, sig *signature, ts *timestamp, signer *x509.Certificate, now time.Time) error {
	skew := v.Policy.futureSkew()
	until := now.Add(v.Policy.ttl() + skew)
	if ts != nil {
		if t := ts.created.Add(v.Policy.ttl() + skew); t.After(until) {
			until = t
		}
		if t := ts.expires.Add(skew); t.After(until) {
			until = t
		}
	}
	digest := sig.signedInfoSum[:sig.method.hash.Size()]
	key := replayKey("wsse-signedinfo", []byte{byte(sig.method.hash)}, digest, signer.RawSubjectPublicKeyInfo)
	seen, err := v.Replay.Remember(ctx, key, until)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrReplayUnavailable, err)
	}
	if seen {
		return ErrReplay
	}
	return nil
}

// Bytes writes the envelope to forward: not the message that came in, but
// one made from what verification checked (see the package doc):
//   - the Envelope start tag with its namespace declarations only;
//   - a Header, when any block is forwarded, with its namespace declarations
//     and the blocks planHeaders chose, in order; the processed Security
//     holding only what was processed, or nothing of it when stripSecurity
//     is set;
//   - the verified Body;
//
// with no comments, CDATA written as escaped text (so a text is one node),
// tabs, newlines and carriage returns in attribute values and carriage
// returns in text as character references, so that the upstream's parser
// reads exactly the values that were verified instead of normalizing them
// (XML 1.0 3.3.3, 2.11). Namespace declarations of Envelope and Header are
// all kept, so every prefix written is declared. The tree is only read.
func (v *Verified) Bytes(stripSecurity bool) ([]byte, error) {
	if v == nil || v.Envelope == nil || v.Envelope.Envelope == nil || v.Body == nil {
		return nil, ErrNotEnvelope
	}
	s := serializer{clean: true}
	s.buf.Grow(v.size + v.size/16 + 64)
	root := v.Envelope.Envelope
	s.startTag(root, true)
	n := 0
	for _, h := range v.headers {
		if h != v.Security || !stripSecurity {
			n++
		}
	}
	if n > 0 && v.Header != nil {
		s.startTag(v.Header, true)
		for _, h := range v.headers {
			switch {
			case h != v.Security:
				s.element(h)
			case !stripSecurity:
				s.startTag(h, false)
				for _, c := range v.securityKept {
					s.element(c)
				}
				s.endTag(h)
			}
		}
		s.endTag(v.Header)
	}
	s.element(v.Body)
	s.endTag(root)
	if s.bad {
		return nil, fmt.Errorf("%w: the tree holds a node the forwarded envelope cannot carry", ErrEnvelopeShape)
	}
	return s.buf.Bytes(), nil
}
