// Package secrets is the only package that reads keys, certificates and
// passwords from a backend (Vault, or the file backend of the embedded
// default). It turns secrets into the small interfaces wssec and oauth
// consume, and keeps the last good values when the backend is down.
package secrets

import (
	"context"
	"errors"
)

// ErrNotFound means the backend has no secret at the path, or the secret lacks a field.
var ErrNotFound = errors.New("secrets: not found")

// ErrNotLoaded means a secret has never been read successfully.
var ErrNotLoaded = errors.New("secrets: not loaded")

// Backend reads one secret: a map of field name to value.
type Backend interface {
	Read(ctx context.Context, path string) (map[string]string, error)
}
