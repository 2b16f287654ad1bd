package ldap

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/go-ldap/ldap/v3"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/keyread"
	"github.com/userimport/user-import-operator/internal/testpeer/slapd"
)

const (
	marker      = "businessCategory"
	markerValue = "user-import-operator"
)

// secrets serves the bind password and CA of a server.
func secrets(s *slapd.Server) keyread.KeyReader {
	return func(_ context.Context, name, key string) ([]byte, error) {
		switch name + "/" + key {
		case "ldap/password":
			return []byte(s.BindPassword), nil
		case "ldap/ca.crt":
			return s.CAPEM, nil
		}
		return nil, fmt.Errorf("secret %s key %s not found", name, key)
	}
}

func baseSpec(s *slapd.Server) *v1alpha1.LDAPDirectory {
	return &v1alpha1.LDAPDirectory{
		URL:          s.URL,
		BindDN:       s.BindDN,
		BindPassword: v1alpha1.SecretKeyRef{Name: "ldap", Key: "password"},
		UsersBaseDN:  s.PeopleDN,
		PageSize:     500,
	}
}

func baseOpts() directory.Options {
	return directory.Options{
		IdentityAttribute: "uid",
		ManagedOnly:       true,
		MarkerAttribute:   marker,
		MarkerValue:       markerValue,
		Concurrency:       4,
	}
}

func newDir(t testing.TB, s *slapd.Server, spec *v1alpha1.LDAPDirectory, opts directory.Options) *Directory {
	t.Helper()
	d, err := New(context.Background(), spec, opts, secrets(s))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// commonAttributes are attributes of a user as an HR export maps them.
func commonAttributes(uid string) directory.Attributes {
	return directory.Attributes{
		"uid":               {uid},
		"cn":                {"Jane Q. Doe " + uid},
		"sn":                {"Doe"},
		"givenName":         {"Jane"},
		"displayName":       {"Jane Doe"},
		"mail":              {uid + "@example.com"},
		"title":             {"Engineer, Platform"},
		"employeeNumber":    {"E-" + uid},
		"departmentNumber":  {"4711"},
		"telephoneNumber":   {"+49 30 1234567"},
		"mobile":            {"+49 170 1234567"},
		"ou":                {"Research & Development"},
		"l":                 {"Zürich"},
		"street":            {"Hauptstraße 1"},
		"postalCode":        {"8001"},
		"preferredLanguage": {"de-CH"},
		"description":       {"first line", "second line"},
		marker:              {markerValue},
	}
}

func attributeNames(a directory.Attributes) []string {
	names := make([]string, 0, len(a))
	for n := range a {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func create(uid string, attrs directory.Attributes) directory.Change {
	return directory.Change{Op: directory.OpCreate, Line: 2, Identity: uid, Attributes: attrs}
}

func mustApply(t testing.TB, d *Directory, changes ...directory.Change) []directory.Result {
	t.Helper()
	res, err := d.Apply(context.Background(), changes)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("change %d (%v): %v", i, changes[i].Op, r.Err)
		}
	}
	return res
}

func listAll(t testing.TB, d *Directory, attrs []string) map[string]directory.User {
	t.Helper()
	out := map[string]directory.User{}
	err := d.List(context.Background(), attrs, func(u directory.User) error {
		if _, dup := out[u.Identity]; dup {
			t.Errorf("user %s listed twice", u.Identity)
		}
		out[u.Identity] = u
		return nil
	})
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	return out
}

// rawEntry reads an entry with all user and operational attributes.
func rawEntry(t testing.TB, s *slapd.Server, dn string) *ldap.Entry {
	t.Helper()
	c, err := s.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	res, err := c.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false, "(objectClass=*)", []string{"*", "+"}, nil))
	if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
		return nil
	}
	if err != nil {
		t.Fatalf("read %s: %v", dn, err)
	}
	return res.Entries[0]
}

func entryMap(e *ldap.Entry) map[string][]string {
	m := map[string][]string{}
	for _, a := range e.Attributes {
		m[strings.ToLower(a.Name)] = a.Values
	}
	return m
}

func TestCreateRoundTripIsStable(t *testing.T) {
	s := slapd.Start(t, slapd.Options{})
	d := newDir(t, s, baseSpec(s), baseOpts())

	want := map[string]directory.Attributes{}
	var changes []directory.Change
	for _, uid := range []string{"jdoe", "a.b-c_d", "x+y", "comma,user", "Mixed.Case"} {
		want[uid] = commonAttributes(uid)
		changes = append(changes, create(uid, commonAttributes(uid)))
	}
	res := mustApply(t, d, changes...)
	for i, r := range res {
		if r.ID == "" {
			t.Errorf("create %d: no ID", i)
		}
	}

	names := attributeNames(commonAttributes("x"))
	listed := listAll(t, d, names)
	if len(listed) != len(want) {
		t.Fatalf("listed %d users, want %d", len(listed), len(want))
	}
	ids := make([]string, 0, len(want))
	for uid, attrs := range want {
		ids = append(ids, uid)
		u, ok := listed[uid]
		if !ok {
			t.Fatalf("user %s not listed", uid)
		}
		if !u.Active || !u.Managed {
			t.Errorf("%s: Active=%v Managed=%v, want both true", uid, u.Active, u.Managed)
		}
		if !reflect.DeepEqual(u.Attributes, attrs) {
			t.Errorf("%s: listed attributes differ from those written:\n got %v\nwant %v", uid, u.Attributes, attrs)
		}
	}

	// Lookup matches identities without regard to case and returns them
	// keyed as asked.
	found, err := d.Lookup(context.Background(), append(ids, "MIXED.CASE", "nobody"), names)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := found["nobody"]; ok {
		t.Error("Lookup found a user that does not exist")
	}
	if u, ok := found["MIXED.CASE"]; !ok || u.Identity != "Mixed.Case" {
		t.Errorf("Lookup of MIXED.CASE: got %+v", u)
	}
	for uid, attrs := range want {
		if !reflect.DeepEqual(found[uid].Attributes, attrs) {
			t.Errorf("%s: looked-up attributes differ:\n got %v\nwant %v", uid, found[uid].Attributes, attrs)
		}
		if found[uid].ID != listed[uid].ID {
			t.Errorf("%s: Lookup ID %q, List ID %q", uid, found[uid].ID, listed[uid].ID)
		}
	}

	// Attribute names are matched without regard to case and returned as
	// asked.
	lower, err := d.Lookup(context.Background(), []string{"jdoe"}, []string{"givenname", "MAIL"})
	if err != nil {
		t.Fatal(err)
	}
	if got := lower["jdoe"].Attributes; !reflect.DeepEqual(got, directory.Attributes{"givenname": {"Jane"}, "MAIL": {"jdoe@example.com"}}) {
		t.Errorf("attributes asked in other case: got %v", got)
	}
}

func TestCreateDerivesRequiredCNAndSN(t *testing.T) {
	s := slapd.Start(t, slapd.Options{})
	d := newDir(t, s, baseSpec(s), baseOpts())
	res := mustApply(t, d, create("minimal", directory.Attributes{"uid": {"minimal"}, "mail": {"m@example.com"}, "sn": {""}}))
	e := entryMap(rawEntry(t, s, res[0].ID))
	if !reflect.DeepEqual(e["cn"], []string{"minimal"}) || !reflect.DeepEqual(e["sn"], []string{"minimal"}) {
		t.Errorf("cn=%v sn=%v, want both [minimal]", e["cn"], e["sn"])
	}
	if !reflect.DeepEqual(e[strings.ToLower(marker)], []string{markerValue}) {
		t.Errorf("marker %v, want [%s]", e[strings.ToLower(marker)], markerValue)
	}
}

func TestUpdateChangesOnlyTheGivenAttributes(t *testing.T) {
	s := slapd.Start(t, slapd.Options{})
	d := newDir(t, s, baseSpec(s), baseOpts())
	dn := mustApply(t, d, create("jdoe", commonAttributes("jdoe")))[0].ID
	before := entryMap(rawEntry(t, s, dn))

	mustApply(t, d, directory.Change{Op: directory.OpUpdate, Line: 3, Identity: "jdoe", ID: dn,
		Attributes: directory.Attributes{"title": {"Manager"}, "mobile": nil, "description": {"only line"}}})
	after := entryMap(rawEntry(t, s, dn))

	for name, vals := range before {
		switch name {
		case "title", "mobile", "description", "modifytimestamp", "modifiersname", "entrycsn":
			continue
		}
		if !reflect.DeepEqual(after[name], vals) {
			t.Errorf("%s changed from %v to %v", name, vals, after[name])
		}
	}
	if !reflect.DeepEqual(after["title"], []string{"Manager"}) {
		t.Errorf("title = %v", after["title"])
	}
	if _, ok := after["mobile"]; ok {
		t.Errorf("mobile not removed: %v", after["mobile"])
	}
	if !reflect.DeepEqual(after["description"], []string{"only line"}) {
		t.Errorf("description = %v", after["description"])
	}

	// An update with nothing to change writes nothing.
	mustApply(t, d, directory.Change{Op: directory.OpUpdate, Identity: "jdoe", ID: dn, Attributes: directory.Attributes{}})
	if again := entryMap(rawEntry(t, s, dn)); !reflect.DeepEqual(again["entrycsn"], after["entrycsn"]) {
		t.Errorf("empty update wrote the entry (entryCSN %v -> %v)", after["entrycsn"], again["entrycsn"])
	}

	// Removing an attribute that is already absent is not an error.
	mustApply(t, d, directory.Change{Op: directory.OpUpdate, Identity: "jdoe", ID: dn, Attributes: directory.Attributes{"mobile": {}}})
}

func TestUpdateOfNamingAttributeRenames(t *testing.T) {
	s := slapd.Start(t, slapd.Options{})
	d := newDir(t, s, baseSpec(s), baseOpts())
	dn := mustApply(t, d, create("old", commonAttributes("old")))[0].ID
	res := mustApply(t, d, directory.Change{Op: directory.OpUpdate, Identity: "old", ID: dn, Attributes: directory.Attributes{"uid": {"new"}}})
	if want := "uid=new," + s.PeopleDN; res[0].ID != want {
		t.Errorf("ID after rename %q, want %q", res[0].ID, want)
	}
	if rawEntry(t, s, dn) != nil || rawEntry(t, s, res[0].ID) == nil {
		t.Error("entry was not renamed")
	}
}

func TestDeactivateWithAttribute(t *testing.T) {
	s := slapd.Start(t, slapd.Options{})
	d := newDir(t, s, baseSpec(s), baseOpts())
	dn := mustApply(t, d, create("jdoe", commonAttributes("jdoe")))[0].ID

	mustApply(t, d, directory.Change{Op: directory.OpDeactivate, Identity: "jdoe", ID: dn})
	if e := entryMap(rawEntry(t, s, dn)); !reflect.DeepEqual(e["employeetype"], []string{"disabled"}) {
		t.Errorf("employeeType = %v, want [disabled]", e["employeetype"])
	}
	if u := listAll(t, d, []string{"mail"})["jdoe"]; u.Active {
		t.Error("deactivated user listed as active")
	}
	// Deactivating twice is harmless.
	mustApply(t, d, directory.Change{Op: directory.OpDeactivate, Identity: "jdoe", ID: dn})

	mustApply(t, d, directory.Change{Op: directory.OpUpdate, Identity: "jdoe", ID: dn, Reactivate: true,
		Attributes: directory.Attributes{"title": {"Returned"}}})
	e := entryMap(rawEntry(t, s, dn))
	if _, ok := e["employeetype"]; ok {
		t.Errorf("employeeType still set after reactivation: %v", e["employeetype"])
	}
	if !reflect.DeepEqual(e["title"], []string{"Returned"}) {
		t.Errorf("title = %v", e["title"])
	}
	if u := listAll(t, d, []string{"mail"})["jdoe"]; !u.Active {
		t.Error("reactivated user listed as inactive")
	}
}

func TestDeactivateByMove(t *testing.T) {
	s := slapd.Start(t, slapd.Options{})
	spec := baseSpec(s)
	spec.Disable = &v1alpha1.LDAPDisable{MoveToDN: s.DisabledDN}
	d := newDir(t, s, spec, baseOpts())
	dn := mustApply(t, d, create("jdoe", commonAttributes("jdoe")), create("other", commonAttributes("other")))[0].ID

	res := mustApply(t, d, directory.Change{Op: directory.OpDeactivate, Identity: "jdoe", ID: dn})
	moved := "uid=jdoe," + s.DisabledDN
	if res[0].ID != moved || rawEntry(t, s, moved) == nil || rawEntry(t, s, dn) != nil {
		t.Fatalf("entry not moved to %s (result ID %q)", s.DisabledDN, res[0].ID)
	}
	listed := listAll(t, d, []string{"mail"})
	if len(listed) != 2 || listed["jdoe"].Active || listed["jdoe"].ID != moved || !listed["other"].Active {
		t.Errorf("listing after move: %+v", listed)
	}
	found, err := d.Lookup(context.Background(), []string{"jdoe"}, []string{"mail"})
	if err != nil || found["jdoe"].Active || found["jdoe"].ID != moved {
		t.Errorf("Lookup after move: %+v, %v", found, err)
	}
	// A replayed deactivation with the old DN succeeds.
	mustApply(t, d, directory.Change{Op: directory.OpDeactivate, Identity: "jdoe", ID: dn})

	res = mustApply(t, d, directory.Change{Op: directory.OpUpdate, Identity: "jdoe", ID: moved, Reactivate: true})
	if res[0].ID != dn || rawEntry(t, s, dn) == nil {
		t.Fatalf("entry not moved back (result ID %q)", res[0].ID)
	}
	if u := listAll(t, d, []string{"mail"})["jdoe"]; !u.Active || u.ID != dn {
		t.Errorf("after reactivation: %+v", u)
	}
}

func TestDeleteIsIdempotent(t *testing.T) {
	s := slapd.Start(t, slapd.Options{})
	d := newDir(t, s, baseSpec(s), baseOpts())
	dn := mustApply(t, d, create("jdoe", commonAttributes("jdoe")))[0].ID
	del := directory.Change{Op: directory.OpDelete, Identity: "jdoe", ID: dn}
	mustApply(t, d, del)
	if rawEntry(t, s, dn) != nil {
		t.Fatal("entry still exists")
	}
	mustApply(t, d, del)
}

func TestReplayedCreate(t *testing.T) {
	s := slapd.Start(t, slapd.Options{})
	d := newDir(t, s, baseSpec(s), baseOpts())
	first := mustApply(t, d, create("jdoe", commonAttributes("jdoe")))[0].ID
	mustApply(t, d, directory.Change{Op: directory.OpDeactivate, Identity: "jdoe", ID: first})

	// The same row again, after a restart, with one changed attribute.
	attrs := commonAttributes("jdoe")
	attrs["title"] = []string{"Changed"}
	res := mustApply(t, d, create("jdoe", attrs))
	if res[0].ID != first {
		t.Errorf("replayed create: ID %q, want %q", res[0].ID, first)
	}
	u := listAll(t, d, attributeNames(attrs))["jdoe"]
	if !reflect.DeepEqual(u.Attributes, attrs) || !u.Active {
		t.Errorf("after replay: active=%v attributes %v", u.Active, u.Attributes)
	}

	// An entry of the same name that the operator does not manage is left
	// alone, and the row fails without quoting the identity.
	c, err := s.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	add := ldap.NewAddRequest("uid=someone,"+s.PeopleDN, nil)
	add.Attribute("objectClass", []string{"inetOrgPerson"})
	add.Attribute("cn", []string{"x"})
	add.Attribute("sn", []string{"x"})
	if err := c.Add(add); err != nil {
		t.Fatal(err)
	}
	results, err := d.Apply(context.Background(), []directory.Change{create("someone", commonAttributes("someone"))})
	if err != nil {
		t.Fatal(err)
	}
	rerr := results[0].Err
	if !directory.IsChangeError(rerr) || rerr.Error() != "uid: entry exists and is not managed by this operator" {
		t.Errorf("create over unmanaged entry: %v", rerr)
	}
	if e := entryMap(rawEntry(t, s, "uid=someone,"+s.PeopleDN)); len(e["mail"]) != 0 {
		t.Error("unmanaged entry was modified")
	}
}

func TestRefusedChangesAreRowErrors(t *testing.T) {
	s := slapd.Start(t, slapd.Options{})
	d := newDir(t, s, baseSpec(s), baseOpts())
	bad := commonAttributes("bad")
	bad["mail"] = []string{"jörg@example.com"} // mail is IA5 (ASCII)
	multi := commonAttributes("multi")
	multi["employeeNumber"] = []string{"1", "2"} // single-valued
	unknown := commonAttributes("unknown")
	unknown["favouriteColour"] = []string{"blue"}
	results, err := d.Apply(context.Background(), []directory.Change{
		create("bad", bad), create("good", commonAttributes("good")), create("multi", multi), create("unknown", unknown),
	})
	if err != nil {
		t.Fatal(err)
	}
	wantAttr := []string{"mail", "", "employeeNumber", "favouriteColour"}
	for i, r := range results {
		if wantAttr[i] == "" {
			if r.Err != nil {
				t.Errorf("change %d: %v", i, r.Err)
			}
			continue
		}
		if !directory.IsChangeError(r.Err) {
			t.Errorf("change %d: want a RowError, got %v", i, r.Err)
			continue
		}
		msg := r.Err.Error()
		if !strings.HasPrefix(msg, wantAttr[i]+": ") {
			t.Errorf("change %d: %q does not name %s", i, msg, wantAttr[i])
		}
		for _, value := range []string{"jörg", "example.com", "blue", "bad", "multi", "unknown"} {
			if strings.Contains(msg, value) {
				t.Errorf("change %d: message %q quotes a value", i, msg)
			}
		}
	}
	if len(listAll(t, d, nil)) != 1 {
		t.Error("want exactly the good user created")
	}
}

func TestAttributeAliasesRoundTrip(t *testing.T) {
	s := slapd.Start(t, slapd.Options{})
	d := newDir(t, s, baseSpec(s), baseOpts())
	written := directory.Attributes{"userid": {"alias"}, "surname": {"Doe"}, "commonName": {"Jane Doe"}, "rfc822Mailbox": {"jd@example.com"}}
	res := mustApply(t, d, create("alias", written))
	e := entryMap(rawEntry(t, s, res[0].ID))
	// cn and sn were given under other names: nothing is derived.
	if !reflect.DeepEqual(e["cn"], []string{"Jane Doe"}) || !reflect.DeepEqual(e["sn"], []string{"Doe"}) {
		t.Errorf("cn=%v sn=%v", e["cn"], e["sn"])
	}
	found, err := d.Lookup(context.Background(), []string{"alias"}, attributeNames(written))
	if err != nil {
		t.Fatal(err)
	}
	if got := found["alias"].Attributes; !reflect.DeepEqual(got, written) {
		t.Errorf("read back under the names written: got %v, want %v", got, written)
	}
}

// A directory configured with its own object classes, RDN attribute and
// disable attribute and value writes entries that way.
func TestConfiguredObjectClassesRDNAndDisable(t *testing.T) {
	s := slapd.Start(t, slapd.Options{})
	spec := baseSpec(s)
	spec.ObjectClasses = []string{"inetOrgPerson", "extensibleObject"}
	spec.RDNAttribute = "employeeNumber"
	spec.Disable = &v1alpha1.LDAPDisable{Attribute: "employeeType", Value: "terminated"}
	d := newDir(t, s, spec, baseOpts())

	dn := mustApply(t, d, create("jdoe", commonAttributes("jdoe")))[0].ID
	if want := "employeeNumber=E-jdoe," + s.PeopleDN; !strings.EqualFold(dn, want) {
		t.Fatalf("DN = %s, want %s", dn, want)
	}
	e := entryMap(rawEntry(t, s, dn))
	classes := map[string]bool{}
	for _, c := range e["objectclass"] {
		classes[strings.ToLower(c)] = true
	}
	if !classes["inetorgperson"] || !classes["extensibleobject"] {
		t.Fatalf("objectClass = %v, want inetOrgPerson and extensibleObject", e["objectclass"])
	}

	mustApply(t, d, directory.Change{Op: directory.OpDeactivate, Identity: "jdoe", ID: dn})
	if e := entryMap(rawEntry(t, s, dn)); !reflect.DeepEqual(e["employeetype"], []string{"terminated"}) {
		t.Fatalf("employeeType = %v, want [terminated]", e["employeetype"])
	}
	u, ok := listAll(t, d, []string{"mail"})["jdoe"]
	if !ok || u.Active {
		t.Fatalf("deactivated user listed as %+v (found %v)", u, ok)
	}
	mustApply(t, d, directory.Change{Op: directory.OpUpdate, Identity: "jdoe", ID: dn, Reactivate: true})
	if u := listAll(t, d, []string{"mail"})["jdoe"]; !u.Active {
		t.Fatal("reactivated user listed as inactive")
	}
}
