package sql

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/failure"
)

// A membership the database refuses is a change error that names the
// column and the rule, never the group's name or the member.
func TestRefusedMembershipQuotesNoValue(t *testing.T) {
	e := newEnv(t, v1alpha1.SQLDriverPostgres)
	members := e.table + "_members"
	e.exec(t, fmt.Sprintf(`CREATE TABLE %s (user_identity TEXT NOT NULL, group_name INTEGER NOT NULL, managed_by TEXT, UNIQUE (user_identity, group_name))`, members))
	spec := e.spec()
	spec.Groups = &v1alpha1.SQLGroups{Table: members}
	d := e.open(t, spec, directory.Options{IdentityAttribute: "userName", MarkerAttribute: "managedBy", MarkerValue: marker})
	// One member, and as many as a group written with COPY has.
	for _, n := range []int{1, 2 * membershipsPerInsert} {
		var add []string
		for i := range n {
			add = append(add, fmt.Sprintf("jane.doe%d@corp.example", i))
		}
		_, err := d.ApplyGroup(context.Background(), directory.GroupChange{Name: "Secret-Department", Add: add})
		if !directory.IsChangeError(err) {
			t.Fatalf("%d members: want a change error, got %v", n, err)
		}
		if msg := err.Error(); strings.Contains(msg, "Secret-Department") || strings.Contains(msg, "jane.doe") {
			t.Fatalf("%d members: the error quotes a value: %s", n, msg)
		}
	}
}

// The check of a directory with groups finds a membership table without
// a unique index on (user, group), and says how to create it: without
// it, each membership written reads the whole table.
func TestMembershipTableNeedsAUniqueIndex(t *testing.T) {
	forDrivers(t, func(t *testing.T, e *env) {
		members := e.table + "_members"
		e.exec(t, fmt.Sprintf(`CREATE TABLE %s (user_identity TEXT NOT NULL, group_name TEXT NOT NULL, managed_by TEXT)`, members))
		spec := e.spec()
		spec.Groups = &v1alpha1.SQLGroups{Table: members}
		d, err := New(context.Background(), spec, defaultOpts(), secretsWith(e.dsn))
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		_, err = d.Check(context.Background())
		want := `CREATE UNIQUE INDEX ON "` + members + `" ("group_name", "user_identity")`
		if failure.ReasonOf(err, v1alpha1.ReasonDirectoryError) != v1alpha1.ReasonSchemaMismatch || !strings.Contains(err.Error(), want) {
			t.Fatalf("Check: %v; want SchemaMismatch with %s", err, want)
		}
		// An index of one column, or of the two with a third, does not
		// serve the lookup of one membership.
		e.exec(t, fmt.Sprintf(`CREATE UNIQUE INDEX %s_one ON %s (user_identity)`, members, members))
		e.exec(t, fmt.Sprintf(`CREATE UNIQUE INDEX %s_three ON %s (user_identity, group_name, managed_by)`, members, members))
		if _, err := d.Check(context.Background()); failure.ReasonOf(err, v1alpha1.ReasonDirectoryError) != v1alpha1.ReasonSchemaMismatch {
			t.Fatalf("Check with other indexes: %v; want SchemaMismatch", err)
		}
		// The statement the message gives, in either column order, is
		// what the check wants.
		e.exec(t, fmt.Sprintf(`CREATE UNIQUE INDEX %s_pair ON %s (group_name, user_identity)`, members, members))
		if _, err := d.Check(context.Background()); err != nil {
			t.Fatalf("Check with the index: %v", err)
		}
	})
}

func TestMembershipTableMustExist(t *testing.T) {
	forDrivers(t, func(t *testing.T, e *env) {
		spec := e.spec()
		spec.Groups = &v1alpha1.SQLGroups{Table: e.table + "_nowhere"}
		d, err := New(context.Background(), spec, defaultOpts(), secretsWith(e.dsn))
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		if _, err := d.Check(context.Background()); failure.ReasonOf(err, v1alpha1.ReasonDirectoryError) != v1alpha1.ReasonSchemaMismatch || !strings.Contains(err.Error(), "not found") {
			t.Fatalf("Check: %v; want SchemaMismatch, not found", err)
		}
	})
}

// A group's members are added in statements of many rows when the
// membership table has its unique index (in either order of its columns),
// one a statement without it:
// either way a change adds each member the group lacks once, whether the
// members it has come before, among or after the rest, and applied again
// adds nothing.
func TestMembershipsAddedOnce(t *testing.T) {
	forDrivers(t, func(t *testing.T, e *env) {
		for k, index := range []string{", UNIQUE (group_name, user_identity)", ", UNIQUE (user_identity, group_name)", ""} {
			members := fmt.Sprintf("%s_members_%d", e.table, k)
			e.exec(t, fmt.Sprintf(`CREATE TABLE %s (user_identity TEXT NOT NULL, group_name TEXT NOT NULL, managed_by TEXT%s)`, members, index))
			spec := e.spec()
			spec.Groups = &v1alpha1.SQLGroups{Table: members}
			// Opened without a check, which wants the index.
			ctx := context.Background()
			d, err := New(ctx, spec, directory.Options{IdentityAttribute: "userName", MarkerAttribute: "managedBy", MarkerValue: marker}, secretsWith(e.dsn))
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			var all []string
			for i := range 2*membershipsPerInsert + 51 {
				all = append(all, fmt.Sprintf("user%d@corp.example", i))
			}
			// Every seventh user is a member already.
			var some []string
			for i := 0; i < len(all); i += 7 {
				some = append(some, all[i])
			}
			// A group of new members only, then one that has some: on
			// PostgreSQL with the index, the first goes in with COPY, the
			// others find members there already and take statements.
			for _, ch := range []directory.GroupChange{{Name: "fresh", Add: all}, {Name: "staff", Add: some}, {Name: "staff", Add: all}, {Name: "staff", Add: all}, {Name: "other", Add: all[:3]}} {
				if _, err := d.ApplyGroup(ctx, ch); err != nil {
					t.Fatal(err)
				}
			}
			got := map[string]int{}
			err = d.ListGroups(ctx, func(g directory.Group) error {
				got[g.Name] = len(g.Members)
				if !g.Managed {
					t.Errorf("group %s is not managed: a membership lacks the marker", g.Name)
				}
				seen := map[string]bool{}
				for _, m := range g.Members {
					if seen[m] {
						t.Errorf("group %s lists %s twice", g.Name, m)
					}
					seen[m] = true
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if got["fresh"] != len(all) || got["staff"] != len(all) || got["other"] != 3 || len(got) != 3 {
				t.Fatalf("index %q: groups %v, want fresh and staff with %d members and other with 3", index, got, len(all))
			}
		}
	})
}
