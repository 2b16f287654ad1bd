package memdir

import (
	"context"
	"fmt"
	"slices"
	"sort"

	"github.com/userimport/user-import-operator/internal/directory"
)

// group is one group of a Dir; members are user IDs.
type group struct {
	id      string
	managed bool
	members map[string]bool
}

// PutGroup adds or replaces a group, bypassing the write counter. Members
// are user IDs.
func (d *Dir) PutGroup(name string, managed bool, members ...string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.groups == nil {
		d.groups = map[string]*group{}
	}
	d.nextID++
	g := &group{id: fmt.Sprintf("group-%d", d.nextID), managed: managed, members: map[string]bool{}}
	for _, m := range members {
		g.members[m] = true
	}
	d.groups[name] = g
}

// Groups returns every group as "name: member identities" (sorted), with
// " (managed)" after the name of a managed group.
func (d *Dir) Groups() []string {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []string
	for name, g := range d.groups {
		var ids []string
		for m := range g.members {
			id, ok := d.byID[m]
			if !ok {
				id = "?" // a deleted user
			}
			ids = append(ids, id)
		}
		sort.Strings(ids)
		label := name
		if g.managed {
			label += " (managed)"
		}
		out = append(out, fmt.Sprintf("%s: %v", label, ids))
	}
	sort.Strings(out)
	return out
}

// HasGroups implements the engine's check that groups are configured.
func (d *Dir) HasGroups() bool { return true }

// ListGroups implements directory.GroupDirectory.
func (d *Dir) ListGroups(ctx context.Context, fn func(directory.Group) error) error {
	d.mu.Lock()
	var out []directory.Group
	for name, g := range d.groups {
		members := make([]string, 0, len(g.members))
		for m := range g.members {
			members = append(members, m)
		}
		slices.Sort(members)
		out = append(out, directory.Group{ID: g.id, Name: name, Managed: g.managed, Members: members})
	}
	d.mu.Unlock()
	for _, g := range out {
		if err := fn(g); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// ApplyGroup implements directory.GroupDirectory. Each member added or
// removed counts as a write for FailAfter; an interrupted change keeps
// the members written before the failure, as a server that takes a large
// change in several requests does.
func (d *Dir) ApplyGroup(ctx context.Context, c directory.GroupChange) (string, error) {
	if err := ctx.Err(); err != nil {
		return "", err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.groups == nil {
		d.groups = map[string]*group{}
	}
	g := d.groups[c.Name]
	if g == nil {
		if c.ID != "" {
			return "", &directory.ChangeError{Msg: "group: no longer exists"}
		}
		d.nextID++
		g = &group{id: fmt.Sprintf("group-%d", d.nextID), managed: true, members: map[string]bool{}}
		d.groups[c.Name] = g
	}
	step := func() error {
		if d.failAfter == 0 {
			return ErrInjected
		}
		d.writes++
		if d.failAfter > 0 {
			d.failAfter--
		}
		return nil
	}
	for _, m := range c.Add {
		if !g.members[m] {
			if err := step(); err != nil {
				return "", err
			}
			g.members[m] = true
		}
	}
	for _, m := range c.Remove {
		if g.members[m] {
			if err := step(); err != nil {
				return "", err
			}
			delete(g.members, m)
		}
	}
	return g.id, nil
}

// MemberReference implements directory.GroupDirectory: members are IDs.
func (d *Dir) MemberReference(u directory.User) string { return u.ID }

// ManagerReference implements directory.ManagerDirectory: a manager is
// referred to by ID.
func (d *Dir) ManagerReference(u directory.User) string { return u.ID }

// PredictReference implements directory.ManagerDirectory: IDs are
// assigned on create, so none is known before.
func (d *Dir) PredictReference(string) (string, bool) { return "", false }
