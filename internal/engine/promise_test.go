package engine

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/memdir"
)

// Regression tests of what an import promises (docs/concepts.md, "What an import
// promises"): a row whose identity can be read protects its user, a row
// whose identity cannot be read proves nobody absent, one outcome per line.

// mailChecked is groupConfig with the mail column checked as an e-mail
// address.
func mailChecked(mode v1alpha1.ImportMode, missing v1alpha1.MissingUsersPolicy) Config {
	cfg := groupConfig(mode, missing)
	cfg.Mapping[1].Check = v1alpha1.CheckEmail
	cfg.MaxDeprovisionPercent = nil
	cfg.MaxMembershipRemovalPercent = nil
	return cfg
}

// threeInGroups is ann, bob and cid, all in the managed group eng; bob
// is cid's manager.
func threeInGroups() *memdir.Dir {
	d := seed(user("ann", "ann@x.org", "Dev"), user("bob", "bob@x.org", "Dev"))
	cid := user("cid", "cid@x.org", "Ops")
	ids := map[string]string{}
	for _, u := range d.Users() {
		ids[u.Identity] = u.ID
	}
	cid.Attributes["manager"] = []string{ids["bob"]}
	d.Put(cid)
	for _, u := range d.Users() {
		ids[u.Identity] = u.ID
	}
	d.PutGroup("eng", true, ids["ann"], ids["bob"], ids["cid"])
	return d
}

func TestATypoNeverDeprovisions(t *testing.T) {
	for _, missing := range []v1alpha1.MissingUsersPolicy{v1alpha1.MissingDelete, v1alpha1.MissingDeactivate, v1alpha1.MissingIgnore} {
		t.Run(string(missing), func(t *testing.T) {
			d := threeInGroups()
			before := append(state(d), relState(d)...)
			cfg := mailChecked(v1alpha1.ModeFull, missing)
			content := groupFile(
				"ann,ann@x.org,Dev,,eng,",
				"bob,bob(at)x.org,Dev,,eng,", // a typo: the line fails, bob stays
				"cid,cid@x.org,Ops,,eng,bob",
			)
			for _, dry := range []bool{true, false} {
				res, rec, err := runOnce(t, d, cfg, content, dry)
				if err != nil {
					t.Fatal(err)
				}
				c := res.Counts
				if c.Failed != 1 || c.Deleted+c.Deactivated != 0 || c.Groups.MembershipsRemoved != 0 || c.Groups.ManagersMissing != 0 {
					t.Fatalf("dry=%v: counts %+v", dry, c)
				}
				if len(rec.errors) != 1 || rec.errors[0].Line != 3 || rec.errors[0].Identity != "bob" || !strings.Contains(rec.errors[0].Msg, "mail") {
					t.Fatalf("dry=%v: errors %+v, want one on line 3 naming bob's identity and the mail rule", dry, rec.errors)
				}
				if strings.Contains(rec.errors[0].Msg, "bob(at)") {
					t.Fatalf("the error quotes the value: %q", rec.errors[0].Msg)
				}
			}
			if got := append(state(d), relState(d)...); !slices.Equal(got, before) {
				t.Fatalf("the directory changed:\n%s", lineDiff(got, before))
			}
		})
	}
}

func TestAnUnreadableIdentityProvesNobodyAbsent(t *testing.T) {
	d := threeInGroups()
	before := append(state(d), relState(d)...)
	cfg := mailChecked(v1alpha1.ModeFull, v1alpha1.MissingDelete)
	content := groupFile(
		"ann,ann@x.org,Dev,,eng,",
		"  ,bob@x.org,Dev,,eng,", // whose? bob's, perhaps
		// cid has left.
	)
	for _, dry := range []bool{true, false} {
		res, _, err := runOnce(t, d, cfg, content, dry)
		if err != nil {
			t.Fatal(err)
		}
		// The import stops at its first check, the membership removals,
		// and reports the whole plan, as the preview does.
		if !res.SafetyStop || res.UnreadableLines != 1 || res.PlannedDeprovisions != 2 || res.Counts.Rows != 2 {
			t.Fatalf("dry=%v: stop %v, unreadable %d, planned %d; want a stop naming 1 line and 2 deletions", dry, res.SafetyStop, res.UnreadableLines, res.PlannedDeprovisions)
		}
	}
	if got := append(state(d), relState(d)...); !slices.Equal(got, before) {
		t.Fatalf("a stopped import wrote:\n%s", lineDiff(got, before))
	}

	// Approving fewer than planned is no approval; the exact count is.
	cfg.ApprovedDeprovisions = ptr(int64(1))
	if res, _, err := runOnce(t, d, cfg, content, false); err != nil || !res.SafetyStop {
		t.Fatalf("approved 1 of 2: stop %v, err %v", res.SafetyStop, err)
	}
	cfg.ApprovedDeprovisions = ptr(int64(2))
	cfg.ApprovedMembershipRemovals = ptr(int64(2))
	res, _, err := runOnce(t, d, cfg, content, false)
	if err != nil || res.SafetyStop || res.Counts.Deleted != 2 {
		t.Fatalf("approved: stop %v, deleted %d, err %v", res.SafetyStop, res.Counts.Deleted, err)
	}
}

func TestAnUnreadableIdentityHoldsMembershipRemovals(t *testing.T) {
	d := threeInGroups()
	cfg := mailChecked(v1alpha1.ModeFull, v1alpha1.MissingIgnore)
	content := groupFile(
		"ann,ann@x.org,Dev,,eng,",
		",bob@x.org,Dev,,eng,",
		"cid,cid@x.org,Ops,,ops,", // cid moves to ops: one removal from eng
	)
	res, _, err := runOnce(t, d, cfg, content, false)
	if err != nil {
		t.Fatal(err)
	}
	if !res.SafetyStop || !res.MembershipStop || res.UnreadableLines != 1 {
		t.Fatalf("stop %v membership %v unreadable %d", res.SafetyStop, res.MembershipStop, res.UnreadableLines)
	}
	if got := d.Groups(); !slices.Equal(got, []string{"eng (managed): [ann bob cid]"}) {
		t.Fatalf("groups changed: %v", got)
	}
}

func TestAFailedRowOnlyKeepsItsIdentityOnce(t *testing.T) {
	d := seed(user("ann", "ann@x.org", "Dev"))
	cfg := mailChecked(v1alpha1.ModeFull, v1alpha1.MissingDelete)
	content := groupFile(
		"ann,not-a-mail,Dev,,,",
		"ann,ann@y.org,Lead,,,", // the same user again: a duplicate
		"bob,bob@x.org,Dev,,,",
	)
	res, rec, err := runOnce(t, d, cfg, content, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Counts.Failed != 2 || res.Counts.Updated != 0 || res.Counts.Deleted != 0 || res.Counts.Created != 1 {
		t.Fatalf("counts %+v", res.Counts)
	}
	if got := rec.errorLines(); !slices.Equal(got, []int64{2, 3}) || !strings.Contains(rec.errors[1].Msg, "duplicate") {
		t.Fatalf("errors %+v", rec.errors)
	}
}

func TestAManagerDeletedByTheSameImportIsNotReferred(t *testing.T) {
	d := threeInGroups()
	cfg := mailChecked(v1alpha1.ModeFull, v1alpha1.MissingDelete)
	cfg.ApprovedDeprovisions = ptr(int64(1))
	content := groupFile(
		"ann,ann@x.org,Dev,,eng,",
		"cid,cid@x.org,Ops,,eng,",
		"dan,dan@x.org,Dev,,eng,bob", // bob is deleted by this import
	)
	preview, prec, err := runOnce(t, d, cfg, content, true)
	if err != nil {
		t.Fatal(err)
	}
	res, rec, err := runOnce(t, d, cfg, content, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []*recorder{prec, rec} {
		if len(r.errors) != 1 || r.errors[0].Line != 4 || !r.errors[0].Warning {
			t.Fatalf("want a warning on line 4, got %+v", r.errors)
		}
	}
	if preview.Counts != res.Counts || res.Counts.Groups.ManagersMissing != 1 || res.Counts.Deleted != 1 {
		t.Fatalf("preview %+v, import %+v", preview.Counts, res.Counts)
	}
	for _, u := range d.Users() {
		if u.Identity == "dan" && len(u.Attributes["manager"]) > 0 {
			t.Fatalf("dan refers to a deleted manager: %v", u.Attributes["manager"])
		}
	}
}

func TestAResumedDeltaDeleteLeavesItsGroups(t *testing.T) {
	d := threeInGroups()
	cfg := groupConfig(v1alpha1.ModeDelta, v1alpha1.MissingIgnore)
	cfg.StatusColumn = &v1alpha1.StatusColumn{Column: "status", DeleteValues: []string{"deleted"}}
	cfg.MaxMembershipRemovalPercent = nil
	content := groupFile("bob,bob@x.org,Dev,deleted,,")
	preview, _, err := runOnce(t, d, cfg, content, true)
	if err != nil {
		t.Fatal(err)
	}
	if preview.Counts.Deleted != 1 || preview.Counts.Groups.MembershipsRemoved != 1 {
		t.Fatalf("preview %+v", preview.Counts)
	}
	// The user is deleted, and the run stops before its Groups step, as
	// a SIGKILL would: the next run starts again from nothing.
	d.FailAfter(2)
	_, _ = Run(context.Background(), input(content, nil), d, cfg, false, &recorder{})
	d.FailAfter(-1)
	if _, _, err := runOnce(t, d, cfg, content, false); err != nil {
		t.Fatal(err)
	}
	if got := d.Groups(); !slices.Equal(got, []string{"eng (managed): [ann cid]"}) {
		t.Fatalf("groups %v; bob must have left, the others stayed", got)
	}
	if slices.ContainsFunc(state(d), func(s string) bool { return strings.HasPrefix(s, "bob ") }) {
		t.Fatal("bob was not deleted")
	}
}

func TestAGroupCellOfBlanksNamesNoGroup(t *testing.T) {
	d := seed()
	cfg := groupConfig(v1alpha1.ModeFull, v1alpha1.MissingIgnore)
	cfg.Mapping[3].Split = ""
	res, _, err := runOnce(t, d, cfg, groupFile("ann,ann@x.org,Dev,,   ,", "bob,bob@x.org,Dev,, eng ,"), false)
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Groups(); res.Counts.Groups.GroupsCreated != 1 || len(got) != 1 || !strings.HasPrefix(got[0], "eng ") {
		t.Fatalf("groups %v, counts %+v", got, res.Counts.Groups)
	}
}

// refusingGroups refuses every change of one group.
type refusingGroups struct {
	*memdir.Dir
	name string
}

func (r refusingGroups) ApplyGroup(ctx context.Context, c directory.GroupChange) (string, error) {
	if c.Name == r.name {
		return "", &directory.ChangeError{Msg: "the group's name is not allowed"}
	}
	return r.Dir.ApplyGroup(ctx, c)
}

func TestAGroupTheDirectoryRefusesFailsEveryLineNamingIt(t *testing.T) {
	d := refusingGroups{Dir: seed(), name: "bad"}
	cfg := groupConfig(v1alpha1.ModeFull, v1alpha1.MissingIgnore)
	content := groupFile(
		"ann,ann@x.org,Dev,,bad|eng,",
		"bob,bob@x.org,Dev,,eng,",
		"cid,cid@x.org,Dev,,bad,",
	)
	res, rec, err := runOnce(t, d, cfg, content, false)
	if err != nil {
		t.Fatal(err)
	}
	if got := rec.errorLines(); !slices.Equal(got, []int64{2, 4}) {
		t.Fatalf("errors on lines %v, want 2 and 4: %+v", got, rec.errors)
	}
	if res.Counts.Failed != 2 {
		t.Fatalf("failed %d, want 2", res.Counts.Failed)
	}
}

// sentInvitations records the identities invited; a fake Inviter, the
// relay being beside the point here.
type sentInvitations struct {
	mu  sync.Mutex
	ids []string
}

func (s *sentInvitations) Render(Invitee) error { return nil }
func (s *sentInvitations) Send(_ context.Context, inv Invitee) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ids = append(s.ids, inv.Identity)
	return nil
}

// identities are the identities invited, sorted, once per message.
func (s *sentInvitations) identities() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Sorted(slices.Values(s.ids))
}

// A line that fails on its groups creates nobody, so it invites nobody:
// the preview plans, and the import sends, the same invitations.
func TestAFailedLineInvitesNobody(t *testing.T) {
	d := seed()
	d.PutGroup("eng", false)
	cfg := groupConfig(v1alpha1.ModeFull, v1alpha1.MissingIgnore)
	cfg.CreateGroups = false
	sent := &sentInvitations{}
	cfg.Invite = &InviteConfig{NewUsers: true, AddressAttribute: "mail", InvitedAttribute: "invited", Inviter: sent}
	content := groupFile("ann,ann@x.org,Dev,,eng,", "bob,bob@x.org,Dev,,eng|sales,")
	preview, _, err := runOnce(t, d, cfg, content, true)
	if err != nil {
		t.Fatal(err)
	}
	res, _, err := runOnce(t, d, cfg, content, false)
	if err != nil {
		t.Fatal(err)
	}
	if preview.Invitations.NewUsers != 1 || res.Invitations.NewUsers != 1 || !slices.Equal(sent.identities(), []string{"ann"}) {
		t.Fatalf("preview plans %d, import %d, sent to %v; want ann alone", preview.Invitations.NewUsers, res.Invitations.NewUsers, sent.identities())
	}
}
