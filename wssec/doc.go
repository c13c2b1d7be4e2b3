// Package wssec verifies (and signs) WS-Security 1.0/1.1 on SOAP 1.1 and
// 1.2 envelopes: X.509 token signatures in wsse:Security, Timestamps,
// UsernameTokens, replay and XML Encryption (decrypting inbound, encrypting
// outbound). It is pure: no HTTP, no secrets backend; the
// trust set, the password source and the replay cache come in through the
// small interfaces in api.go.
//
// # Threat model
//
// The sender is hostile. It controls every byte of the message and may hold
// a valid signed message of someone else's (captured, replayed, rewrapped).
// It does not hold a private key whose certificate chains to the route's
// trust set. What wssec guarantees, and how:
//
//   - A forged or altered Body is refused: the Body that Verify hands back is
//     the element at /Envelope/Body of the tree it parsed, and it is accepted
//     only if that very node (by identity, not by ID or name) was digested by
//     a Reference of a SignatureValue made by a trusted key. Callers forward
//     what Verified.Bytes writes from that tree, never the bytes that came
//     in. Together this defeats XML Signature Wrapping: a signed Body moved
//     into a header, a Security header or a ds:Object, re-IDed, nested in a
//     new Body, a second Body, a second Security header, IDs duplicated
//     under any ID-like attribute, a signature over the token only.
//   - Only what was verified is forwarded. Verified.Bytes does not copy the
//     input: it writes a new envelope from the checked tree, and any shape
//     it could not reproduce faithfully is refused before. The rule:
//     Envelope (its namespace declarations only) holds at most one Header
//     and one Body, nothing else; the Header (namespace declarations only)
//     holds the processed Security, reduced to what was processed (the
//     Signature, the Timestamp, the token the key came from, UsernameTokens
//     when checked) or stripped, the header blocks a verified reference
//     covers, and the unsigned blocks Policy.ForwardUnsignedHeaders names;
//     then the verified Body. No comments (exc-c14n does not sign them, and
//     admin<!---->.evil would read as "admin"), CDATA re-written as text, so
//     every text is one node; attribute tabs and newlines as references.
//     Reduce rather than refuse an understood but unchecked token: it is
//     harmless to verification, and dropping it keeps interop with stacks
//     that add one. What the backend could read differently is refused
//     instead: an Envelope with other children, text or encodingStyle;
//     a Body, Envelope or Header look-alike in a SOAP namespace anywhere,
//     any element named Body, Security, UsernameToken, Timestamp,
//     BinarySecurityToken or Action in the Header outside its place; a
//     Security child wssec does not process (EncryptedKey, a SAML
//     assertion on a route without a SAML policy, ...:
//     ErrUnprocessedSecurityElement); WS-Addressing headers (2005/08,
//     2004/08, 2004/03, 2003/03) repeated or mixed; an ID repeated under
//     any ID-like attribute (wsu:Id, Id, ID, id, xml:id, AssertionID).
//     Verified.Action is the signed wsa:Action, for the edge to compare
//     with SOAPAction. A mustUnderstand header that would be dropped (not
//     signed, not allowed) is refused with ErrMustUnderstand, whatever its
//     actor or role but SOAP 1.2's none: wsgate stands for the ultimate
//     receiver and "next", and dropping a header meant for another node
//     would change what the message means to it. Forwarded headers are
//     relayed for the backend to understand.
//   - Keys are trusted only through the configured anchors: embedded tokens
//     must chain to them; SKI, thumbprint and issuer/serial references are
//     looked up among them only, never in the message. Validity, key usage
//     and key size (RSA >= 2048, P-256/384/521) are checked.
//   - SAML 2.0 assertions (saml.go; routes with Verifier.SAML): exactly one,
//     a direct child of the processed Security header. One anywhere else (a
//     wrapper, the Body, another's Advice), a second one, SAML 1.x or an
//     EncryptedAssertion is refused (ErrSAMLWrapping), as is a comment
//     anywhere inside it (ErrSAMLComment: exclusive c14n drops comments,
//     the CVE-2017-11427 truncation). Its enveloped signature must have one
//     Reference, to its own ID (unique in the message), exc-c14n and
//     RSA-SHA2, by a certificate pinned in or chaining to saml.trust;
//     goxmldsig verifies it, and every value (Issuer, the whole NameID,
//     attributes, Conditions with skew, audience, confirmation) is read from
//     goxmldsig's validated copy only. Holder-of-key: the message was signed
//     with a key the assertion names; sender-vouches: a signer trusted by
//     the route's anchors signed the Body and the assertion (directly or
//     through a SAMLID token reference); bearer only where listed.
//   - XML Encryption (xmlenc.go, decrypt.go, xmlenc_verify.go; routes with
//     Policy.Decrypt). The Security header is processed in document order:
//     an EncryptedKey before the Signature is decrypted first and the
//     signature checked over the plaintext (sign-then-encrypt), one after
//     it only once the signature over the ciphertext verified
//     (encrypt-then-sign); either way by node identity in the tree as it
//     then is. What is forwarded is the decrypted tree, without the
//     EncryptedKeys. A key must name the gateway's own certificate (SKI,
//     thumbprint, issuer/serial, BinarySecurityToken; anything else is
//     ErrTokenUnavailable) and list what it unlocks: only an EncryptedData
//     that is the Body's content or a Body child, a header block or its
//     content, or the one child of a wsse11:EncryptedHeader; each named
//     once, by one key. One moved into a wrapper, into Security, or left
//     that no key unlocks is refused, as is a Body in plaintext where
//     RequireEncrypted says body. Plaintext goes through the message's
//     parser and limits, counted with the rest of the message (depth from
//     the insertion point, elements, bytes; no DOCTYPE, no PI, prefixes
//     resolved at the insertion point), then through the same look-alike
//     and duplicate-ID walk; ciphertext never expands into more than itself.
//     Key transport is RSA-OAEP (mgf1p; xmlenc11 with SHA-1/2 digests and
//     MGF1), data AES-GCM. RSA v1.5 only with AllowRSA15, and then a badly
//     padded key silently becomes a random one (Bleichenbacher); AES-CBC
//     only with AllowCBC, and then every failure, padding or plaintext, is
//     the one ErrDecryptionFailed after the same work (Jager–Somorovsky;
//     a well-formed but altered plaintext still fails the signature, also
//     wsse:FailedCheck). The gateway's key is RSA >= 2048 and may stay in
//     Vault behind a crypto.Decrypter.
//   - Revocation (revocation.go): CRLs verified against the trust set and a
//     deny list (certificates, SHA-256 thumbprints) apply to message signers
//     and assertion issuers. A stale or unverifiable CRL makes the source
//     unavailable (a readiness failure), never a silent acceptance.
//   - Algorithms come from an allow-list (RSA and ECDSA with SHA-256/384/512,
//     exclusive c14n only, no comments, no transforms but one exc-c14n, no
//     HMAC, no MD5; SHA-1 only where a route opts in). The one exception is
//     WSS 1.0's STR-Transform with exc-c14n parameters (strtransform.go),
//     for a token reference in the processed Security header naming the
//     processed assertion, and nothing else: it dereferences to that node
//     only, and the assertion (not the reference) then counts as signed. Shape is checked
//     before any cryptography (BSP R5401-R5423 where they matter).
//   - Freshness: a present Timestamp is checked (one Created, at most one
//     Expires, UTC, TTL and future skew); where required it must be signed.
//     What a verified signature signed (the digest of the canonical
//     SignedInfo, which covers a signed Created) is remembered with the
//     signer's key under a SHA-256 for the message's lifetime, and a replay
//     is refused: not the SignatureValue, whose encoding is malleable
//     (ECDSA (r, n-s), base64 white space and padding bits).
//   - Resource use is bounded before the tree is walked: size, depth,
//     element and attribute counts, reference and transform counts.
//     DOCTYPEs (so every entity expansion trick) and processing instructions
//     are refused, and so is anything Namespaces in XML 1.0 forbids, in any
//     part of the message (ErrNamespace: an undeclared prefix, xmlns:p="",
//     the xml and xmlns prefixes or namespaces misbound, one expanded
//     attribute name twice). No input may panic; fuzz tests hold us to that.
//     Nothing pre-authentication outlives its request: the certificate memo
//     holds only certificates whose chain verified, under the SHA-256 of
//     their DER, in memory of their own. What stays allocated between
//     messages for reuse holds no message data and has a fixed bound: the
//     zeroed node arenas of small trees in a sync.Pool, and at most two of
//     large ones, 8 MiB each.
//   - One message never sees another's nodes: a tree's nodes come from a
//     pooled arena that Envelope.Release zeroes before reuse, and the
//     gateway releases a tree only once it has serialized what it forwards.
//     A reused arena builds the same tree as a fresh one (fuzzed), and
//     concurrent verifications with release stay apart (race tests).
//
// Out of scope: symmetric (HMAC) signatures, encrypted Signatures, SAML
// EncryptedAssertions, symmetric-binding keys (a ReferenceList outside an
// EncryptedKey, DerivedKeyToken), OCSP, the STR-Transform to anything but
// the processed SAML assertion (a BinarySecurityToken, a token elsewhere)
// and confidentiality of the message, which TLS gives.
// Exclusive c14n does not sign namespace declarations that only QNames in
// content use (xsi:type="p:T"): a signer that relies on them must name them
// in InclusiveNamespaces. A route without a Timestamp has only weak replay
// protection (a message is remembered for the TTL); require the Timestamp
// wherever possible.
//
// Errors are sentinels (errors.go), wrapped with detail for the log; the
// client sees only FaultCode(err), the WS-Security fault code.
package wssec
