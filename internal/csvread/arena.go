package csvread

import "unsafe"

// arenaBlock is the smallest block an Arena allocates: room for a few
// hundred typical records.
const arenaBlock = 64 << 10

// Arena holds the text and Fields of records read while it is set on a
// Reader (SetArena). Reset makes it reuse that memory, which saves the
// allocations and the collector work of a string per record for a caller
// that processes records in batches and keeps none of their values past
// the batch (or copies what it keeps, for example with strings.Clone).
// The zero Arena is ready to use.
type Arena struct {
	text   []byte
	fields []string
}

// Reset makes the arena reuse its memory. The Fields of every record read
// into it since the last Reset must no longer be used: their strings will
// change.
func (a *Arena) Reset() {
	a.text = a.text[:0]
	clear(a.fields)
	a.fields = a.fields[:0]
}

// str returns a string with b's bytes, held in the arena.
func (a *Arena) str(b []byte) string {
	if len(b) == 0 {
		return ""
	}
	if cap(a.text)-len(a.text) < len(b) {
		// A new block, never a grown one: strings handed out point into
		// the old block, which stays as it is. Reset keeps only the last
		// block, so each is twice the last: one soon holds a whole batch.
		a.text = make([]byte, 0, max(arenaBlock, 2*len(b), 2*cap(a.text)))
	}
	start := len(a.text)
	a.text = append(a.text, b...)
	return unsafe.String(&a.text[start], len(b))
}

// newFields returns a slice for n fields, capacity n.
func (a *Arena) newFields(n int) []string {
	if cap(a.fields)-len(a.fields) < n {
		a.fields = make([]string, 0, max(arenaBlock/64, 2*n, 2*cap(a.fields)))
	}
	start := len(a.fields)
	a.fields = a.fields[:start+n]
	return a.fields[start : start+n : start+n]
}

// SetArena makes the Reader keep the text and Fields of the records it
// returns in a (until the next SetArena); nil goes back to allocating them,
// which keeps them valid for ever. See Arena for when their values stop
// being valid.
func (r *Reader) SetArena(a *Arena) { r.arena = a }

// text returns b as a string, in the arena when there is one.
func (r *Reader) text(b []byte) string {
	if r.arena != nil {
		return r.arena.str(b)
	}
	return string(b)
}
