package wssec

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/beevik/etree"
)

// sameTree fails unless parsing s into a reused arena builds what a fresh
// parse builds: same serialization, same parent links and indexes. A node
// left over from the arena's previous tree would show in one or the other.
func sameTree(t *testing.T, s string, reused *arena) {
	t.Helper()
	fresh, errFresh := parseXMLString(s, Limits{}, new(arena))
	got, errReused := parseXMLString(s, Limits{}, reused)
	if (errFresh == nil) != (errReused == nil) {
		t.Fatalf("fresh arena: %v; reused arena: %v", errFresh, errReused)
	}
	if errFresh != nil {
		return
	}
	if want, have := serializeDoc(fresh, 0), serializeDoc(got, 0); !bytes.Equal(want, have) {
		t.Fatalf("reused arena built a different tree:\n%s\nwant\n%s", have, want)
	}
	checkLinks(t, &got.Element)
}

// checkLinks checks every node's parent and index, and every attribute's
// element, below el.
func checkLinks(t *testing.T, el *etree.Element) {
	t.Helper()
	for i := range el.Attr {
		if el.Attr[i].Element() != el {
			t.Fatalf("attribute %s of <%s> points at another element", el.Attr[i].Key, el.Tag)
		}
	}
	for i, tok := range el.Child {
		if tok.Parent() != el || tok.Index() != i {
			t.Fatalf("child %d of <%s> has parent %p index %d", i, el.Tag, tok.Parent(), tok.Index())
		}
		if c, ok := tok.(*etree.Element); ok {
			checkLinks(t, c)
		}
	}
}

// Every golden envelope, parsed into an arena that last held the previous
// one (larger, smaller, malformed), builds the same tree as a fresh parse.
func TestArenaReuseBuildsFreshTrees(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "testdata", "wssec", "*.xml"))
	if err != nil || len(files) < 10 {
		t.Fatalf("golden envelopes: %d, %v", len(files), err)
	}
	a := new(arena)
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(filepath.Base(name), func(t *testing.T) { sameTree(t, string(data), a) })
		a.reset()
	}
}

// Release clears the Envelope and the Verified, and may be called twice.
func TestRelease(t *testing.T) {
	msg := string(signedEnvelope(t, 2<<10))
	v := defaultVerifier(t)
	env, err := ParseEnvelope(msg, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	verified, err := v.VerifyEnvelope(context.Background(), env)
	if err != nil {
		t.Fatal(err)
	}
	username := verified.Username
	verified.Release()
	if env.Doc != nil || env.Envelope != nil || env.Body != nil || env.Header != nil || verified.Security != nil {
		t.Fatal("Release left references into the recycled tree")
	}
	if env.Version != SOAP11 || verified.Username != username {
		t.Fatal("Release lost the version or the username")
	}
	verified.Release()
	env.Release()
	(*Envelope)(nil).Release()
	(*Verified)(nil).Release()
}

// What stays allocated between messages is bounded whatever is sent: small
// arenas go to a sync.Pool, at most maxLargeArenas large ones of at most
// maxLargeArenaBytes are kept, anything else goes to the garbage collector.
func TestArenaPoolBounded(t *testing.T) {
	for len(largeArenas) > 0 { // what earlier tests left
		<-largeArenas
	}
	parsed := func(bodySize int) *arena {
		a := getArena(bodySize)
		if _, err := parseXMLString(string(signedEnvelope(t, bodySize)), Limits{}, a); err != nil {
			t.Fatal(err)
		}
		return a
	}
	small := parsed(2 << 10)
	if !small.release() {
		t.Error("a 2 KB arena was not pooled")
	}
	// Three 1 MB messages in flight at once: two arenas are kept, not three.
	large := []*arena{parsed(1 << 20), parsed(1 << 20), parsed(1 << 20)}
	for i, a := range large {
		if a.bytes() > maxLargeArenaBytes {
			t.Fatalf("1 MB: %d bytes of nodes, past the cap", a.bytes())
		}
		if got, want := a.release(), i < maxLargeArenas; got != want {
			t.Errorf("1 MB arena %d: kept = %v, want %v", i, got, want)
		}
	}
	if len(largeArenas) != maxLargeArenas {
		t.Errorf("%d large arenas kept, want %d", len(largeArenas), maxLargeArenas)
	}
	// A large message takes a kept arena; one past the byte cap is not kept.
	if a := getArena(1 << 20); a != large[0] && a != large[1] {
		t.Error("a large message did not reuse a kept arena")
	}
	huge := parsed(3 << 20)
	if huge.bytes() <= maxLargeArenaBytes {
		t.Fatalf("3 MB: only %d bytes of nodes", huge.bytes())
	}
	if huge.release() {
		t.Error("an arena past maxLargeArenaBytes was kept")
	}
}

// A kept large arena builds the same tree as a fresh one.
func TestLargeArenaReuse(t *testing.T) {
	msg := string(signedEnvelope(t, 1<<20))
	want := canonicalOf(t, msg, new(arena))
	for range 3 {
		a := getArena(len(msg))
		if got := canonicalOf(t, msg, a); !bytes.Equal(got, want) {
			t.Fatal("a reused large arena built another tree")
		}
		a.release()
	}
}

func canonicalOf(t *testing.T, msg string, a *arena) []byte {
	t.Helper()
	doc, err := parseXMLString(msg, Limits{}, a)
	if err != nil {
		t.Fatal(err)
	}
	out, err := Canonicalize(doc.Root(), "", false)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Verifications on every core, each releasing its tree as soon as it has
// serialized it, never see each other's nodes: each forwards exactly its
// own message. Run with -race.
func TestConcurrentReleaseIsolation(t *testing.T) {
	const workers, rounds = 8, 200
	v := defaultVerifier(t)
	msgs := make([]string, workers)
	want := make([][]byte, workers)
	for i := range msgs {
		msgs[i] = string(signedEnvelope(t, 256+i*700)) // bodies of different sizes
		env, err := ParseEnvelope(msgs[i], Limits{})
		if err != nil {
			t.Fatal(err)
		}
		verified, err := v.VerifyEnvelope(context.Background(), env)
		if err != nil {
			t.Fatal(err)
		}
		if want[i], err = verified.Bytes(true); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Go(func() {
			for range rounds {
				env, err := ParseEnvelope(msgs[w], Limits{})
				if err != nil {
					errs <- err
					return
				}
				verified, err := v.VerifyEnvelope(context.Background(), env)
				if err != nil {
					errs <- fmt.Errorf("worker %d: %w", w, err)
					return
				}
				got, err := verified.Bytes(true)
				verified.Release()
				if err != nil || !bytes.Equal(got, want[w]) {
					errs <- fmt.Errorf("worker %d forwarded another tree (%v)", w, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
