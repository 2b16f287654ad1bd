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
	rel.managerOf = make(map[string]string, len(pl.members))
	for _, m := range pl.members {
		if m.manager != "" {
			rel.managerOf[m.identity] = m.manager
		}
	}
	rel.inFile, rel.kept = pl.valid, pl.kept
	return nil
}

// predictManager is the reference to the manager of a user a full import
// creates, when it is known before the user is: a manager the directory
// holds in scope, or one the file creates.
func (r *run) predictManager(identity string) (string, bool) {
	rel := r.rel
	if rel == nil || rel.managerOf == nil {
		return "", false
	}
	mgr := rel.managerOf[identity]
	if mgr == "" {
		return "", false
	}
	if i := r.snap.find(mgr); i >= 0 {
		if r.cfg.MissingUsers == v1alpha1.MissingDelete && !rel.inFile[mgr] && !rel.kept[mgr] {
			// Deleted by this import: the Managers step warns.
			return "", false
		}
		return rel.managers.ManagerReference(directory.User{ID: r.snap.id(i), Identity: mgr}), true
	}
	if rel.inFile[mgr] {
		return rel.managers.PredictReference(mgr)
	}
	return "", false
}

// planManagers plans the manager references of the members. A manager
// the directory lacks (and, in a dry run, the file does not create) is a
// warning on the row's line; the user's reference is then left as it is.
//
// withCreate are the references written (or planned) with the users'
// creates, counted there: the report lists them.
func (r *run) planManagers(pl *relationPlan, dry bool) (changes, withCreate []directory.Change, warnings []RowError) {
	attr, md := r.rel.managerAttr, r.rel.managers
	change := func(m member, u directory.User, vals []string) directory.Change {
		return directory.Change{Op: directory.OpUpdate, Line: m.line, Identity: m.identity, ID: u.ID, Attributes: directory.Attributes{attr: vals}}
	}
	for _, m := range pl.members {
		u, found := pl.users[m.identity]
		if (!found && !dry) || (found && r.cfg.Directory.ManagedOnly && !u.Managed) {
			continue
		}
		if ref, predicted := r.predictManager(m.identity); !found && predicted {
			withCreate = append(withCreate, change(m, u, []string{ref}))
			continue
		}
		want := ""
		if m.manager != "" {
			mgr, ok := pl.users[m.manager]
			switch {
			case ok && dry && r.deleted(pl, mgr):
				// Gone once the import has written.
				warnings = append(warnings, RowError{Line: m.line, Identity: m.identity, Warning: true, Msg: missingManager(attr)})
				continue
			case ok:
				want = md.ManagerReference(mgr)
			case dry && pl.valid[m.manager]:
				// Created by this import: its reference is not known yet.
				want = "\x00" + m.manager
			default:
				warnings = append(warnings, RowError{Line: m.line, Identity: m.identity, Warning: true, Msg: missingManager(attr)})
				continue
			}
		}
		if found && pl.manager[m.identity] == want {
			if _, created := r.rel.created[m.identity]; created && want != "" {
				withCreate = append(withCreate, change(m, u, []string{want}))
			}
			continue
		}
		if !found && want == "" {
			continue
		}
		var vals []string
		if want != "" {
			vals = []string{want}
		}
		changes = append(changes, change(m, u, vals))
	}
	return changes, withCreate, warnings
}

func missingManager(attr string) string {
	return attr + ": no user has the manager's identity; the manager is left as it is"
}

// applyManagers writes the manager references, Concurrency batches at a
// time, with a checkpoint after each round.
func (st *relateState) applyManagers(ctx context.Context, changes []directory.Change) error {
	r := st.r
	c := &st.res.Counts.Groups
	if st.dry {
		c.ManagersSet += int64(len(changes))
		for _, ch := range changes {
			st.listManagerChange(ch)
		}
		st.checkpoint(v1alpha1.StepManagers)
		return nil
	}
	size := r.cfg.BatchSize
	round := size * r.cfg.Concurrency
	for start := 0; start < len(changes); start += round {
		if err := ctx.Err(); err != nil {
			return err
		}
		part := changes[start:min(start+round, len(changes))]
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
