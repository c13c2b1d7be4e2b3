package gateway

import (
	"net/http"
	"testing"

	"wsgate/internal/reqscope"
)

// The front door writes the request ID under requestIDKey directly into
// header maps: it must be reqscope.Header's canonical form, or Get would
// not find it and a second spelling would go upstream.
func TestRequestIDKeyCanonical(t *testing.T) {
	if got := http.CanonicalHeaderKey(reqscope.Header); got != requestIDKey {
		t.Fatalf("requestIDKey = %q, canonical reqscope.Header = %q", requestIDKey, got)
	}
}
