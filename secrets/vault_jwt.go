package secrets

import (
	"context"
	"errors"
	"fmt"
	"time"

	vault "github.com/hashicorp/vault/api"
)

// jwtLogin logs in at auth/<mount>/login with the role and the JWT read
// from JWTFile (jwt and kubernetes methods share the request shape), and
// installs the new token. The file is read at every login: a projected
// service-account token is rotated by the kubelet, and the old one may
// already be expired. Vault verifies the JWT (signature against its
// configured keys or TokenReview, audience, bound claims); wsgate never
// parses it.
func (v *Vault) jwtLogin(ctx context.Context) (*vault.Secret, error) {
	jwt, err := readCredential("jwt_file", v.opts.JWTFile)
	if err != nil {
		return nil, err
	}
	lc, err := v.bareClient()
	if err != nil {
		return nil, err
	}
	s, err := lc.Logical().WriteWithContext(ctx, "auth/"+v.opts.JWTMount+"/login", map[string]any{
		"role": v.opts.Role, "jwt": jwt,
	})
	if err != nil {
		return nil, fmt.Errorf("vault %s login: %w", v.opts.Method, compact(err))
	}
	if s == nil || s.Auth == nil || s.Auth.ClientToken == "" {
		return nil, errors.New("vault " + v.opts.Method + " login: no token in the response")
	}
	v.client.SetToken(s.Auth.ClientToken)
	v.logger.Info("vault "+v.opts.Method+" login", "role", v.opts.Role,
		"ttl", time.Duration(s.Auth.LeaseDuration)*time.Second, "renewable", s.Auth.Renewable, "policies", s.Auth.Policies)
	return s, nil
}
