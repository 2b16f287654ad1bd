// Package syncmodel is the reference model of what an import promises
// (docs/concepts.md, "What an import promises"): from a directory, a file and a
// spec, the directory an import leaves and the outcome of each line.
//
// It is written to be read against that page, row by row, and shares no
// code with the engine: tests compare the engine with it on random
// scenarios (internal/engine's differential tests). It knows one mapping
// only, the one those scenarios use:
//
//	id      the identity (userName), required
//	mail    checked as an e-mail address
//	title
//	status  delta only: "inactive" deactivates, "deleted" deletes
//	dept    groups, several separated by "|"
//	mgr     the manager's identity
//
// Cells never hold a comma or a quote, so a line is split at commas.
package syncmodel

import (
	"slices"
	"strings"

	"golang.org/x/text/unicode/norm"

	"github.com/userimport/user-import-operator/api/v1alpha1"
)

// Header is the file's first line.
const Header = "id,mail,title,status,dept,mgr"

// User is a user of the directory. Manager is the manager's identity.
type User struct {
	Identity    string
	Managed     bool
	Active      bool
	Mail, Title string
	Manager     string
}

// Group is a group; Members are identities (a deleted user's stays in a
// group nobody cleans up).
type Group struct {
	Name    string
	Managed bool
	Members []string
}

// Directory is the state before and after an import.
type Directory struct {
	Users  map[string]*User
	Groups map[string]*Group // by name in lower case
}

// Spec is what the scenario varies of a UserImport's spec.
type Spec struct {
	Mode    v1alpha1.ImportMode
	Missing v1alpha1.MissingUsersPolicy
	// MaxDeprovision is a threshold (nil: none); the approvals as in
	// spec.safety.
	MaxDeprovision             *int64
	ApprovedDeprovisions       *int64
	ApprovedMembershipRemovals *int64
	// CreateGroups: a group the file names is created; without, a line
	// naming a group the directory does not have fails.
	CreateGroups bool
	// Invite: the users the import creates are invited at their mail.
	Invite bool
	// Fold is how the directory tells identities apart, nil when it
	// compares them exactly: without regard to case for SCIM's userName,
	// and to blanks too in LDAP (see directory.IdentityFolder). A line
	// names the user whose identity it spells in any way Fold maps to
	// that identity's key, and the user keeps the directory's spelling;
	// two lines that spell one identity are a duplicate. A full import
	// reads the directory's identities as it reads a line's first
	// (composed, trimmed).
	Fold func(identity string) string
}

// Outcome of one line.
type Outcome struct {
	Change  string // created, updated, unchanged, deactivated, deleted, or error
	Warning bool   // the manager named is not a user once the users are written
}

// Result of an import.
type Result struct {
	After      Directory
	Lines      map[int64]Outcome // by line number (the header is line 1)
	Stopped    bool              // a safety stop: nothing written
	NoValid    bool              // a full import that deprovisions, with no valid row: nothing written
	Counts     v1alpha1.ChangeCounts
	Groups     v1alpha1.GroupCounts
	Unreadable int64
	// Invited are the users invited (Spec.Invite), NoAddress the number
	// of users created without an address to invite.
	Invited   []string
	NoAddress int64
}

type row struct {
	line                         int64
	id, mail, title, status, mgr string
	groups                       []string // trimmed, without blanks, first spelling of each
}

// Import computes what an import of lines (without the header) does to
// before, which it does not change.
func Import(before Directory, lines []string, spec Spec) Result {
	d := before.clone()
	res := Result{Lines: map[int64]Outcome{}}
	full := spec.Mode == v1alpha1.ModeFull

	// key is what tells two identities apart: Fold, and in a full
	// import, which lists the users in scope, the identity of a listed
	// user read as a line's is (another tool may have written it with
	// blanks around it or a combining accent). A delta import finds its
	// users as the directory compares them.
	key := func(id string) string {
		if full {
			id = norm.NFC.String(strings.TrimSpace(id))
		}
		if spec.Fold != nil {
			return spec.Fold(id)
		}
		return id
	}
	// An identity as the directory spells it: the user whose identity
	// the directory finds equal (Fold), or else the one listed user whose
	// identity has its key.
	spelled := func(id string) string {
		if d.Users[id] != nil {
			return id
		}
		if spec.Fold != nil {
			for uid := range d.Users {
				if spec.Fold(uid) == spec.Fold(id) {
					return uid
				}
			}
		}
		if !full {
			return id
		}
		found := ""
		for uid, u := range d.Users {
			if u.Managed && key(uid) == key(id) {
				if found != "" {
					return id
				}
				found = uid
			}
		}
		if found == "" {
			return id
		}
		return found
	}

	// 1. Each line, in file order: the first line with a readable
	// identity claims that user; a failed line protects it.
	claimed := map[string]bool{} // by key
	kept := map[string]bool{}    // users of lines that failed, whose identity was read
	var valid []row              // lines whose user is written (or left unchanged)
	outcome := func(r row, change string) { res.Lines[r.line] = Outcome{Change: change} }
	for i, l := range lines {
		r := parse(int64(i+2), l)
		if r != nil {
			r.id = spelled(r.id)
		}
		switch {
		case r == nil:
			res.Unreadable++
			res.Lines[int64(i+2)] = Outcome{Change: "error"}
			continue
		case claimed[key(r.id)]:
			outcome(*r, "error") // a duplicate
			continue
		}
		claimed[key(r.id)] = true
		u := d.Users[r.id]
		switch {
		case !isMail(r.mail) || !spec.CreateGroups && !allExist(before, r.groups):
			kept[r.id] = true
			outcome(*r, "error")
		case u != nil && !u.Managed:
			kept[r.id] = true // out of scope: never written
			outcome(*r, "error")
		default:
			valid = append(valid, *r)
		}
	}

	// 2. The users: what each valid line does, before anything is written.
	type write struct {
		r      row
		change string
	}
	var writes []write
	for _, r := range valid {
		u := d.Users[r.id]
		action := "upsert"
		if !full && r.status == "deleted" {
			action = "delete"
		} else if !full && r.status == "inactive" {
			action = "deactivate"
		}
		change := "unchanged"
		switch {
		case action == "delete" && u != nil:
			change = "deleted"
		case action == "deactivate" && u != nil && u.Active:
			change = "deactivated"
		case action != "upsert":
		case u == nil:
			change = "created"
		case u.Mail != r.mail || u.Title != r.title || !u.Active:
			change = "updated"
		}
		writes = append(writes, write{r, change})
	}
	var missing []string // users a full import deprovisions
	if full && spec.Missing != v1alpha1.MissingIgnore {
		for id, u := range d.Users {
			if u.Managed && !claimed[key(id)] && (spec.Missing == v1alpha1.MissingDelete || u.Active) {
				missing = append(missing, id)
			}
		}
		slices.Sort(missing)
	}

	// 3. Safety: nothing is written when a check stops the import.
	n := int64(len(missing))
	if full && spec.Missing != v1alpha1.MissingIgnore && len(valid) == 0 {
		res.NoValid = true
		res.After = before.clone()
		return res
	}
	over := spec.MaxDeprovision != nil && n > *spec.MaxDeprovision || res.Unreadable > 0 && n > 0
	if over && (spec.ApprovedDeprovisions == nil || *spec.ApprovedDeprovisions < n) {
		res.Stopped = true
	}

	// 4. Write the users.
	deleted := map[string]bool{}
	for _, w := range writes {
		outcome(w.r, w.change)
		u := d.Users[w.r.id]
		switch w.change {
		case "created":
			u = &User{Identity: w.r.id, Managed: true}
			d.Users[w.r.id] = u
			switch {
			case !spec.Invite:
			case w.r.mail == "":
				res.NoAddress++
			default:
				res.Invited = append(res.Invited, w.r.id)
			}
			fallthrough
		case "updated":
			u.Mail, u.Title, u.Active = w.r.mail, w.r.title, true
			count(&res.Counts, w.change)
		case "deleted":
			delete(d.Users, w.r.id)
			deleted[w.r.id] = true
			count(&res.Counts, w.change)
		case "deactivated":
			u.Active = false
			count(&res.Counts, w.change)
		default:
			res.Counts.Unchanged++
		}
	}
	for _, id := range missing {
		if spec.Missing == v1alpha1.MissingDelete {
			delete(d.Users, id)
			deleted[id] = true
			res.Counts.Deleted++
		} else {
			d.Users[id].Active = false
			res.Counts.Deactivated++
		}
	}

	// 5. Groups: a member is a valid line's user, in the directory once
	// the users are written.
	members := []row{}
	for _, r := range valid {
		if r.status == "" || full {
			if _, ok := d.Users[r.id]; ok {
				members = append(members, r)
			}
		}
	}
	removals := groups(&d, members, kept, deleted, full, &res.Groups)
	if full && res.Unreadable > 0 && removals > 0 && (spec.ApprovedMembershipRemovals == nil || *spec.ApprovedMembershipRemovals < removals) {
		res.Stopped = true
	}
	if res.Stopped {
		res.After = before.clone()
		res.Counts, res.Groups = v1alpha1.ChangeCounts{}, v1alpha1.GroupCounts{}
		res.Invited, res.NoAddress = nil, 0
		return res
	}
	slices.Sort(res.Invited)

	// 6. Managers: a member's manager is set when the manager is a user
	// once the users are written; otherwise the line warns and the
	// reference stays as it is. An empty cell removes the reference.
	for _, r := range members {
		u := d.Users[r.id]
		r.mgr = spelled(r.mgr)
		if r.mgr != "" && d.Users[r.mgr] == nil {
			o := res.Lines[r.line]
			o.Warning = true
			res.Lines[r.line] = o
			res.Groups.ManagersMissing++
			continue
		}
		if u.Manager != r.mgr {
			u.Manager = r.mgr
			res.Groups.ManagersSet++
		}
	}
	for _, o := range res.Lines {
		if o.Change == "error" {
			res.Counts.Failed++
		}
	}
	res.After = d
	return res
}

// groups brings the groups in step with the members and returns the
// number of memberships removed. A full import keeps each managed
// group's members equal to the members naming it, except the users of
// failed lines, who keep what they have; a delta import changes only the
// memberships of its members, and takes the users it deletes out of the
// managed groups. Groups made by hand only gain members.
func groups(d *Directory, members []row, kept, deleted map[string]bool, full bool, c *v1alpha1.GroupCounts) int64 {
	want := map[string][]string{} // group key -> identities
	named := map[string]bool{}    // identity -> named by a member
	var order []string
	for _, r := range members {
		named[r.id] = true
		for _, g := range r.groups {
			key := strings.ToLower(g)
			if d.Groups[key] == nil {
				d.Groups[key] = &Group{Name: g, Managed: true}
				c.GroupsCreated++
			}
			if !slices.Contains(want[key], r.id) {
				want[key] = append(want[key], r.id)
			}
			order = append(order, key)
		}
	}
	var removed int64
	for key, g := range d.Groups {
		var keep []string
		for _, m := range g.Members {
			drop := g.Managed && !slices.Contains(want[key], m) &&
				(full && !kept[m] || !full && (named[m] || deleted[m]))
			if drop {
				removed++
				continue
			}
			keep = append(keep, m)
		}
		for _, m := range want[key] {
			if !slices.Contains(keep, m) {
				keep = append(keep, m)
				c.MembershipsAdded++
			}
		}
		g.Members = keep
	}
	c.MembershipsRemoved += removed
	return removed
}

// parse reads a line; nil when its identity cannot be read (a wrong
// number of fields, an empty or blank identity).
func parse(line int64, l string) *row {
	f := strings.Split(l, ",")
	if len(f) != 6 || strings.TrimSpace(f[0]) == "" {
		return nil
	}
	// Blanks around an identity are not part of it, nor around a
	// manager's (a manager cell of blanks stays as it is), and both are
	// read in Unicode's composed form (NFC).
	r := &row{line: line, id: norm.NFC.String(strings.TrimSpace(f[0])), mail: f[1], title: f[2], status: strings.ToLower(strings.TrimSpace(f[3])), mgr: f[5]}
	if m := strings.TrimSpace(r.mgr); m != "" {
		r.mgr = norm.NFC.String(m)
	}
	if r.status != "inactive" && r.status != "deleted" {
		r.status = ""
	}
	seen := map[string]bool{}
	for _, g := range strings.Split(f[4], "|") {
		g = strings.TrimSpace(g)
		if g != "" && !seen[strings.ToLower(g)] {
			seen[strings.ToLower(g)] = true
			r.groups = append(r.groups, g)
		}
	}
	return r
}

func allExist(d Directory, groups []string) bool {
	for _, g := range groups {
		if d.Groups[strings.ToLower(g)] == nil {
			return false
		}
	}
	return true
}

// isMail is the scenarios' e-mail rule: empty (no address), or a local
// part and a domain with a dot.
func isMail(s string) bool {
	if s == "" {
		return true
	}
	local, domain, ok := strings.Cut(s, "@")
	return ok && local != "" && strings.Contains(domain, ".") && !strings.ContainsAny(s, "()<> ")
}

func count(c *v1alpha1.ChangeCounts, change string) {
	switch change {
	case "created":
		c.Created++
	case "updated":
		c.Updated++
	case "deactivated":
		c.Deactivated++
	case "deleted":
		c.Deleted++
	}
}

func (d Directory) clone() Directory {
	out := Directory{Users: map[string]*User{}, Groups: map[string]*Group{}}
	for id, u := range d.Users {
		c := *u
		out.Users[id] = &c
	}
	for k, g := range d.Groups {
		c := *g
		c.Members = slices.Clone(g.Members)
		out.Groups[k] = &c
	}
	return out
}

// Render lists the directory as sorted lines, one per user and one per
// group with members; a reference to a user that is gone reads "?".
func (d Directory) Render() []string {
	var out []string
	name := func(id string) string {
		if _, ok := d.Users[id]; !ok && id != "" {
			return "?"
		}
		return id
	}
	for _, u := range d.Users {
		out = append(out, RenderUser(u.Identity, u.Managed, u.Active, u.Mail, u.Title, name(u.Manager)))
	}
	for _, g := range d.Groups {
		var ms []string
		for _, m := range g.Members {
			ms = append(ms, name(m))
		}
		if len(ms) > 0 {
			out = append(out, RenderGroup(g.Name, g.Managed, ms))
		}
	}
	slices.Sort(out)
	return out
}

// RenderUser and RenderGroup are the lines of Render, for a directory
// read back by a test.
func RenderUser(id string, managed, active bool, mail, title, manager string) string {
	return "user " + id + " managed=" + yes(managed) + " active=" + yes(active) + " mail=" + mail + " title=" + title + " manager=" + manager
}

func RenderGroup(name string, managed bool, members []string) string {
	members = slices.Clone(members)
	slices.Sort(members)
	return "group " + strings.ToLower(name) + " managed=" + yes(managed) + " members=" + strings.Join(members, " ")
}

func yes(b bool) string {
	if b {
		return "true"
	}
	return "false"
}
