package wssec

import (
	"context"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"strings"
	"time"

	"github.com/beevik/etree"
)

// UsernameToken password types (UsernameToken Profile 1.1).
const (
	passwordText   = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordText"
	passwordDigest = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"
)

// checkUsernameToken authenticates the Security header's single
// UsernameToken and remembers its nonce so it cannot be used twice.
func (v *Verifier) checkUsernameToken(ctx context.Context, security *etree.Element, now time.Time) (string, error) {
	var token *etree.Element
	for _, child := range childElements(security) {
		if is(child, NSWSSE, "UsernameToken") {
			if token != nil {
				return "", fmt.Errorf("%w: more than one UsernameToken", ErrAuthenticationFailed)
			}
			token = child
		}
	}
	if token == nil {
		return "", ErrUsernameTokenMissing
	}
	var username, password, passwordType, nonceText, createdText string
	for _, child := range childElements(token) {
		switch {
		case is(child, NSWSSE, "Username"):
			username = strings.TrimSpace(child.Text())
		case is(child, NSWSSE, "Password"):
			password = child.Text()
			passwordType = child.SelectAttrValue("Type", passwordText)
		case is(child, NSWSSE, "Nonce"):
			nonceText = strings.TrimSpace(child.Text())
		case is(child, NSWSU, "Created"):
			createdText = strings.TrimSpace(child.Text())
		}
	}
	want, ok, err := v.Users.Password(username)
	if err != nil {
		return "", fmt.Errorf("%w: %v", ErrTrustUnavailable, err)
	}
	var nonce []byte
	if nonceText != "" {
		if nonce, err = base64.StdEncoding.DecodeString(nonceText); err != nil || len(nonce) == 0 {
			return "", fmt.Errorf("%w: Nonce is not base64", ErrAuthenticationFailed)
		}
	}
	var created time.Time
	if createdText != "" {
		if created, err = parseUTC(createdText); err != nil {
			return "", fmt.Errorf("%w: Created: %v", ErrAuthenticationFailed, err)
		}
		if created.After(now.Add(v.Policy.futureSkew())) || created.Before(now.Add(-v.Policy.ttl())) {
			return "", fmt.Errorf("%w: UsernameToken Created outside the allowed window", ErrAuthenticationFailed)
		}
	}
	var match bool
	switch passwordType {
	case passwordText:
		match = subtle.ConstantTimeCompare([]byte(password), []byte(want)) == 1
	case passwordDigest:
		if nonce == nil || createdText == "" {
			return "", fmt.Errorf("%w: PasswordDigest needs Nonce and Created", ErrAuthenticationFailed)
		}
		// The profile fixes SHA-1 here: Base64(SHA-1(nonce + created + password)).
		sum := sha1.Sum([]byte(string(nonce) + createdText + want))
		got, err := base64.StdEncoding.DecodeString(strings.TrimSpace(password))
		match = err == nil && subtle.ConstantTimeCompare(got, sum[:]) == 1
	default:
		return "", fmt.Errorf("%w: password type %.100q", ErrAuthenticationFailed, passwordType)
	}
	if !ok || !match {
		return "", fmt.Errorf("%w: user %.64q", ErrAuthenticationFailed, username)
	}
	if nonce != nil && v.Replay != nil {
		until := now.Add(v.Policy.ttl() + v.Policy.futureSkew())
		seen, err := v.Replay.Remember(ctx, replayKey("wsse-nonce", []byte(username), nonce), until)
		if err != nil {
			return "", fmt.Errorf("%w: %v", ErrReplayUnavailable, err)
		}
		if seen {
			return "", fmt.Errorf("%w: UsernameToken nonce reused", ErrReplay)
		}
	}
	// The name is a slice of the request text: a copy lets a caller keep it
	// without keeping the whole message.
	return strings.Clone(username), nil
}
