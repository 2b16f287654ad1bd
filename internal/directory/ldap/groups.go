package ldap

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/go-ldap/ldap/v3"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/failure"
)

// Groups are the entries of spec.groups.objectClass under its baseDN,
// named cn=<group name>. A group the import creates carries the marker
// value in description, which all three object classes allow. A change
// of members that the server refuses because a member to add is there
// already, or one to remove is gone (a change applied again after an
// interruption), is made again from the members the entry holds.

const (
	groupMarkerAttr = "description"
	// firstGID is the gidNumber of the first posixGroup an import creates
	// under a base without any.
	firstGID = 10000
)

// groups is the group configuration of a Directory.
type groups struct {
	base       string
	class      string // as configured
	memberAttr string
	// byDN: members are DNs (groupOfNames, groupOfUniqueNames, group),
	// not identities (posixGroup's memberUid).
	byDN bool
	// ad: Active Directory groups (objectClass group), created with
	// groupType and a sAMAccountName, kept when empty.
	ad        bool
	groupType int32
	// creating serialises the creation of posixGroups, each of which
	// takes the next free gidNumber.
	creating sync.Mutex
}

func newGroups(spec *v1alpha1.LDAPGroups, ad bool) (*groups, error) {
	if spec == nil {
		return nil, nil
	}
	if dn, err := ldap.ParseDN(spec.BaseDN); err != nil || len(dn.RDNs) == 0 {
		return nil, failure.Errorf(v1alpha1.ReasonInvalidConfig, "spec.ldap.groups.baseDN %q is not a distinguished name", spec.BaseDN)
	}
	g := &groups{base: spec.BaseDN, class: string(spec.ObjectClass), groupType: defaultGroupType}
	if g.class == "" && ad {
		g.class = string(v1alpha1.ADGroup)
	}
	if spec.GroupType != nil {
		g.groupType = *spec.GroupType
	}
	switch strings.ToLower(g.class) {
	case "group":
		if !ad {
			return nil, failure.Errorf(v1alpha1.ReasonInvalidConfig, "spec.ldap.groups.objectClass group is Active Directory's: set spec.ldap.vendor: ActiveDirectory")
		}
		g.class, g.memberAttr, g.byDN, g.ad = "group", "member", true, true
	case "", "groupofnames":
		g.class, g.memberAttr, g.byDN = "groupOfNames", "member", true
	case "groupofuniquenames":
		g.memberAttr, g.byDN = "uniqueMember", true
	case "posixgroup":
		g.memberAttr = "memberUid"
	default:
		return nil, failure.Errorf(v1alpha1.ReasonInvalidConfig, "spec.ldap.groups.objectClass %q: want groupOfNames, groupOfUniqueNames, posixGroup or group", g.class)
	}
	return g, nil
}

// HasGroups tells whether spec.groups is set.
func (d *Directory) HasGroups() bool { return d.groups != nil }

// MemberReference is the user's DN, or for posixGroup its identity.
func (d *Directory) MemberReference(u directory.User) string {
	if d.groups != nil && !d.groups.byDN {
		return u.Identity
	}
	return u.ID
}

// ManagerReference is the manager's DN, for the manager attribute.
func (d *Directory) ManagerReference(u directory.User) string { return u.ID }

// PredictReference is the DN a user created with identity gets, when the
// identity is the attribute that names new entries.
func (d *Directory) PredictReference(identity string) (string, bool) {
	if !sameAttr(d.rdnAttr, d.identityAttr) || identity == "" {
		return "", false
	}
	return d.rdnAttr + "=" + d.escapeRDN(identity) + "," + d.usersBase, true
}

// ListGroups reads the groups under the groups base with their members.
func (d *Directory) ListGroups(ctx context.Context, fn func(directory.Group) error) error {
	g := d.groups
	if g == nil {
		return failure.Errorf(v1alpha1.ReasonInvalidConfig, "spec.ldap.groups is not set")
	}
	filter := "(objectClass=" + ldap.EscapeFilter(g.class) + ")"
	delivered := false
	err := d.do(ctx, func(c *ldap.Conn) error {
		if delivered {
			return errRestart
		}
		var entries []*ldap.Entry
		err := d.pagedSearch(ctx, c, g.base, filter, []string{"cn", g.memberAttr, groupMarkerAttr}, func(e *ldap.Entry) error {
			if g.ad {
				// Ranged members are read after the search: a connection
				// serves one operation at a time here.
				entries = append(entries, e)
				return nil
			}
			delivered = true
			return fn(directory.Group{
				ID:      e.DN,
				Name:    groupName(e),
				Managed: containsFold(entryValues(e, groupMarkerAttr), d.markerValue),
				Members: entryValues(e, g.memberAttr),
			})
		})
		if err != nil {
			return err
		}
		for _, e := range entries {
			members, err := d.rangedValues(ctx, c, e, g.memberAttr)
			if err != nil {
				return err
			}
			delivered = true
			if err := fn(directory.Group{ID: e.DN, Name: groupName(e),
				Managed: containsFold(entryValues(e, groupMarkerAttr), d.markerValue), Members: members}); err != nil {
				return err
			}
		}
		return nil
	})
	if err == errRestart {
		return failure.Errorf(v1alpha1.ReasonUnreachable, "listing groups under %q: connection lost mid-listing", g.base)
	}
	if err != nil {
		return d.readError("list groups under "+g.base, err)
	}
	return nil
}

// groupName is the value of the entry's cn RDN, or its first cn.
func groupName(e *ldap.Entry) string {
	if dn, err := ldap.ParseDN(e.DN); err == nil && len(dn.RDNs) > 0 {
		for _, a := range dn.RDNs[0].Attributes {
			if sameAttr(a.Type, "cn") {
				return a.Value
			}
		}
	}
	return first(entryValues(e, "cn"))
}

// ApplyGroup creates a group or changes its members. A groupOfNames or
// groupOfUniqueNames group must keep a member: one left empty is
// deleted.
func (d *Directory) ApplyGroup(ctx context.Context, ch directory.GroupChange) (string, error) {
	g := d.groups
	if g == nil {
		return "", failure.Errorf(v1alpha1.ReasonInvalidConfig, "spec.ldap.groups is not set")
	}
	if ch.ID == "" {
		return d.createGroup(ctx, ch)
	}
	ch.Add, ch.Remove = d.cancelPairs(ch.Add, ch.Remove)
	if ch.Empty && g.byDN && !g.ad {
		return ch.ID, d.delete(ctx, ch.ID)
	}
	var err error
	if g.ad {
		// AD moves a renamed member's DN in every group itself, and
		// resolves a DN to remove to the object it named: a change
		// planned from the member's old DN would remove the member. So
		// the change is made from the members the entry holds now.
		err = d.modifyFromEntry(ctx, ch)
	} else {
		err = d.modifyMembers(ctx, ch.ID, ch.Add, ch.Remove)
	}
	if ldap.IsErrorWithCode(err, ldap.LDAPResultAttributeOrValueExists) || ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchAttribute) ||
		// AD answers a member added twice with entryAlreadyExists, and
		// one removed twice with unwillingToPerform.
		g.ad && ldap.IsErrorAnyOf(err, ldap.LDAPResultEntryAlreadyExists, ldap.LDAPResultUnwillingToPerform) {
		err = d.modifyFromEntry(ctx, ch)
	}
	if err != nil {
		return ch.ID, d.writeError(err, []string{g.memberAttr})
	}
	return ch.ID, nil
}

// modifyMembers adds and removes member values in one modify.
func (d *Directory) modifyMembers(ctx context.Context, dn string, add, remove []string) error {
	if len(add) == 0 && len(remove) == 0 {
		return nil
	}
	req := ldap.NewModifyRequest(dn, nil)
	if len(add) > 0 {
		req.Add(d.groups.memberAttr, add)
	}
	if len(remove) > 0 {
		req.Delete(d.groups.memberAttr, remove)
	}
	return d.do(ctx, func(c *ldap.Conn) error { return c.Modify(req) })
}

// modifyFromEntry makes a change again from the members the entry holds:
// only the members to add that it lacks, and to remove that it has.
func (d *Directory) modifyFromEntry(ctx context.Context, ch directory.GroupChange) error {
	attr := d.groups.memberAttr
	var current []string
	err := d.do(ctx, func(c *ldap.Conn) error {
		res, err := c.Search(ldap.NewSearchRequest(ch.ID, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false, "(objectClass=*)", []string{attr}, nil))
		if err != nil {
			return err
		}
		if len(res.Entries) > 0 {
			current, err = d.rangedValues(ctx, c, res.Entries[0], attr)
		}
		return err
	})
	if err != nil {
		return err
	}
	has := map[string]bool{}
	key := d.memberKey
	for _, v := range current {
		has[key(v)] = true
	}
	var add, remove []string
	for _, v := range ch.Add {
		if !has[key(v)] {
			add = append(add, v)
			has[key(v)] = true
		}
	}
	for _, v := range ch.Remove {
		if has[key(v)] {
			remove = append(remove, v)
			delete(has, key(v))
		}
	}
	return d.modifyMembers(ctx, ch.ID, add, remove)
}

// memberKey is a member value as the server compares it: a DN parsed
// and in lower case (AD spells "CN=", a DN this provider builds "cn="),
// a member name exactly.
func (d *Directory) memberKey(v string) string {
	if !d.groups.byDN {
		return v
	}
	if dn, err := ldap.ParseDN(v); err == nil {
		return strings.ToLower(dn.String())
	}
	return strings.ToLower(v)
}

// cancelPairs drops the members that are both added and removed: two
// spellings of one DN (the new DN of a renamed user, as this provider
// spelt it, and as the server lists it). Sent as they are, the removal
// would undo the addition.
func (d *Directory) cancelPairs(add, remove []string) ([]string, []string) {
	if len(add) == 0 || len(remove) == 0 {
		return add, remove
	}
	adding := make(map[string]bool, len(add))
	for _, v := range add {
		adding[d.memberKey(v)] = true
	}
	both := map[string]bool{}
	remove = slices.DeleteFunc(slices.Clone(remove), func(v string) bool {
		k := d.memberKey(v)
		if adding[k] {
			both[k] = true
			return true
		}
		return false
	})
	if len(both) == 0 {
		return add, remove
	}
	add = slices.DeleteFunc(slices.Clone(add), func(v string) bool { return both[d.memberKey(v)] })
	return add, remove
}

// createGroup adds the entry cn=<name>,baseDN with the marker and its
// first members. An entry of that name that exists already (created by a
// run that was stopped before it recorded it) gets the members added.
func (d *Directory) createGroup(ctx context.Context, ch directory.GroupChange) (string, error) {
	g := d.groups
	dn := "cn=" + d.escapeRDN(ch.Name) + "," + g.base
	req := ldap.NewAddRequest(dn, nil)
	req.Attribute("objectClass", []string{g.class, "top"})
	req.Attribute("cn", []string{ch.Name})
	req.Attribute(groupMarkerAttr, []string{d.markerValue})
	if g.ad {
		req.Attribute("groupType", []string{strconv.Itoa(int(g.groupType))})
		req.Attribute("sAMAccountName", []string{ch.Name})
	}
	if len(ch.Add) > 0 {
		req.Attribute(g.memberAttr, ch.Add)
	}
	if !g.byDN {
		g.creating.Lock()
		defer g.creating.Unlock()
		gid, err := d.nextGID(ctx)
		if err != nil {
			return "", err
		}
		req.Attribute("gidNumber", []string{strconv.Itoa(gid)})
	}
	err := d.do(ctx, func(c *ldap.Conn) error { return c.Add(req) })
	if ldap.IsErrorWithCode(err, ldap.LDAPResultEntryAlreadyExists) {
		return d.ApplyGroup(ctx, directory.GroupChange{Name: ch.Name, ID: dn, Add: ch.Add})
	}
	if err != nil {
		return "", d.writeError(err, []string{"cn", g.memberAttr})
	}
	return dn, nil
}

// nextGID is one more than the largest gidNumber of the groups under the
// base.
func (d *Directory) nextGID(ctx context.Context) (int, error) {
	next := firstGID
	err := d.do(ctx, func(c *ldap.Conn) error {
		return d.pagedSearch(ctx, c, d.groups.base, "(gidNumber=*)", []string{"gidNumber"}, func(e *ldap.Entry) error {
			if n, err := strconv.Atoi(first(entryValues(e, "gidNumber"))); err == nil && n >= next {
				next = n + 1
			}
			return nil
		})
	})
	if err != nil {
		return 0, d.readError(fmt.Sprintf("read the gidNumbers under %s", d.groups.base), err)
	}
	return next, nil
}
