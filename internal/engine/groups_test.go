package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/memdir"
)

// groupConfig maps id, mail and title as testConfig does, the column dept
// (several groups separated by "|") to groups and mgr to the manager.
func groupConfig(mode v1alpha1.ImportMode, missing v1alpha1.MissingUsersPolicy) Config {
	cfg := testConfig(mode, missing)
	cfg.Mapping = append(cfg.Mapping,
		v1alpha1.AttributeMapping{Attribute: "groups", Column: "dept", Split: "|", Target: v1alpha1.TargetGroups},
		v1alpha1.AttributeMapping{Attribute: "manager", Column: "mgr", Target: v1alpha1.TargetManager})
	cfg.CreateGroups = true
	return cfg
}

// groupFile builds a CSV file with the header id,mail,title,status,dept,mgr.
func groupFile(rows ...string) string {
	return "id,mail,title,status,dept,mgr\n" + strings.Join(rows, "\n") + "\n"
}

// relState renders the groups and the managers of d by identity.
func relState(d *memdir.Dir) []string {
	out := d.Groups()
	byID := map[string]string{}
	for _, u := range d.Users() {
		byID[u.ID] = u.Identity
	}
	for _, u := range d.Users() {
		if m := first(u.Attributes["manager"]); m != "" {
			out = append(out, fmt.Sprintf("%s manager=%s", u.Identity, byID[m]))
		}
	}
	return out
}

func TestGroupsAndManagers(t *testing.T) {
	d := seed(user("ann", "ann@x", "Dev"), user("bob", "bob@x", "Dev"), user("cid", "cid@x", "Ops"), unmanaged(user("root", "root@x", "")))
	ids := map[string]string{}
	for _, u := range d.Users() {
		ids[u.Identity] = u.ID
	}
	d.PutGroup("admins", false, ids["bob"], ids["root"]) // made by hand
	cfg := groupConfig(v1alpha1.ModeFull, v1alpha1.MissingIgnore)
	cfg.MaxMembershipRemovalPercent = nil

	first := groupFile(
		"ann,ann@x,Dev,,eng|berlin,dan", // dan comes later in the file
		"bob,bob@x,Dev,,eng,ann",
		"cid,cid@x,Ops,,ops,nobody", // no such manager
		"dan,dan@x,Lead,,eng,root",  // manager outside the managed scope
	)
	preview, prec, err := runOnce(t, d, cfg, first, true)
	if err != nil {
		t.Fatal(err)
	}
	res, rec, err := runOnce(t, d, cfg, first, false)
	if err != nil {
		t.Fatal(err)
	}
	want := v1alpha1.GroupCounts{GroupsCreated: 3, MembershipsAdded: 5, ManagersSet: 3, ManagersMissing: 1}
	if res.Counts.Groups != want || preview.Counts.Groups != want {
		t.Fatalf("preview %+v, import %+v, want %+v", preview.Counts.Groups, res.Counts.Groups, want)
	}
	if res.Counts.Failed != 0 {
		t.Fatalf("failed %d", res.Counts.Failed)
	}
	for _, r := range []*recorder{prec, rec} {
		if len(r.errors) != 1 || r.errors[0].Line != 4 || !r.errors[0].Warning || !strings.Contains(r.errors[0].Msg, "manager") {
			t.Fatalf("want one warning on line 4, got %+v", r.errors)
		}
	}
	wantState := []string{
		"admins: [bob root]",
		"berlin (managed): [ann]",
		"eng (managed): [ann bob dan]",
		"ops (managed): [cid]",
		"ann manager=dan",
		"bob manager=ann",
		"dan manager=root",
	}
	if got := relState(d); !slices.Equal(got, wantState) {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantState, "\n"))
	}

	// bob moves to ops and into the hand-made admins group, cid leaves,
	// ann's manager changes, dan's manager is dropped.
	second := groupFile(
		"ann,ann@x,Dev,,eng|berlin,bob",
		"bob,bob@x,Dev,,ops|admins,ann",
		"dan,dan@x,Lead,,eng,",
	)
	preview, _, err = runOnce(t, d, cfg, second, true)
	if err != nil {
		t.Fatal(err)
	}
	res, _, err = runOnce(t, d, cfg, second, false)
	if err != nil {
		t.Fatal(err)
	}
	want = v1alpha1.GroupCounts{MembershipsAdded: 1, MembershipsRemoved: 2, ManagersSet: 2}
	if res.Counts.Groups != want || preview.Counts.Groups != want {
		t.Fatalf("preview %+v, import %+v, want %+v", preview.Counts.Groups, res.Counts.Groups, want)
	}
	wantState = []string{
		"admins: [bob root]", // unmanaged: root stays although not in the file
		"berlin (managed): [ann]",
		"eng (managed): [ann dan]",
		"ops (managed): [bob]",
		"ann manager=bob",
		"bob manager=ann",
	}
	if got := relState(d); !slices.Equal(got, wantState) {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(wantState, "\n"))
	}
}

func TestDeltaChangesOnlyTheMembershipsOfItsUsers(t *testing.T) {
	d := seed()
	cfg := groupConfig(v1alpha1.ModeDelta, v1alpha1.MissingIgnore)
	cfg.MaxMembershipRemovalPercent = nil
	if _, _, err := runOnce(t, d, cfg, groupFile("ann,ann@x,Dev,,eng,", "bob,bob@x,Dev,,eng,", "cid,cid@x,Ops,,ops,"), false); err != nil {
		t.Fatal(err)
	}
	// A delta file with bob alone: bob moves, ann stays in eng.
	res, _, err := runOnce(t, d, cfg, groupFile("bob,bob@x,Dev,,ops,"), false)
	if err != nil {
		t.Fatal(err)
	}
	if want := (v1alpha1.GroupCounts{MembershipsAdded: 1, MembershipsRemoved: 1}); res.Counts.Groups != want {
		t.Fatalf("counts %+v, want %+v", res.Counts.Groups, want)
	}
	want := []string{"eng (managed): [ann]", "ops (managed): [bob cid]"}
	if got := relState(d); !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}

	// A row that deletes cid takes it out of its groups too, in the
	// preview's count and in the import.
	cfg.StatusColumn = &v1alpha1.StatusColumn{Column: "status", DeleteValues: []string{"deleted"}}
	leaver := groupFile("cid,cid@x,Ops,deleted,ops,")
	preview, _, err := runOnce(t, d, cfg, leaver, true)
	if err != nil {
		t.Fatal(err)
	}
	res, _, err = runOnce(t, d, cfg, leaver, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := (v1alpha1.GroupCounts{MembershipsRemoved: 1}); preview.Counts.Groups != want || res.Counts.Groups != want || res.Counts.Deleted != 1 {
		t.Fatalf("preview %+v, import %+v (deleted %d)", preview.Counts.Groups, res.Counts.Groups, res.Counts.Deleted)
	}
	if got, want := relState(d), []string{"eng (managed): [ann]", "ops (managed): [bob]"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestUnknownGroupWithoutCreateGroupsIsARowError(t *testing.T) {
	d := seed()
	d.PutGroup("eng", false)
	cfg := groupConfig(v1alpha1.ModeDelta, v1alpha1.MissingIgnore)
	cfg.CreateGroups = false
	for _, dry := range []bool{true, false} {
		res, rec, err := runOnce(t, d, cfg, groupFile("ann,ann@x,Dev,,eng,", "bob,bob@x,Dev,,eng|sales,"), dry)
		if err != nil {
			t.Fatal(err)
		}
		if res.Counts.Failed != 1 || len(rec.errors) != 1 || rec.errors[0].Line != 3 || rec.errors[0].Warning {
			t.Fatalf("dry=%v: failed %d, errors %+v", dry, res.Counts.Failed, rec.errors)
		}
		// Which group, by its place on the line: the name is the file's.
		if msg := rec.errors[0].Msg; !strings.Contains(msg, "createGroups is false") || !strings.Contains(msg, "group 2 of 2") || strings.Contains(msg, "sales") {
			t.Fatalf("message %q", msg)
		}
		// bob's line fails whole: neither bob nor his membership of eng.
		if want := (v1alpha1.GroupCounts{MembershipsAdded: 1}); res.Counts.Groups != want {
			t.Fatalf("dry=%v: counts %+v", dry, res.Counts.Groups)
		}
	}
	if got, want := relState(d), []string{"eng: [ann]"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestMembershipRemovalsStopAtTheThreshold(t *testing.T) {
	d := seed()
	cfg := groupConfig(v1alpha1.ModeFull, v1alpha1.MissingIgnore)
	cfg.MaxMembershipRemovalPercent = nil
	var rows []string
	for i := range 20 {
		rows = append(rows, fmt.Sprintf("u%02d,u%02d@x,Dev,,eng,", i, i))
	}
	if _, _, err := runOnce(t, d, cfg, groupFile(rows...), false); err != nil {
		t.Fatal(err)
	}
	before := relState(d)
	// Five of twenty leave eng: 25 % of the managed memberships.
	for i := range 5 {
		rows[i] = fmt.Sprintf("u%02d,u%02d@x,Ops,,,", i, i)
	}
	cfg.MaxMembershipRemovalPercent = ptr(int64(10))
	res, _, err := runOnce(t, d, cfg, groupFile(rows...), false)
	if err != nil {
		t.Fatal(err)
	}
	if !res.SafetyStop || res.PlannedMembershipRemovals != 5 || res.ManagedMemberships != 20 {
		t.Fatalf("stop %v, removals %d of %d", res.SafetyStop, res.PlannedMembershipRemovals, res.ManagedMemberships)
	}
	if got := relState(d); !slices.Equal(got, before) {
		t.Fatalf("a safety stop wrote: %v", got)
	}
	if st := state(d); strings.Contains(strings.Join(st, " "), "Ops") {
		t.Fatalf("a safety stop wrote users: %v", st)
	}
	cfg.ApprovedMembershipRemovals = ptr(int64(5))
	res, _, err = runOnce(t, d, cfg, groupFile(rows...), false)
	if err != nil || res.SafetyStop || res.Counts.Groups.MembershipsRemoved != 5 {
		t.Fatalf("approved: %v, stop %v, counts %+v", err, res.SafetyStop, res.Counts.Groups)
	}
}

// groupScenario adds random groups and managers to a scenario's file and
// gives the directory groups, managed and not.
func groupScenario(r *rand.Rand, n int) ([]directory.User, string, func(*memdir.Dir)) {
	users, content := scenario(r, n)
	lines := strings.Split(strings.TrimSuffix(content, "\n"), "\n")
	groups := []string{"eng", "ops", "qa", "sales", "hr", "it"}
	var ids []string
	for _, l := range lines[1:] {
		ids = append(ids, strings.SplitN(l, ",", 2)[0])
	}
	out := []string{lines[0] + ",dept,mgr"}
	for _, l := range lines[1:] {
		var gs []string
		for range r.IntN(3) {
			gs = append(gs, groups[r.IntN(len(groups))])
		}
		mgr := ""
		switch r.IntN(6) {
		case 0:
		case 1:
			mgr = "ghost" + fmt.Sprint(r.IntN(5))
		default:
			mgr = ids[r.IntN(len(ids))]
		}
		out = append(out, l+","+strings.Join(gs, "|")+","+mgr)
	}
	setup := func(d *memdir.Dir) {
		var members []string
		for _, u := range d.Users() {
			if len(members) < 40 && r.IntN(3) == 0 {
				members = append(members, u.ID)
			}
		}
		d.PutGroup("eng", true, members[:len(members)/2]...)
		d.PutGroup("it", false, members[len(members)/2:]...)
		d.PutGroup("old", true, members[:len(members)/3]...)
	}
	return users, strings.Join(out, "\n") + "\n", setup
}

func groupScenarioConfig(r *rand.Rand) Config {
	cfg := scenarioConfig(r)
	base := groupConfig(cfg.Mode, cfg.MissingUsers)
	cfg.Mapping = base.Mapping
	cfg.CreateGroups = r.IntN(4) != 0
	cfg.MaxMembershipRemovalPercent = nil
	// Rows without an identity make every removal wait for approval.
	cfg.ApprovedMembershipRemovals = ptr(int64(1 << 30))
	return cfg
}

func TestGroupPreviewAndImportAgree(t *testing.T) {
	for s := range uint64(30) {
		r := rand.New(rand.NewPCG(s, 17))
		users, content, setup := groupScenario(r, 150)
		cfg := groupScenarioConfig(r)
		d := seed(users...)
		setup(d)
		preview, prec, err := runOnce(t, d, cfg, content, true)
		if err != nil {
			t.Fatalf("seed %d: preview: %v", s, err)
		}
		res, rec, err := runOnce(t, d, cfg, content, false)
		if err != nil {
			t.Fatalf("seed %d: import: %v", s, err)
		}
		if preview.Counts != res.Counts {
			t.Fatalf("seed %d (%s %s create=%v): preview %+v, import %+v", s, cfg.Mode, cfg.MissingUsers, cfg.CreateGroups, preview.Counts, res.Counts)
		}
		if !slices.Equal(prec.errorLines(), rec.errorLines()) {
			t.Fatalf("seed %d: preview errors on %v, import on %v", s, prec.errorLines(), rec.errorLines())
		}
		g := res.Counts.Groups
		if g.MembershipsAdded == 0 || g.ManagersSet == 0 || g.ManagersMissing == 0 {
			t.Fatalf("seed %d: scenario changes too little: %+v", s, g)
		}
		// Run again: nothing is left to do.
		again, _, err := runOnce(t, d, cfg, content, true)
		if err != nil {
			t.Fatal(err)
		}
		if a := again.Counts.Groups; a.GroupsCreated+a.MembershipsAdded+a.MembershipsRemoved+a.ManagersSet != 0 {
			t.Fatalf("seed %d: a second preview plans %+v", s, a)
		}
	}
}

func TestGroupResumeAfterInterruptions(t *testing.T) {
	for s := range uint64(6) {
		r := rand.New(rand.NewPCG(s, 19))
		users, content, setup := groupScenario(r, 300)
		cfg := groupScenarioConfig(r)
		name := fmt.Sprintf("seed%d-%s-%s-b%d-c%d", s, cfg.Mode, cfg.MissingUsers, cfg.BatchSize, cfg.Concurrency)
		t.Run(name, func(t *testing.T) {
			ref := seed(users...)
			setup(ref)
			d := seed(users...)
			// The same groups, with the members of the same identities.
			copyGroups(ref, d)
			want, _, err := runOnce(t, ref, cfg, content, false)
			if err != nil {
				t.Fatal(err)
			}
			res, interruptions, steps := resumeUntilDone(t, d, cfg, content, r)
			if interruptions < 20 || steps[v1alpha1.StepGroups]+steps[v1alpha1.StepManagers] < 5 {
				t.Fatalf("only %d interruptions, by step %v", interruptions, steps)
			}
			if got, w := append(state(d), relState(d)...), append(state(ref), relState(ref)...); !slices.Equal(got, w) {
				t.Fatalf("after %d interruptions the directory differs:\n%s", interruptions, lineDiff(got, w))
			}
			if res.Counts.Rows != want.Counts.Rows {
				t.Fatalf("counts %+v, uninterrupted %+v", res.Counts, want.Counts)
			}
		})
	}
}

// copyGroups gives to the groups of from, with the members of the same
// identities.
func copyGroups(from, to *memdir.Dir) {
	ids := map[string]string{} // identity → to's ID
	for _, u := range to.Users() {
		ids[u.Identity] = u.ID
	}
	byID := map[string]string{}
	for _, u := range from.Users() {
		byID[u.ID] = u.Identity
	}
	_ = from.ListGroups(context.Background(), func(g directory.Group) error {
		var members []string
		for _, m := range g.Members {
			members = append(members, ids[byID[m]])
		}
		to.PutGroup(g.Name, g.Managed, members...)
		return nil
	})
}

// lineDiff lists the lines only in got (+) and only in want (-).
func lineDiff(got, want []string) string {
	var out []string
	for _, l := range got {
		if !slices.Contains(want, l) {
			out = append(out, "+ "+l)
		}
	}
	for _, l := range want {
		if !slices.Contains(got, l) {
			out = append(out, "- "+l)
		}
	}
	return strings.Join(out, "\n")
}

// A group name spelled otherwise in the export is the same group.
func TestGroupNamesIgnoreCase(t *testing.T) {
	d := seed()
	cfg := groupConfig(v1alpha1.ModeFull, v1alpha1.MissingIgnore)
	cfg.MaxMembershipRemovalPercent = nil
	if _, _, err := runOnce(t, d, cfg, groupFile("ann,ann@x,Dev,,Sales,", "bob,bob@x,Dev,,sales,"), false); err != nil {
		t.Fatal(err)
	}
	if got, want := relState(d), []string{"Sales (managed): [ann bob]"}; !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	res, _, err := runOnce(t, d, cfg, groupFile("ann,ann@x,Dev,,SALES,", "bob,bob@x,Dev,,sales,"), false)
	if err != nil {
		t.Fatal(err)
	}
	if g := res.Counts.Groups; g != (v1alpha1.GroupCounts{}) {
		t.Fatalf("a second spelling changed %+v", g)
	}
}
