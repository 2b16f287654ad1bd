package engine

import (
	"context"
	"fmt"

	"github.com/userimport/user-import-operator/api/v1alpha1"

	"github.com/userimport/user-import-operator/internal/directory"
)

// Applying: workers look the users of a batch up (delta mode) and write
// its changes, or count them in a dry run.

// work looks up, plans the rest of and applies one batch.
func (p *pass) work(ctx context.Context, b *batch) {
	var keep []int
	if len(b.pending) > 0 {
		if b.err = p.resolve(ctx, b); b.err != nil {
			return
		}
	} else if b.step == v1alpha1.StepApply {
		if keep, b.err = p.checkCreates(ctx, b); b.err != nil {
			return
		}
	}
	b.counts.Unchanged = b.unchanged
	if p.dry {
		for _, c := range b.changes {
			b.counts.count(c, p.r.rel)
		}
		b.counts.Codes = int64(len(b.codes))
		return
	}
	if len(b.changes) == 0 {
		return
	}
	if len(b.codes) > 0 {
		if b.err = p.placeCodes(ctx, b, keep); b.err != nil {
			return
		}
	}
	results, err := p.r.dir.Apply(ctx, b.changes)
	if err != nil {
		b.err = fmt.Errorf("writing to the directory: %w", err)
		return
	}
	if len(results) != len(b.changes) {
		b.err = fmt.Errorf("writing to the directory: %d results for %d changes", len(results), len(b.changes))
		return
	}
	if len(b.codes) > 0 {
		p.settleCodes(b, results)
	}
	for i, res := range results {
		if res.Err != nil {
			msg := res.Err.Error()
			if !directory.IsChangeError(res.Err) {
				// Only a ChangeError promises a message free of values.
				msg = b.changes[i].Op.String() + " refused by the directory"
			}
			b.errs = append(b.errs, rowErr{RowError: RowError{Line: b.changes[i].Line, Identity: b.changes[i].Identity, Msg: msg}, row: b.changeRow[i]})
			continue
		}
		b.counts.count(b.changes[i], p.r.rel)
		p.r.rel.noteWritten(b.changes[i], res.ID)
	}
}

// count counts a change written (or planned); a create that carries the
// manager's reference sets it (see predictManager).
func (c *Counts) count(ch directory.Change, rel *relations) {
	switch ch.Op {
	case directory.OpCreate:
		c.Created++
		if rel != nil && rel.managerAttr != "" && len(ch.Attributes[rel.managerAttr]) > 0 {
			c.Groups.ManagersSet++
		}
	case directory.OpUpdate:
		c.Updated++
	case directory.OpDeactivate:
		c.Deactivated++
	case directory.OpDelete:
		c.Deleted++
	}
}

func (p *pass) unmanagedMsg() string {
	return p.r.cfg.Directory.IdentityAttribute + ": a user with this identity exists in the directory but is not managed by imports (it lacks the marker attribute)"
}

// resolve looks up the users of a delta batch and plans their changes.
func (p *pass) resolve(ctx context.Context, b *batch) error {
	ids := make([]string, len(b.pending))
	for i, pr := range b.pending {
		ids[i] = pr.identity
	}
	users, err := p.r.dir.Lookup(ctx, ids, p.r.readAttributes())
	if err != nil {
		return fmt.Errorf("looking up users: %w", err)
	}
	cfg := p.r.cfg
	for _, pr := range b.pending {
		u, ok := users[pr.identity]
		if ok && cfg.Directory.ManagedOnly && !u.Managed {
			b.errs = append(b.errs, rowErr{RowError: RowError{Line: pr.line, Identity: pr.identity, Msg: p.unmanagedMsg()}, row: pr.row, plan: true})
			continue
		}
		c := directory.Change{Line: pr.line, Identity: pr.identity, ID: u.ID}
		give := false // a recovery code
		switch {
		case pr.action == directory.OpDelete && ok:
			c.Op = directory.OpDelete
		case pr.action == directory.OpDeactivate && ok && u.Active:
			c.Op = directory.OpDeactivate
		case pr.action != directory.OpCreate:
			// Nothing to deactivate or delete.
			b.unchanged++
			continue
		case !ok:
			p.r.markNew(pr.attrs)
			c.Op, c.Attributes = directory.OpCreate, pr.attrs
			give = p.r.wantsCode(true, false)
		default:
			for _, a := range p.r.compare {
				if hashValues(pr.attrs[a]) != hashValues(u.Attributes[a]) {
					if c.Attributes == nil {
						c.Attributes = directory.Attributes{}
					}
					c.Attributes[a] = nonNil(pr.attrs[a])
				}
			}
			give = p.r.wantsCode(false, p.r.heldOf(u))
			if c.Attributes == nil && u.Active && !give {
				b.unchanged++
				continue
			}
			c.Op, c.Reactivate = directory.OpUpdate, !u.Active
		}
		b.add(c, pr.row)
		if give {
			b.giveCode(len(b.changes)-1, p.r.codeOf(pr.identity, pr.code, p.dry))
		}
	}
	b.pending = nil
	return nil
}

// checkCreates finds the creates of a full import whose identity is taken
// by a user outside the scope: writing them would take over (or collide
// with) a user that imports do not own. A directory that holds no such
// user needs no lookups.
// It returns, when it dropped changes, the new index of each change (-1:
// dropped).
func (p *pass) checkCreates(ctx context.Context, b *batch) ([]int, error) {
	cfg := p.r.cfg
	if !cfg.Directory.ManagedOnly {
		return nil, nil
	}
	var ids []string
	for _, c := range b.changes {
		if c.Op == directory.OpCreate {
			ids = append(ids, c.Identity)
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	if found, err := p.r.unmanaged(); err != nil || !found {
		return nil, err
	}
	users, err := p.r.dir.Lookup(ctx, ids, []string{cfg.Directory.IdentityAttribute})
	if err != nil {
		return nil, fmt.Errorf("looking up users: %w", err)
	}
	keep := b.changes[:0]
	keepRow := b.changeRow[:0]
	index := make([]int, len(b.changes))
	for i, c := range b.changes {
		if u, ok := users[c.Identity]; c.Op == directory.OpCreate && ok && !u.Managed {
			b.errs = append(b.errs, rowErr{RowError: RowError{Line: c.Line, Identity: c.Identity, Msg: p.unmanagedMsg()}, row: b.changeRow[i], plan: true})
			index[i] = -1
			continue
		}
		index[i] = len(keep)
		keep = append(keep, c)
		keepRow = append(keepRow, b.changeRow[i])
	}
	b.changes, b.changeRow = keep, keepRow
	return index, nil
}

func nonNil(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}
