package ldap

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/failure"
	"github.com/userimport/user-import-operator/internal/testpeer/samba"
)

// These tests run against a Samba AD domain controller with the short
// spec an AD administrator writes: vendor ActiveDirectory, and nothing
// else of AD's spelled out.

func adOpts() directory.Options {
	return directory.Options{IdentityAttribute: "sAMAccountName", ManagedOnly: true,
		MarkerAttribute: marker, MarkerValue: markerValue, Concurrency: 4}
}

func newAD(t testing.TB, dc *samba.DC, spec *v1alpha1.LDAPDirectory) *Directory {
	t.Helper()
	d, err := New(context.Background(), spec, adOpts(), dc.Secrets())
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// adEntry reads attributes of dn as the Administrator.
func adEntry(t testing.TB, dc *samba.DC, dn string, attrs ...string) *ldap.Entry {
	t.Helper()
	c, err := dc.Conn()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false, "(objectClass=*)", attrs, nil))
	if err != nil {
		t.Fatalf("read %s: %v", dn, err)
	}
	return res.Entries[0]
}

func uac(t testing.TB, dc *samba.DC, dn string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(adEntry(t, dc, dn, uacAttr).GetAttributeValue(uacAttr), 10, 64)
	if err != nil {
		t.Fatalf("userAccountControl of %s: %v", dn, err)
	}
	return n
}

func adUser(sam, name string) directory.Attributes {
	return directory.Attributes{
		"sAMAccountName":    {sam},
		"cn":                {name},
		"givenName":         {strings.Fields(name)[0]},
		"sn":                {strings.Fields(name)[len(strings.Fields(name))-1]},
		"displayName":       {name},
		"mail":              {sam + "@corp.example"},
		"userPrincipalName": {sam + "@ad.example.com"},
	}
}

func TestActiveDirectory(t *testing.T) {
	dc := samba.Start(t)
	ctx := context.Background()
	d := newAD(t, dc, dc.Spec())

	t.Run("the check accepts AD's schema with its auxiliary classes", func(t *testing.T) {
		if _, err := d.Check(ctx); err != nil {
			t.Fatalf("Check: %v", err)
		}
	})

	t.Run("created users are enabled and sign in with their code", func(t *testing.T) {
		attrs := adUser("jdoe", "Jane Doe")
		attrs[unicodePwd] = []string{"Rc-7fK2-pq9Z-x4Wm"}
		res := mustApply(t, d, create("jdoe", attrs), create("rroe", adUser("rroe", "Richard Roe")))
		if got := uac(t, dc, res[0].ID); got&uacDisabled != 0 {
			t.Fatalf("userAccountControl %d: the account is disabled", got)
		}
		if got := uac(t, dc, res[1].ID); got&uacDisabled != 0 {
			t.Fatalf("a user created without a code: userAccountControl %d, want it enabled (with an unusable password)", got)
		}
		if err := dc.CanSignIn(res[0].ID, "Rc-7fK2-pq9Z-x4Wm"); err != nil {
			t.Fatalf("the user cannot sign in with the recovery code: %v", err)
		}
		users := lookup(t, d, "jdoe", "rroe")
		if !users["jdoe"].Active || !users["rroe"].Active || !users["jdoe"].Managed {
			t.Fatalf("read back: %+v", users)
		}
	})

	t.Run("a password the domain's policy refuses is the line's error, naming the policy", func(t *testing.T) {
		attrs := adUser("weak1", "Weak Password")
		attrs[unicodePwd] = []string{"abc"}
		res, err := d.Apply(ctx, []directory.Change{create("weak1", attrs)})
		if err != nil {
			t.Fatal(err)
		}
		if res[0].Err == nil || !strings.Contains(res[0].Err.Error(), "unicodePwd: the password does not meet the domain's password policy") || strings.Contains(res[0].Err.Error(), "abc") {
			t.Fatalf("got %v", res[0].Err)
		}
	})

	t.Run("mustChange: pwdLastSet 0 makes the user change the code at first sign-in", func(t *testing.T) {
		attrs := adUser("mchange", "Must Change")
		attrs[unicodePwd] = []string{"Rc-MUST9-CHNG7"}
		attrs["pwdLastSet"] = []string{"0"}
		res := mustApply(t, d, create("mchange", attrs))
		if got := adEntry(t, dc, res[0].ID, "pwdLastSet").GetAttributeValue("pwdLastSet"); got != "0" {
			t.Fatalf("pwdLastSet %q", got)
		}
		err := dc.CanSignIn(res[0].ID, "Rc-MUST9-CHNG7")
		if err == nil || !strings.Contains(err.Error(), "773") {
			t.Fatalf("a sign-in with a code to change: %v, want AD's must-change refusal (data 773)", err)
		}
	})

	t.Run("deactivation sets one bit and keeps the others; reactivation clears it", func(t *testing.T) {
		dn := lookup(t, d, "jdoe")["jdoe"].ID
		c, err := dc.Conn()
		if err != nil {
			t.Fatal(err)
		}
		// An administrator's own bit: DONT_EXPIRE_PASSWORD.
		req := ldap.NewModifyRequest(dn, nil)
		req.Replace(uacAttr, []string{strconv.Itoa(uacNormal | 0x10000)})
		if err := c.Modify(req); err != nil {
			t.Fatal(err)
		}
		c.Close()
		mustApply(t, d, directory.Change{Op: directory.OpDeactivate, Identity: "jdoe", ID: dn})
		if got := uac(t, dc, dn); got != uacNormal|0x10000|uacDisabled {
			t.Fatalf("after deactivation userAccountControl = %d, want %d", got, uacNormal|0x10000|uacDisabled)
		}
		if lookup(t, d, "jdoe")["jdoe"].Active {
			t.Fatal("read back as active")
		}
		mustApply(t, d, directory.Change{Op: directory.OpUpdate, Identity: "jdoe", ID: dn, Reactivate: true,
			Attributes: directory.Attributes{"title": {"Engineer"}}})
		if got := uac(t, dc, dn); got != uacNormal|0x10000 {
			t.Fatalf("after reactivation userAccountControl = %d, want %d", got, uacNormal|0x10000)
		}
		if got := adEntry(t, dc, dn, "title").GetAttributeValue("title"); got != "Engineer" {
			t.Fatalf("the reactivation's other change was lost: title %q", got)
		}
	})

	t.Run("a new name renames the entry, and the other changes land", func(t *testing.T) {
		u := lookup(t, d, "rroe")["rroe"]
		res := mustApply(t, d, directory.Change{Op: directory.OpUpdate, Identity: "rroe", ID: u.ID,
			Attributes: directory.Attributes{"cn": {"Richard Roe-Smith"}, "sn": {"Roe-Smith"}, "displayName": {"Richard Roe-Smith"}}})
		if want := "CN=Richard Roe-Smith," + dc.StaffDN; !strings.EqualFold(res[0].ID, want) {
			t.Fatalf("new DN %q, want %q", res[0].ID, want)
		}
		e := adEntry(t, dc, res[0].ID, "sn", "displayName")
		if e.GetAttributeValue("sn") != "Roe-Smith" || e.GetAttributeValue("displayName") != "Richard Roe-Smith" {
			t.Fatalf("after the rename: sn %q displayName %q", e.GetAttributeValue("sn"), e.GetAttributeValue("displayName"))
		}
	})

	t.Run("names with characters DNs escape", func(t *testing.T) {
		for i, name := range []string{"Smith, John", "A=B Corp", "#Hash Lead", "Plus+Minus", `Back\slash`, "Quote \"Q\"", "<Angle>", "Semi;colon"} {
			sam := fmt.Sprintf("esc%d", i)
			res, err := d.Apply(ctx, []directory.Change{create(sam, adUser(sam, name))})
			if err != nil || res[0].Err != nil {
				t.Fatalf("create %q: %v %v", name, err, res[0].Err)
			}
			if got := adEntry(t, dc, res[0].ID, "cn").GetAttributeValue("cn"); got != name {
				t.Fatalf("cn %q, want %q", got, name)
			}
		}
	})

	t.Run("a sAMAccountName used elsewhere in the domain is the line's error", func(t *testing.T) {
		res, err := d.Apply(ctx, []directory.Change{create("jdoe", adUser("jdoe", "Jane Other"))})
		if err != nil {
			t.Fatal(err)
		}
		if res[0].Err == nil || !strings.Contains(res[0].Err.Error(), "already used by another entry in the domain") {
			t.Fatalf("got %v", res[0].Err)
		}
	})

	t.Run("two people with the same name: the second is refused, the first kept", func(t *testing.T) {
		res, err := d.Apply(ctx, []directory.Change{create("jdoe2", adUser("jdoe2", "Jane Doe"))})
		if err != nil {
			t.Fatal(err)
		}
		if res[0].Err == nil {
			t.Fatal("the second Jane Doe took the first one's entry")
		}
		if got := adEntry(t, dc, lookup(t, d, "jdoe")["jdoe"].ID, "sAMAccountName").GetAttributeValue("sAMAccountName"); got != "jdoe" {
			t.Fatalf("the first Jane Doe's entry now has sAMAccountName %q", got)
		}
	})

	t.Run("users searched from the domain root: the DC's referrals are passed over", func(t *testing.T) {
		spec := dc.Spec()
		spec.UsersBaseDN = dc.BaseDN
		root := newAD(t, dc, spec)
		n := 0
		if err := root.List(ctx, []string{"cn"}, func(u directory.User) error { n++; return nil }); err != nil {
			t.Fatalf("List from the root: %v", err)
		}
		if n < 2 {
			t.Fatalf("List from the root found %d managed users, want those created above", n)
		}
	})

	t.Run("sAMAccountName rules are checked before any write", func(t *testing.T) {
		for _, bad := range []string{"averyveryverylongname1", "a/b", "x@y", "dot."} {
			if msg := d.CheckValue("sAMAccountName", bad); msg == "" || strings.Contains(msg, bad) {
				t.Errorf("CheckValue(%q) = %q", bad, msg)
			}
		}
		if msg := d.CheckValue("sAMAccountName", "j.doe-2"); msg != "" {
			t.Errorf("a valid name refused: %s", msg)
		}
		if msg := d.CheckValue("userPrincipalName", "no-at-sign"); msg == "" {
			t.Error("a user principal name without @ passes")
		}
	})

	t.Run("members read in ranges: every value, range after range", func(t *testing.T) {
		var members []string
		for i := range 7 {
			sam := fmt.Sprintf("rng%d", i)
			res := mustApply(t, d, create(sam, adUser(sam, "Range Member "+sam)))
			members = append(members, res[0].ID)
		}
		id, err := d.ApplyGroup(ctx, directory.GroupChange{Name: "Ranged", Add: members})
		if err != nil {
			t.Fatal(err)
		}
		c, err := dc.Conn()
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// Windows answers a group of more than 1,500 members this way on
		// its own; Samba when asked: three values, then the rest.
		res, err := c.Search(ldap.NewSearchRequest(id, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 1, 0, false, "(objectClass=*)", []string{"member;range=0-2"}, nil))
		if err != nil {
			t.Fatal(err)
		}
		if got := res.Entries[0].Attributes; len(got) != 1 || got[0].Name != "member;range=0-2" || len(got[0].Values) != 3 {
			t.Fatalf("the first range: %+v", got)
		}
		all, err := d.rangedValues(ctx, c, res.Entries[0], "member")
		if err != nil || len(all) != len(members) {
			t.Fatalf("read in ranges: %d members (%v), want %d", len(all), err, len(members))
		}
	})

	t.Run("groups are AD security groups; replayed member changes count as done", func(t *testing.T) {
		jdoe := lookup(t, d, "jdoe")["jdoe"].ID
		rroe := lookup(t, d, "rroe")["rroe"].ID
		id, err := d.ApplyGroup(ctx, directory.GroupChange{Name: "Staff-Berlin", Add: []string{jdoe}})
		if err != nil {
			t.Fatal(err)
		}
		e := adEntry(t, dc, id, "groupType", "sAMAccountName", "objectSid", "member")
		if e.GetAttributeValue("groupType") != strconv.Itoa(defaultGroupType) || e.GetAttributeValue("sAMAccountName") != "Staff-Berlin" || len(e.GetRawAttributeValue("objectSid")) == 0 {
			t.Fatalf("the group: groupType %q sAMAccountName %q objectSid %d bytes", e.GetAttributeValue("groupType"), e.GetAttributeValue("sAMAccountName"), len(e.GetRawAttributeValue("objectSid")))
		}
		for range 2 { // the second time replays
			if _, err := d.ApplyGroup(ctx, directory.GroupChange{Name: "Staff-Berlin", ID: id, Add: []string{rroe}}); err != nil {
				t.Fatalf("add: %v", err)
			}
		}
		for range 2 {
			if _, err := d.ApplyGroup(ctx, directory.GroupChange{Name: "Staff-Berlin", ID: id, Remove: []string{jdoe}}); err != nil {
				t.Fatalf("remove: %v", err)
			}
		}
		if _, err := d.ApplyGroup(ctx, directory.GroupChange{Name: "Staff-Berlin", ID: id, Remove: []string{rroe}, Empty: true}); err != nil {
			t.Fatalf("remove the last member: %v", err)
		}
		var found bool
		if err := d.ListGroups(ctx, func(g directory.Group) error {
			if g.Name == "Staff-Berlin" {
				found = true
				if len(g.Members) != 0 || !g.Managed {
					t.Errorf("group read back: %+v", g)
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if !found {
			t.Fatal("an AD group left empty was deleted: it would lose its SID and the access granted to it")
		}
	})
}

func lookup(t testing.TB, d *Directory, ids ...string) map[string]directory.User {
	t.Helper()
	users, err := d.Lookup(context.Background(), ids, []string{"cn", "title"})
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	return users
}

func TestActiveDirectoryNeedsTLS(t *testing.T) {
	spec := &v1alpha1.LDAPDirectory{Vendor: v1alpha1.LDAPActiveDirectory, URL: "ldap://dc1.corp.example", Insecure: true,
		BindDN: "CN=svc", UsersBaseDN: "OU=Staff,DC=corp,DC=example"}
	_, err := New(context.Background(), spec, adOpts(), func(context.Context, string, string) ([]byte, error) { return []byte("x"), nil })
	if err == nil || failure.ReasonOf(err, v1alpha1.ReasonDirectoryError) != v1alpha1.ReasonInvalidConfig || !strings.Contains(err.Error(), "TLS") {
		t.Fatalf("New: %v", err)
	}
}
