package engine

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/cespare/xxhash/v2"

	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/mapping"
)

// snapshot is what a full import remembers of the users in scope: for
// each, its identity, directory id, active flag, whether the file listed
// it, and one 64-bit hash per mapped attribute. Full attribute values are
// not kept: a row is compared with a user by hashes, and an update takes
// its values from the row.
//
// The layout is flat to keep a million users in about 100 MiB: identities
// and ids live in one byte arena, hashes in one []uint64, and the index
// is an open-addressing table of entry numbers, each tagged with the high
// bits of its identity's hash so that a probe rarely reads the arena of
// an entry it does not want.
type snapshot struct {
	attrs []string // mapped attributes hashed, identity excluded
	// heldAttr, when set, is the attribute whose value says the user holds
	// a recovery code (flagHeld).
	heldAttr string
	// managerAttr, when set, is the attribute of the manager reference,
	// whose first value is hashed in managers.
	managerAttr string
	managers    column[uint64]
	arena       byteArena      // per user: uvarint len, identity, uvarint len, id
	off         column[uint32] // arena position of each user
	flags       column[uint8]
	hashes      column[uint64] // len(attrs) per user
	table       []uint64       // tag<<32 | entry+1; 0 is empty
	raw         []byte         // mapping of table
	// fold, set before build, is how the directory folds identities (nil:
	// it compares them exactly). build indexes the users by their folded
	// identity too, in folded (see findFolded), as a line would spell it;
	// it does so in a directory that compares exactly when some identity
	// is spelled otherwise than a line can be (see readAsLines).
	fold func(string) string
	// same is how the directory itself tells identities apart (the fold
	// it reports, or exactly): it decides between users whose
	// identities read alike composed and trimmed (see findFolded).
	same func(a, b string) bool
	// readAlike: the identities of some users fold alike (see
	// markReadAlike).
	readAlike bool
	folded    []uint64
	foldedRaw []byte
	buf       []byte
	// listed are the attributes of the listing; pos, heldPos and
	// managerPos the places in it of attrs, heldAttr and managerAttr
	// (-1: not listed).
	listed              []string
	pos                 []int
	heldPos, managerPos int
	vals                [][]string
	one                 [1]string
}

const (
	flagActive uint8 = 1 << iota
	flagSeen
	flagHeld
)

func newSnapshot(attrs []string) *snapshot { return &snapshot{attrs: attrs} }

func (s *snapshot) len() int { return s.off.len() }

// listing prepares the snapshot for a listing of listed: the attributes
// it hashes, the held and manager attributes are found there by place.
func (s *snapshot) listing(listed []string) {
	s.listed = listed
	s.pos = s.pos[:0]
	for _, a := range s.attrs {
		s.pos = append(s.pos, slices.Index(listed, a))
	}
	s.heldPos, s.managerPos = -1, -1
	if s.heldAttr != "" {
		s.heldPos = slices.Index(listed, s.heldAttr)
	}
	if s.managerAttr != "" {
		s.managerPos = slices.Index(listed, s.managerAttr)
	}
}

// add records u, listed with the attributes given to listing.
func (s *snapshot) add(u directory.User) error {
	s.vals = s.vals[:0]
	for _, a := range s.listed {
		s.vals = append(s.vals, u.Attributes[a])
	}
	return s.addValues(&u, s.vals)
}

// addValues records u, with vals[i] the values of the i-th listed
// attribute; it keeps none of them. build must be called once every user
// is added.
func (s *snapshot) addValues(u *directory.User, vals [][]string) error {
	s.buf = binary.AppendUvarint(s.buf[:0], uint64(len(u.Identity)))
	s.buf = append(s.buf, u.Identity...)
	s.buf = binary.AppendUvarint(s.buf, uint64(len(u.ID)))
	s.buf = append(s.buf, u.ID...)
	pos, ok := s.arena.add(s.buf)
	if !ok {
		return fmt.Errorf("the directory holds more users than a full import can track (%d listed)", s.len())
	}
	s.off.append(pos)
	at := func(i int) []string {
		if i < 0 {
			return nil
		}
		return vals[i]
	}
	var f uint8
	if u.Active {
		f |= flagActive
	}
	if s.heldPos >= 0 && first(at(s.heldPos)) != "" {
		f |= flagHeld
	}
	s.flags.append(f)
	for _, i := range s.pos {
		s.hashes.append(hashValues(at(i)))
	}
	if s.managerPos >= 0 {
		s.one[0] = first(at(s.managerPos))
		s.managers.append(hashValues(s.one[:]))
	}
	return nil
}

// build indexes the users by identity. Two users with one identity are an
// error: a row could not tell which of them it means, and the other would
// look missing from the file.
func (s *snapshot) build(identityAttr string) error {
	size := 1024
	for size < 2*s.len() {
		size *= 2
	}
	s.table, s.raw = mapped[uint64](size)
	mask := uint64(size - 1)
	for i := range s.len() {
		id := s.identityBytes(i)
		h := xxhash.Sum64(id)
		for p := mix(h) & mask; ; p = (p + 1) & mask {
			e := s.table[p]
			if e == 0 {
				s.table[p] = tagOf(h) | uint64(i+1)
				break
			}
			if e&^0xffffffff == tagOf(h) && string(s.identityBytes(entryOf(e))) == string(id) {
				return fmt.Errorf("the directory holds two users with the same %s; a full import needs it to be unique", identityAttr)
			}
		}
	}
	if s.fold == nil && s.readAsLines() {
		return nil
	}
	if fold := s.fold; fold != nil {
		s.same = func(a, b string) bool { return fold(a) == fold(b) }
		s.fold = func(id string) string { return fold(mapping.Identity(id)) }
	} else {
		s.same = func(a, b string) bool { return a == b }
		s.fold = mapping.Identity
	}
	s.folded, s.foldedRaw = mapped[uint64](size)
	for i := range s.len() {
		key := s.fold(string(s.identityBytes(i)))
		h := xxhash.Sum64String(key)
		p := mix(h) & mask
		for e := s.folded[p]; e != 0; e = s.folded[p] {
			if !s.readAlike && e&^0xffffffff == tagOf(h) && s.fold(s.identity(entryOf(e))) == key {
				s.readAlike = true
			}
			p = (p + 1) & mask
		}
		s.folded[p] = tagOf(h) | uint64(i+1)
	}
	return nil
}

// markReadAlike marks seen every user whose identity folds as the one a
// line names (or creates): another tool may have written one person's
// identity twice, composed and with a combining accent, or with blanks
// around it. The line names one of them (see findFolded), and may be
// meant for any: none of them is missing from the file.
func (s *snapshot) markReadAlike(identity string) {
	if s.readAlike {
		s.eachFolded(s.fold(identity), s.markSeen)
	}
}

// eachFolded calls fn with the entry of each user whose identity folds
// to key.
func (s *snapshot) eachFolded(key string, fn func(i int)) {
	h := xxhash.Sum64String(key)
	mask := uint64(len(s.folded) - 1)
	for p := mix(h) & mask; s.folded[p] != 0; p = (p + 1) & mask {
		if e := s.folded[p]; e&^0xffffffff == tagOf(h) && s.fold(s.identity(entryOf(e))) == key {
			fn(entryOf(e))
		}
	}
}

// readAsLines tells whether every identity is spelled as a line's
// identity can be, that is as mapping.Identity reads it: without blanks
// around it, in Unicode's composed form. A user another tool wrote as
// "jose" and a combining accent is named by a line "José", which the
// mapping reads composed; compared as spelled, that user would look
// missing from the file.
func (s *snapshot) readAsLines() bool {
	for i := range s.len() {
		if !mapping.IsIdentity(s.identityBytes(i)) {
			return false
		}
	}
	return true
}

// findFolded returns the entry of the one user whose identity folds as
// identity does, or -1 when none does. Of several, it is the one the
// directory itself finds equal to identity (a column that ignores case
// holds "JOSé" and, written by another tool, "jose" with a combining
// accent: "josé" names the first); -1 when that is not one either.
func (s *snapshot) findFolded(identity string) int {
	if len(s.folded) == 0 {
		return -1
	}
	found, several := -1, false
	same, sameCount := -1, 0
	s.eachFolded(s.fold(identity), func(i int) {
		if found >= 0 {
			several = true
		}
		found = i
		if s.same(identity, s.identity(i)) {
			same, sameCount = i, sameCount+1
		}
	})
	switch {
	case !several:
		return found
	case sameCount == 1:
		return same
	}
	return -1
}

func tagOf(h uint64) uint64 { return h &^ 0xffffffff }
func entryOf(e uint64) int  { return int(uint32(e)) - 1 }

// free releases the memory of the snapshot.
func (s *snapshot) free() {
	s.arena.free()
	s.off.free()
	s.flags.free()
	s.hashes.free()
	s.managers.free()
	unmap(s.raw)
	unmap(s.foldedRaw)
	s.table, s.raw, s.folded, s.foldedRaw = nil, nil, nil, nil
}

// find returns the entry of identity, or -1.
func (s *snapshot) find(identity string) int {
	return s.findHashed(identity, xxhash.Sum64String(identity))
}

// findHashed is find with the identity's xxhash computed by the caller.
func (s *snapshot) findHashed(identity string, h uint64) int {
	if len(s.table) == 0 {
		return -1
	}
	mask := uint64(len(s.table) - 1)
	for p := mix(h) & mask; ; p = (p + 1) & mask {
		e := s.table[p]
		if e == 0 {
			return -1
		}
		if e&^0xffffffff == tagOf(h) && string(s.identityBytes(entryOf(e))) == identity {
			return entryOf(e)
		}
	}
}

// touch reads the first table slot of an identity hash, so that the
// memory is in the cache when findHashed needs it a little later: a
// chunk's rows are touched first and looked up after, which lets the
// processor wait for several of these random reads at once.
func (s *snapshot) touch(h uint64) uint64 {
	if len(s.table) == 0 {
		return 0
	}
	return s.table[mix(h)&uint64(len(s.table)-1)]
}

func (s *snapshot) identityBytes(i int) []byte {
	b := s.arena.from(s.off.at(i))
	n, k := binary.Uvarint(b)
	return b[k : k+int(n)]
}

func (s *snapshot) identity(i int) string { return string(s.identityBytes(i)) }

func (s *snapshot) id(i int) string {
	b := s.arena.from(s.off.at(i))
	n, k := binary.Uvarint(b)
	b = b[k+int(n):]
	n, k = binary.Uvarint(b)
	return string(b[k : k+int(n)])
}

func (s *snapshot) hash(i, attr int) uint64 { return s.hashes.at(i*len(s.attrs) + attr) }

// managerHash is the hash of the manager reference of user i.
func (s *snapshot) managerHash(i int) uint64 { return s.managers.at(i) }
func (s *snapshot) active(i int) bool        { return s.flags.at(i)&flagActive != 0 }
func (s *snapshot) held(i int) bool          { return s.flags.at(i)&flagHeld != 0 }
func (s *snapshot) seen(i int) bool          { return s.flags.at(i)&flagSeen != 0 }
func (s *snapshot) markSeen(i int)           { s.flags.set(i, s.flags.at(i)|flagSeen) }

func (s *snapshot) clearSeen() {
	for i := range s.len() {
		s.flags.set(i, s.flags.at(i)&^flagSeen)
	}
}
