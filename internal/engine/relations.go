package engine

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/failure"
	"github.com/userimport/user-import-operator/internal/mapping"
)

// Groups and managers: once the users are written (and deprovisioned),
// the Groups step keeps the memberships of the groups the file names in
// step with it, and the Managers step writes each user's reference to
// their manager. Both read the file again (the mapping entries with
// target Groups or Manager) and the directory, and plan the difference
// with the same functions (planGroups, planManagers) for the preview and
// the import alike: a preview counts a user it would create as a member
// to add and as a manager to refer to.
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
	// groupsAt is the index of the groups entry in the mapper's output.
	groupsAt int
	create   bool
	// known holds the groups the directory has, by name in lower case,
	// when createGroups is false (see loadKnownGroups); nil otherwise.
	known    map[string]bool
	groups   directory.GroupDirectory
	managers directory.ManagerDirectory
	// predictFrom is what the file says of the managers, read before a
	// full import writes its users, for predictManager; nil otherwise.
	predictFrom *relationPlan
	// created holds the users this run created, with the IDs the
	// directory gave them and the manager references they were created
	// with, and removed the users it deleted, by identity (see resolve and
	// planGroups). err is the first error of recording them.
	mu      sync.Mutex
	created *userTable // field: ID
	// createdMembers marks the members (of scanned) created with their
	// identity as their ID, a byte each, in createdRaw.
	createdMembers []uint8
	createdRaw     []byte
	removed        *userTable // field: ID
	err            error
	// moved holds the new IDs of users this run moved (reactivated LDAP
	// users back from moveToDN), by identity.
	moved map[string]string
	// scanned is what the file says of groups and managers, read once
	// (see scanRelations).
	scanned *relationPlan
	// leave are the removals of the users that delta rows delete from
	// the managed groups, leaving their number and leaveOf the identities
	// of their references (see planLeave).
	leave   []groupChange
	leaving int64
	leaveOf map[string]string
	// emptied holds the groups (by name in lower case) the removals of
	// leave empty.
	emptied map[string]bool
	// before are the groups as listed before the run wrote anything (see
	// groupsBefore).
	before map[string]listedGroup
}

// noteWritten records a user the run created, with its ID, or deleted.
// A nil relations records nothing.
func (rel *relations) noteWritten(ch directory.Change, id string) {
	if rel == nil {
		return
	}
	if ch.Op == directory.OpDelete {
		rel.mu.Lock()
		defer rel.mu.Unlock()
		if _, err := rel.removed.put(ch.Identity, 0, ch.ID); err != nil && rel.err == nil {
			rel.err = err
		}
		return
	}
	if ch.Op == directory.OpUpdate && id != "" && ch.ID != "" && id != ch.ID {
		rel.mu.Lock()
		defer rel.mu.Unlock()
		if rel.moved == nil {
			rel.moved = map[string]string{}
		}
		rel.moved[ch.Identity] = id
		return
	}
	if ch.Op != directory.OpCreate || id == "" {
		return
	}
	rel.mu.Lock()
	defer rel.mu.Unlock()
	if id == ch.Identity && rel.scanned != nil {
		// As SQL users are: the ID is the identity, and a byte per member
		// says the run created it.
		if k := rel.scanned.members.find(id); k >= 0 {
			if rel.createdMembers == nil {
				rel.createdMembers, rel.createdRaw = mapped[uint8](rel.scanned.members.len())
			}
			rel.createdMembers[k] = 1
			return
		}
	}
	if _, err := rel.created.put(ch.Identity, 0, id); err != nil && rel.err == nil {
		rel.err = err
	}
}

// createdMember tells whether the run created the member with identity,
// with its identity as its ID.
func (rel *relations) createdMember(identity string) bool {
	if rel.createdMembers == nil {
		return false
	}
	return rel.createdAt(rel.scanned.members.find(identity))
}

// createdAt tells whether the run created member k of the scanned
// members, with its identity as its ID.
func (rel *relations) createdAt(k int) bool {
	return k >= 0 && rel.createdMembers != nil && rel.createdMembers[k] != 0
}

// loadKnownGroups reads the names of the groups the directory has when
// createGroups is false, before the users' pass: a row that names
// another fails there, whole.
func (r *run) loadKnownGroups(ctx context.Context) error {
	rel := r.rel
	if rel == nil || rel.groups == nil || rel.create || rel.known != nil {
		return nil
	}
	if cp := r.in.Resume; cp != nil && cp.KnownGroups != nil {
		// As when the import began: it may have emptied a group since.
		rel.known = make(map[string]bool, len(cp.KnownGroups))
		for _, g := range cp.KnownGroups {
			rel.known[g] = true
		}
		return nil
	}
	existing, err := r.groupsBefore(ctx)
	if err != nil {
		return err
	}
	rel.known = make(map[string]bool, len(existing))
	for key := range existing {
		rel.known[key] = true
	}
	return nil
}

// knownGroups lists the known groups for a checkpoint, sorted; nil when
// createGroups is true.
func (r *run) knownGroups() []string {
	if r.rel == nil || r.rel.known == nil {
		return nil
	}
	out := make([]string, 0, len(r.rel.known))
	for g := range r.rel.known {
		out = append(out, g)
	}
	slices.Sort(out)
	return out
}

// unknownGroup is the error of a row whose groups (mapped into rec)
// name one the directory does not have while createGroups is false, or
// "". It says which by its place on the line: the name is the file's.
func (rel *relations) unknownGroup(groups []string) string {
	if rel.known == nil {
		return ""
	}
	var names []string
	for _, g := range groups {
		if g = strings.TrimSpace(g); g != "" {
			names = append(names, g)
		}
	}
	for k, g := range names {
		if !rel.known[strings.ToLower(g)] {
			at := "the line's group"
			if len(names) > 1 {
				at = fmt.Sprintf("group %d of %d of the line", k+1, len(names))
			}
			return rel.groupsAttr + ": " + at + " is not in the directory, and createGroups is false"
		}
	}
	return ""
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
		return failure.Stall(v1alpha1.ReasonInvalidMapping, fmt.Errorf(format, args...))
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
		if !ok || !gd.HasGroups() {
			return nil, &failure.Error{Reason: v1alpha1.ReasonInvalidConfig,
				Err: fmt.Errorf("mapping[%s] has target Groups, but the directory names no groups (spec.<provider>.groups)", groups.Attribute)}
		}
		rel.groups, rel.groupsAttr = gd, groups.Attribute
		rel.groupsAt = len(entries)
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
		return nil, failure.Stall(v1alpha1.ReasonInvalidMapping, err)
	}
	rel.mapper = m
	return rel, nil
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
	if step == v1alpha1.StepGroups {
		if r.rel.groups != nil {
			existing, err := r.listGroups(ctx)
			if err != nil {
				return err
			}
			if err := r.planGroups(pl, existing, dry); err != nil {
				return err
			}
			res.PlannedMembershipRemovals, res.ManagedMemberships = pl.counts.MembershipsRemoved+r.rel.leaving, pl.managed
			if dry && r.membershipStop(pl) {
				res.SafetyStop, res.MembershipStop = true, true
				res.UnreadableLines = max(res.UnreadableLines, r.unreadableLines(pl))
			}
		}
		for _, e := range pl.errs {
			st.failed(e)
		}
		if r.rel.groups != nil {
			if err := st.applyGroups(ctx, pl); err != nil {
				return err
			}
		}
	}
	if r.rel.managers == nil {
		return nil
	}
	err = r.planManagers(pl, dry, managerWithCreate, func(ch directory.Change) error {
		st.listManagerChange(ch)
		return nil
	})
	if err != nil {
		return err
	}
	// Counted afresh: a resumed step finds them again.
	st.res.Counts.Groups.ManagersMissing = 0
	err = r.planManagers(pl, dry, managerMissing, func(ch directory.Change) error {
		st.res.Counts.Groups.ManagersMissing++
		w := RowError{Line: ch.Line, Identity: ch.Identity, Warning: true, Msg: missingManager(r.rel.managerAttr)}
		st.report.RowError(w)
		st.keep(w)
		return nil
	})
	if err != nil {
		return err
	}
	return st.applyManagers(ctx, pl)
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
	// failedLines are the lines these steps counted as failed: a line
	// fails once, whatever else of it fails.
	failedLines map[int64]bool
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
	if st.failedLines == nil {
		st.failedLines = map[int64]bool{}
	}
	if e.Line == 0 || !st.failedLines[e.Line] {
		st.res.Counts.Failed++
		st.failedLines[e.Line] = true
	}
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
		cp := ResumePoint{SHA256: st.r.in.SHA256, Step: step, Counts: res.Counts, KnownGroups: st.r.knownGroups()}
		if last := res.ResumePoint; last != nil {
			cp.Line, cp.Offset = last.Line, last.Offset
		}
		res.ResumePoint = &cp
		p.ResumePoint = &cp
	}
	st.report.Progress(p)
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
	if cr, ok := st.report.(ChangeReporter); ok {
		cr.Relation(c)
	}
	if len(st.res.Relations) < MaxListedRelations {
		st.res.Relations = append(st.res.Relations, c)
	}
}

func addGroupCounts(a, b v1alpha1.GroupCounts) v1alpha1.GroupCounts {
	a.GroupsCreated += b.GroupsCreated
	a.MembershipsAdded += b.MembershipsAdded
	a.MembershipsRemoved += b.MembershipsRemoved
	a.ManagersSet += b.ManagersSet
	a.ManagersMissing += b.ManagersMissing
	return a
}
