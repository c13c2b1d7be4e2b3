package oauth

import (
	"context"
	"maps"
	"sync"
)

type fakeSecret struct {
	mu     sync.Mutex
	fields map[string]string
	err    error
}

func (f *fakeSecret) Fields() (map[string]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	return maps.Clone(f.fields), nil
}

func (f *fakeSecret) put(m map[string]string) {
	f.mu.Lock()
	f.fields = m
	f.mu.Unlock()
}

type staticCreds struct{ id, secret string }

func (s staticCreds) ClientCredentials(context.Context) (string, string, error) {
	return s.id, s.secret, nil
}
