package engine

import (
	"syscall"
	"unsafe"

	"github.com/userimport/user-import-operator/internal/memlimit"
)

// The snapshot and the identity sets are large, long-lived and hold no
// pointers. On the Go heap they would count as live heap, and the
// collector lets garbage grow to as much again before it runs (GOGC=100):
// a 100 MiB snapshot would make a process of more than 200 MiB. They are
// kept in anonymous memory mappings instead, which cost their own size
// only, and which the runtime's memory limit is told of (memlimit.Outside)
// so that the heap beside them stays within what is left. Where mapping
// fails, the Go heap is used.

type word interface{ uint8 | uint32 | uint64 }

// mapped returns n zeroed Ts and the mapping to release (nil when the
// memory came from the Go heap).
func mapped[T word](n int) ([]T, []byte) {
	if n == 0 {
		return nil, nil
	}
	var zero T
	raw, err := syscall.Mmap(-1, 0, n*int(unsafe.Sizeof(zero)), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return make([]T, n), nil
	}
	memlimit.Outside(int64(len(raw)))
	return unsafe.Slice((*T)(unsafe.Pointer(&raw[0])), n), raw
}

func unmap(raw []byte) {
	if raw != nil && syscall.Munmap(raw) == nil {
		memlimit.Outside(-int64(len(raw)))
	}
}

// blockBytes is the size of one block of a column.
const blockBytes = 1 << 20

// column is an append-only array of Ts in blocks of blockBytes, so that
// growing it never copies (a copy would briefly double its memory).
type column[T word] struct {
	blocks [][]T
	raws   [][]byte
	shift  uint // log2 of Ts per block
	n      int
}

func (c *column[T]) init() {
	var zero T
	c.shift = 20
	for s := unsafe.Sizeof(zero); s > 1; s >>= 1 {
		c.shift--
	}
}

func (c *column[T]) len() int { return c.n }

func (c *column[T]) append(v T) {
	if c.shift == 0 {
		c.init()
	}
	if c.n>>c.shift == len(c.blocks) {
		b, raw := mapped[T](1 << c.shift)
		c.blocks = append(c.blocks, b)
		c.raws = append(c.raws, raw)
	}
	c.blocks[c.n>>c.shift][c.n&(1<<c.shift-1)] = v
	c.n++
}

func (c *column[T]) at(i int) T { return c.blocks[i>>c.shift][i&(1<<c.shift-1)] }

func (c *column[T]) set(i int, v T) { c.blocks[i>>c.shift][i&(1<<c.shift-1)] = v }

func (c *column[T]) free() {
	for _, r := range c.raws {
		unmap(r)
	}
	*c = column[T]{}
}

// byteArena stores short byte strings in blocks; a string never spans two
// blocks. Positions are uint32: an arena holds at most 4 GiB.
type byteArena struct {
	blocks [][]byte
	raws   [][]byte
	used   int // bytes used in the last block
}

// add stores b and returns its position, or false when the arena is full.
func (a *byteArena) add(b []byte) (uint32, bool) {
	if len(a.blocks) == 0 || a.used+len(b) > blockBytes {
		if len(b) > blockBytes || (len(a.blocks)+1)*blockBytes > 1<<32 {
			return 0, false
		}
		blk, raw := mapped[uint8](blockBytes)
		a.blocks = append(a.blocks, blk)
		a.raws = append(a.raws, raw)
		a.used = 0
	}
	pos := (len(a.blocks)-1)*blockBytes + a.used
	copy(a.blocks[len(a.blocks)-1][a.used:], b)
	a.used += len(b)
	return uint32(pos), true
}

// from returns the bytes from position pos to the end of its block.
func (a *byteArena) from(pos uint32) []byte {
	return a.blocks[pos/blockBytes][pos%blockBytes:]
}

func (a *byteArena) free() {
	for _, r := range a.raws {
		unmap(r)
	}
	*a = byteArena{}
}
