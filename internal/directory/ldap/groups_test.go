package ldap

import (
	"context"
	"slices"
	"testing"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/testpeer/slapd"
)

func groupsOf(t *testing.T, d *Directory) map[string]directory.Group {
	t.Helper()
	out := map[string]directory.Group{}
	if err := d.ListGroups(context.Background(), func(g directory.Group) error {
		out[g.Name] = g
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

// A groupOfNames must have a member: a managed group left empty is
// deleted. Changes applied twice (a resumed import) change nothing more,
// and a posixGroup gets the next free gidNumber.
func TestGroupChanges(t *testing.T) {
	s := slapd.Start(t, slapd.Options{})
	ctx := context.Background()
	for _, class := range []v1alpha1.LDAPGroupClass{"groupOfNames", "groupOfUniqueNames", "posixGroup"} {
		t.Run(string(class), func(t *testing.T) {
			spec := baseSpec(s)
			spec.Groups = &v1alpha1.LDAPGroups{BaseDN: s.GroupsDN, ObjectClass: class}
			opts := baseOpts()
			opts.MarkerValue = "uio-" + string(class)
			d := newDir(t, s, spec, opts)
			a, b := "uid=a-"+string(class)+","+s.PeopleDN, "uid=b-"+string(class)+","+s.PeopleDN
			if class == "posixGroup" {
				a, b = "a", "b"
			}
			name := "team " + string(class) + ", the first"
			id, err := d.ApplyGroup(ctx, directory.GroupChange{Name: name, Add: []string{a, b}})
			if err != nil {
				t.Fatal(err)
			}
			// Created again by a run that did not record it: the members
			// are added to the entry.
			if again, err := d.ApplyGroup(ctx, directory.GroupChange{Name: name, Add: []string{a}}); err != nil || again != id {
				t.Fatalf("second create: %q, %v", again, err)
			}
			for range 2 {
				if _, err := d.ApplyGroup(ctx, directory.GroupChange{Name: name, ID: id, Remove: []string{a}}); err != nil {
					t.Fatalf("remove: %v", err)
				}
			}
			g := groupsOf(t, d)[name]
			if !g.Managed || !slices.Equal(g.Members, []string{b}) {
				t.Fatalf("group %+v", g)
			}
			if _, err := d.ApplyGroup(ctx, directory.GroupChange{Name: name, ID: id, Remove: []string{b}, Empty: true}); err != nil {
				t.Fatal(err)
			}
			_, exists := groupsOf(t, d)[name]
			if exists != (class == "posixGroup") {
				t.Fatalf("after the last member left, the group exists: %v", exists)
			}
		})
	}
	// The second posixGroup gets the next gidNumber.
	spec := baseSpec(s)
	spec.Groups = &v1alpha1.LDAPGroups{BaseDN: s.GroupsDN, ObjectClass: "posixGroup"}
	d := newDir(t, s, spec, baseOpts())
	var dns []string
	for _, name := range []string{"p1", "p2"} {
		dn, err := d.ApplyGroup(ctx, directory.GroupChange{Name: name, Add: []string{"x"}})
		if err != nil {
			t.Fatal(err)
		}
		dns = append(dns, dn)
	}
	g1, g2 := rawEntry(t, s, dns[0]).GetAttributeValue("gidNumber"), rawEntry(t, s, dns[1]).GetAttributeValue("gidNumber")
	if g1 == "" || g1 == g2 {
		t.Fatalf("gidNumbers %q and %q", g1, g2)
	}
}
