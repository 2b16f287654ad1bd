package ldap

import (
	"context"
	"fmt"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/testpeer/slapd"
)

func TestPagedListing(t *testing.T) {
	s := slapd.Start(t, slapd.Options{})
	admin := newDir(t, s, baseSpec(s), baseOpts())
	const n = 1200
	var changes []directory.Change
	for i := range n {
		uid := fmt.Sprintf("user%04d", i)
		changes = append(changes, create(uid, directory.Attributes{"uid": {uid}, "mail": {uid + "@example.com"}}))
	}
	mustApply(t, admin, changes...)

	// A reader that is not the rootdn is held to the server's size limit
	// of 1000 entries per search: only paging lists all 1200.
	c, err := s.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	readerDN := "cn=reader," + s.Suffix
	add := ldap.NewAddRequest(readerDN, nil)
	add.Attribute("objectClass", []string{"person"})
	add.Attribute("cn", []string{"reader"})
	add.Attribute("sn", []string{"reader"})
	add.Attribute("userPassword", []string{"reader-secret"})
	if err := c.Add(add); err != nil {
		t.Fatal(err)
	}
	spec := baseSpec(s)
	spec.BindDN = readerDN
	spec.BindPassword = v1alpha1.SecretKeyRef{Name: "reader", Key: "password"}
	reader, err := New(context.Background(), spec, baseOpts(), func(_ context.Context, name, key string) ([]byte, error) {
		return []byte("reader-secret"), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close()
	listed := listAll(t, reader, []string{"mail"})
	if len(listed) != n {
		t.Fatalf("listed %d users, want %d", len(listed), n)
	}
	for uid, u := range listed {
		if u.Attributes["mail"][0] != uid+"@example.com" {
			t.Fatalf("%s: mail %v", uid, u.Attributes["mail"])
		}
	}
	// More identities than fit in one lookup filter.
	ids := make([]string, 0, n)
	for uid := range listed {
		ids = append(ids, uid)
	}
	found, err := reader.Lookup(context.Background(), ids, []string{"mail"})
	if err != nil || len(found) != n {
		t.Fatalf("Lookup of %d identities found %d (%v)", n, len(found), err)
	}
}

func TestManagedOnlyListing(t *testing.T) {
	s := slapd.Start(t, slapd.Options{})
	d := newDir(t, s, baseSpec(s), baseOpts())
	mustApply(t, d, create("managed", commonAttributes("managed")))
	c, err := s.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	add := ldap.NewAddRequest("uid=manual,"+s.PeopleDN, nil)
	add.Attribute("objectClass", []string{"inetOrgPerson"})
	add.Attribute("uid", []string{"manual"})
	add.Attribute("cn", []string{"manual"})
	add.Attribute("sn", []string{"manual"})
	if err := c.Add(add); err != nil {
		t.Fatal(err)
	}

	if got := listAll(t, d, nil); len(got) != 1 || !got["managed"].Managed {
		t.Errorf("managed-only listing: %+v", got)
	}
	opts := baseOpts()
	opts.ManagedOnly = false
	all := listAll(t, newDir(t, s, baseSpec(s), opts), nil)
	if len(all) != 2 || !all["managed"].Managed || all["manual"].Managed {
		t.Errorf("full listing: %+v", all)
	}
	// Lookup returns users out of scope too, marked as not managed.
	found, err := d.Lookup(context.Background(), []string{"manual"}, nil)
	if err != nil || found["manual"].ID == "" || found["manual"].Managed {
		t.Errorf("Lookup of an unmanaged user: %+v, %v", found, err)
	}
}

// TestHasUnmanaged: the probe that lets a full import skip looking up
// its creates finds an unmanaged user under the users' base and under
// the base that deactivated users are moved to, and nothing else.
func TestHasUnmanaged(t *testing.T) {
	s := slapd.Start(t, slapd.Options{})
	spec := baseSpec(s)
	spec.Disable = &v1alpha1.LDAPDisable{MoveToDN: s.DisabledDN}
	d := newDir(t, s, spec, baseOpts())
	probe := func(when string, want bool) {
		t.Helper()
		if got, err := d.HasUnmanaged(context.Background()); err != nil || got != want {
			t.Errorf("%s: HasUnmanaged = %v, %v; want %v", when, got, err, want)
		}
	}
	probe("empty directory", false)
	dn := mustApply(t, d, create("managed", commonAttributes("managed")))[0].ID
	mustApply(t, d, directory.Change{Op: directory.OpDeactivate, Identity: "managed", ID: dn})
	probe("only managed users", false)

	c, err := s.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	addManual := func(dn string) {
		t.Helper()
		add := ldap.NewAddRequest(dn, nil)
		add.Attribute("objectClass", []string{"inetOrgPerson"})
		add.Attribute("uid", []string{"manual"})
		add.Attribute("cn", []string{"manual"})
		add.Attribute("sn", []string{"manual"})
		add.Attribute(marker, []string{"someone-else"})
		if err := c.Add(add); err != nil {
			t.Fatal(err)
		}
	}
	addManual("uid=manual," + s.DisabledDN)
	probe("an unmanaged user among the deactivated", true)
	if err := c.Del(ldap.NewDelRequest("uid=manual,"+s.DisabledDN, nil)); err != nil {
		t.Fatal(err)
	}
	probe("after its deletion", false)
	addManual("uid=manual," + s.PeopleDN)
	probe("an unmanaged user with another marker value", true)
}
