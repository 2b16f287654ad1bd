package engine

// idSet is a set of 64-bit identity fingerprints: an open-addressing table
// with linear probing, 8 bytes a slot, at most 3/4 full. 0 marks an empty
// slot (fingerprints are never 0). Two identities with the same
// fingerprint would be taken for a duplicate; with 64 bits the chance is
// about n²/2⁶⁵ (3·10⁻⁶ for 10 million rows).
type idSet struct {
	slots []uint64
	raw   []byte // mapping of slots (see offheap.go)
	n     int
}

func newIDSet(capacity int) *idSet {
	size := 1024
	for size*3/4 < capacity {
		size *= 2
	}
	s := &idSet{}
	s.slots, s.raw = mapped[uint64](size)
	return s
}

// free releases the memory of the set.
func (s *idSet) free() {
	unmap(s.raw)
	s.slots, s.raw, s.n = nil, nil, 0
}

// add inserts h and reports whether it was absent.
func (s *idSet) add(h uint64) bool {
	if (s.n+1)*4 > len(s.slots)*3 {
		s.grow()
	}
	mask := uint64(len(s.slots) - 1)
	for i := mix(h) & mask; ; i = (i + 1) & mask {
		switch s.slots[i] {
		case 0:
			s.slots[i] = h
			s.n++
			return true
		case h:
			return false
		}
	}
}

func (s *idSet) grow() {
	old, oldRaw := s.slots, s.raw
	s.slots, s.raw = mapped[uint64](2 * len(old))
	s.n = 0
	for _, h := range old {
		if h != 0 {
			s.add(h)
		}
	}
	unmap(oldRaw)
}

// mix spreads the bits of h over the table index, so that fingerprints
// sharing their low bits do not cluster.
func mix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	return h
}
