package wssec

import (
	"strings"
	"sync"
	"unsafe"

	"github.com/beevik/etree"
)

// arena holds the nodes of one parsed tree in a few large blocks: a tree's
// nodes live and die together, so allocating them one by one would only
// make work for the garbage collector. An arena from ParseEnvelope is pooled
// and reused once its Envelope is released.
type arena struct {
	elems slab[etree.Element]
	texts slab[etree.CharData]
	attrs slab[etree.Attr]
	toks  slab[etree.Token]
}

// slab hands out runs of T from a list of chunks, adding a chunk when the
// ones it has are used up. Only integers move as nodes are handed out:
// re-slicing a heap-held slice per node would cost a write barrier each
// while the collector marks.
type slab[T any] struct {
	chunks [][]T
	next   int // chunks[:next] are in use
	cur    []T // chunks[next-1], or nil
	used   int // cur[:used] was handed out
	size   int // length of a new chunk
}

// take returns n zeroed Ts, capped at n so that an append by a caller
// cannot reach a neighbour.
func (s *slab[T]) take(n int) []T {
	if len(s.cur)-s.used < n {
		s.refill(n)
	}
	b := s.cur[s.used : s.used+n : s.used+n]
	s.used += n
	return b
}

// one returns a single zeroed T.
func (s *slab[T]) one() *T {
	if s.used == len(s.cur) {
		s.refill(1)
	}
	t := &s.cur[s.used]
	s.used++
	return t
}

// at is the T that one handed out as chunk c, index i (see handle).
func (s *slab[T]) at(c, i int) *T { return &s.chunks[c][i] }

// refill moves on to the next chunk that holds n Ts, making one if none is
// left. Skipped chunks stay zero.
func (s *slab[T]) refill(n int) {
	for s.next < len(s.chunks) {
		c := s.chunks[s.next]
		s.next++
		if len(c) >= n {
			s.cur, s.used = c, 0
			return
		}
	}
	c := make([]T, max(n, s.size))
	s.chunks = append(s.chunks, c)
	s.next = len(s.chunks)
	s.cur, s.used = c, 0
}

// reset zeroes what was handed out, dropping every reference into the old
// tree and message. Of the last chunk in use only the part handed out is
// cleared: a pooled arena is usually sized for a larger tree than the one
// it held, and clearing pointer memory while the collector marks is slow.
func (s *slab[T]) reset() {
	if s.next > 0 {
		for _, c := range s.chunks[:s.next-1] {
			clear(c)
		}
		clear(s.cur[:s.used])
	}
	s.next, s.cur, s.used = 0, nil, 0
}

// held is the slab's size in Ts.
func (s *slab[T]) held() (n int) {
	for _, c := range s.chunks {
		n += len(c)
	}
	return n
}

// size sets the chunk sizes for a message from cheap markup counts in its
// first 64 KiB: a small message gets about what it needs in one chunk, a
// large one chunks of at most 4096 nodes. Element counts are bounded by the
// number of '<', attributes by the number of '='.
func (a *arena) size(s string) {
	head := s[:min(len(s), 64<<10)]
	tags := strings.Count(head, "<")
	clamp := func(n int) int { return min(max(n, 8), 4096) }
	a.elems.size = clamp(tags)
	a.texts.size = clamp(tags + 1)
	a.toks.size = clamp(2*tags + 1)
	a.attrs.size = clamp(strings.Count(head, "="))
}

// maxPooledArena bounds, in nodes, what the pool keeps; a larger arena is
// a large message's (see largeArenas).
const maxPooledArena = 16 << 10

var arenaPool = sync.Pool{New: func() any { return new(arena) }}

// Large messages' arenas are kept apart, and only so many: at most
// maxLargeArenas of them, each of at most maxLargeArenaBytes, so that what
// stays allocated between messages has a fixed bound (16 MiB) whatever is
// sent; anything larger goes to the garbage collector. Building a 1 MB
// message's tree (about 7 MB of nodes) in memory already faulted in and
// not yet scanned takes a third of the time of fresh memory.
const (
	maxLargeArenas     = 2
	maxLargeArenaBytes = 8 << 20
	// largeMessage is the message size from which a parse takes a large arena.
	largeMessage = 256 << 10
)

var largeArenas = make(chan *arena, maxLargeArenas)

// getArena returns an arena for a message of n bytes.
func getArena(n int) *arena {
	if n >= largeMessage {
		select {
		case a := <-largeArenas:
			return a
		default:
		}
	}
	return arenaPool.Get().(*arena)
}

// release returns a to a pool, zeroed, unless it grew too large to keep
// or the large arenas kept are enough; it reports whether it did.
func (a *arena) release() (pooled bool) {
	if a.elems.held()+a.texts.held()+a.attrs.held()+a.toks.held() <= maxPooledArena {
		a.reset()
		arenaPool.Put(a)
		return true
	}
	if a.bytes() > maxLargeArenaBytes {
		return false
	}
	a.reset()
	select {
	case largeArenas <- a:
		return true
	default:
		return false
	}
}

// bytes is the memory a's chunks hold.
func (a *arena) bytes() int {
	return a.elems.held()*int(unsafe.Sizeof(etree.Element{})) + a.texts.held()*int(unsafe.Sizeof(etree.CharData{})) +
		a.attrs.held()*int(unsafe.Sizeof(etree.Attr{})) + a.toks.held()*int(unsafe.Sizeof(etree.Token(nil)))
}

// reset zeroes what a handed out, for a's next tree.
func (a *arena) reset() {
	a.elems.reset()
	a.texts.reset()
	a.attrs.reset()
	a.toks.reset()
}
