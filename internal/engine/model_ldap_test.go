package engine

import (
	"context"
	"flag"
	"math/rand/v2"
	"strings"
	"testing"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	ldapdir "github.com/userimport/user-import-operator/internal/directory/ldap"
	"github.com/userimport/user-import-operator/internal/syncmodel"
	"github.com/userimport/user-import-operator/internal/testpeer/slapd"
)

// The model's scenarios against slapd: users named by uid, groupOfNames
// groups (members by DN), the manager attribute a DN.

var modelLDAPScenarios = flag.Int("model.ldap", 60, "random scenarios against slapd, each killed and resumed")

// ldapModelDir is how a worker process reaches the server.
type ldapModelDir struct {
	URL, BindDN, Password, PeopleDN, GroupsDN string
}

func (l ldapModelDir) open(managedOnly bool) (*ldapdir.Directory, error) {
	spec := &v1alpha1.LDAPDirectory{
		URL: l.URL, BindDN: l.BindDN, UsersBaseDN: l.PeopleDN, PageSize: 50,
		BindPassword: v1alpha1.SecretKeyRef{Name: "ldap", Key: "password"},
		Groups:       &v1alpha1.LDAPGroups{BaseDN: l.GroupsDN, ObjectClass: v1alpha1.LDAPGroupClass("groupOfNames")},
	}
	return ldapdir.New(context.Background(), spec, peerOptions("uid", "businessCategory", managedOnly),
		func(context.Context, string, string) ([]byte, error) { return []byte(l.Password), nil })
}

func (l ldapModelDir) dn(id string) string { return "uid=" + goldap.EscapeDN(id) + "," + l.PeopleDN }

// seed writes the model's directory into the server: users as a person
// would add them, managed groups through the provider, the others by hand.
func (l ldapModelDir) seed(t *testing.T, s *slapd.Server, d syncmodel.Directory) {
	t.Helper()
	c, err := s.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, id := range sortedKeys(d.Users) {
		u := d.Users[id]
		req := goldap.NewAddRequest(l.dn(id), nil)
		req.Attribute("objectClass", []string{"inetOrgPerson", "organizationalPerson", "person", "top"})
		for _, a := range [][2]string{{"uid", id}, {"cn", id}, {"sn", id}, {"mail", u.Mail}, {"title", u.Title}} {
			if a[1] != "" {
				req.Attribute(a[0], []string{a[1]})
			}
		}
		if u.Managed {
			req.Attribute("businessCategory", []string{peerMarker})
		}
		if !u.Active {
			req.Attribute("employeeType", []string{"disabled"})
		}
		if u.Manager != "" {
			req.Attribute("manager", []string{l.dn(u.Manager)})
		}
		if err := c.Add(req); err != nil {
			t.Fatalf("seeding slapd: %v", err)
		}
	}
	managed, err := l.open(true)
	if err != nil {
		t.Fatal(err)
	}
	defer managed.Close()
	for _, k := range sortedKeys(d.Groups) {
		g := d.Groups[k]
		var refs []string
		for _, id := range g.Members {
			refs = append(refs, l.dn(id))
		}
		if g.Managed {
			if _, err := managed.ApplyGroup(context.Background(), directory.GroupChange{Name: g.Name, Add: refs}); err != nil {
				t.Fatal(err)
			}
			continue
		}
		req := goldap.NewAddRequest("cn="+g.Name+","+l.GroupsDN, nil)
		req.Attribute("objectClass", []string{"groupOfNames", "top"})
		req.Attribute("cn", []string{g.Name})
		req.Attribute("member", refs)
		if err := c.Add(req); err != nil {
			t.Fatal(err)
		}
	}
}

// render reads the server back as the model renders its directory.
func (l ldapModelDir) render() ([]string, error) {
	all, err := l.open(false)
	if err != nil {
		return nil, err
	}
	defer all.Close()
	rb, err := readBackAll(all, "mail", "manager")
	return rb.render(), err
}

func TestLDAPAgreesWithTheModelWhenKilled(t *testing.T) {
	// Each scenario has directories and files of its own: these long
	// runs overlap with the other tests that allow it.
	t.Parallel()
	n := *modelLDAPScenarios
	if testing.Short() {
		n = 4
	}
	steps := map[string]int{}
	for i := range uint64(n) {
		seed := *modelSeed + 104729*i
		sc := genScenario(seed)
		if seed%2 == 1 {
			// Every other scenario, a user another tool wrote with a
			// combining accent, which the server finds equal.
			sc.respell(false, false)
		}
		sc.spec.Fold = directory.FoldCaseAndBlanks // as uid compares
		s := slapd.Start(t, slapd.Options{})
		l := ldapModelDir{URL: s.URL, BindDN: s.BindDN, Password: s.BindPassword, PeopleDN: s.PeopleDN, GroupsDN: s.GroupsDN}
		l.seed(t, s, sc.before)
		dir, err := l.open(true)
		if err != nil {
			t.Fatal(err)
		}
		cfg := sc.configAs("uid", "mail", "manager", peerOptions("uid", "businessCategory", true))
		msg := checkTarget(t, sc, modelTarget{dir: dir, cfg: cfg, render: l.render, job: workerJob{LDAP: &l, Config: cfg}}, rand.New(rand.NewPCG(seed, 3)), steps)
		dir.Close()
		s.Stop()
		if msg != "" {
			t.Fatalf("LDAP, killed: %s%s", sc, msg)
		}
	}
	t.Logf("%d scenarios, resumed after SIGKILL from %v", n, steps)
}

// Two people of the same name, in a directory whose entries are named by
// cn: the second is a line error, and the first entry keeps its uid, run
// after run.
func TestLDAPSameNameIsNeverAdopted(t *testing.T) {
	s := slapd.Start(t, slapd.Options{})
	spec := &v1alpha1.LDAPDirectory{
		URL: s.URL, BindDN: s.BindDN, UsersBaseDN: s.PeopleDN, PageSize: 50, RDNAttribute: "cn",
		BindPassword: v1alpha1.SecretKeyRef{Name: "ldap", Key: "password"},
	}
	d, err := ldapdir.New(context.Background(), spec, peerOptions("uid", "businessCategory", true),
		func(context.Context, string, string) ([]byte, error) { return []byte(s.BindPassword), nil })
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	cfg := Config{
		Mode: v1alpha1.ModeFull, MissingUsers: v1alpha1.MissingIgnore,
		Mapping: []v1alpha1.AttributeMapping{
			{Attribute: "uid", Column: "id", Identity: true, Required: true},
			{Attribute: "cn", Column: "name"},
			{Attribute: "sn", Column: "name"},
		},
		Directory: peerOptions("uid", "businessCategory", true), BatchSize: 1, Concurrency: 1,
	}
	content := "id,name\nbsmith,Bob Smith\nbsmith2,Bob Smith\n"
	for run := range 2 {
		res, rec, err := runOnce(t, d, cfg, content, false)
		if err != nil {
			t.Fatal(err)
		}
		if len(rec.errors) != 1 || rec.errors[0].Line != 3 || !strings.Contains(rec.errors[0].Msg, "another user already has this name") {
			t.Fatalf("run %d: errors %+v", run, rec.errors)
		}
		if want := int64(1 - run); res.Counts.Created != want || res.Counts.Failed != 1 || res.Counts.Updated != 0 {
			t.Fatalf("run %d: counts %+v", run, res.Counts)
		}
	}
	found, err := d.Lookup(context.Background(), []string{"bsmith", "bsmith2"}, []string{"uid"})
	if err != nil {
		t.Fatal(err)
	}
	if len(found) != 1 || found["bsmith"].ID == "" {
		t.Fatalf("found %+v: bsmith's entry must keep its uid, bsmith2 has none", found)
	}
}
