package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"sync"
)

// ErrInvalidPath means a secret path is not a plain relative slash-separated path.
var ErrInvalidPath = errors.New("secrets: invalid secret path")

// ErrInvalidSecret means a secret was read but its content is unusable
// (not a flat JSON object of strings, bad PEM, mismatched key, ...).
var ErrInvalidSecret = errors.New("secrets: invalid secret")

// maxFileBytes bounds one secret file; real secrets are a few KiB.
const maxFileBytes = 1 << 20

// CheckPath refuses paths that could leave the backend's namespace: empty,
// absolute, with backslashes, NUL, ".." or empty segments.
func CheckPath(path string) error {
	bad := path == "" ||
		strings.HasPrefix(path, "/") ||
		strings.ContainsAny(path, "\\\x00") ||
		strings.Contains(path, "..") ||
		strings.Contains(path, "//") ||
		strings.HasSuffix(path, "/")
	if !bad {
		for _, seg := range strings.Split(path, "/") {
			if seg == "." {
				bad = true
			}
		}
	}
	if bad {
		return fmt.Errorf("%w: %q", ErrInvalidPath, path)
	}
	return nil
}

// File reads secrets from <dir>/<path>.json, each a flat JSON object of
// string fields: the file backend of the embedded default and of tests.
type File struct {
	dir string
}

// NewFile returns a backend rooted at dir. The directory is opened on each
// Read, so it may be created or replaced later.
func NewFile(dir string) *File { return &File{dir: dir} }

// Read returns the fields of <dir>/<path>.json. Symlinks that leave dir are
// refused (os.Root).
func (f *File) Read(ctx context.Context, path string) (map[string]string, error) {
	if err := CheckPath(path); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	root, err := os.OpenRoot(f.dir)
	if err != nil {
		return nil, fmt.Errorf("secrets: file backend: open directory: %w", err)
	}
	defer root.Close()
	fh, err := root.Open(path + ".json")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("secrets: %s: %w", path, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("secrets: %s: %w", path, err)
	}
	defer fh.Close()
	data, err := io.ReadAll(io.LimitReader(fh, maxFileBytes+1))
	if err != nil {
		return nil, fmt.Errorf("secrets: %s: %w", path, err)
	}
	if len(data) > maxFileBytes {
		return nil, fmt.Errorf("%w: %s: file larger than %d bytes", ErrInvalidSecret, path, maxFileBytes)
	}
	var fields map[string]string
	if err := json.Unmarshal(data, &fields); err != nil || fields == nil {
		// json's messages can quote bytes of the file; say only where.
		return nil, fmt.Errorf("%w: %s: not a flat JSON object of string fields", ErrInvalidSecret, path)
	}
	return fields, nil
}

// Memory is an in-memory backend for tests and the demo; safe for concurrent use.
type Memory struct {
	mu      sync.RWMutex
	secrets map[string]map[string]string
	err     error
}

// NewMemory returns an empty Memory backend.
func NewMemory() *Memory { return &Memory{secrets: map[string]map[string]string{}} }

// Set stores a copy of fields at path.
func (m *Memory) Set(path string, fields map[string]string) {
	cp := make(map[string]string, len(fields))
	for k, v := range fields {
		cp[k] = v
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.secrets[path] = cp
}

// Delete removes the secret at path.
func (m *Memory) Delete(path string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.secrets, path)
}

// Fail makes every Read return err until Fail(nil), simulating an outage.
func (m *Memory) Fail(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.err = err
}

// Read returns a copy of the secret at path.
func (m *Memory) Read(ctx context.Context, path string) (map[string]string, error) {
	if err := CheckPath(path); err != nil {
		return nil, err
	}
	m.mu.RLock()
	defer m.mu.RUnlock()
	if m.err != nil {
		return nil, m.err
	}
	s, ok := m.secrets[path]
	if !ok {
		return nil, fmt.Errorf("secrets: %s: %w", path, ErrNotFound)
	}
	cp := make(map[string]string, len(s))
	for k, v := range s {
		cp[k] = v
	}
	return cp, nil
}
