package wssec

import "context"

// ParseEnvelope parses msg with the hardening limits and checks that it is a
// SOAP 1.1 or 1.2 envelope with exactly one Body.
func ParseEnvelope(msg []byte, limits Limits) (*Envelope, error) { panic("TODO") }

// Verify parses msg and verifies it; see VerifyEnvelope.
func (v *Verifier) Verify(ctx context.Context, msg []byte) (*Verified, error) {
	env, err := ParseEnvelope(msg, v.Policy.Limits)
	if err != nil {
		return nil, err
	}
	return v.VerifyEnvelope(ctx, env)
}

// VerifyEnvelope checks env's WS-Security header against the policy. On
// success the returned Verified shares env's tree.
func (v *Verifier) VerifyEnvelope(ctx context.Context, env *Envelope) (*Verified, error) {
	panic("TODO")
}

// Bytes serializes the verified envelope, without the processed Security
// header when stripSecurity is set. The tree is not modified.
func (v *Verified) Bytes(stripSecurity bool) ([]byte, error) { panic("TODO") }
