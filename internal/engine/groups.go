package engine

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/mapping"
)

// Groups and managers: once the users are written (and deprovisioned),
// the Groups step keeps the memberships of the groups the file names in
// step with it, and the Managers step writes each user's reference to
// their manager. Both read the file again (the mapping entries with
// target Groups or Manager) and the directory, and plan the difference
// with one function, plan, for the preview and the import alike: a
// preview counts a user it would create as a member to add and as a
// manager to refer to.
//
// What is to be done is read from the directory each time, so a step that
// is stopped and run again does only what is left. The checkpoints of the
// two steps carry their counts; the users are not written again.
//
// Memberships are removed only from managed groups (the ones an import
// created): a full import keeps a managed group's members equal to the
// users of the file that name it, a delta import changes only the
// memberships of the users in its file. Removals have their own safety
// threshold, checked before any write.

// relations are the mapping entries with target Groups and Manager,
// compiled with the identity entry.
type relations struct {
	mapper *mapping.Mapper
	// groupsAttr and managerAttr are the entries' attributes in the
	// mapper's output; "" without such an entry. managerAttr is also the
	// directory attribute written.
	groupsAttr, managerAttr string
	create                  bool
	groups                  directory.GroupDirectory
	managers                directory.ManagerDirectory
	// managerOf (a user's manager by identity) and inFile (the
	// identities of the valid rows) are read before a full import writes
	// its users, for predictManager; nil otherwise.
	managerOf map[string]string
	inFile    map[string]bool
	// created holds the users this run created, as the directory holds
	// them, by identity (see resolve).
	mu      sync.Mutex
	created map[string]directory.User
}

// noteCreated records a user the run created, with its ID and manager
// reference. A nil relations records nothing.
func (rel *relations) noteCreated(ch directory.Change, id string) {
	if rel == nil || id == "" {
		return
	}
	u := directory.User{ID: id, Identity: ch.Identity, Managed: true, Active: true, Attributes: directory.Attributes{}}
	if rel.managerAttr != "" {
		if v := ch.Attributes[rel.managerAttr]; len(v) > 0 {
			u.Attributes[rel.managerAttr] = v
		}
	}
	rel.mu.Lock()
	defer rel.mu.Unlock()
	if rel.created == nil {
		rel.created = map[string]directory.User{}
	}
	rel.created[ch.Identity] = u
}

// splitMapping separates the entries that write user attributes from
// the ones with target Groups or Manager.
func splitMapping(entries []v1alpha1.AttributeMapping) (users []v1alpha1.AttributeMapping, groups, manager *v1alpha1.AttributeMapping) {
	for i := range entries {
		switch e := &entries[i]; e.Target {
		case v1alpha1.TargetGroups:
			groups = e
		case v1alpha1.TargetManager:
			manager = e
		default:
			users = append(users, *e)
		}
	}
	return users, groups, manager
}

// newRelations compiles the entries with target Groups and Manager, or
// returns nil when the mapping has none.
func newRelations(cfg Config, dir directory.Directory, header []string) (*relations, error) {
	users, groups, manager := splitMapping(cfg.Mapping)
	if groups == nil && manager == nil {
		return nil, nil
	}
	invalid := func(format string, args ...any) error {
		return &InputError{Reason: v1alpha1.ReasonInvalidMapping, Err: fmt.Errorf(format, args...)}
	}
	rel := &relations{create: cfg.CreateGroups}
	entries := []v1alpha1.AttributeMapping{}
	for _, e := range users {
		if e.Identity {
			entries = append(entries, e)
		}
	}
	if groups != nil {
		gd, ok := dir.(directory.GroupDirectory)
		if !ok || !hasGroups(dir) {
			return nil, &directory.Error{Reason: v1alpha1.ReasonInvalidConfig,
				Err: fmt.Errorf("mapping[%s] has target Groups, but the directory names no groups (spec.<provider>.groups)", groups.Attribute)}
		}
		rel.groups, rel.groupsAttr = gd, groups.Attribute
		entries = append(entries, *groups)
	}
	if manager != nil {
		md, ok := dir.(directory.ManagerDirectory)
		if !ok {
			return nil, invalid("mapping[%s] has target Manager, which this directory does not support", manager.Attribute)
		}
		rel.managers, rel.managerAttr = md, manager.Attribute
		entries = append(entries, *manager)
	}
	if rel.groupsAttr != "" && rel.groupsAttr == rel.managerAttr {
		return nil, invalid("mapping[%s]: the entries with target Groups and Manager need attributes of their own", rel.groupsAttr)
	}
	m, err := mapping.Compile(entries, header)
	if err != nil {
		return nil, &InputError{Reason: v1alpha1.ReasonInvalidMapping, Err: err}
	}
	rel.mapper = m
	return rel, nil
}

// hasGroups tells whether a directory that implements GroupDirectory was
// configured with groups.
func hasGroups(dir directory.Directory) bool {
	c, ok := dir.(interface{ HasGroups() bool })
	return !ok || c.HasGroups()
}

// member is one valid row of the file, with what it says about groups
// and the manager.
type member struct {
	line     int64
	identity string
	groups   []int32 // indexes into relationPlan.names
	manager  string  // the manager's identity, "" for none
}

// relationPlan is what the Groups and Managers steps write, or would
// write.
type relationPlan struct {
	members []member
	names   []string // group names by index
	// users are the users of the file and the managers it names, as the
	// directory holds them, by identity.
	users map[string]directory.User
	// valid holds the identities of the members: a dry run counts a
	// manager among them that the directory lacks as one it would create.
	valid map[string]bool
	// deleted holds the identities that delta rows delete.
	deleted map[string]bool
	changes []groupChange
	// identityOf maps the member references of the file's users to their
	// identities.
	identityOf map[string]string
	errs       []RowError // rows naming a group that cannot be created
	counts     v1alpha1.GroupCounts
	// managed is the number of memberships of the managed groups.
	managed int64
}

// groupChange is a directory.GroupChange with the members to add that
// the directory does not hold yet (a dry run).
type groupChange struct {
	directory.GroupChange
	pending []string // identities of members a dry run would create
	line    int64    // first line that names the group
}

// scanRelations reads the file for the groups and managers of its valid
// rows: rows whose user mapping fails were reported by the users' pass,
// and a later row with the identity of an earlier one is a duplicate.
func (r *run) scanRelations(ctx context.Context) (*relationPlan, error) {
	rel := r.rel
	pl := &relationPlan{users: map[string]directory.User{}, valid: map[string]bool{}, deleted: map[string]bool{}}
	index := map[string]int32{}
	seen := newIDSet(0)
	r.sets = append(r.sets, seen)
	// The file is read from its start, whatever checkpoint the run began
	// at.
	saved := r.seekTo
	r.seekTo = nil
	defer func() { r.seekTo = saved }()
	_, err := r.scanFile(ctx, func(c *chunk, rec *mapping.Record) {
		for i := range c.rows {
			m := &c.rows[i]
			m.attrs, m.relMsg = nil, ""
			if !r.mapRow(m, rec) {
				continue
			}
			attrs, err := rel.mapper.Map(m.rec.Fields)
			if err != nil {
				m.relMsg = err.Error()
				continue
			}
			m.attrs = attrs
		}
	}, func(c *chunk) error {
		for i := range c.rows {
			m := &c.rows[i]
			if m.lineErr != nil || m.msg != "" || !seen.add(hashIdentity(m.identity)) {
				continue
			}
			if op := r.deprovisionRow(m); op != 0 {
				if op == directory.OpDelete {
					pl.deleted[strings.Clone(m.identity)] = true
				}
				continue
			}
			if m.relMsg != "" {
				pl.errs = append(pl.errs, RowError{Line: m.rec.Line, Identity: strings.Clone(m.identity), Msg: m.relMsg})
				continue
			}
			mem := member{line: m.rec.Line, identity: strings.Clone(m.identity)}
			if rel.groupsAttr != "" {
				for _, g := range m.attrs[rel.groupsAttr] {
					k, ok := index[g]
					if !ok {
						k = int32(len(pl.names))
						index[strings.Clone(g)] = k
						pl.names = append(pl.names, strings.Clone(g))
					}
					if !slices.Contains(mem.groups, k) {
						mem.groups = append(mem.groups, k)
					}
				}
			}
			if rel.managerAttr != "" {
				mem.manager = strings.Clone(first(m.attrs[rel.managerAttr]))
			}
			pl.valid[mem.identity] = true
			pl.members = append(pl.members, mem)
		}
		return nil
	})
	return pl, err
}

// resolve looks up the users of the file and the managers it names.
func (r *run) resolve(ctx context.Context, pl *relationPlan) error {
	want := make([]string, 0, len(pl.members))
	asked := map[string]bool{}
	for _, m := range pl.members {
		for _, id := range []string{m.identity, m.manager} {
			if id != "" && !asked[id] {
				asked[id] = true
				want = append(want, id)
			}
		}
	}
	attrs := []string{r.cfg.Directory.IdentityAttribute}
	if r.rel.managerAttr != "" {
		attrs = append(attrs, r.rel.managerAttr)
	}
	switch {
	case r.cfg.Mode == v1alpha1.ModeFull && r.snap != nil && r.snap.len() == 0 && r.rel.created != nil:
		// The scope was empty: the users in it now are the ones this run
		// created, with the IDs the directory gave them. The rest (managers
		// out of scope, rows that failed) are looked up.
		rest := want[:0]
		for _, id := range want {
			if u, ok := r.rel.created[id]; ok {
				pl.users[id] = u
			} else {
				rest = append(rest, id)
			}
		}
		want = rest
	case r.cfg.Mode == v1alpha1.ModeFull:
		// The file lists every user in scope: one listing costs the server
		// less than looking them all up. The rest (managers out of scope,
		// users a dry run would create) are looked up.
		err := r.dir.List(ctx, attrs, func(u directory.User) error {
			if asked[u.Identity] {
				pl.users[u.Identity] = u
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("listing the users of the file's groups and managers: %w", err)
		}
		rest := want[:0]
		for _, id := range want {
			if _, ok := pl.users[id]; !ok {
				rest = append(rest, id)
			}
		}
		want = rest
	}
	const chunk = 500
	for start := 0; start < len(want); start += chunk {
		found, err := r.dir.Lookup(ctx, want[start:min(start+chunk, len(want))], attrs)
		if err != nil {
			return fmt.Errorf("looking up the users of the file's groups and managers: %w", err)
		}
		for id, u := range found {
			pl.users[id] = u
		}
	}
	return nil
}

// present tells whether the user of a member takes part in the groups
// and managers, with its directory reference ("" for a user a dry run
// would create).
func (r *run) present(pl *relationPlan, identity string, dry bool, ref func(directory.User) string) (string, bool) {
	u, found := pl.users[identity]
	switch {
	case !found:
		// A dry run counts the users it would create; an import finds
		// every user it wrote, so a missing one is a row that failed.
		return "", dry
	case r.cfg.Directory.ManagedOnly && !u.Managed:
		// Out of scope: its row was an error of the users' pass.
		return "", false
	}
	return ref(u), true
}

// deprovisionRow returns OpDelete or OpDeactivate for a delta row whose
// status deletes or deactivates its user, 0 otherwise. Such a row leaves
// groups and manager as they are.
func (r *run) deprovisionRow(m *mappedRow) directory.Op {
	sc := r.cfg.StatusColumn
	if sc == nil || r.status < 0 {
		return 0
	}
	v := strings.TrimSpace(m.rec.Fields[r.status])
	fold := func(s string) bool { return strings.EqualFold(s, v) }
	switch {
	case slices.ContainsFunc(sc.DeleteValues, fold):
		return directory.OpDelete
	case slices.ContainsFunc(sc.DeactivateValues, fold):
		return directory.OpDeactivate
	}
	return 0
}

// deleted tells whether the import deletes user u (a dry run, which has
// not): by its row's status, or, in a full import that deletes the
// missing users, because the file does not list it.
func (r *run) deleted(pl *relationPlan, u directory.User) bool {
	if r.cfg.Directory.ManagedOnly && !u.Managed {
		return false // out of scope: never written
	}
	return pl.deleted[u.Identity] ||
		r.cfg.Mode == v1alpha1.ModeFull && r.cfg.MissingUsers == v1alpha1.MissingDelete && !pl.valid[u.Identity]
}

// listGroups reads every group, by name.
func (r *run) listGroups(ctx context.Context) (map[string]directory.Group, error) {
	existing := map[string]directory.Group{}
	err := r.rel.groups.ListGroups(ctx, func(g directory.Group) error {
		existing[g.Name] = g
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("listing the groups: %w", err)
	}
	return existing, nil
}

// checkRemovals plans the removals from groups before any user is
// written, and stops the import when they exceed the thresholds. Only
// managed groups lose members: without any, there is nothing to plan.
func (r *run) checkRemovals(ctx context.Context) (Result, error) {
	res := Result{SHA256: r.in.SHA256}
	existing, err := r.listGroups(ctx)
	if err != nil {
		return res, err
	}
	if !slices.ContainsFunc(slices.Collect(maps.Values(existing)), func(g directory.Group) bool { return g.Managed && len(g.Members) > 0 }) {
		return res, nil
	}
	pl, err := r.scanRelations(ctx)
	if err != nil {
		return res, err
	}
	if err := r.resolve(ctx, pl); err != nil {
		return res, err
	}
	r.planGroups(pl, existing, true)
	res.PlannedMembershipRemovals, res.ManagedMemberships = pl.counts.MembershipsRemoved, pl.managed
	if r.membershipStop(pl.counts.MembershipsRemoved, pl.managed) {
		// Like a preview, a safety stop reports what it planned.
		res.SafetyStop, res.MembershipStop, res.DryRun = true, true, true
		res.Counts.Groups = pl.counts
	}
	return res, nil
}

// planGroups plans the changes of the memberships of the groups that
// exist and that the file names.
func (r *run) planGroups(pl *relationPlan, existing map[string]directory.Group, dry bool) {
	gd := r.rel.groups
	// Desired members of each group named, by reference; users a dry run
	// would create by identity.
	type want struct {
		refs    map[string]bool
		order   []string // refs in file order
		pending []string
		line    int64
		lines   []int64
	}
	wants := make([]want, len(pl.names))
	pl.identityOf = map[string]string{}
	for _, m := range pl.members {
		ref, ok := r.present(pl, m.identity, dry, gd.MemberReference)
		if !ok {
			continue
		}
		if ref != "" {
			pl.identityOf[ref] = m.identity
		}
		for _, g := range m.groups {
			w := &wants[g]
			if w.refs == nil {
				w.refs, w.line = map[string]bool{}, m.line
			}
			w.lines = append(w.lines, m.line)
			switch {
			case ref == "":
				w.pending = append(w.pending, m.identity)
			case !w.refs[ref]:
				w.refs[ref] = true
				w.order = append(w.order, ref)
			}
		}
	}
	for _, g := range existing {
		if g.Managed {
			pl.managed += int64(len(g.Members))
		}
	}
	// Changes go in the order of the groups' names, so that a resumed
	// step meets them in the same order.
	names := slices.Clone(pl.names)
	for name, g := range existing {
		if g.Managed {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	names = slices.Compact(names)
	byName := map[string]int{}
	for i, n := range pl.names {
		byName[n] = i
	}
	full := r.cfg.Mode == v1alpha1.ModeFull
	for _, name := range names {
		g, exists := existing[name]
		var w want
		if i, ok := byName[name]; ok {
			w = wants[i]
		}
		if !exists && w.refs == nil {
			continue
		}
		if !exists && !r.rel.create {
			for _, line := range w.lines {
				pl.errs = append(pl.errs, RowError{Line: line, Identity: identityAt(pl, line),
					Msg: r.rel.groupsAttr + ": names a group the directory does not have, and createGroups is false"})
			}
			continue
		}
		ch := groupChange{GroupChange: directory.GroupChange{Name: name, ID: g.ID}, line: w.line, pending: w.pending}
		has := make(map[string]bool, len(g.Members))
		for _, ref := range g.Members {
			has[ref] = true
		}
		for _, ref := range w.order {
			if !has[ref] {
				ch.Add = append(ch.Add, ref)
			}
		}
		if g.Managed {
			for _, ref := range g.Members {
				if _, inFile := pl.identityOf[ref]; w.refs[ref] || (!full && !inFile) {
					continue
				}
				ch.Remove = append(ch.Remove, ref)
			}
		}
		added := int64(len(ch.Add) + len(ch.pending))
		if added == 0 && len(ch.Remove) == 0 && exists {
			continue
		}
		ch.Empty = int64(len(g.Members)-len(ch.Remove))+added == 0
		if !exists {
			pl.counts.GroupsCreated++
		}
		pl.counts.MembershipsAdded += added
		pl.counts.MembershipsRemoved += int64(len(ch.Remove))
		pl.changes = append(pl.changes, ch)
	}
	slices.SortFunc(pl.errs, func(a, b RowError) int { return int(a.Line - b.Line) })
}

// identityAt returns the identity of the member on line.
func identityAt(pl *relationPlan, line int64) string {
	i, ok := slices.BinarySearchFunc(pl.members, line, func(m member, l int64) int { return int(m.line - l) })
	if !ok {
		return ""
	}
	return pl.members[i].identity
}

// membershipStop says whether the planned removals exceed the thresholds
// without approval.
func (r *run) membershipStop(removals, managed int64) bool {
	c := r.cfg
	return exceeds(removals, managed, c.MaxMembershipRemovals, c.MaxMembershipRemovalPercent, c.ApprovedMembershipRemovals)
}

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
	rel.inFile = pl.valid
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
		if found && first(u.Attributes[attr]) == want {
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

// relate runs the Groups and Managers steps, from step on, after the
// users are written (or planned, in a dry run). res holds the counts so
// far and the last checkpoint.
//
// A resumed Groups step has counted the rows that fail here already.
func (r *run) relate(ctx context.Context, dry bool, report Reporter, res *Result, step string) error {
	resumed := res.ResumePoint != nil && res.ResumePoint.Step == step
	pl, err := r.scanRelations(ctx)
	if err != nil {
		return err
	}
	if err := r.resolve(ctx, pl); err != nil {
		return err
	}
	st := &relateState{r: r, dry: dry, report: report, res: res, counted: resumed}
	if r.rel.groups != nil && step == v1alpha1.StepGroups {
		existing, err := r.listGroups(ctx)
		if err != nil {
			return err
		}
		r.planGroups(pl, existing, dry)
		res.PlannedMembershipRemovals, res.ManagedMemberships = pl.counts.MembershipsRemoved, pl.managed
		if dry && r.membershipStop(pl.counts.MembershipsRemoved, pl.managed) {
			res.SafetyStop, res.MembershipStop = true, true
		}
		for _, e := range pl.errs {
			st.failed(e)
		}
		if err := st.applyGroups(ctx, pl); err != nil {
			return err
		}
	} else if step == v1alpha1.StepGroups {
		for _, e := range pl.errs {
			st.failed(e)
		}
	}
	if r.rel.managers == nil {
		return nil
	}
	changes, withCreate, warnings := r.planManagers(pl, dry)
	for _, ch := range withCreate {
		st.listManagerChange(ch)
	}
	// Counted afresh: a resumed step finds them again.
	st.res.Counts.Groups.ManagersMissing = int64(len(warnings))
	for _, w := range warnings {
		st.report.RowError(w)
		st.keep(w)
	}
	return st.applyManagers(ctx, changes)
}

// relateState follows the counts and checkpoints of the two steps.
type relateState struct {
	r      *run
	dry    bool
	report Reporter
	res    *Result
	// counted says that the rows failing the step were counted before it
	// was resumed.
	counted bool
}

func (st *relateState) keep(e RowError) {
	if len(st.res.Errors) < st.r.cfg.KeepErrors {
		st.res.Errors = append(st.res.Errors, e)
	}
}

// failed reports a row whose groups or manager are wrong in the file.
func (st *relateState) failed(e RowError) {
	if st.counted {
		st.report.RowError(e)
		return
	}
	st.rowError(e)
}

// rowError reports a row that failed in these steps; it counts as failed.
func (st *relateState) rowError(e RowError) {
	st.res.Counts.Failed++
	st.report.RowError(e)
	st.keep(e)
}

// checkpoint reports the counts, and, in an import, a checkpoint of step
// that a resumed import continues from.
func (st *relateState) checkpoint(step string) {
	res := st.res
	p := Progress{Step: step, Counts: res.Counts}
	if cp := res.ResumePoint; cp != nil {
		p.Line, p.Offset = cp.Line, cp.Offset
	}
	if !st.dry {
		cp := ResumePoint{SHA256: st.r.in.SHA256, Step: step, Counts: res.Counts}
		if last := res.ResumePoint; last != nil {
			cp.Line, cp.Offset = last.Line, last.Offset
		}
		res.ResumePoint = &cp
		p.ResumePoint = &cp
	}
	st.report.Progress(p)
}

// applyGroups writes the group changes one group at a time, with a
// checkpoint after each.
func (st *relateState) applyGroups(ctx context.Context, pl *relationPlan) error {
	c := &st.res.Counts.Groups
	if st.dry {
		*c = addGroupCounts(*c, pl.counts)
		for _, ch := range pl.changes {
			st.listGroupChange(pl, ch)
		}
		st.checkpoint(v1alpha1.StepGroups)
		return nil
	}
	// Groups are independent: Concurrency of them are written at once,
	// with a checkpoint after each round. A round that is stopped is
	// finished, so that what it wrote is counted.
	conc := st.r.cfg.Concurrency
	for start := 0; start < len(pl.changes); start += conc {
		if err := ctx.Err(); err != nil {
			return err
		}
		part := pl.changes[start:min(start+conc, len(pl.changes))]
		errs := make([]error, len(part))
		var wg sync.WaitGroup
		for i, ch := range part {
			wg.Go(func() { _, errs[i] = st.r.rel.groups.ApplyGroup(context.WithoutCancel(ctx), ch.GroupChange) })
		}
		wg.Wait()
		var failed error
		for i, ch := range part {
			switch err := errs[i]; {
			case directory.IsChangeError(err):
				st.rowError(RowError{Line: ch.line, Identity: identityAt(pl, ch.line), Msg: st.r.rel.groupsAttr + ": the directory refused a group: " + err.Error()})
			case err != nil:
				failed = cmp.Or(failed, err)
			default:
				st.listGroupChange(pl, ch)
				if ch.ID == "" {
					c.GroupsCreated++
				}
				c.MembershipsAdded += int64(len(ch.Add) + len(ch.pending))
				c.MembershipsRemoved += int64(len(ch.Remove))
			}
		}
		st.checkpoint(v1alpha1.StepGroups)
		if failed != nil {
			return fmt.Errorf("writing a group: %w", failed)
		}
	}
	// The step is done: a resume starts at the managers.
	st.checkpoint(v1alpha1.StepManagers)
	return nil
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

// RelationChange is one change of a group or a manager, listed in the
// report: Identity is empty for a group created; a member removed that
// is not in the file is named by its directory reference.
type RelationChange struct {
	Line     int64
	Identity string
	Group    string
	Change   string
}

// MaxListedRelations bounds Result.Relations.
const MaxListedRelations = 1000

func (st *relateState) list(c RelationChange) {
	if len(st.res.Relations) < MaxListedRelations {
		st.res.Relations = append(st.res.Relations, c)
	}
}

func (st *relateState) listGroupChange(pl *relationPlan, ch groupChange) {
	if ch.ID == "" {
		st.list(RelationChange{Group: ch.Name, Change: "create group"})
	}
	for _, ref := range ch.Add {
		st.list(RelationChange{Identity: pl.identityOf[ref], Group: ch.Name, Change: "add member"})
	}
	for _, id := range ch.pending {
		st.list(RelationChange{Identity: id, Group: ch.Name, Change: "add member"})
	}
	for _, ref := range ch.Remove {
		id, ok := pl.identityOf[ref]
		if !ok {
			id = ref
		}
		st.list(RelationChange{Identity: id, Group: ch.Name, Change: "remove member"})
	}
}

func (st *relateState) listManagerChange(ch directory.Change) {
	change := "set manager"
	if len(ch.Attributes[st.r.rel.managerAttr]) == 0 {
		change = "remove manager"
	}
	st.list(RelationChange{Line: ch.Line, Identity: ch.Identity, Change: change})
}

func addGroupCounts(a, b v1alpha1.GroupCounts) v1alpha1.GroupCounts {
	a.GroupsCreated += b.GroupsCreated
	a.MembershipsAdded += b.MembershipsAdded
	a.MembershipsRemoved += b.MembershipsRemoved
	a.ManagersSet += b.ManagersSet
	a.ManagersMissing += b.ManagersMissing
	return a
}
