package engine

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/mapping"
)

// A relationPlan is what the file says of the groups and managers of its
// valid rows (scanRelations), with the users it names as the directory
// holds them (resolve): the Groups and Managers steps plan from it.

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
	// members are the file's valid rows, by identity too: a dry run counts
	// a manager among them that the directory lacks as one it would
	// create.
	members *memberList
	names   []string // group names by index
	// users are the users of the file and the managers it names, as the
	// directory holds them (see keep), by identity; in a full import,
	// listed finds the ones the run listed or created.
	users         *userTable
	listed        func(identity string) (directory.User, bool)
	listedManager func(identity, manager string) bool
	// managerKinds holds the kind of each member's manager change plus
	// one, 0 for none, once planManagers has run (see there).
	managerKinds []uint8
	// deleted holds the identities that delta rows delete, by idKey.
	deleted map[string]string
	// kept holds the identities of the rows that failed (mapping, a check,
	// their groups or manager), by idKey: those users keep their
	// memberships and manager as they are, and stay valid as managers.
	kept map[string]string
	// unreadable counts the rows whose identity could not be read: a full
	// import cannot tell whose memberships they would keep.
	unreadable int64
	changes    []groupChange
	// identityOf maps the member references of the file's users to their
	// identities in a delta import, removedOf those of the members a full
	// import removes from a group (see identityAt).
	identityOf *userTable
	removedOf  map[string]string
	errs       []RowError // rows naming a group that cannot be created
	counts     v1alpha1.GroupCounts
	// managed is the number of memberships of the managed groups.
	managed int64
}

// scanRelations returns a new plan with what the file says of the groups
// and managers of its valid rows: rows whose user mapping fails were
// reported by the users' pass, and a later row with the identity of an
// earlier one is a duplicate. The file is read once a run; each plan gets
// what was read (read only) and state of its own.
func (r *run) scanRelations(ctx context.Context) (*relationPlan, error) {
	rel := r.rel
	newPlan := func(f *relationPlan) *relationPlan {
		return &relationPlan{members: f.members, names: f.names, deleted: f.deleted, kept: f.kept, unreadable: f.unreadable,
			errs: slices.Clone(f.errs), users: r.newUserTable(2)}
	}
	if rel.scanned != nil {
		return newPlan(rel.scanned), nil
	}
	pl := &relationPlan{members: &memberList{index: keyIndex{fold: r.fold}}, deleted: map[string]string{}, kept: map[string]string{}}
	r.offHeap = append(r.offHeap, pl.members)
	index := map[string]int32{}
	// The identities of the rows read so far: what the scan needs only
	// while it reads, and frees before the users are written.
	seen := newIDSet(0)
	defer seen.free()
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
			m.relMsg = rel.unknownGroup(attrs[rel.groupsAttr])
			m.attrs = attrs
		}
	}, func(c *chunk) error {
		for i := range c.rows {
			m := &c.rows[i]
			if m.lineErr != nil || m.identity == "" {
				pl.unreadable++
				continue
			}
			if !r.claims(m, seen) {
				continue // a duplicate
			}
			if m.msg != "" {
				pl.kept[r.idKey(m.identity)] = strings.Clone(m.identity)
				continue
			}
			if m.relMsg != "" {
				// Failed in the users' pass (checkRelations), which
				// reported it.
				pl.kept[r.idKey(m.identity)] = strings.Clone(m.identity)
				continue
			}
			if op := r.statusAction(m); op != directory.OpCreate {
				// The row deletes or deactivates its user: groups and
				// manager stay as they are.
				if op == directory.OpDelete {
					pl.deleted[r.idKey(m.identity)] = strings.Clone(m.identity)
				}
				continue
			}
			mem := member{line: m.rec.Line, identity: strings.Clone(m.identity)}
			if rel.groupsAttr != "" {
				for _, g := range m.attrs[rel.groupsAttr] {
					// Blanks around a name are not part of it, and a name
					// of blanks names no group.
					if g = strings.TrimSpace(g); g == "" {
						continue
					}
					// The first spelling of a name stands for the others.
					key := strings.ToLower(g)
					k, ok := index[key]
					if !ok {
						k = int32(len(pl.names))
						index[strings.Clone(key)] = k
						pl.names = append(pl.names, strings.Clone(g))
					}
					if !slices.Contains(mem.groups, k) {
						mem.groups = append(mem.groups, k)
					}
				}
			}
			if rel.managerAttr != "" {
				// The manager's identity is read as an identity is; a
				// cell of blanks stays as it is.
				mgr := first(m.attrs[rel.managerAttr])
				if t := mapping.Identity(mgr); t != "" {
					mgr = t
				}
				mem.manager = strings.Clone(r.canonical(mgr))
			}
			if err := pl.members.add(mem); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	rel.scanned = pl
	return newPlan(pl), nil
}

// resolve looks up the users of the file and the managers it names.
func (r *run) resolve(ctx context.Context, pl *relationPlan) error {
	rel := r.rel
	if rel.err != nil {
		return rel.err
	}
	if r.cfg.Mode == v1alpha1.ModeFull && r.snap != nil {
		// The users in scope as the run listed them, and the ones it
		// created since, with the IDs the directory gave them, are found
		// where the run holds them already.
		pl.listed, pl.listedManager = r.listedUser, r.listedManager
	}
	// The rest (all of them in a delta import; managers out of scope,
	// users a dry run would create, rows that failed in a full one) are
	// looked up.
	// Asked as spelled: a server whose filters compare exactly finds
	// each spelling under its own.
	asked := r.newUserTable(0)
	asked.index.fold = nil
	var want []string
	ask := func(id string) error {
		if id == "" || asked.has(id) {
			return nil
		}
		if _, found := pl.user(id); pl.listed != nil && (found || r.rel.removed.has(id)) {
			// Listed, created, or deleted by this run.
			return nil
		}
		want = append(want, id)
		_, err := asked.put(id, 0)
		return err
	}
	for i := range pl.members.len() {
		m := pl.members.head(i)
		if err := errors.Join(ask(m.identity), ask(m.manager)); err != nil {
			return err
		}
	}
	for _, ids := range []map[string]string{pl.kept, pl.deleted} {
		for _, id := range slices.Sorted(maps.Values(ids)) {
			if err := ask(id); err != nil {
				return err
			}
		}
	}
	attrs := []string{r.cfg.Directory.IdentityAttribute}
	if rel.managerAttr != "" {
		attrs = append(attrs, rel.managerAttr)
	}
	keep := func(id string, u directory.User) error {
		manager := ""
		if rel.managerAttr != "" {
			manager = first(u.Attributes[rel.managerAttr])
		}
		return pl.keep(id, u, manager)
	}
	if r.cfg.Mode == v1alpha1.ModeFull && r.snap == nil {
		// A resumed step, which did not list the users: one listing costs
		// the server less than looking them all up.
		err := r.dir.List(ctx, attrs, func(u directory.User) error {
			if asked.has(u.Identity) {
				return keep(u.Identity, u)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("listing the users of the file's groups and managers: %w", err)
		}
		rest := want[:0]
		for _, id := range want {
			if !pl.users.has(id) {
				rest = append(rest, id)
			}
		}
		want = rest
	}
	var kerr error
	err := r.lookupAll(ctx, want, attrs, func(id string, u directory.User) {
		if err := keep(id, u); err != nil && kerr == nil {
			kerr = err
		}
	})
	if err != nil {
		return fmt.Errorf("looking up the users of the file's groups and managers: %w", err)
	}
	return kerr
}

// user is the user of identity as kept or listed, and whether it was.
func (pl *relationPlan) user(identity string) (directory.User, bool) {
	i := pl.users.find(identity)
	if i < 0 {
		if pl.listed != nil {
			return pl.listed(identity)
		}
		return directory.User{}, false
	}
	f := pl.users.flag(i)
	return directory.User{ID: pl.users.field(i, 0), Identity: identity, Managed: f&userManaged != 0, Active: f&userActive != 0}, true
}

// hasManager tells whether the user of identity refers to manager ("" for
// none) as kept or listed.
func (pl *relationPlan) hasManager(identity, manager string) bool {
	i := pl.users.find(identity)
	if i < 0 {
		if pl.listed != nil {
			return pl.listedManager(identity, manager)
		}
		return manager == ""
	}
	return pl.users.field(i, 1) == manager
}

// createdUser is a user this run created, as the directory holds it.
func (r *run) createdUser(identity string) (directory.User, bool) {
	rel := r.rel
	u := directory.User{ID: identity, Identity: identity, Managed: true, Active: true}
	if i := rel.created.find(identity); i >= 0 {
		u.ID = rel.created.field(i, 0)
	} else if !rel.createdMember(identity) {
		return directory.User{}, false
	}
	return u, true
}

// listedUser is the user of identity as a full import listed it, or
// created it since.
func (r *run) listedUser(identity string) (directory.User, bool) {
	rel := r.rel
	if u, ok := r.createdUser(identity); ok {
		return u, true
	}
	if rel.removed.has(identity) {
		return directory.User{}, false
	}
	i := r.snap.find(identity)
	if i < 0 {
		return directory.User{}, false
	}
	u := directory.User{ID: r.snap.id(i), Identity: identity, Managed: true, Active: r.snap.active(i)}
	if moved, ok := rel.moved[identity]; ok {
		u.ID = moved
	}
	return u, true
}

// listedManager tells whether the user of identity, as a full import
// listed it or created it since, refers to manager: a user it created
// refers to the manager predictManager gave its create, which it gives
// again; one it listed is compared by the hash of its reference, as the
// users' attributes are.
func (r *run) listedManager(identity, manager string) bool {
	if _, ok := r.createdUser(identity); ok {
		ref, _ := r.predictManager(identity)
		return ref == manager
	}
	i := r.snap.find(identity)
	if i < 0 || r.rel.removed.has(identity) {
		return manager == ""
	}
	return r.snap.managerHash(i) == hashValues([]string{manager})
}

// lookupAll looks the identities up, a few hundred at a time, and calls
// fn for each user found.
func (r *run) lookupAll(ctx context.Context, ids, attrs []string, fn func(string, directory.User)) error {
	const chunk = 500
	for start := 0; start < len(ids); start += chunk {
		found, err := r.dir.Lookup(ctx, ids[start:min(start+chunk, len(ids))], attrs)
		if err != nil {
			return err
		}
		for id, u := range found {
			fn(id, u)
		}
	}
	return nil
}

// present tells whether the user of a member takes part in the groups
// and managers, with its directory reference ("" for a user a dry run
// would create).
//
// k is the member's place in pl.members: a user the run created with its
// identity as its ID is known by it without a lookup.
func (r *run) present(pl *relationPlan, k int, dry bool, ref func(directory.User) string) (string, bool) {
	_, to, ok := r.presentMember(pl, k, dry, ref)
	return to, ok
}

// presentMember is present, with the member's identity.
func (r *run) presentMember(pl *relationPlan, k int, dry bool, ref func(directory.User) string) (identity, to string, ok bool) {
	identity = pl.members.identity(k)
	u, found := directory.User{ID: identity, Identity: identity, Managed: true, Active: true}, true
	if !r.rel.createdAt(k) {
		u, found = pl.user(identity)
	}
	switch {
	case !found:
		// A dry run counts the users it would create; an import finds
		// every user it wrote, so a missing one is a row that failed.
		return identity, "", dry
	case r.cfg.Directory.ManagedOnly && !u.Managed:
		// Out of scope: its row was an error of the users' pass.
		return identity, "", false
	}
	return identity, ref(u), true
}

// deleted tells whether the import deletes user u (a dry run, which has
// not): by its row's status, or, in a full import that deletes the
// missing users, because the file does not list it.
func (r *run) deleted(pl *relationPlan, u directory.User) bool {
	if r.cfg.Directory.ManagedOnly && !u.Managed {
		return false // out of scope: never written
	}
	_, deleted := pl.deleted[r.idKey(u.Identity)]
	_, kept := pl.kept[r.idKey(u.Identity)]
	return deleted || r.cfg.Mode == v1alpha1.ModeFull && r.cfg.MissingUsers == v1alpha1.MissingDelete && !pl.members.has(u.Identity) && !kept
}

// Flags of the users of a relationPlan.
const (
	userManaged uint8 = 1 << iota
	userActive
)

// keep records user u as the directory holds it, with its manager
// reference. Only what the steps need is kept (its keys, scope and
// manager), in records: a file of a million users is resolved in memory.
func (pl *relationPlan) keep(id string, u directory.User, manager string) error {
	var f uint8
	if u.Managed {
		f |= userManaged
	}
	if u.Active {
		f |= userActive
	}
	_, err := pl.users.put(id, f, u.ID, manager)
	return err
}
