package engine

import (
	"context"
	"slices"
	"strings"

	"github.com/userimport/user-import-operator/api/v1alpha1"

	"github.com/userimport/user-import-operator/internal/directory"
)

// Planning: rows are decided in file order (duplicates, seen flags) and
// grouped into batches of changes.

func (p *pass) newBatch(step string) *batch { return &batch{step: step} }

// rowsPerBatch bounds the rows of a batch whose rows need no change, so
// that checkpoints and progress move on through unchanged stretches.
func (p *pass) rowsPerBatch() int64 { return max(int64(p.r.cfg.BatchSize), 16384) }

func (p *pass) flush(send func(*batch) error) error {
	b := p.cur
	if b.rows == 0 && len(b.changes) == 0 {
		return nil
	}
	p.cur = p.newBatch(b.step)
	return send(b)
}

// replaying tells whether the record at off was done before the
// checkpoint being resumed.
func (p *pass) replaying(off int64) bool {
	cp := p.resume
	if cp == nil {
		return false
	}
	return cp.Step == v1alpha1.StepDeprovision || off < cp.Offset
}

// plan plans one mapped record.
func (p *pass) plan(ctx context.Context, m *mappedRow, send func(*batch) error) error {
	line, off := m.rec.Line, m.rec.Offset
	if m.lineErr != nil {
		line, off = m.lineErr.Line, m.lineErr.Offset
	}
	p.endLine = line
	replay := p.replaying(off)
	b := p.cur
	var row int64
	if !replay {
		p.planned++
		row = p.baseRows + p.planned
		b.rows++
		b.endLine = line
		b.endOff = m.next
	}
	fail := func(msg string) {
		if !replay {
			b.errs = append(b.errs, rowErr{RowError: RowError{Line: line, Identity: strings.Clone(m.identity), Msg: msg}, row: row, plan: true})
		}
	}
	switch {
	case m.lineErr != nil:
		p.unreadable++
		fail(m.lineErr.Msg)
	case m.msg != "":
		p.planFailed(m, fail)
	case p.seen != nil:
		p.planDelta(b, line, row, m, replay, fail)
	default:
		p.planFull(b, line, row, m, replay, fail)
	}
	if len(b.changes) >= p.r.cfg.BatchSize || len(b.pending) >= p.r.cfg.BatchSize || b.rows >= p.rowsPerBatch() {
		return p.flush(send)
	}
	return nil
}

// planFailed plans a row that failed mapping or a check. When its
// identity can be read, the row still names its user, and that user is
// protected: it counts as seen in the file (a full import does not
// deprovision it), and its identity is taken, so that a later row with
// the same one is a duplicate, whichever of the two is valid. Its other
// changes are not applied. A row whose identity cannot be read names
// nobody: it is counted, and a full import then proves no one absent
// without approval (see unreadableStop).
func (p *pass) planFailed(m *mappedRow, fail func(string)) {
	if m.identity == "" {
		p.unreadable++
		fail(m.msg)
		return
	}
	if p.seen != nil || p.r.dups != nil {
		if p.isDuplicate(m) {
			fail(p.duplicateMsg())
			return
		}
		fail(m.msg)
		return
	}
	s := p.r.snap
	if i := s.find(m.identity); i >= 0 {
		if s.seen(i) {
			fail(p.duplicateMsg())
			return
		}
		s.markSeen(i)
	} else if !p.created.add(p.r.identityHash(m.identity)) {
		fail(p.duplicateMsg())
		return
	}
	s.markReadAlike(m.identity)
	fail(m.msg)
}

func (p *pass) duplicateMsg() string {
	return p.r.cfg.Directory.IdentityAttribute + ": duplicate identity, an earlier line of the file has the same value"
}

func (p *pass) planFull(b *batch, line, row int64, m *mappedRow, replay bool, fail func(string)) {
	s := p.r.snap
	i := m.entry
	if p.r.dups != nil && p.isDuplicate(m) {
		// Found before the pass: a resume that seeks has not seen the
		// rows before its checkpoint.
		fail(p.duplicateMsg())
		return
	}
	if i < 0 {
		if !p.created.add(p.r.identityHash(m.identity)) {
			fail(p.duplicateMsg())
			return
		}
		s.markReadAlike(m.identity)
		if replay {
			return
		}
		code, msg := p.r.importedCode(m)
		if msg != "" {
			fail(msg)
			return
		}
		m.detach()
		p.r.markNew(m.attrs)
		if ref, ok := p.r.predictManager(m.identity); ok {
			m.attrs[p.r.rel.managerAttr] = []string{ref}
		}
		b.add(directory.Change{Op: directory.OpCreate, Line: line, Identity: m.identity, Attributes: m.attrs}, row)
		if p.r.wantsCode(true, false) {
			b.giveCode(len(b.changes)-1, p.r.codeOf(m.identity, code, p.dry))
		}
		return
	}
	if s.seen(i) {
		fail(p.duplicateMsg())
		return
	}
	s.markSeen(i)
	s.markReadAlike(m.identity)
	if replay {
		return
	}
	wants := p.r.wantsCode(false, s.held(i))
	code, msg := p.r.importedCode(m)
	if msg != "" {
		fail(msg)
		return
	}
	if m.attrs == nil && s.active(i) && !wants {
		b.unchanged++
		return
	}
	m.detach()
	b.add(directory.Change{Op: directory.OpUpdate, Line: line, Identity: m.identity, ID: s.id(i), Attributes: m.attrs, Reactivate: !s.active(i)}, row)
	if wants {
		b.giveCode(len(b.changes)-1, p.r.codeOf(m.identity, code, p.dry))
	}
}

func (p *pass) planDelta(b *batch, line, row int64, m *mappedRow, replay bool, fail func(string)) {
	action := p.r.statusAction(m)
	if p.isDuplicate(m) {
		fail(p.duplicateMsg())
		return
	}
	if replay {
		return
	}
	code, msg := p.r.importedCode(m)
	if msg != "" && action == directory.OpCreate {
		fail(msg)
		return
	}
	m.detach()
	b.pending = append(b.pending, pendingRow{line: line, row: row, identity: m.identity, attrs: m.attrs, action: action, code: code})
}

// statusAction is what a delta row's status column asks for: OpDelete,
// OpDeactivate, or OpCreate (create or update) without a match.
func (r *run) statusAction(m *mappedRow) directory.Op {
	sc := r.cfg.StatusColumn
	if sc == nil || r.status < 0 {
		return directory.OpCreate
	}
	v := strings.TrimSpace(m.rec.Fields[r.status])
	fold := func(s string) bool { return strings.EqualFold(s, v) }
	switch {
	case slices.ContainsFunc(sc.DeleteValues, fold):
		return directory.OpDelete
	case slices.ContainsFunc(sc.DeactivateValues, fold):
		return directory.OpDeactivate
	}
	return directory.OpCreate
}

// isDuplicate tells whether a delta row's identity was on an earlier
// line: from the identity set, or, for a large file, from the duplicates
// found before the pass (rows come in offset order).
func (p *pass) isDuplicate(m *mappedRow) bool {
	d := p.r.dups
	if d == nil {
		return !p.seen.add(p.r.identityHash(m.identity))
	}
	for p.dupNext < len(d) && d[p.dupNext] < m.rec.Offset {
		p.dupNext++
	}
	return p.dupNext < len(d) && d[p.dupNext] == m.rec.Offset
}

// detach copies the row's identity and values, which point into its
// chunk's arena, into one string of their own: they go into a batch, which
// outlives the chunk. The attribute slices belong to the row.
func (m *mappedRow) detach() {
	n := len(m.identity)
	lists := make([][]string, 0, len(m.attrs))
	for _, vs := range m.attrs {
		lists = append(lists, vs)
		for _, v := range vs {
			n += len(v)
		}
	}
	var sb strings.Builder
	sb.Grow(n)
	sb.WriteString(m.identity)
	for _, vs := range lists {
		for _, v := range vs {
			sb.WriteString(v)
		}
	}
	s := sb.String()
	m.identity, s = s[:len(m.identity)], s[len(m.identity):]
	for _, vs := range lists {
		for i, v := range vs {
			vs[i], s = s[:len(v)], s[len(v):]
		}
	}
}

func (b *batch) add(c directory.Change, row int64) {
	b.changes = append(b.changes, c)
	b.changeRow = append(b.changeRow, row)
}

func (p *pass) produceDeprovision(send func(*batch) error) error {
	if !p.r.deprovisions() {
		return nil
	}
	s := p.r.snap
	row := p.baseRows + p.planned
	b := p.newBatch(v1alpha1.StepDeprovision)
	for i := range s.len() {
		op := p.r.deprovisionOp(i)
		if op == 0 {
			continue
		}
		b.add(directory.Change{Op: op, Identity: s.identity(i), ID: s.id(i)}, row)
		if len(b.changes) >= p.r.cfg.BatchSize {
			b.endLine, b.endOff = p.endLine, p.endOff
			if err := send(b); err != nil {
				return err
			}
			b = p.newBatch(v1alpha1.StepDeprovision)
		}
	}
	// An empty last batch still records that the step is done.
	b.endLine, b.endOff = p.endLine, p.endOff
	return send(b)
}
