package wssec

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/beevik/etree"
)

// STR-Transform (WSS 1.0 SOAP Message Security §8.3) is how WSS4J signs a
// sender-vouches assertion: the Reference names a SecurityTokenReference,
// the transform replaces it by the token it references, and the digest is
// over that token's canonical form. It is accepted narrowly:
//   - the Reference's target must be a wsse:SecurityTokenReference that is a
//     direct child of the processed Security header;
//   - it must name, by SAMLID KeyIdentifier (or a SAML-typed wsse:Reference),
//     the one assertion findAssertion accepts, and its ID must resolve to
//     that node alone. Nothing else, anywhere else, is dereferenced: a
//     BinarySecurityToken is never reached this way, because securityParts
//     only admits token references that name an assertion;
//   - the token, not the reference, counts as signed (by node identity), and
//     only through this path.

// dereferenceSTR returns the token an STR-Transform reference's target str
// stands for in the Security header security of the message root.
func dereferenceSTR(str, security, root *etree.Element, ids *idIndex) (*etree.Element, error) {
	if !is(str, NSWSSE, "SecurityTokenReference") || str.Parent() != security {
		return nil, fmt.Errorf("%w: STR-Transform on %.64s, not a token reference in the Security header", ErrReferenceNotFound, str.Tag)
	}
	id, ok := strAssertionID(str)
	if !ok {
		return nil, fmt.Errorf("%w: STR-Transform reference names no SAML assertion", ErrTokenUnavailable)
	}
	assertion, err := findAssertion(root, security)
	if err != nil {
		return nil, err
	}
	if assertion == nil {
		return nil, fmt.Errorf("%w: STR-Transform names assertion %.64q, which is not in the Security header", ErrTokenUnavailable, id)
	}
	el, err := ids.lookup(id)
	if err != nil {
		return nil, err
	}
	if el != assertion || assertion.SelectAttrValue("ID", "") != id {
		return nil, invalidSAML(ErrSAMLWrapping, "STR-Transform names %.64q, not the processed assertion", id)
	}
	return assertion, nil
}

// writeSTRTransform writes the STR-Transform's output for token: its
// exc-c14n form, where it stands (its parent is the reference's), with the
// default namespace always inclusive and, when the apex element declares
// none, xmlns="" added to it. That is §8.3's default namespace rule as
// WSS4J 1.6 implements it (org.apache.ws.security.transform.STRTransform:
// canonicalizeSubtree with "#default", then `xmlns="" ` inserted after the
// apex's first blank), which is what a WSS4J signer digests.
func writeSTRTransform(sink io.Writer, token *etree.Element, prefixList string) error {
	var buf bytes.Buffer
	if err := writeExcC14N(&buf, token, strings.TrimSpace("#default "+prefixList)); err != nil {
		return err
	}
	out := buf.Bytes()
	end := bytes.IndexByte(out, '>')
	if len(out) == 0 || out[0] != '<' || end < 0 {
		return fmt.Errorf("%w: canonical token", ErrMalformedSignature)
	}
	if bytes.Contains(out[:end], []byte(`xmlns=`)) { // WSS4J's test, on the apex tag
		_, err := sink.Write(out)
		return err
	}
	name := bytes.IndexAny(out[:end], " /")
	if name < 0 {
		name = end
	}
	for _, part := range [][]byte{out[:name], []byte(` xmlns=""`), out[name:]} {
		if _, err := sink.Write(part); err != nil {
			return err
		}
	}
	return nil
}
