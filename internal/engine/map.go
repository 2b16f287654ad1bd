package engine

import (
	"github.com/cespare/xxhash/v2"

	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/mapping"
)

// Mapping: each row is mapped (and, in full mode, compared with the
// snapshot) by several workers, independently of the other rows.

// mapChunk maps the rows of c. It reads only what no planner writes
// during a pass: the mapper and the snapshot's index and hashes.
//
// In full mode it works in two rounds: the first maps every row and keeps
// only hashes (of the identity and of each compared attribute), touching
// the identity's slot of the snapshot index; the second looks the rows up
// and compares hashes. Most rows are unchanged and need nothing else;
// the few that are created or updated are mapped again for their values,
// which costs less than copying every row's values.
func (p *pass) mapChunk(c *chunk, rec *mapping.Record) {
	s := p.r.snap
	if p.seen != nil || s == nil || s.len() == 0 {
		for i := range c.rows {
			if m := &c.rows[i]; p.mapRow(c, m, rec) {
				m.attrs = p.r.mapper.AttributesOf(rec)
			}
		}
		return
	}
	k := 1 + len(p.r.compare)
	if cap(c.hashes) < k*len(c.rows) {
		c.hashes = make([]uint64, k*len(c.rows))
	}
	hashes := c.hashes[:k*len(c.rows)]
	var touched uint64
	for i := range c.rows {
		m := &c.rows[i]
		if !p.mapRow(c, m, rec) {
			continue
		}
		h := hashes[i*k : (i+1)*k]
		h[0] = xxhash.Sum64String(m.identity)
		touched += s.touch(h[0])
		for j := 1; j < k; j++ {
			h[j] = hashValues(rec.Values[j])
		}
	}
	c.touched = touched
	for i := range c.rows {
		m := &c.rows[i]
		if m.lineErr != nil || m.msg != "" {
			continue
		}
		h := hashes[i*k : (i+1)*k]
		m.entry = s.findHashed(m.identity, h[0])
		changed := m.entry < 0
		for j := 1; j < k && !changed; j++ {
			changed = h[j] != s.hash(m.entry, j-1)
		}
		if !changed {
			continue
		}
		p.mapRow(c, m, rec)
		if m.entry < 0 {
			m.attrs = p.r.mapper.AttributesOf(rec)
			continue
		}
		// compare[j-1] is attribute j of the Record (0 is the identity).
		m.attrs = directory.Attributes{}
		for j := 1; j < k; j++ {
			if h[j] != s.hash(m.entry, j-1) {
				m.attrs[p.r.compare[j-1]] = append([]string{}, rec.Values[j]...)
			}
		}
	}
}

// mapRow maps the record of m into rec and sets m's identity, or its
// error; it reports whether the row mapped.
func (p *pass) mapRow(c *chunk, m *mappedRow, rec *mapping.Record) bool {
	return p.r.mapWhole(c, m, rec)
}

// mapWhole maps a row as the users' pass decides it: its user entries,
// then its groups and manager entries.
func (r *run) mapWhole(c *chunk, m *mappedRow, rec *mapping.Record) bool {
	return r.mapRow(m, rec) && r.checkRelations(m, &c.relRec)
}

// checkRelations maps the groups and manager entries of a row that
// mapped. A row whose groups or manager break a rule, or that names a
// group the directory does not have while createGroups is false, fails
// whole, in the users' pass, like a row that breaks any other rule: its
// user is protected and nothing of the row is written.
func (r *run) checkRelations(m *mappedRow, rec *mapping.Record) bool {
	rel := r.rel
	if rel == nil {
		return true
	}
	if err := rel.mapper.MapRecord(m.rec.Fields, rec); err != nil {
		m.msg = err.Error()
		return false
	}
	if msg := rel.unknownGroup(rec.Values[rel.groupsAt]); msg != "" {
		m.msg = msg
		return false
	}
	return true
}

func (r *run) mapRow(m *mappedRow, rec *mapping.Record) bool {
	if m.lineErr != nil {
		return false
	}
	err := r.mapper.MapRecord(m.rec.Fields, rec)
	// A row that fails still names its user when its identity could be
	// read: that user is protected (see plan).
	m.identity = r.canonical(rec.Identity())
	if err != nil {
		m.msg = err.Error()
		return false
	}
	if m.identity == "" {
		m.msg = r.cfg.Directory.IdentityAttribute + ": the identity is empty"
		return false
	}
	if r.checkValue != nil {
		for i, vals := range rec.Values {
			for _, v := range vals {
				if msg := r.checkValue(r.attrs[i], v); msg != "" {
					m.msg = msg
					return false
				}
			}
		}
	}
	return true
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

// canonical is identity as the directory spells it, in a full import:
// the identity of the one listed user whose identity folds alike, when
// none matches it exactly. A directory may fold identities (case,
// blanks; see directory.IdentityFolder), and every directory may hold
// an identity spelled otherwise than the mapping reads a line's (blanks
// around it, a combining accent; see snapshot.fold). Every identity the
// run compares with the file's then has one spelling, and a row that
// spells its user otherwise updates (and protects) that user. Read as
// spelled, the row would be a create that the directory takes for that
// user (or a second user), and the user, missing from the file under its
// own spelling, would be deprovisioned.
func (r *run) canonical(identity string) string {
	s := r.snap
	if s == nil || identity == "" || len(s.folded) == 0 || s.find(identity) >= 0 {
		return identity
	}
	if i := s.findFolded(identity); i >= 0 {
		return s.identity(i)
	}
	return identity
}
