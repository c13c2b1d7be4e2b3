package secrets

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
)

// Use is what a configuration key needs from the KV secret it names. The
// values are config.SecretUse's; secrets does not import config.
type Use string

// The uses Check knows.
const (
	UseTrust       Use = "trust"       // certificates: PEM certificates
	UseIdentity    Use = "identity"    // certificate (PEM chain) + private_key that belongs to its leaf
	UseCertificate Use = "certificate" // certificate alone: a Vault Transit key signs
	UseUsers       Use = "users"       // username -> password, no empty password
	UseKeys        Use = "keys"        // jwks, public_key or secret
	UseClient      Use = "client"      // client_id and client_secret
	UseCRL         Use = "crl"         // crl: PEM (or DER) certificate revocation list
	UseDeny        Use = "deny"        // certificates (PEM) and/or sha256 (hex thumbprints)
	UseAPIKeys     Use = "api_keys"    // per key id: JSON {"sha256", "subject", "scopes"}
	// UseSAMLAssertion: assertion, a SAML 2.0 assertion (the signer parses
	// and checks it; secrets does not read XML).
	UseSAMLAssertion Use = "saml_assertion"
)

// ErrUnknownUse means Check was asked about a use it does not know.
var ErrUnknownUse = errors.New("secrets: unknown secret use")

// CheckError says how a secret falls short of its use. Like every error of
// this package it names paths and fields, never values.
type CheckError struct {
	// Path is the secret's path.
	Path string
	// Reason is set when the secret was read: what it lacks.
	Reason string
	// Err is the sentinel chain: ErrNotFound, ErrInvalidSecret, ErrUnavailable, ...
	Err error
}

// Error reads "secret wsgate/trust/partners: no field "certificates"", or
// the wrapped error's own text (which names the path) when there is no Reason.
func (e *CheckError) Error() string {
	if e.Reason == "" {
		return e.Err.Error()
	}
	return "secret " + e.Path + ": " + e.Reason
}

func (e *CheckError) Unwrap() error { return e.Err }

// Check reads the secret at path from b and reports whether it holds what
// use needs, parsed the way the gateway will parse it (certificates and
// keys must decode, a private key must belong to its certificate). It is
// for `wsgate check-config -secrets`: a one-shot read, no Manager state.
func Check(ctx context.Context, b Backend, path string, use Use) error {
	fields, err := b.Read(ctx, path)
	if err != nil {
		if errors.Is(err, ErrNotFound) {
			return &CheckError{Path: path, Reason: "not found", Err: err}
		}
		return &CheckError{Path: path, Err: err}
	}
	return CheckFields(path, fields, use)
}

// CheckFields is Check on fields already read.
func CheckFields(path string, fields map[string]string, use Use) error {
	need := func(names ...string) error {
		var missing, empty []string
		for _, n := range names {
			v, ok := fields[n]
			switch {
			case !ok:
				missing = append(missing, fmt.Sprintf("%q", n))
			case v == "":
				empty = append(empty, fmt.Sprintf("%q", n))
			}
		}
		switch {
		case len(missing) == 1:
			return &CheckError{Path: path, Reason: "no field " + missing[0], Err: ErrNotFound}
		case len(missing) > 1:
			return &CheckError{Path: path, Reason: "no fields " + strings.Join(missing, ", "), Err: ErrNotFound}
		case len(empty) > 0:
			return &CheckError{Path: path, Reason: "empty field " + strings.Join(empty, ", "), Err: ErrNotFound}
		}
		return nil
	}
	parsed := func(err error) error {
		if err != nil {
			return &CheckError{Path: path, Err: err}
		}
		return nil
	}
	switch use {
	case UseTrust:
		if err := need("certificates"); err != nil {
			return err
		}
		return parsed((&CertSet{path: path}).load(fields))
	case UseIdentity:
		if err := need("certificate", "private_key"); err != nil {
			return err
		}
		return parsed((&IdentitySet{path: path}).load(fields))
	case UseCertificate:
		if err := need("certificate"); err != nil {
			return err
		}
		_, err := ParseCertificates(path, "certificate", fields["certificate"])
		return parsed(err)
	case UseUsers:
		if len(fields) == 0 {
			return &CheckError{Path: path, Reason: "no users (one field per username)", Err: ErrNotFound}
		}
		return parsed((&Passwords{path: path}).load(fields))
	case UseKeys:
		for _, n := range []string{"jwks", "public_key", "secret"} {
			if fields[n] != "" {
				return nil
			}
		}
		return &CheckError{Path: path, Reason: `no field "jwks", "public_key" or "secret"`, Err: ErrNotFound}
	case UseClient:
		return need("client_id", "client_secret")
	case UseCRL:
		if err := need("crl"); err != nil {
			return err
		}
		return parsed(checkCRL(path, fields["crl"]))
	case UseDeny:
		if fields["certificates"] == "" && fields["sha256"] == "" {
			return &CheckError{Path: path, Reason: `no field "certificates" or "sha256"`, Err: ErrNotFound}
		}
		return nil
	case UseAPIKeys:
		return checkAPIKeys(path, fields)
	case UseSAMLAssertion:
		if err := need("assertion"); err != nil {
			return err
		}
		if !strings.Contains(fields["assertion"], "Assertion") {
			return &CheckError{Path: path, Reason: `field "assertion" is not a SAML assertion`, Err: ErrInvalidSecret}
		}
		return nil
	}
	return fmt.Errorf("%w: %q", ErrUnknownUse, use)
}

// SecretIDWrapped reports whether secret_id_file (AppRole) holds a live
// response-wrapping token. A one-shot check must not log in with it: a
// wrapping token unwraps once, and the gateway could then never log in.
// The lookup consumes nothing. Other auth methods report false.
func (v *Vault) SecretIDWrapped(ctx context.Context) (bool, error) {
	if v.opts.Method != VaultAuthAppRole {
		return false, nil
	}
	raw, err := readCredential("secret_id_file", v.opts.SecretIDFile)
	if err != nil {
		return false, err
	}
	lc, err := v.bareClient()
	if err != nil {
		return false, err
	}
	_, err = lc.Logical().WriteWithContext(ctx, "sys/wrapping/lookup", map[string]any{"token": raw})
	switch {
	case isStatus(err, http.StatusBadRequest):
		return false, nil // no such wrapping token: a plain secret ID
	case err != nil:
		return false, fmt.Errorf("secrets: vault wrapping lookup: %w: %w", ErrUnavailable, compact(err))
	}
	return true, nil
}

// checkAPIKeys checks an API-key secret's shape (the gateway's oauth
// package parses it the same way): one field per key id, each a JSON
// object with a 64-hex-digit sha256 and a subject. It names key ids only.
func checkAPIKeys(path string, fields map[string]string) error {
	if len(fields) == 0 {
		return &CheckError{Path: path, Reason: "no API keys (one field per key id)", Err: ErrNotFound}
	}
	var bad []string
	for id, v := range fields {
		var e struct {
			SHA256  string   `json:"sha256"`
			Subject string   `json:"subject"`
			Scopes  []string `json:"scopes"`
		}
		d := json.NewDecoder(strings.NewReader(v))
		d.DisallowUnknownFields()
		if err := d.Decode(&e); err != nil || len(e.SHA256) != 64 || e.Subject == "" {
			bad = append(bad, fmt.Sprintf("%q", id))
			continue
		}
		if _, err := hex.DecodeString(e.SHA256); err != nil {
			bad = append(bad, fmt.Sprintf("%q", id))
		}
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		return &CheckError{Path: path, Reason: "field " + strings.Join(bad, ", ") + ` is not {"sha256": "<64 hex>", "subject": "...", "scopes": [...]}`, Err: ErrInvalidSecret}
	}
	return nil
}
