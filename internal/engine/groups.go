package engine

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
)

// The Groups step (see relations.go): the memberships of the groups the
// file names, planned from the groups the directory holds, and written a
// few groups at a time.

// groupChange is a directory.GroupChange whose members to add are
// named by their places in relationPlan.members, and resolved into Add
// only when the group is written (see withAdds): the references of a
// million memberships are not held at once.
type groupChange struct {
	directory.GroupChange
	adds    []int32 // members to add that the directory holds
	pending []int32 // members to add that a dry run would create
	// remade says that the group existed when the import began, and this
	// import emptied it (an SQL or groupOfNames group goes with its last
	// member): making it again is not counted as a group created.
	remade bool
	named  []int32 // the members whose lines name the group
}

// added is the number of memberships the change adds.
func (ch *groupChange) added() int64 { return int64(len(ch.adds) + len(ch.pending)) }

// withAdds returns the change with Add set to the references of its
// members to add, and their identities, for the report.
func (r *run) withAdds(pl *relationPlan, ch groupChange, dry bool) (directory.GroupChange, []string) {
	gc := ch.GroupChange
	gc.Add = make([]string, 0, len(ch.adds))
	ids := make([]string, 0, len(ch.adds))
	for _, k := range ch.adds {
		id, ref, _ := r.presentMember(pl, int(k), dry, r.rel.groups.MemberReference)
		gc.Add = append(gc.Add, ref)
		ids = append(ids, id)
	}
	return gc, ids
}

// lines are the lines that name the group.
func (ch *groupChange) lines(pl *relationPlan) []int64 {
	out := make([]int64, len(ch.named))
	for i, k := range ch.named {
		out[i] = pl.members.line(int(k))
	}
	return out
}

// listedGroup is a group as listed, with the references of its members
// end to end in one string: a million memberships as a string each cost
// about 75 bytes apiece on the heap, and these about 30.
type listedGroup struct {
	Name, ID string
	Managed  bool
	refs     string
	ends     []uint32 // where each reference ends in refs
}

func packGroup(g directory.Group) listedGroup {
	var b strings.Builder
	n := 0
	for _, m := range g.Members {
		n += len(m)
	}
	b.Grow(n)
	ends := make([]uint32, len(g.Members))
	for i, m := range g.Members {
		b.WriteString(m)
		ends[i] = uint32(b.Len())
	}
	return listedGroup{Name: g.Name, ID: g.ID, Managed: g.Managed, refs: b.String(), ends: ends}
}

// size is the number of members.
func (g listedGroup) size() int { return len(g.ends) }

// member is the reference of member i.
func (g listedGroup) member(i int) string {
	start := uint32(0)
	if i > 0 {
		start = g.ends[i-1]
	}
	return g.refs[start:g.ends[i]]
}

// listGroups reads every group, by its name in lower case: names are
// compared without regard to case, as LDAP and SCIM do, so that an export
// that spells a department otherwise keeps its group.
func (r *run) listGroups(ctx context.Context) (map[string]listedGroup, error) {
	existing := map[string]listedGroup{}
	err := r.rel.groups.ListGroups(ctx, func(g directory.Group) error {
		existing[strings.ToLower(g.Name)] = packGroup(g)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the groups: %w", err)
	}
	return existing, nil
}

// groupsBefore lists the groups once a run, before it writes: the
// known groups, the leavers' removals and the removals' safety check
// read the same listing.
func (r *run) groupsBefore(ctx context.Context) (map[string]listedGroup, error) {
	if r.rel.before == nil {
		existing, err := r.listGroups(ctx)
		if err != nil {
			return nil, err
		}
		r.rel.before = existing
	}
	return r.rel.before, nil
}

// checkRemovals plans the removals from groups before any user is
// written, and stops the import when they exceed the thresholds. Only
// managed groups lose members: without any, there is nothing to plan.
func (r *run) checkRemovals(ctx context.Context) (Result, error) {
	res := Result{SHA256: r.in.SHA256}
	existing, err := r.groupsBefore(ctx)
	if err != nil {
		return res, err
	}
	removable := false
	for _, g := range existing {
		removable = removable || g.Managed && g.size() > 0
	}
	if !removable {
		return res, nil
	}
	pl, err := r.scanRelations(ctx)
	if err != nil {
		return res, err
	}
	if err := r.resolve(ctx, pl); err != nil {
		return res, err
	}
	if err := r.planGroups(pl, existing, true); err != nil {
		return res, err
	}
	res.PlannedMembershipRemovals, res.ManagedMemberships = pl.counts.MembershipsRemoved+r.rel.leaving, pl.managed
	if r.membershipStop(pl) {
		// Like a preview, a safety stop reports what it planned.
		res.SafetyStop, res.MembershipStop, res.DryRun = true, true, true
		res.Counts.Groups = pl.counts
		res.Counts.Groups.MembershipsRemoved += r.rel.leaving
		res.UnreadableLines = r.unreadableLines(pl)
	}
	return res, nil
}

// planGroups plans the changes of the memberships of the groups that
// exist and that the file names. It holds, besides the plan, the
// references of one group's members at a time.
func (r *run) planGroups(pl *relationPlan, existing map[string]listedGroup, dry bool) error {
	gd := r.rel.groups
	full := r.cfg.Mode == v1alpha1.ModeFull
	// The members that name each group, by their places in pl.members.
	named := make([][]int32, len(pl.names))
	// A delta import removes only the memberships of the users of its
	// file: it needs the references of them all.
	pl.identityOf = nil
	if !full {
		pl.identityOf = r.newUserTable(1)
	}
	// The users of rows that failed keep the memberships they have.
	kept := map[string]bool{}
	for _, id := range pl.kept {
		if u, ok := pl.user(id); ok {
			kept[gd.MemberReference(u)] = true
		}
	}
	for i := range pl.members.len() {
		m := pl.members.at(i)
		ref, ok := r.present(pl, i, dry, gd.MemberReference)
		if !ok {
			if u, found := pl.user(m.identity); found {
				// Out of scope, its row failed: it keeps what it has.
				kept[gd.MemberReference(u)] = true
			}
			continue
		}
		if ref != "" && pl.identityOf != nil {
			if _, err := pl.identityOf.put(ref, 0, m.identity); err != nil {
				return err
			}
		}
		for _, g := range m.groups {
			named[g] = append(named[g], int32(i))
		}
	}
	for _, g := range existing {
		if g.Managed {
			pl.managed += int64(g.size())
		}
	}
	// Changes go in the order of the groups' names, so that a resumed
	// step meets them in the same order.
	var keys []string
	for key, g := range existing {
		if g.Managed {
			keys = append(keys, key)
		}
	}
	index := map[string]int{}
	for i, n := range pl.names {
		index[strings.ToLower(n)] = i
		keys = append(keys, strings.ToLower(n))
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)
	removed := map[string]bool{} // references removed from some group
	for _, key := range keys {
		g, exists := existing[key]
		name := g.Name
		var idx []int32
		if i, ok := index[key]; ok {
			idx = named[i]
			if !exists {
				name = pl.names[i]
			}
		}
		if !exists && len(idx) == 0 {
			continue
		}
		ch := groupChange{GroupChange: directory.GroupChange{Name: name, ID: g.ID}, named: idx}
		if !exists && !r.rel.create && !r.rel.known[key] {
			// A group the directory had when the import began (and this
			// import emptied since) is made again; any other is an error.
			for _, line := range ch.lines(pl) {
				pl.errs = append(pl.errs, RowError{Line: line, Identity: identityAt(pl, line),
					Msg: r.rel.groupsAttr + ": a group of the line is not in the directory, and createGroups is false"})
			}
			continue
		}
		has := make(map[string]bool, g.size())
		for i := range g.size() {
			has[g.member(i)] = true
		}
		wanted := make(map[string]bool, len(idx))
		// The members to add are most often all those named: adds then
		// shares named's memory until a member is not added.
		aligned := true
		for j, k := range idx {
			ref, _ := r.present(pl, int(k), dry, gd.MemberReference)
			add := false
			switch {
			case ref == "":
				ch.pending = append(ch.pending, k)
			case !wanted[ref]:
				wanted[ref] = true
				add = !has[ref]
			}
			switch {
			case aligned && add:
			case aligned:
				ch.adds, aligned = slices.Clone(idx[:j]), false
			case add:
				ch.adds = append(ch.adds, k)
			}
		}
		if aligned {
			ch.adds = idx
		}
		if g.Managed {
			for i := range g.size() {
				ref := g.member(i)
				if wanted[ref] || kept[ref] || (!full && !pl.identityOf.has(ref)) {
					continue
				}
				ch.Remove = append(ch.Remove, ref)
				removed[ref] = true
			}
		}
		added := ch.added()
		if added == 0 && len(ch.Remove) == 0 && exists {
			continue
		}
		ch.Empty = int64(g.size()-len(ch.Remove))+added == 0
		ch.remade = !exists && (r.rel.known[key] || r.rel.emptied[key])
		if !exists && !ch.remade {
			pl.counts.GroupsCreated++
		}
		pl.counts.MembershipsAdded += added
		pl.counts.MembershipsRemoved += int64(len(ch.Remove))
		pl.changes = append(pl.changes, ch)
	}
	slices.SortFunc(pl.errs, func(a, b RowError) int { return int(a.Line - b.Line) })
	if full && len(removed) > 0 {
		// The report names a member removed by its identity when the
		// file has it.
		pl.removedOf = map[string]string{}
		for i := range pl.members.len() {
			if ref, ok := r.present(pl, i, dry, gd.MemberReference); ok && removed[ref] {
				pl.removedOf[ref] = pl.members.identity(i)
			}
		}
	}
	return nil
}

// identityAt is the identity of the file's user with member reference
// ref, and whether the file has one.
func (pl *relationPlan) identityAt(ref string) (string, bool) {
	if pl.identityOf == nil {
		id, ok := pl.removedOf[ref]
		return id, ok
	}
	i := pl.identityOf.find(ref)
	if i < 0 {
		return "", false
	}
	return pl.identityOf.field(i, 0), true
}

// identityAt returns the identity of the member on line.
func identityAt(pl *relationPlan, line int64) string {
	n := pl.members.len()
	i := sort.Search(n, func(i int) bool { return pl.members.line(i) >= line })
	if i == n || pl.members.line(i) != line {
		return ""
	}
	return pl.members.identity(i)
}

// planLeave plans the removals from managed groups of the users that
// delta rows delete, before the users step deletes them (see leaveGroups).
// A user already deleted, by a run that was interrupted, left its groups
// before: there is nothing left to plan for it.
func (r *run) planLeave(ctx context.Context) error {
	rel := r.rel
	if rel == nil || rel.groups == nil || r.cfg.Mode != v1alpha1.ModeDelta || rel.leave != nil {
		return nil
	}
	rel.leave, rel.emptied = []groupChange{}, map[string]bool{}
	pl, err := r.scanRelations(ctx)
	if err != nil || len(pl.deleted) == 0 {
		return err
	}
	ids := make([]string, 0, len(pl.deleted))
	for _, id := range pl.deleted {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	refs := map[string]string{} // member reference -> identity
	err = r.lookupAll(ctx, ids, []string{r.cfg.Directory.IdentityAttribute}, func(id string, u directory.User) {
		if u.Managed || !r.cfg.Directory.ManagedOnly {
			refs[rel.groups.MemberReference(u)] = id
		}
	})
	if err != nil {
		return fmt.Errorf("looking up the users that leave their groups: %w", err)
	}
	if len(refs) == 0 {
		return nil
	}
	existing, err := r.groupsBefore(ctx)
	if err != nil {
		return err
	}
	keys := slices.Sorted(maps.Keys(existing))
	for _, key := range keys {
		g := existing[key]
		if !g.Managed {
			continue
		}
		ch := groupChange{GroupChange: directory.GroupChange{Name: g.Name, ID: g.ID}}
		for i := range g.size() {
			ref := g.member(i)
			if _, ok := refs[ref]; ok {
				ch.Remove = append(ch.Remove, ref)
			}
		}
		if len(ch.Remove) > 0 {
			ch.Empty = len(ch.Remove) == g.size()
			if ch.Empty {
				rel.emptied[key] = true
			}
			rel.leave = append(rel.leave, ch)
			rel.leaving += int64(len(ch.Remove))
		}
	}
	rel.leaveOf = refs
	return nil
}

// leaveGroups takes the users that delta rows delete out of the managed
// groups (planLeave), or counts it in a dry run. It runs before the users
// step: once a user is deleted, the directory can no longer tell its
// reference, and a resumed import would leave it in its groups.
func (r *run) leaveGroups(ctx context.Context, dry bool, report Reporter, res *Result) error {
	if err := r.planLeave(ctx); err != nil {
		return err
	}
	rel := r.rel
	if rel == nil {
		return nil
	}
	st := &relateState{r: r, dry: dry, report: report, res: res}
	if !dry && r.in.Resume == nil && rel.known != nil && len(rel.leave) > 0 {
		// The removals may empty a group, which then goes (SQL,
		// groupOfNames): a checkpoint before them keeps the groups known
		// when the import began, for a resume.
		cp := ResumePoint{SHA256: r.in.SHA256, Step: v1alpha1.StepApply, KnownGroups: r.knownGroups()}
		report.Progress(Progress{Step: v1alpha1.StepApply, ResumePoint: &cp})
	}
	for _, ch := range rel.leave {
		if !dry {
			if _, err := rel.groups.ApplyGroup(ctx, ch.GroupChange); err != nil {
				if directory.IsChangeError(err) {
					return fmt.Errorf("taking deleted users out of a group: %w", err)
				}
				return fmt.Errorf("writing a group: %w", err)
			}
		}
		res.Counts.Groups.MembershipsRemoved += int64(len(ch.Remove))
		for _, ref := range ch.Remove {
			st.list(RelationChange{Identity: rel.leaveOf[ref], Group: ch.Name, Change: "remove member"})
		}
	}
	return nil
}

// unreadableLines is the number of lines without a readable identity
// that a full import counts against its removals.
func (r *run) unreadableLines(pl *relationPlan) int64 {
	if r.cfg.Mode != v1alpha1.ModeFull {
		return 0
	}
	return pl.unreadable
}

// membershipStop says whether the planned removals exceed the thresholds
// without approval, or are planned by a full import with rows whose
// identity cannot be read.
func (r *run) membershipStop(pl *relationPlan) bool {
	c := r.cfg
	n := pl.counts.MembershipsRemoved + r.rel.leaving
	return exceeds(n, pl.managed, c.MaxMembershipRemovals, c.MaxMembershipRemovalPercent, c.ApprovedMembershipRemovals) ||
		r.unreadableStop(r.unreadableLines(pl), n, c.ApprovedMembershipRemovals)
}

// applyGroups writes the group changes, Concurrency groups at a time,
// with a checkpoint after each round.
func (st *relateState) applyGroups(ctx context.Context, pl *relationPlan) error {
	c := &st.res.Counts.Groups
	if st.dry {
		*c = addGroupCounts(*c, pl.counts)
		for _, ch := range pl.changes {
			st.listGroupChange(pl, ch, nil)
		}
		st.checkpoint(v1alpha1.StepGroups)
		return nil
	}
	// Groups are independent: Concurrency workers each resolve a group's
	// members and write it, taking the next group as soon as one is
	// written, so that a large group holds up no other. The results are
	// taken in the plan's order, so that the report lists the changes in
	// it, with a checkpoint after every Concurrency groups. A stop or a
	// failure hands out no more groups, and the groups under way are
	// finished, so that what they wrote is counted.
	if err := ctx.Err(); err != nil {
		return err
	}
	conc := max(st.r.cfg.Concurrency, 1)
	var stop atomic.Bool
	next := make(chan int)
	type written struct {
		i   int
		err error
		ids []string // the identities of the members added
	}
	done := make(chan written)
	// Groups handed out and not yet taken: a large group written slowly
	// holds back the others' results, and their identities, only so far.
	window := make(chan struct{}, 2*conc)
	var wg sync.WaitGroup
	for range min(conc, len(pl.changes)) {
		wg.Go(func() {
			for i := range next {
				gc, ids := st.r.withAdds(pl, pl.changes[i], false)
				_, err := st.r.rel.groups.ApplyGroup(context.WithoutCancel(ctx), gc)
				done <- written{i, err, ids}
			}
		})
	}
	go func() {
		defer close(next)
		for i := range pl.changes {
			select {
			case window <- struct{}{}:
			case <-ctx.Done():
				return
			}
			if stop.Load() {
				return
			}
			select {
			case next <- i:
			case <-ctx.Done():
				return
			}
		}
	}()
	go func() {
		wg.Wait()
		close(done)
	}()
	results := map[int]written{}
	taken := 0
	var failed error
	for w := range done {
		results[w.i] = w
		for {
			w, ok := results[taken]
			if !ok {
				break
			}
			delete(results, taken)
			<-window
			ch, err := pl.changes[taken], w.err
			taken++
			switch {
			case directory.IsChangeError(err):
				// Every line that names the group loses its membership.
				lines := ch.lines(pl)
				if len(lines) == 0 {
					lines = []int64{0} // removals only: no line names the group
				}
				for _, line := range lines {
					st.rowError(RowError{Line: line, Identity: identityAt(pl, line), Msg: st.r.rel.groupsAttr + ": the directory refused a group: " + err.Error()})
				}
			case err != nil:
				failed = cmp.Or(failed, err)
				stop.Store(true)
			default:
				st.listGroupChange(pl, ch, w.ids)
				if ch.ID == "" && !ch.remade {
					c.GroupsCreated++
				}
				c.MembershipsAdded += ch.added()
				c.MembershipsRemoved += int64(len(ch.Remove))
			}
			if taken%conc == 0 {
				st.checkpoint(v1alpha1.StepGroups)
			}
		}
	}
	st.checkpoint(v1alpha1.StepGroups)
	if failed != nil {
		return fmt.Errorf("writing a group: %w", failed)
	}
	if taken < len(pl.changes) {
		return ctx.Err()
	}
	// The step is done: a resume starts at the managers.
	st.checkpoint(v1alpha1.StepManagers)
	return nil
}

// listGroupChange lists the changes of a group; added are the identities
// of its members to add, or nil to read them from pl.
func (st *relateState) listGroupChange(pl *relationPlan, ch groupChange, added []string) {
	if ch.ID == "" {
		st.list(RelationChange{Group: ch.Name, Change: "create group"})
	}
	for i, k := range ch.adds {
		id := ""
		if added != nil {
			id = added[i]
		} else {
			id = pl.members.identity(int(k))
		}
		st.list(RelationChange{Identity: id, Group: ch.Name, Change: "add member"})
	}
	for _, k := range ch.pending {
		st.list(RelationChange{Identity: pl.members.identity(int(k)), Group: ch.Name, Change: "add member"})
	}
	for _, ref := range ch.Remove {
		id, ok := pl.identityAt(ref)
		if !ok {
			id = ref
		}
		st.list(RelationChange{Identity: id, Group: ch.Name, Change: "remove member"})
	}
}
