package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	goldap "github.com/go-ldap/ldap/v3"
	"github.com/jackc/pgx/v5"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	ldapdir "github.com/userimport/user-import-operator/internal/directory/ldap"
	scimdir "github.com/userimport/user-import-operator/internal/directory/scim"
	sqldir "github.com/userimport/user-import-operator/internal/directory/sql"
	"github.com/userimport/user-import-operator/internal/testpeer/scimserver"
	"github.com/userimport/user-import-operator/internal/testpeer/slapd"
)

// groupPeer is a real directory with groups: the provider on an empty
// directory, and a way to make a group by hand (not managed).
type groupPeer struct {
	name                  string
	identity, managerAttr string
	// managerRef says whether v is how the directory refers to the
	// manager with identity id.
	managerRef func(v, id string) bool
	start      func(t *testing.T) (d directory.Directory, handGroup func(name string, members ...string))
}

func groupPeers() []groupPeer {
	return []groupPeer{
		{name: "LDAP groupOfNames", identity: "uid", managerAttr: "manager", start: startLDAPGroups("groupOfNames"),
			managerRef: func(v, id string) bool { return strings.HasPrefix(v, "uid="+id+",ou=people,") }},
		{name: "LDAP posixGroup", identity: "uid", managerAttr: "manager", start: startLDAPGroups("posixGroup"),
			managerRef: func(v, id string) bool { return strings.HasPrefix(v, "uid="+id+",ou=people,") }},
		{name: "SCIM", identity: "userName", managerAttr: scimEnterprise + ":manager", start: startSCIMGroups,
			managerRef: func(v, id string) bool { return len(v) == 36 && strings.Count(v, "-") == 4 }}, // the manager's SCIM id
		{name: "PostgreSQL", identity: "uid", managerAttr: "manager", start: startSQLGroups(v1alpha1.SQLDriverPostgres),
			managerRef: func(v, id string) bool { return v == id }},
		{name: "SQLite", identity: "uid", managerAttr: "manager", start: startSQLGroups(v1alpha1.SQLDriverSQLite),
			managerRef: func(v, id string) bool { return v == id }},
	}
}

func startLDAPGroups(class v1alpha1.LDAPGroupClass) func(t *testing.T) (directory.Directory, func(string, ...string)) {
	return func(t *testing.T) (directory.Directory, func(string, ...string)) {
		s := slapd.Start(t, slapd.Options{})
		spec := &v1alpha1.LDAPDirectory{
			URL: s.URL, BindDN: s.BindDN, UsersBaseDN: s.PeopleDN, PageSize: 50,
			BindPassword: v1alpha1.SecretKeyRef{Name: "ldap", Key: "password"},
			Groups:       &v1alpha1.LDAPGroups{BaseDN: s.GroupsDN, ObjectClass: class},
		}
		d, err := ldapdir.New(context.Background(), spec, peerOptions("uid", "businessCategory", true),
			func(context.Context, string, string) ([]byte, error) { return []byte(s.BindPassword), nil })
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = d.Close() })
		hand := func(name string, members ...string) {
			c, err := s.Dial()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			req := goldap.NewAddRequest("cn="+name+","+s.GroupsDN, nil)
			req.Attribute("objectClass", []string{string(class), "top"})
			req.Attribute("cn", []string{name})
			var refs []string
			for _, m := range members {
				if class == "posixGroup" {
					refs = append(refs, m)
				} else {
					refs = append(refs, "uid="+m+","+s.PeopleDN)
				}
			}
			if class == "posixGroup" {
				req.Attribute("gidNumber", []string{"500"})
				req.Attribute("memberUid", refs)
			} else {
				req.Attribute("member", refs)
			}
			if err := c.Add(req); err != nil {
				t.Fatal(err)
			}
		}
		return d, hand
	}
}

func startSCIMGroups(t *testing.T) (directory.Directory, func(string, ...string)) {
	s := scimserver.Start(t, scimserver.Options{PatchMaxMembers: 2})
	d, err := scimdir.New(context.Background(), &v1alpha1.SCIMDirectory{URL: s.URL, Groups: &v1alpha1.SCIMGroups{MaxPatchOperations: 2}},
		peerOptions("userName", scimEnterprise+":organization", true), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Close() })
	hand := func(name string, members ...string) {
		found, err := d.Lookup(context.Background(), members, []string{"userName"})
		if err != nil {
			t.Fatal(err)
		}
		var values []map[string]string
		for _, m := range members {
			values = append(values, map[string]string{"value": found[m].ID})
		}
		body, _ := json.Marshal(map[string]any{"schemas": []string{"urn:ietf:params:scim:schemas:core:2.0:Group"}, "displayName": name, "members": values})
		resp, err := http.Post(s.URL+"/Groups", "application/scim+json", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("POST /Groups: %s", resp.Status)
		}
	}
	return d, hand
}

func startSQLGroups(driver v1alpha1.SQLDriver) func(t *testing.T) (directory.Directory, func(string, ...string)) {
	return func(t *testing.T) (directory.Directory, func(string, ...string)) {
		ctx := context.Background()
		var dsn string
		n := pgTables.Add(1)
		table, members := fmt.Sprintf("users_%d", n), fmt.Sprintf("members_%d", n)
		if driver == v1alpha1.SQLDriverPostgres {
			dsn = pgShared.Get(t).DSN
		} else {
			dsn = filepath.Join(t.TempDir(), "users.db")
		}
		groups := &v1alpha1.SQLGroups{Table: members}
		if err := sqldir.CreateTable(ctx, driver, dsn, sqldir.TableSpec{
			Table: table, IdentityColumn: "uid", Columns: []string{"mail", "title", "mark", "manager"}, Groups: groups,
		}); err != nil {
			t.Fatal(err)
		}
		spec := &v1alpha1.SQLDirectory{Driver: driver, DSN: v1alpha1.SecretKeyRef{Name: "db", Key: "dsn"}, Table: table, Groups: groups, Insecure: true}
		d, err := sqldir.New(ctx, spec, peerOptions("uid", "mark", true), func(context.Context, string, string) ([]byte, error) { return []byte(dsn), nil })
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = d.Close() })
		hand := func(name string, ids ...string) {
			if driver == v1alpha1.SQLDriverPostgres {
				conn, err := pgx.Connect(ctx, dsn)
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close(ctx)
				for _, id := range ids {
					if _, err := conn.Exec(ctx, "INSERT INTO "+members+" (user_identity, group_name) VALUES ($1, $2)", id, name); err != nil {
						t.Fatal(err)
					}
				}
				return
			}
			// SQLite: through a provider whose rows carry another marker.
			o := peerOptions("uid", "mark", true)
			o.MarkerValue = "someone-else"
			other, err := sqldir.New(ctx, spec, o, func(context.Context, string, string) ([]byte, error) { return []byte(dsn), nil })
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			if _, err := other.ApplyGroup(ctx, directory.GroupChange{Name: name, Add: ids}); err != nil {
				t.Fatal(err)
			}
		}
		return d, hand
	}
}

// peerRelations renders the groups and managers of d by identity.
func peerRelations(t *testing.T, d directory.Directory, p groupPeer) []string {
	t.Helper()
	ctx := context.Background()
	gd, md := d.(directory.GroupDirectory), d.(directory.ManagerDirectory)
	byMember, byManager := map[string]string{}, map[string]string{}
	var users []directory.User
	if err := d.List(ctx, []string{p.identity, p.managerAttr}, func(u directory.User) error {
		users = append(users, u)
		byMember[gd.MemberReference(u)] = u.Identity
		byManager[md.ManagerReference(u)] = u.Identity
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var out []string
	if err := gd.ListGroups(ctx, func(g directory.Group) error {
		var ids []string
		for _, m := range g.Members {
			ids = append(ids, byMember[m])
		}
		slices.Sort(ids)
		label := g.Name
		if g.Managed {
			label += " (managed)"
		}
		out = append(out, fmt.Sprintf("%s: %v", label, ids))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	var mgrs []string
	for _, u := range users {
		if v := first(u.Attributes[p.managerAttr]); v != "" {
			if !p.managerRef(v, byManager[v]) {
				t.Errorf("%s: manager of %s is %q, not the directory's reference to %s", p.name, u.Identity, v, byManager[v])
			}
			mgrs = append(mgrs, fmt.Sprintf("%s manager=%s", u.Identity, byManager[v]))
		}
	}
	slices.Sort(mgrs)
	return append(out, mgrs...)
}

// In every directory: memberships are created, a mover changes groups, a
// leaver leaves them, a group made by hand is never emptied, a manager is
// resolved whether it comes earlier or later in the file, a missing one
// is a warning, and createGroups false refuses an unknown group.
func TestGroupsAndManagersInEveryDirectory(t *testing.T) {
	for _, p := range groupPeers() {
		t.Run(p.name, func(t *testing.T) {
			d, handGroup := p.start(t)
			cfg := groupPeerConfig(p, 2)
			csv := func(rows ...string) string { return "id,title,dept,mgr\n" + strings.Join(rows, "\n") + "\n" }
			run := func(content string, wantCounts v1alpha1.GroupCounts, wantFailed int64) *recorder {
				t.Helper()
				preview, _, err := runOnce(t, d, cfg, content, true)
				if err != nil {
					t.Fatal(err)
				}
				res, rec, err := runOnce(t, d, cfg, content, false)
				if err != nil {
					t.Fatal(err)
				}
				if preview.Counts.Groups != wantCounts || res.Counts.Groups != wantCounts || res.Counts.Failed != wantFailed || preview.Counts.Failed != wantFailed {
					t.Fatalf("preview %+v (failed %d), import %+v (failed %d), want %+v (failed %d)",
						preview.Counts.Groups, preview.Counts.Failed, res.Counts.Groups, res.Counts.Failed, wantCounts, wantFailed)
				}
				// The report lists every manager set, whether with the
				// user's create or after it.
				for _, r := range []Result{preview, res} {
					set := 0
					for _, c := range r.Relations {
						if c.Change == "set manager" {
							set++
						}
					}
					if int64(set) != wantCounts.ManagersSet {
						t.Fatalf("dry run %v lists %d managers set, want %d: %+v", r.DryRun, set, wantCounts.ManagersSet, r.Relations)
					}
				}
				return rec
			}
			check := func(want ...string) {
				t.Helper()
				if got := peerRelations(t, d, p); !slices.Equal(got, want) {
					t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
				}
			}

			rec := run(csv(
				"ann,Dev,eng|berlin,dan", // dan comes later in the file
				"bob,Dev,eng,ann",
				"cid,Ops,ops,nobody", // no such user: a warning
				"dan,Lead,eng,",
			), v1alpha1.GroupCounts{GroupsCreated: 3, MembershipsAdded: 5, ManagersSet: 2, ManagersMissing: 1}, 0)
			if len(rec.errors) != 1 || rec.errors[0].Line != 4 || !rec.errors[0].Warning {
				t.Fatalf("want a warning on line 4, got %+v", rec.errors)
			}
			check("berlin (managed): [ann]", "eng (managed): [ann bob dan]", "ops (managed): [cid]",
				"ann manager=dan", "bob manager=ann")

			handGroup("admins", "bob")
			// bob moves from eng to ops and ann joins the hand-made admins;
			// cid leaves; ann's manager changes.
			second := csv(
				"ann,Dev,eng|berlin|admins,bob",
				"bob,Dev,ops,ann",
				"dan,Lead,eng,",
			)
			cfg.MaxMembershipRemovalPercent = ptr(int64(10)) // 2 of 5: stops
			res, _, err := runOnce(t, d, cfg, second, false)
			if err != nil || !res.SafetyStop || res.PlannedMembershipRemovals != 2 || res.ManagedMemberships != 5 {
				t.Fatalf("want a safety stop for 2 of 5 memberships: %v, %+v", err, res)
			}
			cfg.ApprovedMembershipRemovals = ptr(int64(2))
			run(second, v1alpha1.GroupCounts{MembershipsAdded: 2, MembershipsRemoved: 2, ManagersSet: 1}, 0)
			check("admins: [ann bob]", "berlin (managed): [ann]", "eng (managed): [ann dan]", "ops (managed): [bob]",
				"ann manager=bob", "bob manager=ann")

			cfg.CreateGroups = false
			rec = run(csv(
				"ann,Dev,eng|berlin|admins,bob",
				"bob,Dev,ops,ann",
				"dan,Lead,eng|sales,",
			), v1alpha1.GroupCounts{}, 1)
			if len(rec.errors) != 1 || rec.errors[0].Line != 4 || !strings.Contains(rec.errors[0].Msg, "createGroups is false") {
				t.Fatalf("want an error on line 4, got %+v", rec.errors)
			}
		})
	}
}

// groupPeerConfig is a full import of "id,title,dept,mgr" files into p,
// dept giving groups (separated by "|") and mgr the manager, in batches
// of n, n at a time.
func groupPeerConfig(p groupPeer, n int) Config {
	return Config{
		Mode: v1alpha1.ModeFull, MissingUsers: v1alpha1.MissingIgnore,
		Mapping: []v1alpha1.AttributeMapping{
			{Attribute: p.identity, Column: "id", Identity: true, Required: true},
			{Attribute: "title", Column: "title"},
			{Attribute: "groups", Column: "dept", Split: "|", Target: v1alpha1.TargetGroups},
			{Attribute: p.managerAttr, Column: "mgr", Target: v1alpha1.TargetManager},
		},
		Directory: directoryOptionsOf(p), CreateGroups: true, BatchSize: n, Concurrency: n,
	}
}

func directoryOptionsOf(p groupPeer) directory.Options {
	switch {
	case p.name == "SCIM":
		return peerOptions("userName", scimEnterprise+":organization", true)
	case strings.HasPrefix(p.name, "LDAP"):
		return peerOptions("uid", "businessCategory", true)
	}
	return peerOptions("uid", "mark", true)
}

// groupRows is a random file of n users (each in it with a chance of
// 17 in 20) for groupPeers' mapping: up to two of five groups, and a
// manager who may be anyone, missing from the file, or no one.
func groupRows(r *rand.Rand, n int) string {
	groups := []string{"eng", "ops", "qa", "sales", "hr"}
	titles := []string{"Dev", "Ops", "Lead"}
	var rows []string
	for i := range n {
		if r.IntN(20) >= 17 {
			continue
		}
		var gs []string
		for range r.IntN(3) {
			gs = append(gs, groups[r.IntN(len(groups))])
		}
		mgr := ""
		switch r.IntN(8) {
		case 0:
		case 1:
			mgr = "ghost"
		default:
			mgr = fmt.Sprintf("u%03d", r.IntN(n))
		}
		rows = append(rows, fmt.Sprintf("u%03d,%s,%s,%s", i, titles[r.IntN(len(titles))], strings.Join(gs, "|"), mgr))
	}
	return "id,title,dept,mgr\n" + strings.Join(rows, "\n") + "\n"
}

// In every directory, for a second random export after a first: the
// preview counts what the import does, and an import stopped again and
// again (in its users, Groups and Managers steps) and resumed each time
// ends with the groups and managers of an uninterrupted one.
func TestGroupsPreviewAndResumeInEveryDirectory(t *testing.T) {
	for _, p := range groupPeers() {
		t.Run(p.name, func(t *testing.T) {
			n := 120
			if p.name == "SCIM" {
				n = 40 // the SCIM server is slow
			}
			r := rand.New(rand.NewPCG(5, 9))
			first, second := groupRows(r, n), groupRows(r, n)
			cfg := groupPeerConfig(p, 1) // many checkpoints
			ref, _ := p.start(t)
			d, _ := p.start(t)
			for _, dir := range []directory.Directory{ref, d} {
				if _, _, err := runOnce(t, dir, cfg, first, false); err != nil {
					t.Fatal(err)
				}
			}
			preview, _, err := runOnce(t, d, cfg, second, true)
			if err != nil {
				t.Fatal(err)
			}
			want, _, err := runOnce(t, ref, cfg, second, false)
			if err != nil {
				t.Fatal(err)
			}
			if preview.Counts != want.Counts {
				t.Fatalf("preview %+v, import %+v", preview.Counts, want.Counts)
			}
			if g := want.Counts.Groups; g.MembershipsAdded == 0 || g.MembershipsRemoved == 0 || g.ManagersSet == 0 || g.ManagersMissing == 0 {
				t.Fatalf("the second export changes too little: %+v", g)
			}

			_, steps := importInterrupted(t, d, cfg, second, r, 3)
			t.Logf("interrupted in the steps %v", steps)
			if steps[v1alpha1.StepApply] == 0 || steps[v1alpha1.StepGroups] == 0 || steps[v1alpha1.StepManagers] == 0 {
				t.Fatalf("not interrupted in every step: %v", steps)
			}
			if got, w := peerRelations(t, d, p), peerRelations(t, ref, p); !slices.Equal(got, w) {
				t.Fatalf("resumed:\n%s\nuninterrupted:\n%s", strings.Join(got, "\n"), strings.Join(w, "\n"))
			}
		})
	}
}
