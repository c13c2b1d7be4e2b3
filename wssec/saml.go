package wssec

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"slices"
	"strings"
	"time"

	"github.com/beevik/etree"
	dsig "github.com/russellhaering/goxmldsig"
	"github.com/russellhaering/goxmldsig/etreeutils"
)

// SAML 2.0 and SAML Token Profile 1.1 names.
const (
	NSSAML2 = "urn:oasis:names:tc:SAML:2.0:assertion"

	// Subject confirmation methods (SAML 2.0 profiles, section 3).
	ConfirmHolderOfKey   = "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key"
	ConfirmSenderVouches = "urn:oasis:names:tc:SAML:2.0:cm:sender-vouches"
	ConfirmBearer        = "urn:oasis:names:tc:SAML:2.0:cm:bearer"

	// ValueTypeSAMLID is the KeyIdentifier ValueType naming a SAML 2.0
	// assertion by its ID, as WSS4J writes it.
	ValueTypeSAMLID = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLID"
	// TokenTypeSAML20 is the wsse11:TokenType of a SAML 2.0 token reference.
	TokenTypeSAML20 = "http://docs.oasis-open.org/wss/oasis-wss-saml-token-profile-1.1#SAMLV2.0"

	nsSAML1p = "urn:oasis:names:tc:SAML:1.0:assertion"

	samlEncodingBase64 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-soap-message-security-1.0#Base64Binary"
	samlMinRSABits     = 2048
)

// SAML failures. Each wraps, where the client sees it, the sentinel whose
// WS-Security fault it gets (FaultCode): token-level problems are
// wsse:InvalidSecurityToken, a token that does not authenticate this
// message to this route is wsse:FailedAuthentication.
var (
	ErrSAMLMissing      = errors.New("wssec: required SAML assertion is missing")
	ErrSAMLMalformed    = errors.New("wssec: SAML assertion is malformed or unsupported")
	ErrSAMLSignature    = errors.New("wssec: SAML assertion signature is missing or does not verify")
	ErrSAMLIssuer       = errors.New("wssec: SAML assertion is not signed by a trusted issuer")
	ErrSAMLExpired      = errors.New("wssec: SAML assertion is expired or not yet valid")
	ErrSAMLAudience     = errors.New("wssec: SAML assertion is not for this audience")
	ErrSAMLConfirmation = errors.New("wssec: SAML subject confirmation failed")
	ErrSAMLWrapping     = errors.New("wssec: SAML assertion is misplaced, repeated or wrapped")
	ErrSAMLComment      = errors.New("wssec: comment inside a SAML assertion")
	ErrSAMLTrustMissing = errors.New("wssec: SAML issuer trust anchors are not available")
)

// confirmationURI expands the shorthands SAMLPolicy.Confirmation accepts.
func confirmationURI(name string) (string, bool) {
	switch name {
	case "holder-of-key", ConfirmHolderOfKey:
		return ConfirmHolderOfKey, true
	case "sender-vouches", ConfirmSenderVouches:
		return ConfirmSenderVouches, true
	case "bearer", ConfirmBearer:
		return ConfirmBearer, true
	}
	return "", false
}

// SAMLPolicy is a route's policy for SAML 2.0 assertions carried in the
// wsse:Security header (SAML Token Profile 1.1).
type SAMLPolicy struct {
	// Trust holds the certificates allowed to sign assertions: pinned
	// issuer certificates or CAs they chain to. Required.
	Trust CertificateSource
	// Audience lists this route's audience URIs; every AudienceRestriction
	// of an assertion must name one of them. Empty refuses every assertion.
	Audience []string
	// Confirmation lists the accepted subject confirmation methods, as URIs
	// or as "holder-of-key", "sender-vouches", "bearer". Empty means
	// holder-of-key and sender-vouches: bearer is accepted only when listed.
	Confirmation []string
	// Required refuses a message that carries no assertion.
	Required bool
	// Skew is the clock skew allowed on NotBefore / NotOnOrAfter (default 60s).
	Skew time.Duration
	// AllowSHA1 accepts RSA-SHA1 and SHA-1 digests in assertion signatures.
	AllowSHA1 bool
	// Revocation, when set, is consulted for the issuer's certificate.
	Revocation RevocationSource
}

// Assertion is what was learnt from a verified assertion. Every value comes
// from goxmldsig's validated copy of the assertion, never from the message.
type Assertion struct {
	ID     string
	Issuer string
	// Subject is the NameID text, whole (all its text, no comment accepted).
	Subject       string
	SubjectFormat string
	// Attributes maps an Attribute's Name to its AttributeValues in order.
	Attributes map[string][]string
	// Confirmation is the subject confirmation method that was satisfied.
	Confirmation string
	NotOnOrAfter time.Time
	// IssuerCert is the certificate that signed the assertion.
	IssuerCert *x509.Certificate
	// OneTimeUse reports a OneTimeUse condition: the caller must remember
	// the ID until NotOnOrAfter and refuse it a second time.
	OneTimeUse bool
}

// SAMLMessage is what message-level verification established, against
// which subject confirmation is checked.
type SAMLMessage struct {
	// SignerKey is the public key that made the (verified) message
	// signature; nil when the message is not signed.
	SignerKey crypto.PublicKey
	// SignerTrusted reports that the signer chains to the route's message
	// trust set (soap.trust) and is not revoked: sender-vouches needs it.
	SignerTrusted bool
	// Signed reports whether the message signature covered an element, by
	// node identity.
	Signed func(*etree.Element) bool
	// Body is the envelope's Body, the one forwarded.
	Body *etree.Element
}

// SubjectAttribute is the name Assertion.Values gives the Subject NameID,
// as forward_attributes spells it.
const SubjectAttribute = "NameID"

// Values returns what an assertion says under name: the NameID for
// SubjectAttribute, else the values of the Attribute with that Name. The
// gateway maps them to upstream headers (forward_attributes).
func (a *Assertion) Values(name string) []string {
	if name == SubjectAttribute {
		return []string{a.Subject}
	}
	return a.Attributes[name]
}

func (p *SAMLPolicy) skew() time.Duration {
	if p.Skew > 0 {
		return p.Skew
	}
	return 60 * time.Second
}

func (p *SAMLPolicy) allows(method string) bool {
	list := p.Confirmation
	if len(list) == 0 {
		list = []string{ConfirmHolderOfKey, ConfirmSenderVouches}
	}
	for _, m := range list {
		if full, ok := confirmationURI(m); ok && full == method {
			return true
		}
	}
	return false
}

// Check reports every problem of the policy at once, for configuration
// checks: no trust source, no audience (which refuses every assertion), an
// unknown confirmation method.
func (p *SAMLPolicy) Check() error {
	var errs []error
	if p.Trust == nil {
		errs = append(errs, errors.New("saml: trust is required"))
	}
	if len(p.Audience) == 0 {
		errs = append(errs, errors.New("saml: audience is required"))
	}
	for _, c := range p.Confirmation {
		if !ValidConfirmation(c) {
			errs = append(errs, fmt.Errorf("saml: unknown confirmation %q (holder-of-key, sender-vouches, bearer)", c))
		}
	}
	if p.Skew < 0 {
		errs = append(errs, errors.New("saml: skew must not be negative"))
	}
	return errors.Join(errs...)
}

// ValidConfirmation reports whether name is a confirmation method
// SAMLPolicy.Confirmation accepts (for configuration checks).
func ValidConfirmation(name string) bool {
	_, ok := confirmationURI(name)
	return ok
}

// Verify processes the SAML assertion of a message whose Security header is
// security: it returns nil, nil when there is none and none is required.
// The message must already have been verified at the message level; msg
// says what that established. now is the verification clock.
func (p *SAMLPolicy) Verify(root, security *etree.Element, msg SAMLMessage, now time.Time) (*Assertion, error) {
	return p.verify(root, security, msg, now, p.Revocation)
}

// verify is Verify with the revocation source for the issuer.
func (p *SAMLPolicy) verify(root, security *etree.Element, msg SAMLMessage, now time.Time, rev RevocationSource) (*Assertion, error) {
	el, err := findAssertion(root, security)
	if err != nil {
		return nil, err
	}
	if el == nil {
		if p.Required {
			return nil, classify(ErrAuthenticationFailed, ErrSAMLMissing)
		}
		return nil, nil
	}
	tok, err := p.verifyAssertion(root, el, now, rev)
	if err != nil {
		return nil, err
	}
	if err := tok.confirm(p, security, el, msg, now); err != nil {
		return nil, err
	}
	return tok.Assertion, nil
}

// findAssertion returns the one SAML 2.0 assertion of the message, a direct
// child of the processed Security header, or nil. An assertion anywhere
// else (another header, a wrapper, the Body, a ds:Object, another
// assertion's Advice), a second one, or a SAML 1.x or encrypted assertion
// is refused: each is a place where something other than wsgate (the
// backend, its dumbest XPath) could find an assertion wsgate did not check.
func findAssertion(root, security *etree.Element) (*etree.Element, error) {
	var found *etree.Element
	var walkErr error
	var walk func(el *etree.Element)
	walk = func(el *etree.Element) {
		for _, t := range el.Child {
			child, ok := t.(*etree.Element)
			if !ok || walkErr != nil {
				continue
			}
			if child.Tag != "Assertion" && child.Tag != "EncryptedAssertion" {
				walk(child) // resolve namespaces only where the name matches
				continue
			}
			switch ns := child.NamespaceURI(); {
			case ns == NSSAML2 && child.Tag == "Assertion":
				switch {
				case el != security:
					walkErr = invalidSAML(ErrSAMLWrapping, "assertion inside %s", el.Tag)
				case found != nil:
					walkErr = invalidSAML(ErrSAMLWrapping, "more than one assertion")
				default:
					found = child
				}
			case ns == NSSAML2 && child.Tag == "EncryptedAssertion", ns == nsSAML1p && child.Tag == "Assertion":
				walkErr = invalidSAML(ErrSAMLMalformed, "%s %s is not supported", ns, child.Tag)
			}
			walk(child)
		}
	}
	walk(root)
	if walkErr != nil {
		return nil, walkErr
	}
	return found, nil
}

// samlToken is an assertion whose signature, issuer, conditions and
// audience have been verified, with its subject confirmations still to check.
type samlToken struct {
	*Assertion
	confirmations []subjectConfirmation
}

type subjectConfirmation struct {
	method string
	keys   []hokKey // holder-of-key keys from SubjectConfirmationData/KeyInfo
}

// hokKey is a holder-of-key key, with its certificate when one was sent.
type hokKey struct {
	pub  crypto.PublicKey
	cert *x509.Certificate // nil for a KeyValue
}

// classified is err that also answers errors.Is for class, the sentinel
// FaultCode maps to the client's fault, without class's text in the log
// line (ErrAuthenticationFailed says "UsernameToken").
type classified struct{ err, class error }

func (c *classified) Error() string   { return c.err.Error() }
func (c *classified) Unwrap() []error { return []error{c.err, c.class} }

func classify(class, err error) error { return &classified{err: err, class: class} }

func invalidSAML(sentinel error, format string, args ...any) error {
	return classify(ErrInvalidToken, fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, args...)))
}

func failedSAML(sentinel error, format string, args ...any) error {
	return classify(ErrAuthenticationFailed, fmt.Errorf("%w: %s", sentinel, fmt.Sprintf(format, args...)))
}

// verifyAssertion checks el, an assertion in the message tree rooted at
// root: the shape of its signature and its issuer certificate here, the
// signature itself with goxmldsig, then everything else on goxmldsig's
// validated copy only.
func (p *SAMLPolicy) verifyAssertion(root, el *etree.Element, now time.Time, rev RevocationSource) (*samlToken, error) {
	if err := refuseComments(el); err != nil {
		return nil, err
	}
	id := el.SelectAttrValue("ID", "")
	if id == "" || el.SelectAttrValue("Version", "") != "2.0" {
		return nil, invalidSAML(ErrSAMLMalformed, "assertion needs Version 2.0 and an ID")
	}
	if n := countID(root, id); n != 1 {
		return nil, classify(ErrInvalidToken, fmt.Errorf("%w: assertion ID %.64q appears %d times", ErrDuplicateID, id, n))
	}
	sigEl, err := p.checkAssertionSignatureShape(el, id)
	if err != nil {
		return nil, err
	}
	cert, err := p.issuerCertificate(sigEl, now, rev)
	if err != nil {
		return nil, err
	}

	// goxmldsig works on a detached copy that declares the namespaces in
	// scope (a prefix may be declared on the Envelope), so that its
	// exclusive canonicalization sees what the issuer signed.
	nsCtx, err := etreeutils.NSBuildParentContext(el)
	if err != nil {
		return nil, invalidSAML(ErrSAMLMalformed, "namespaces: %v", err)
	}
	detached, err := etreeutils.NSDetatch(nsCtx, el)
	if err != nil {
		return nil, invalidSAML(ErrSAMLMalformed, "namespaces: %v", err)
	}
	ctx := dsig.NewDefaultValidationContext(&dsig.MemoryX509CertificateStore{Roots: []*x509.Certificate{cert}})
	ctx.IdAttribute = "ID"
	ctx.Clock = dsig.NewFakeClockAt(now)
	validated, err := ctx.Validate(detached)
	if err != nil {
		return nil, invalidSAML(ErrSAMLSignature, "%v", err)
	}
	// From here on only the validated copy is read.
	a, err := parseValidatedAssertion(validated, id)
	if err != nil {
		return nil, err
	}
	a.IssuerCert = cert
	if err := p.checkConditions(validated, a, now); err != nil {
		return nil, err
	}
	confs, err := subjectConfirmations(validated, p.skew(), now)
	if err != nil {
		return nil, err
	}
	return &samlToken{Assertion: a, confirmations: confs}, nil
}

// refuseComments refuses a comment anywhere in the assertion. Exclusive
// canonicalization drops comments, so `admin@corp<!---->.evil` digests as
// `admin@corp.evil` while a parser that reads the first text node sees
// `admin@corp` (CVE-2017-11427 and its family). wsgate itself reads the
// whole canonical text, but the assertion may travel on to the backend.
func refuseComments(el *etree.Element) error {
	for _, t := range el.Child {
		switch c := t.(type) {
		case *etree.Comment:
			return invalidSAML(ErrSAMLComment, "inside %s", el.Tag)
		case *etree.ProcInst, *etree.Directive:
			return invalidSAML(ErrSAMLMalformed, "processing instruction or directive inside %s", el.Tag)
		case *etree.Element:
			if err := refuseComments(c); err != nil {
				return err
			}
		}
	}
	return nil
}

// countID counts the elements of the tree carrying value as an ID-like
// attribute (ID, Id, id, AssertionID, in any namespace: wsu:Id, xml:id).
func countID(root *etree.Element, value string) int {
	n := 0
	for _, a := range root.Attr {
		switch a.Key {
		case "ID", "Id", "id", "AssertionID":
			if a.Value == value {
				n++
			}
		}
	}
	for _, t := range root.Child {
		if child, ok := t.(*etree.Element); ok {
			n += countID(child, value)
		}
	}
	return n
}

// samlSignatureMethods are the assertion signature algorithms accepted.
// goxmldsig verifies ECDSA as ASN.1, not as XML-DSig's r||s, so ECDSA
// assertion signatures are not offered.
func samlSignatureMethod(alg string, allowSHA1 bool) bool {
	switch alg {
	case "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
		"http://www.w3.org/2001/04/xmldsig-more#rsa-sha384",
		"http://www.w3.org/2001/04/xmldsig-more#rsa-sha512":
		return true
	}
	return allowSHA1 && alg == algRSASHA1
}

func samlDigestMethod(alg string, allowSHA1 bool) bool {
	switch alg {
	case "http://www.w3.org/2001/04/xmlenc#sha256",
		"http://www.w3.org/2001/04/xmldsig-more#sha384",
		"http://www.w3.org/2001/04/xmlenc#sha512":
		return true
	}
	return allowSHA1 && alg == algSHA1
}

const (
	algRSASHA1       = "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
	algSHA1          = "http://www.w3.org/2000/09/xmldsig#sha1"
	algEnveloped     = "http://www.w3.org/2000/09/xmldsig#enveloped-signature"
	algExcC14NString = "http://www.w3.org/2001/10/xml-exc-c14n#"
)

// checkAssertionSignatureShape requires what SAML core 5.4 prescribes and
// nothing else: one ds:Signature, a child of the assertion, with exclusive
// c14n, one Reference to the assertion's own ID, the enveloped and exc-c14n
// transforms, allow-listed algorithms, and no other ds:Signature anywhere in
// the assertion. Each element is required exactly once, so that goxmldsig's
// encoding/xml reading of the signature cannot see another one than this.
func (p *SAMLPolicy) checkAssertionSignatureShape(el *etree.Element, id string) (*etree.Element, error) {
	var sigEl *etree.Element
	for _, child := range samlChildren(el) {
		if samlIs(child, NSDSig, "Signature") {
			if sigEl != nil {
				return nil, invalidSAML(ErrSAMLSignature, "more than one Signature")
			}
			sigEl = child
		}
	}
	if sigEl == nil {
		return nil, invalidSAML(ErrSAMLSignature, "assertion %.64q is not signed", id)
	}
	if n := countSignatures(el); n != 1 {
		return nil, invalidSAML(ErrSAMLWrapping, "%d ds:Signature elements inside the assertion", n)
	}
	kids := samlChildren(sigEl)
	if len(kids) < 2 || len(kids) > 3 || !samlIs(kids[0], NSDSig, "SignedInfo") || !samlIs(kids[1], NSDSig, "SignatureValue") ||
		(len(kids) == 3 && !samlIs(kids[2], NSDSig, "KeyInfo")) {
		return nil, invalidSAML(ErrSAMLSignature, "Signature must be SignedInfo, SignatureValue, KeyInfo")
	}
	si := samlChildren(kids[0])
	if len(si) != 3 || !samlIs(si[0], NSDSig, "CanonicalizationMethod") || !samlIs(si[1], NSDSig, "SignatureMethod") ||
		!samlIs(si[2], NSDSig, "Reference") {
		return nil, invalidSAML(ErrSAMLSignature, "SignedInfo must hold one Reference")
	}
	if alg := si[0].SelectAttrValue("Algorithm", ""); alg != algExcC14NString {
		return nil, fmt.Errorf("%w: %w: assertion SignedInfo c14n %.100q", ErrUnsupportedAlgorithm, ErrSAMLSignature, alg)
	}
	if alg := si[1].SelectAttrValue("Algorithm", ""); !samlSignatureMethod(alg, p.AllowSHA1) ||
		len(samlChildren(si[1])) != 0 {
		return nil, fmt.Errorf("%w: %w: assertion SignatureMethod %.100q", ErrUnsupportedAlgorithm, ErrSAMLSignature, alg)
	}
	ref := si[2]
	if ref.SelectAttrValue("URI", "") != "#"+id {
		return nil, invalidSAML(ErrSAMLWrapping, "the assertion signature references %.64q, not #%.64s",
			ref.SelectAttrValue("URI", ""), id)
	}
	rk := samlChildren(ref)
	if len(rk) != 3 || !samlIs(rk[0], NSDSig, "Transforms") || !samlIs(rk[1], NSDSig, "DigestMethod") ||
		!samlIs(rk[2], NSDSig, "DigestValue") {
		return nil, invalidSAML(ErrSAMLSignature, "Reference needs Transforms, DigestMethod, DigestValue")
	}
	tr := samlChildren(rk[0])
	if len(tr) != 2 || !samlIs(tr[0], NSDSig, "Transform") || !samlIs(tr[1], NSDSig, "Transform") ||
		tr[0].SelectAttrValue("Algorithm", "") != algEnveloped || tr[1].SelectAttrValue("Algorithm", "") != algExcC14NString ||
		len(samlChildren(tr[0])) != 0 {
		return nil, fmt.Errorf("%w: %w: assertion Transforms must be enveloped-signature, exc-c14n", ErrUnsupportedAlgorithm, ErrSAMLSignature)
	}
	if alg := rk[1].SelectAttrValue("Algorithm", ""); !samlDigestMethod(alg, p.AllowSHA1) {
		return nil, fmt.Errorf("%w: %w: assertion DigestMethod %.100q", ErrUnsupportedAlgorithm, ErrSAMLSignature, alg)
	}
	return sigEl, nil
}

func countSignatures(el *etree.Element) int {
	n := 0
	if samlIs(el, NSDSig, "Signature") {
		n++
	}
	for _, child := range samlChildren(el) {
		n += countSignatures(child)
	}
	return n
}

// issuerCertificate returns the certificate in the assertion signature's
// KeyInfo (or the one trusted certificate when there is no KeyInfo) once it
// has been checked: a pinned issuer certificate or one chaining to
// SAMLPolicy.Trust, valid now, RSA of at least 2048 bits, not revoked.
func (p *SAMLPolicy) issuerCertificate(sigEl *etree.Element, now time.Time, rev RevocationSource) (*x509.Certificate, error) {
	if p.Trust == nil {
		return nil, fmt.Errorf("%w: %w", ErrTrustUnavailable, ErrSAMLTrustMissing)
	}
	trusted, err := p.Trust.Certificates()
	if err != nil {
		return nil, fmt.Errorf("%w: %w: %v", ErrTrustUnavailable, ErrSAMLTrustMissing, err)
	}
	var cert *x509.Certificate
	kids := samlChildren(sigEl)
	if len(kids) == 3 {
		ki := samlChildren(kids[2])
		if len(ki) != 1 || !samlIs(ki[0], NSDSig, "X509Data") {
			return nil, invalidSAML(ErrSAMLIssuer, "assertion KeyInfo must hold one X509Data")
		}
		xd := samlChildren(ki[0])
		if len(xd) != 1 || !samlIs(xd[0], NSDSig, "X509Certificate") {
			return nil, invalidSAML(ErrSAMLIssuer, "assertion X509Data must hold one X509Certificate")
		}
		der, err := samlBase64(xd[0])
		if err != nil {
			return nil, invalidSAML(ErrSAMLIssuer, "X509Certificate is not base64")
		}
		if cert, err = x509.ParseCertificate(der); err != nil {
			return nil, invalidSAML(ErrSAMLIssuer, "%v", err)
		}
	} else {
		if len(trusted) != 1 {
			return nil, invalidSAML(ErrSAMLIssuer, "assertion signature has no KeyInfo and several issuers are trusted")
		}
		cert = trusted[0]
	}
	pub, ok := cert.PublicKey.(*rsa.PublicKey)
	if !ok {
		return nil, invalidSAML(ErrSAMLIssuer, "issuer key is %T, not RSA", cert.PublicKey)
	}
	if pub.N.BitLen() < samlMinRSABits {
		return nil, fmt.Errorf("%w: %w: issuer RSA-%d", ErrWeakKey, ErrSAMLIssuer, pub.N.BitLen())
	}
	if cert.KeyUsage != 0 && cert.KeyUsage&(x509.KeyUsageDigitalSignature|x509.KeyUsageContentCommitment) == 0 {
		return nil, fmt.Errorf("%w: %w: the issuer certificate may not sign", ErrCertificateKeyUsage, ErrSAMLIssuer)
	}
	if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
		return nil, fmt.Errorf("%w: %w: issuer certificate valid %s to %s", ErrCertificateExpired, ErrSAMLIssuer,
			cert.NotBefore.UTC().Format(time.RFC3339), cert.NotAfter.UTC().Format(time.RFC3339))
	}
	if !slices.ContainsFunc(trusted, cert.Equal) {
		roots := x509.NewCertPool()
		for _, c := range trusted {
			roots.AddCert(c)
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: roots, CurrentTime: now,
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
			return nil, invalidSAML(ErrSAMLIssuer, "%v", err)
		}
	}
	if rev != nil {
		if err := CheckRevocation(rev, cert, now); err != nil {
			return nil, err
		}
	}
	return cert, nil
}

// parseValidatedAssertion reads ID, Issuer and Subject NameID from the
// validated copy and its attribute statements.
func parseValidatedAssertion(a *etree.Element, id string) (*Assertion, error) {
	if a == nil || !samlIs(a, NSSAML2, "Assertion") || a.SelectAttrValue("ID", "") != id {
		return nil, invalidSAML(ErrSAMLSignature, "the validated copy is not the assertion %.64q", id)
	}
	out := &Assertion{ID: id, Attributes: map[string][]string{}}
	var issuers, subjects int
	for _, child := range samlChildren(a) {
		if child.NamespaceURI() != NSSAML2 {
			return nil, invalidSAML(ErrSAMLMalformed, "unexpected %s in assertion", child.Tag)
		}
		switch child.Tag {
		case "Issuer":
			issuers++
			v, err := samlValue(child)
			if err != nil {
				return nil, err
			}
			out.Issuer = v
		case "Subject":
			subjects++
			for _, s := range samlChildren(child) {
				switch {
				case samlIs(s, NSSAML2, "NameID"):
					if out.Subject != "" {
						return nil, invalidSAML(ErrSAMLMalformed, "more than one NameID")
					}
					v, err := samlValue(s)
					if err != nil {
						return nil, err
					}
					if v == "" {
						return nil, invalidSAML(ErrSAMLMalformed, "empty NameID")
					}
					out.Subject, out.SubjectFormat = v, s.SelectAttrValue("Format", "")
				case samlIs(s, NSSAML2, "SubjectConfirmation"):
				default:
					// BaseID, EncryptedID: nothing wsgate could forward.
					return nil, invalidSAML(ErrSAMLMalformed, "unsupported %s in Subject", s.Tag)
				}
			}
		case "AttributeStatement":
			if err := readAttributes(child, out.Attributes); err != nil {
				return nil, err
			}
		case "Advice":
			// Nested assertions: one more place to hide an unchecked one.
			return nil, invalidSAML(ErrSAMLWrapping, "Advice is not accepted")
		case "Conditions", "AuthnStatement", "AuthzDecisionStatement":
		default:
			return nil, invalidSAML(ErrSAMLMalformed, "unsupported %s in assertion", child.Tag)
		}
	}
	if issuers != 1 || out.Issuer == "" {
		return nil, invalidSAML(ErrSAMLMalformed, "assertion needs one Issuer")
	}
	if subjects != 1 {
		return nil, invalidSAML(ErrSAMLMalformed, "assertion needs one Subject")
	}
	return out, nil
}

func readAttributes(stmt *etree.Element, into map[string][]string) error {
	for _, attr := range samlChildren(stmt) {
		if !samlIs(attr, NSSAML2, "Attribute") {
			return invalidSAML(ErrSAMLMalformed, "unsupported %s in AttributeStatement", attr.Tag)
		}
		name := attr.SelectAttrValue("Name", "")
		if name == "" || strings.ContainsFunc(name, isControl) {
			return invalidSAML(ErrSAMLMalformed, "Attribute without a usable Name")
		}
		values := into[name]
		for _, v := range samlChildren(attr) {
			if !samlIs(v, NSSAML2, "AttributeValue") {
				return invalidSAML(ErrSAMLMalformed, "unsupported %s in Attribute", v.Tag)
			}
			s, err := samlValue(v)
			if err != nil {
				return err
			}
			values = append(values, s)
		}
		into[name] = values
	}
	return nil
}

// checkConditions applies Conditions: the validity window (with skew),
// AudienceRestriction, OneTimeUse. An unknown condition is refused, as SAML
// core 2.5.1 makes the assertion Indeterminate.
func (p *SAMLPolicy) checkConditions(a *etree.Element, out *Assertion, now time.Time) error {
	var cond *etree.Element
	for _, child := range samlChildren(a) {
		if samlIs(child, NSSAML2, "Conditions") {
			if cond != nil {
				return invalidSAML(ErrSAMLMalformed, "more than one Conditions")
			}
			cond = child
		}
	}
	if cond == nil {
		return invalidSAML(ErrSAMLExpired, "assertion has no Conditions, so no NotOnOrAfter")
	}
	notBefore, notOnOrAfter, err := samlWindow(cond)
	if err != nil {
		return err
	}
	if notOnOrAfter.IsZero() {
		return invalidSAML(ErrSAMLExpired, "Conditions has no NotOnOrAfter")
	}
	if err := inWindow(notBefore, notOnOrAfter, now, p.skew()); err != nil {
		return err
	}
	out.NotOnOrAfter = notOnOrAfter
	restrictions := 0
	for _, c := range samlChildren(cond) {
		switch {
		case samlIs(c, NSSAML2, "AudienceRestriction"):
			restrictions++
			ok := false
			for _, aud := range samlChildren(c) {
				if !samlIs(aud, NSSAML2, "Audience") {
					return invalidSAML(ErrSAMLMalformed, "unsupported %s in AudienceRestriction", aud.Tag)
				}
				v, err := samlValue(aud)
				if err != nil {
					return err
				}
				ok = ok || slices.Contains(p.Audience, v)
			}
			if !ok {
				return failedSAML(ErrSAMLAudience, "no Audience of the restriction is this route's")
			}
		case samlIs(c, NSSAML2, "OneTimeUse"):
			out.OneTimeUse = true
		case samlIs(c, NSSAML2, "ProxyRestriction"):
			// About re-issuing assertions, which wsgate never does.
		default:
			return invalidSAML(ErrSAMLMalformed, "unsupported condition %s", c.Tag)
		}
	}
	if restrictions == 0 || len(p.Audience) == 0 {
		return failedSAML(ErrSAMLAudience, "an AudienceRestriction naming this route is required")
	}
	return nil
}

func samlWindow(el *etree.Element) (notBefore, notOnOrAfter time.Time, err error) {
	parse := func(name string) (time.Time, error) {
		a := el.SelectAttr(name)
		if a == nil {
			return time.Time{}, nil
		}
		t, err := time.Parse(time.RFC3339Nano, a.Value)
		if err != nil {
			return time.Time{}, invalidSAML(ErrSAMLMalformed, "%s %.40q", name, a.Value)
		}
		return t, nil
	}
	if notBefore, err = parse("NotBefore"); err != nil {
		return
	}
	notOnOrAfter, err = parse("NotOnOrAfter")
	return
}

func inWindow(notBefore, notOnOrAfter, now time.Time, skew time.Duration) error {
	if !notBefore.IsZero() && now.Add(skew).Before(notBefore) {
		return invalidSAML(ErrSAMLExpired, "not before %s", notBefore.UTC().Format(time.RFC3339))
	}
	if !notOnOrAfter.IsZero() && !now.Add(-skew).Before(notOnOrAfter) {
		return invalidSAML(ErrSAMLExpired, "not on or after %s", notOnOrAfter.UTC().Format(time.RFC3339))
	}
	return nil
}

// subjectConfirmations reads the Subject's confirmations; one whose
// SubjectConfirmationData window excludes now is dropped.
func subjectConfirmations(a *etree.Element, skew time.Duration, now time.Time) ([]subjectConfirmation, error) {
	var out []subjectConfirmation
	for _, subj := range samlChildren(a) {
		if !samlIs(subj, NSSAML2, "Subject") {
			continue
		}
		for _, sc := range samlChildren(subj) {
			if !samlIs(sc, NSSAML2, "SubjectConfirmation") {
				continue
			}
			c := subjectConfirmation{method: sc.SelectAttrValue("Method", "")}
			usable := true
			for _, data := range samlChildren(sc) {
				switch {
				case samlIs(data, NSSAML2, "SubjectConfirmationData"):
					nb, noa, err := samlWindow(data)
					if err != nil {
						return nil, err
					}
					if inWindow(nb, noa, now, skew) != nil {
						usable = false
					}
					for _, ki := range samlChildren(data) {
						if samlIs(ki, NSDSig, "KeyInfo") {
							keys, err := keyInfoKeys(ki)
							if err != nil {
								return nil, err
							}
							c.keys = append(c.keys, keys...)
						}
					}
				case samlIs(data, NSSAML2, "NameID"), samlIs(data, NSSAML2, "BaseID"):
					// A confirming entity other than the subject: not supported.
					usable = false
				}
			}
			if usable {
				out = append(out, c)
			}
		}
	}
	return out, nil
}

// keyInfoKeys returns the keys of a holder-of-key ds:KeyInfo: X509Data
// certificates and RSA KeyValues.
func keyInfoKeys(ki *etree.Element) ([]hokKey, error) {
	var keys []hokKey
	for _, child := range samlChildren(ki) {
		switch {
		case samlIs(child, NSDSig, "X509Data"):
			for _, c := range samlChildren(child) {
				if !samlIs(c, NSDSig, "X509Certificate") {
					continue
				}
				der, err := samlBase64(c)
				if err != nil {
					return nil, invalidSAML(ErrSAMLMalformed, "holder-of-key certificate is not base64")
				}
				cert, err := x509.ParseCertificate(der)
				if err != nil {
					return nil, invalidSAML(ErrSAMLMalformed, "holder-of-key certificate: %v", err)
				}
				keys = append(keys, hokKey{pub: cert.PublicKey, cert: cert})
			}
		case samlIs(child, NSDSig, "KeyValue"):
			for _, kv := range samlChildren(child) {
				if !samlIs(kv, NSDSig, "RSAKeyValue") {
					continue
				}
				key, err := rsaKeyValue(kv)
				if err != nil {
					return nil, err
				}
				keys = append(keys, hokKey{pub: key})
			}
		}
	}
	return keys, nil
}

func rsaKeyValue(kv *etree.Element) (*rsa.PublicKey, error) {
	var mod, exp []byte
	for _, c := range samlChildren(kv) {
		b, err := samlBase64(c)
		if err != nil {
			return nil, invalidSAML(ErrSAMLMalformed, "RSAKeyValue is not base64")
		}
		switch {
		case samlIs(c, NSDSig, "Modulus"):
			mod = b
		case samlIs(c, NSDSig, "Exponent"):
			exp = b
		}
	}
	e := new(big.Int).SetBytes(exp)
	if len(mod) == 0 || !e.IsInt64() || e.Int64() < 3 || e.Int64() > 1<<31-1 {
		return nil, invalidSAML(ErrSAMLMalformed, "RSAKeyValue needs a Modulus and a small Exponent")
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(mod), E: int(e.Int64())}, nil
}

// confirm checks that one of the assertion's subject confirmations that the
// route allows holds for this message:
//   - holder-of-key: the message signature was made with a key the
//     assertion names in SubjectConfirmationData/ds:KeyInfo;
//   - sender-vouches: the message signer is trusted by the route's message
//     trust set and signed the Body and the assertion, directly (a
//     Reference to its ID) or through a SecurityTokenReference in the
//     Security header whose SAMLID KeyIdentifier names it;
//   - bearer: the assertion itself suffices, where the route lists bearer.
func (t *samlToken) confirm(p *SAMLPolicy, security, el *etree.Element, msg SAMLMessage, now time.Time) error {
	signed := msg.Signed
	if signed == nil {
		signed = func(*etree.Element) bool { return false }
	}
	var tried []string
	for _, c := range t.confirmations {
		if !p.allows(c.method) {
			tried = append(tried, c.method+" (not allowed on this route)")
			continue
		}
		switch c.method {
		case ConfirmHolderOfKey:
			if msg.SignerKey != nil && slices.ContainsFunc(c.keys, func(k hokKey) bool { return sameKey(k.pub, msg.SignerKey) }) {
				t.Confirmation = c.method
				return nil
			}
			tried = append(tried, "holder-of-key (the message was not signed with the subject's key)")
		case ConfirmSenderVouches:
			if msg.SignerKey != nil && msg.SignerTrusted && msg.Body != nil && signed(msg.Body) &&
				(signed(el) || samlSignedReference(security, t.ID, signed)) {
				t.Confirmation = c.method
				return nil
			}
			tried = append(tried, "sender-vouches (the trusted signer did not sign both the assertion and the Body)")
		case ConfirmBearer:
			t.Confirmation = c.method
			return nil
		default:
			tried = append(tried, fmt.Sprintf("%.100q (unknown)", c.method))
		}
	}
	if len(tried) == 0 {
		return failedSAML(ErrSAMLConfirmation, "no usable SubjectConfirmation")
	}
	return failedSAML(ErrSAMLConfirmation, "%s", strings.Join(tried, "; "))
}

// samlSignedReference reports whether a signed SecurityTokenReference, a
// direct child of the Security header, names the assertion id by a SAMLID
// KeyIdentifier (WSS4J) or by a local wsse:Reference.
func samlSignedReference(security *etree.Element, id string, signed func(*etree.Element) bool) bool {
	for _, str := range samlChildren(security) {
		if !samlIs(str, NSWSSE, "SecurityTokenReference") || !signed(str) {
			continue
		}
		if got, ok := strAssertionID(str); ok && got == id {
			return true
		}
	}
	return false
}

// strAssertionID returns the assertion ID a SecurityTokenReference names,
// if it names one: KeyIdentifier ValueType SAMLID, or a wsse:Reference
// "#ID" under TokenType SAMLV2.0.
func strAssertionID(str *etree.Element) (string, bool) {
	refs := samlChildren(str)
	if len(refs) != 1 {
		return "", false
	}
	ref := refs[0]
	switch {
	case samlIs(ref, NSWSSE, "KeyIdentifier") && ref.SelectAttrValue("ValueType", "") == ValueTypeSAMLID:
		if enc := ref.SelectAttrValue("EncodingType", ""); enc != "" && enc != samlEncodingBase64 {
			return "", false
		}
		v, err := samlValue(ref)
		return v, err == nil && v != ""
	case samlIs(ref, NSWSSE, "Reference") && strTokenType(str) == TokenTypeSAML20:
		uri := ref.SelectAttrValue("URI", "")
		if len(uri) > 1 && uri[0] == '#' {
			return uri[1:], true
		}
	}
	return "", false
}

func strTokenType(str *etree.Element) string {
	for _, a := range str.Attr {
		if a.Key == "TokenType" && a.NamespaceURI() == NSWSSE11 {
			return a.Value
		}
	}
	return ""
}

// sameKey reports whether two public keys are equal.
func sameKey(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

// samlValue returns an element's whole text: every text node, concatenated,
// trimmed of XML white space. An element child is refused, as is a control
// character, which has no business in a name and could split a header.
func samlValue(el *etree.Element) (string, error) {
	var b strings.Builder
	for _, t := range el.Child {
		switch c := t.(type) {
		case *etree.CharData:
			b.WriteString(c.Data)
		case *etree.Element:
			return "", invalidSAML(ErrSAMLMalformed, "element inside %s", el.Tag)
		case *etree.Comment:
			return "", invalidSAML(ErrSAMLComment, "inside %s", el.Tag)
		}
	}
	v := strings.Trim(b.String(), " \t\r\n")
	if strings.ContainsFunc(v, isControl) {
		return "", invalidSAML(ErrSAMLMalformed, "control character in %s", el.Tag)
	}
	return v, nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

func samlBase64(el *etree.Element) ([]byte, error) {
	s := strings.Map(func(r rune) rune {
		switch r {
		case ' ', '\t', '\r', '\n':
			return -1
		}
		return r
	}, el.Text())
	return base64.StdEncoding.DecodeString(s)
}

func samlIs(el *etree.Element, ns, local string) bool {
	return el.Tag == local && el.NamespaceURI() == ns
}

func samlChildren(el *etree.Element) []*etree.Element {
	var out []*etree.Element
	for _, t := range el.Child {
		if c, ok := t.(*etree.Element); ok {
			out = append(out, c)
		}
	}
	return out
}

// samlKeyInfoAssertion returns the assertion ID a message signature's
// KeyInfo names (a holder-of-key signature whose key is the assertion's
// subject key), if it names one.
func samlKeyInfoAssertion(keyInfo *etree.Element) (string, bool) {
	if keyInfo == nil {
		return "", false
	}
	kids := samlChildren(keyInfo)
	if len(kids) != 1 || !samlIs(kids[0], NSWSSE, "SecurityTokenReference") {
		return "", false
	}
	return strAssertionID(kids[0])
}

// HolderOfKeySigner is for a message whose signature's KeyInfo names the
// assertion (holder-of-key, as WSS4J writes it): it verifies the assertion
// and returns the holder-of-key certificate that must have made the message
// signature (for a KeyValue, a certificate carrying only the key). ok is
// false when keyInfo does not name an assertion. The caller verifies the
// message signature with it, then runs Verify, which accepts the assertion
// as holder-of-key (the key did not come from the message trust set, so
// sender-vouches cannot hold).
func (p *SAMLPolicy) HolderOfKeySigner(root, security, keyInfo *etree.Element, now time.Time) (cert *x509.Certificate, ok bool, err error) {
	return p.holderOfKeySigner(root, security, keyInfo, now, p.Revocation)
}

func (p *SAMLPolicy) holderOfKeySigner(root, security, keyInfo *etree.Element, now time.Time, rev RevocationSource) (*x509.Certificate, bool, error) {
	id, named := samlKeyInfoAssertion(keyInfo)
	if !named {
		return nil, false, nil
	}
	el, err := findAssertion(root, security)
	if err != nil {
		return nil, true, err
	}
	if el == nil || el.SelectAttrValue("ID", "") != id {
		return nil, true, fmt.Errorf("%w: the signature's key names assertion %.64q, which is not in the Security header", ErrTokenUnavailable, id)
	}
	tok, err := p.verifyAssertion(root, el, now, rev)
	if err != nil {
		return nil, true, err
	}
	if !p.allows(ConfirmHolderOfKey) {
		return nil, true, failedSAML(ErrSAMLConfirmation, "holder-of-key is not allowed on this route")
	}
	for _, c := range tok.confirmations {
		if c.method != ConfirmHolderOfKey || len(c.keys) != 1 {
			continue
		}
		k := c.keys[0]
		if err := checkHolderKey(k, now); err != nil {
			return nil, true, err
		}
		if k.cert != nil {
			return k.cert, true, nil
		}
		spki, err := x509.MarshalPKIXPublicKey(k.pub)
		if err != nil {
			return nil, true, invalidSAML(ErrSAMLMalformed, "holder-of-key key: %v", err)
		}
		return &x509.Certificate{PublicKey: k.pub, RawSubjectPublicKeyInfo: spki}, true, nil
	}
	return nil, true, failedSAML(ErrSAMLConfirmation, "the assertion names no single holder-of-key key")
}

// checkHolderKey applies the message signer's key rules to a holder-of-key
// key the issuer vouched for: strength, and validity when it came as a
// certificate.
func checkHolderKey(k hokKey, now time.Time) error {
	if known, err := checkKeyStrength(k.pub, samlMinRSABits, "holder-of-key "); !known {
		return invalidSAML(ErrSAMLMalformed, "holder-of-key key type %T", k.pub)
	} else if err != nil {
		return err
	}
	if k.cert != nil && (now.Before(k.cert.NotBefore) || now.After(k.cert.NotAfter)) {
		return fmt.Errorf("%w: holder-of-key certificate", ErrCertificateExpired)
	}
	return nil
}

// isSAMLSecurityChild reports whether a child of the Security header is one
// the SAML step processes: the assertion and token references to it.
func isSAMLSecurityChild(el *etree.Element) bool {
	if samlIs(el, NSSAML2, "Assertion") {
		return true
	}
	if samlIs(el, NSWSSE, "SecurityTokenReference") {
		_, ok := strAssertionID(el)
		return ok
	}
	return false
}

// samlChildrenAllowed is VerifyEnvelope's early check of the SAML children
// of Security: on a route without a SAML policy they are elements wssec
// does not process, refused like any other.
func (v *Verifier) samlChildrenAllowed(children []*etree.Element) error {
	if v.SAML == nil && len(children) > 0 {
		return fmt.Errorf("%w: %.64s (no SAML policy on this route)", ErrUnprocessedSecurityElement, children[0].Tag)
	}
	return nil
}

// verifierSigner is the hook VerifyEnvelope calls to resolve the message
// signer: the holder-of-key key when KeyInfo names the assertion (SAML
// routes only), else resolve (the X.509 path, trust set and chain); then
// the revocation source. trusted reports the X.509 path.
func (v *Verifier) verifierSigner(env *Envelope, security, keyInfo *etree.Element, now time.Time,
	resolve func() (*x509.Certificate, error)) (signer *x509.Certificate, trusted bool, err error) {
	if v.SAML != nil {
		cert, named, err := v.SAML.holderOfKeySigner(env.Envelope, security, keyInfo, now, v.samlRevocation())
		if named {
			if err == nil && v.Revocation != nil && cert.Raw != nil {
				err = CheckRevocation(v.Revocation, cert, now)
			}
			return cert, false, err
		}
	}
	if signer, err = resolve(); err != nil {
		return nil, false, err
	}
	if v.Revocation != nil {
		if err := CheckRevocation(v.Revocation, signer, now); err != nil {
			return nil, false, err
		}
	}
	return signer, true, nil
}

// verifySAML is VerifyEnvelope's SAML step, run once the message signature
// and digests verified: the route's SAML policy against what the message
// signature established, then OneTimeUse through the replay cache. It
// returns the assertion (nil when none) and the Security children it
// processed, to be kept with the others.
func (v *Verifier) verifySAML(ctx context.Context, env *Envelope, security *etree.Element, signer *x509.Certificate,
	trusted bool, signed map[*etree.Element]bool, now time.Time) (*Assertion, []*etree.Element, error) {
	if v.SAML == nil {
		return nil, nil, nil // samlChildrenAllowed refused any SAML child
	}
	msg := SAMLMessage{SignerKey: signer.PublicKey, SignerTrusted: trusted,
		Signed: func(el *etree.Element) bool { return signed[el] }, Body: env.Body}
	a, err := v.SAML.verify(env.Envelope, security, msg, now, v.samlRevocation())
	if err != nil || a == nil {
		return nil, nil, err
	}
	var kept []*etree.Element
	for _, c := range samlChildren(security) {
		if samlIs(c, NSSAML2, "Assertion") {
			kept = append(kept, c)
			continue
		}
		// A token reference is processed if it names this assertion;
		// one naming anything else is refused, not passed on.
		if samlIs(c, NSWSSE, "SecurityTokenReference") {
			if id, ok := strAssertionID(c); ok {
				if id != a.ID {
					return nil, nil, invalidSAML(ErrSAMLWrapping, "a token reference names assertion %.64q", id)
				}
				kept = append(kept, c)
			}
		}
	}
	if a.OneTimeUse {
		if v.Replay == nil {
			return nil, nil, invalidSAML(ErrSAMLMalformed, "OneTimeUse needs a replay cache")
		}
		key := replayKey("saml-one-time-use", []byte(a.Issuer), []byte(a.ID))
		seen, err := v.Replay.Remember(ctx, key, a.NotOnOrAfter.Add(v.SAML.skew()))
		if err != nil {
			return nil, nil, fmt.Errorf("%w: %v", ErrReplayUnavailable, err)
		}
		if seen {
			return nil, nil, fmt.Errorf("%w: OneTimeUse assertion %.64q", ErrReplay, a.ID)
		}
	}
	return a, kept, nil
}

// samlRevocation is the source for assertion issuers: the SAML policy's,
// else the route's, which applies to message signers and issuers alike.
func (v *Verifier) samlRevocation() RevocationSource {
	if v.SAML.Revocation != nil {
		return v.SAML.Revocation
	}
	return v.Revocation
}

// keepInOrder returns kept and extra, in the document order of order.
func keepInOrder(order, kept []*etree.Element, extra []*etree.Element) []*etree.Element {
	if len(extra) == 0 {
		return kept
	}
	want := make(map[*etree.Element]bool, len(kept)+len(extra))
	for _, el := range kept {
		want[el] = true
	}
	for _, el := range extra {
		want[el] = true
	}
	out := make([]*etree.Element, 0, len(want))
	for _, el := range order {
		if want[el] {
			out = append(out, el)
		}
	}
	return out
}
