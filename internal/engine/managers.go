package engine

import (
	"context"
	"fmt"
	"sync"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
)

// The Managers step (see relations.go): each user's reference to their
// manager, resolved once the users are written.

// prepareManagers reads the file's managers before a full import writes
// its users, when the directory can tell the reference of a user before
// it is created: the users it creates then carry their manager's
// reference from the start (predictManager), and the Managers step has
// only the changes of existing users left. Writing every new user again
// for its manager would cost as much as writing it.
func (r *run) prepareManagers(ctx context.Context) error {
	rel := r.rel
	if rel == nil || rel.managers == nil || r.cfg.Mode != v1alpha1.ModeFull {
		return nil
	}
	if _, ok := rel.managers.PredictReference("x"); !ok {
		return nil
	}
	pl, err := r.scanRelations(ctx)
	if err != nil {
		return err
	}
	rel.predictFrom = pl
	return nil
}

// predictManager is the reference to the manager of a user a full import
// creates, when it is known before the user is: a manager the directory
// holds in scope, or one the file creates.
func (r *run) predictManager(identity string) (string, bool) {
	rel := r.rel
	if rel == nil || rel.predictFrom == nil {
		return "", false
	}
	members, kept := rel.predictFrom.members, rel.predictFrom.kept
	k := members.find(identity)
	if k < 0 {
		return "", false
	}
	mgr := members.manager(k)
	if mgr == "" {
		return "", false
	}
	if i := r.snap.find(mgr); i >= 0 {
		if r.cfg.MissingUsers == v1alpha1.MissingDelete && !members.has(mgr) && kept[r.idKey(mgr)] == "" {
			// Deleted by this import: the Managers step warns.
			return "", false
		}
		return rel.managers.ManagerReference(directory.User{ID: r.snap.id(i), Identity: mgr}), true
	}
	if members.has(mgr) {
		return rel.managers.PredictReference(mgr)
	}
	return "", false
}

// Kinds of what planManagers plans.
type managerPlan int

const (
	// managerChange is a reference the Managers step writes.
	managerChange managerPlan = iota
	// managerWithCreate is a reference written (or planned) with the
	// user's create, counted there: the report lists it.
	managerWithCreate
	// managerMissing is a manager the directory lacks (and, in a dry run,
	// the file does not create): a warning on the row's line; the user's
	// reference is left as it is.
	managerMissing
)

// planManagers plans the manager references of the members, in file
// order, and calls fn with those of kind: the plan is made again for each
// kind rather than held, so that a million members cost no memory of
// their own. The first call notes each member's kind, a byte a member,
// and the next ones plan only the members of theirs.
func (r *run) planManagers(pl *relationPlan, dry bool, kind managerPlan, fn func(directory.Change) error) error {
	first := pl.managerKinds == nil
	if first {
		var raw []byte
		pl.managerKinds, raw = mapped[uint8](pl.members.len())
		r.offHeap = append(r.offHeap, unmapper(raw))
	}
	for i := range pl.members.len() {
		if !first && pl.managerKinds[i] != uint8(kind)+1 {
			continue
		}
		k, ch, ok := r.planManager(pl, i, dry)
		if !ok {
			continue
		}
		if first {
			pl.managerKinds[i] = uint8(k) + 1
		}
		if k == kind {
			if err := fn(ch); err != nil {
				return err
			}
		}
	}
	return nil
}

// unmapper releases a mapping (see offheap.go) when freed.
type unmapper []byte

func (u unmapper) free() { unmap(u) }

// planManager plans the manager reference of member i: what kind of
// change it is, and the change, if any.
func (r *run) planManager(pl *relationPlan, i int, dry bool) (managerPlan, directory.Change, bool) {
	attr, md := r.rel.managerAttr, r.rel.managers
	m := pl.members.head(i)
	change := func(u directory.User, vals []string) directory.Change {
		return directory.Change{Op: directory.OpUpdate, Line: m.line, Identity: m.identity, ID: u.ID, Attributes: directory.Attributes{attr: vals}}
	}
	created := r.rel.createdAt(i)
	u, found := directory.User{ID: m.identity, Identity: m.identity, Managed: true, Active: true}, true
	if !created {
		u, found = pl.user(m.identity)
		created = found && r.rel.created.has(m.identity)
	}
	if (!found && !dry) || (found && r.cfg.Directory.ManagedOnly && !u.Managed) {
		return 0, directory.Change{}, false
	}
	if !found {
		if ref, predicted := r.predictManager(m.identity); predicted {
			return managerWithCreate, change(u, []string{ref}), true
		}
	}
	want := ""
	if m.manager != "" {
		mgr, ok := pl.user(m.manager)
		switch {
		case ok && dry && r.deleted(pl, mgr):
			// Gone once the import has written.
			return managerMissing, directory.Change{Line: m.line, Identity: m.identity}, true
		case ok:
			want = md.ManagerReference(mgr)
		case dry && pl.members.has(m.manager):
			// Created by this import: its reference is not known yet.
			want = "\x00" + m.manager
		default:
			return managerMissing, directory.Change{Line: m.line, Identity: m.identity}, true
		}
	}
	if found && pl.hasManager(m.identity, want) {
		if want != "" && created {
			return managerWithCreate, change(u, []string{want}), true
		}
		return 0, directory.Change{}, false
	}
	if !found && want == "" {
		return 0, directory.Change{}, false
	}
	var vals []string
	if want != "" {
		vals = []string{want}
	}
	return managerChange, change(u, vals), true
}

func missingManager(attr string) string {
	return attr + ": no user has the manager's identity; the manager is left as it is"
}

// applyManagers writes the manager references planned, Concurrency
// batches at a time, with a checkpoint after each round.
func (st *relateState) applyManagers(ctx context.Context, pl *relationPlan) error {
	r := st.r
	c := &st.res.Counts.Groups
	if st.dry {
		err := r.planManagers(pl, true, managerChange, func(ch directory.Change) error {
			c.ManagersSet++
			st.listManagerChange(ch)
			return nil
		})
		st.checkpoint(v1alpha1.StepManagers)
		return err
	}
	size := r.cfg.BatchSize
	round := make([]directory.Change, 0, size*r.cfg.Concurrency)
	err := r.planManagers(pl, false, managerChange, func(ch directory.Change) error {
		round = append(round, ch)
		if len(round) < cap(round) {
			return nil
		}
		err := st.applyManagerRound(ctx, round)
		round = round[:0]
		return err
	})
	if err == nil && len(round) > 0 {
		err = st.applyManagerRound(ctx, round)
	}
	if err != nil {
		return err
	}
	st.checkpoint(v1alpha1.StepManagers)
	return nil
}

// applyManagerRound writes the changes of one round, a batch per worker,
// and checkpoints.
func (st *relateState) applyManagerRound(ctx context.Context, part []directory.Change) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := st.r
	c := &st.res.Counts.Groups
	size := r.cfg.BatchSize
	results := make([][]directory.Result, (len(part)+size-1)/size)
	errs := make([]error, len(results))
	var wg sync.WaitGroup
	for i := range results {
		batch := part[i*size : min((i+1)*size, len(part))]
		wg.Go(func() { results[i], errs[i] = r.dir.Apply(context.WithoutCancel(ctx), batch) })
	}
	wg.Wait()
	for i, res := range results {
		if errs[i] != nil {
			return fmt.Errorf("writing manager references: %w", errs[i])
		}
		for j, out := range res {
			ch := part[i*size+j]
			if out.Err != nil {
				msg := "the directory refused the change"
				if directory.IsChangeError(out.Err) {
					msg = out.Err.Error()
				}
				st.rowError(RowError{Line: ch.Line, Identity: ch.Identity, Msg: r.rel.managerAttr + ": " + msg})
				continue
			}
			c.ManagersSet++
			st.listManagerChange(ch)
		}
	}
	st.checkpoint(v1alpha1.StepManagers)
	return nil
}

func (st *relateState) listManagerChange(ch directory.Change) {
	change := "set manager"
	if len(ch.Attributes[st.r.rel.managerAttr]) == 0 {
		change = "remove manager"
	}
	st.list(RelationChange{Line: ch.Line, Identity: ch.Identity, Change: change})
}
