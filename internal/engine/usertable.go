package engine

import (
	"encoding/binary"
	"fmt"

	"github.com/cespare/xxhash/v2"
)

// userTable is what the Groups and Managers steps remember per user, by a
// string key (an identity, or a member reference): a fixed number of
// string fields and a byte of flags each. A Go map of a million users
// costs a few hundred bytes a user and, as live heap, as much again in
// garbage before the collector runs; a userTable keeps the strings in a byte
// arena and the index in an open-addressing table outside the Go heap
// (offheap.go), at about the size of the strings plus 13 bytes a user.
//
// Putting a key again stores a new record and points the index at it;
// the old one stays in the arena, unreachable.
type userTable struct {
	fields int
	arena  byteArena      // per record: uvarint len and bytes of the key, then of each field
	off    column[uint32] // arena position of each record
	flags  column[uint8]
	index  keyIndex
	buf    []byte
}

func newUserTable(fields int) *userTable {
	t := &userTable{fields: fields}
	t.index.keyOf = t.keyBytes
	return t
}

// len is the number of keys.
func (t *userTable) len() int {
	if t == nil {
		return 0
	}
	return t.index.n
}

func (t *userTable) free() {
	if t == nil {
		return
	}
	t.arena.free()
	t.off.free()
	t.flags.free()
	t.index.free()
}

// put stores the fields of key (as many as the table has; missing ones
// are empty) with flags, and returns its record.
func (t *userTable) put(key string, flags uint8, fields ...string) (int, error) {
	t.buf = binary.AppendUvarint(t.buf[:0], uint64(len(key)))
	t.buf = append(t.buf, key...)
	for f := range t.fields {
		v := ""
		if f < len(fields) {
			v = fields[f]
		}
		t.buf = binary.AppendUvarint(t.buf, uint64(len(v)))
		t.buf = append(t.buf, v...)
	}
	pos, ok := t.arena.add(t.buf)
	if !ok {
		return -1, fmt.Errorf("more users than an import can track in its groups and managers (%d)", t.index.n)
	}
	i := t.off.len()
	t.off.append(pos)
	t.flags.append(flags)
	t.index.set(key, i)
	return i, nil
}

// find returns the record of key, or -1.
func (t *userTable) find(key string) int {
	if t == nil {
		return -1
	}
	return t.index.find(key)
}

// has tells whether key has a record.
func (t *userTable) has(key string) bool { return t.find(key) >= 0 }

func (t *userTable) keyBytes(i int) []byte {
	b := t.arena.from(t.off.at(i))
	n, k := binary.Uvarint(b)
	return b[k : k+int(n)]
}

// field returns field f of record i.
func (t *userTable) field(i, f int) string {
	b := t.arena.from(t.off.at(i))
	for range f + 1 {
		n, k := binary.Uvarint(b)
		b = b[k+int(n):]
	}
	n, k := binary.Uvarint(b)
	return string(b[k : k+int(n)])
}

func (t *userTable) flag(i int) uint8 { return t.flags.at(i) }

// memberList holds the members of a relationPlan in file order, encoded
// in a byte arena outside the Go heap (see userTable), and indexed by
// identity: a million members as structs of strings would be a few
// hundred MiB of live heap.
type memberList struct {
	arena byteArena      // per member: uvarint line, identity, manager, number of groups, groups
	off   column[uint32] // arena position of each member
	index keyIndex       // by identity
	buf   []byte
}

func (l *memberList) len() int { return l.off.len() }

func (l *memberList) free() {
	l.arena.free()
	l.off.free()
	l.index.free()
}

// add appends m, whose identity no member has.
func (l *memberList) add(m member) error {
	b := binary.AppendUvarint(l.buf[:0], uint64(m.line))
	b = binary.AppendUvarint(b, uint64(len(m.identity)))
	b = append(b, m.identity...)
	b = binary.AppendUvarint(b, uint64(len(m.manager)))
	b = append(b, m.manager...)
	b = binary.AppendUvarint(b, uint64(len(m.groups)))
	for _, g := range m.groups {
		b = binary.AppendUvarint(b, uint64(g))
	}
	l.buf = b
	pos, ok := l.arena.add(b)
	if !ok {
		return fmt.Errorf("more rows with groups or a manager than an import can track (%d)", l.len())
	}
	l.off.append(pos)
	if l.index.keyOf == nil {
		l.index.keyOf = l.identityBytes
	}
	l.index.set(m.identity, l.len()-1)
	return nil
}

// find returns the place of the member with identity, or -1.
func (l *memberList) find(identity string) int {
	if l == nil {
		return -1
	}
	return l.index.find(identity)
}

// has tells whether a member has identity.
func (l *memberList) has(identity string) bool { return l.find(identity) >= 0 }

func (l *memberList) identityBytes(i int) []byte {
	b := l.arena.from(l.off.at(i))
	_, k := binary.Uvarint(b) // the line
	b = b[k:]
	n, k := binary.Uvarint(b)
	return b[k : k+int(n)]
}

// at returns member i.
func (l *memberList) at(i int) member { return l.decode(i, true) }

// head returns member i without its groups.
func (l *memberList) head(i int) member { return l.decode(i, false) }

func (l *memberList) decode(i int, groups bool) member {
	b := l.arena.from(l.off.at(i))
	next := func() uint64 {
		v, k := binary.Uvarint(b)
		b = b[k:]
		return v
	}
	text := func() string {
		n := next()
		s := string(b[:n])
		b = b[n:]
		return s
	}
	m := member{line: int64(next())}
	m.identity = text()
	m.manager = text()
	if n := next(); n > 0 && groups {
		m.groups = make([]int32, n)
		for k := range m.groups {
			m.groups[k] = int32(next())
		}
	}
	return m
}

// identity returns the identity of member i.
func (l *memberList) identity(i int) string { return string(l.identityBytes(i)) }

// manager returns the manager's identity of member i.
func (l *memberList) manager(i int) string {
	b := l.arena.from(l.off.at(i))
	_, k := binary.Uvarint(b) // the line
	b = b[k:]
	n, k := binary.Uvarint(b) // the identity
	b = b[k+int(n):]
	n, k = binary.Uvarint(b)
	return string(b[k : k+int(n)])
}

// line returns the line of member i.
func (l *memberList) line(i int) int64 {
	v, _ := binary.Uvarint(l.arena.from(l.off.at(i)))
	return int64(v)
}

// keyIndex indexes the entries of a userTable or a memberList by a string
// key: an open-addressing table outside the Go heap of entry numbers, each
// tagged with the high bits of its key's hash so that a probe rarely reads
// the key of an entry it does not want. The keys are stored by the
// entries; keyOf reads the key of entry i.
type keyIndex struct {
	table []uint64 // tag<<32 | entry+1; 0 is empty
	raw   []byte   // mapping of table
	n     int      // keys in table
	keyOf func(i int) []byte
	// fold, when not nil, maps a key to what tells keys apart
	// (identities in a directory that folds them, see canonical).
	fold func(string) string
}

func (x *keyIndex) hash(key string) uint64 {
	if x.fold != nil {
		key = x.fold(key)
	}
	return xxhash.Sum64String(key)
}

// hashOf is hash of a stored key, which it does not copy unless folded.
func (x *keyIndex) hashOf(b []byte) uint64 {
	if x.fold != nil {
		return x.hash(string(b))
	}
	return xxhash.Sum64(b)
}

func (x *keyIndex) same(b []byte, key string) bool {
	if x.fold != nil {
		return x.fold(string(b)) == x.fold(key)
	}
	return string(b) == key
}

// slot returns the slot of key, whose hash is h: the one of its entry, or
// the empty one where it would go; and its entry, or -1.
func (x *keyIndex) slot(key string, h uint64) (uint64, int) {
	mask := uint64(len(x.table) - 1)
	for p := mix(h) & mask; ; p = (p + 1) & mask {
		e := x.table[p]
		if e == 0 {
			return p, -1
		}
		if e&^0xffffffff == tagOf(h) && x.same(x.keyOf(entryOf(e)), key) {
			return p, entryOf(e)
		}
	}
}

// find returns the entry of key, or -1.
func (x *keyIndex) find(key string) int {
	if len(x.table) == 0 {
		return -1
	}
	_, e := x.slot(key, x.hash(key))
	return e
}

// set points key at entry i.
func (x *keyIndex) set(key string, i int) {
	if (x.n+1)*4 > len(x.table)*3 {
		x.grow()
	}
	h := x.hash(key)
	p, e := x.slot(key, h)
	if e < 0 {
		x.n++
	}
	x.table[p] = tagOf(h) | uint64(i+1)
}

// grow doubles the table.
func (x *keyIndex) grow() {
	old, oldRaw := x.table, x.raw
	size := max(1024, 2*len(old))
	x.table, x.raw = mapped[uint64](size)
	mask := uint64(size - 1)
	for _, e := range old {
		if e == 0 {
			continue
		}
		p := mix(x.hashOf(x.keyOf(entryOf(e)))) & mask
		for x.table[p] != 0 {
			p = (p + 1) & mask
		}
		x.table[p] = e
	}
	unmap(oldRaw)
}

func (x *keyIndex) free() {
	unmap(x.raw)
	x.table, x.raw, x.n = nil, nil, 0
}
