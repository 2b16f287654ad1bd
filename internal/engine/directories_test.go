package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	ldapdir "github.com/userimport/user-import-operator/internal/directory/ldap"
	scimdir "github.com/userimport/user-import-operator/internal/directory/scim"
	"github.com/userimport/user-import-operator/internal/testpeer/scimserver"
	"github.com/userimport/user-import-operator/internal/testpeer/slapd"
)

// These tests run the engine against the real directories of the test
// peers (slapd, the SCIM server and PostgreSQL), seeded with managed, inactive and
// unmanaged users: the preview's counts are what the import then does,
// and an import interrupted at random checkpoints and resumed ends as an
// uninterrupted one does, with every user created once.

const peerMarker = "uio"

// seedUser is a user a directory holds before an import.
type seedUser struct {
	id, mail, title string
	active, managed bool
}

// peer is one kind of real directory: how to start a seeded server and
// open the provider on it.
type peer struct {
	name     string
	identity string // identity attribute
	mailAttr string
	marker   string // marker attribute
	// users is how many users a scenario has; SCIM is slow.
	users int
	// start starts a server holding users and returns the provider on it
	// (scope Managed) and one that reads every user (scope All).
	start func(t *testing.T, users []seedUser) (managed, all directory.Directory)
}

func peers() []peer {
	return []peer{
		{name: "LDAP", identity: "uid", mailAttr: "mail", marker: "businessCategory", users: 120, start: startLDAP},
		{name: "SCIM", identity: "userName", mailAttr: "emails", marker: scimEnterprise + ":organization", users: 40, start: startSCIM},
		{name: "PostgreSQL", identity: "uid", mailAttr: "mail", marker: "mark", users: 120, start: startPostgres},
	}
}

func peerOptions(identity, marker string, managedOnly bool) directory.Options {
	return directory.Options{IdentityAttribute: identity, ManagedOnly: managedOnly, MarkerAttribute: marker, MarkerValue: peerMarker, Concurrency: 4, MaxRetries: 3}
}

func startLDAP(t *testing.T, users []seedUser) (directory.Directory, directory.Directory) {
	t.Helper()
	_, managed, all := startLDAPServer(t, users)
	return managed, all
}

// startLDAPServer is startLDAP that also returns the server.
func startLDAPServer(t *testing.T, users []seedUser) (*slapd.Server, directory.Directory, directory.Directory) {
	t.Helper()
	return startLDAPServerWith(t, slapd.Options{}, users)
}

// startLDAPServerWith is startLDAPServer with the server's options.
func startLDAPServerWith(t *testing.T, opts slapd.Options, users []seedUser) (*slapd.Server, directory.Directory, directory.Directory) {
	t.Helper()
	s := slapd.Start(t, opts)
	c, err := s.Dial()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, u := range users {
		req := goldap.NewAddRequest(fmt.Sprintf("uid=%s,%s", u.id, s.PeopleDN), nil)
		req.Attribute("objectClass", []string{"inetOrgPerson", "organizationalPerson", "person", "top"})
		req.Attribute("uid", []string{u.id})
		req.Attribute("cn", []string{u.id})
		req.Attribute("sn", []string{u.id})
		req.Attribute("mail", []string{u.mail})
		req.Attribute("title", []string{u.title})
		if u.managed {
			req.Attribute("businessCategory", []string{peerMarker})
		}
		if !u.active {
			req.Attribute("employeeType", []string{"disabled"}) // the provider's default disable
		}
		if err := c.Add(req); err != nil {
			t.Fatalf("seeding slapd: %v", err)
		}
	}
	spec := &v1alpha1.LDAPDirectory{
		URL: s.URL, BindDN: s.BindDN, UsersBaseDN: s.PeopleDN, PageSize: 50,
		BindPassword: v1alpha1.SecretKeyRef{Name: "ldap", Key: "password"},
	}
	secrets := func(_ context.Context, name, key string) ([]byte, error) {
		if name == "ldap" && key == "password" {
			return []byte(s.BindPassword), nil
		}
		return nil, fmt.Errorf("secret %s key %s not found", name, key)
	}
	open := func(managedOnly bool) directory.Directory {
		d, err := ldapdir.New(context.Background(), spec, peerOptions("uid", "businessCategory", managedOnly), secrets)
		if err != nil {
			t.Fatalf("LDAP provider: %v", err)
		}
		t.Cleanup(func() { _ = d.Close() })
		return d
	}
	return s, open(true), open(false)
}

const scimEnterprise = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"

func startSCIM(t *testing.T, users []seedUser) (directory.Directory, directory.Directory) {
	t.Helper()
	_, managed, all := startSCIMServer(t, users)
	return managed, all
}

// startSCIMServer is startSCIM that also returns the server.
func startSCIMServer(t *testing.T, users []seedUser) (*scimserver.Server, directory.Directory, directory.Directory) {
	t.Helper()
	s := scimserver.Start(t, scimserver.Options{})
	for _, u := range users {
		res := map[string]any{
			"schemas":  []string{"urn:ietf:params:scim:schemas:core:2.0:User", scimEnterprise},
			"userName": u.id,
			"active":   u.active,
			"emails":   []map[string]any{{"value": u.mail, "type": "work", "primary": true}},
			"title":    u.title,
		}
		if u.managed {
			res[scimEnterprise] = map[string]any{"organization": peerMarker}
		}
		body, _ := json.Marshal(res)
		resp, err := http.Post(s.URL+"/Users", "application/scim+json", bytes.NewReader(body))
		if err != nil {
			t.Fatalf("seeding the SCIM server: %v", err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusCreated {
			t.Fatalf("seeding the SCIM server: POST /Users: %s", resp.Status)
		}
	}
	open := func(managedOnly bool) directory.Directory {
		d, err := scimdir.New(context.Background(), &v1alpha1.SCIMDirectory{URL: s.URL},
			peerOptions("userName", scimEnterprise+":organization", managedOnly), nil)
		if err != nil {
			t.Fatalf("SCIM provider: %v", err)
		}
		t.Cleanup(func() { _ = d.Close() })
		return d
	}
	return s, open(true), open(false)
}

// peerScenario builds the users of a directory and a file that differs
// from them: updates, new users, users missing from the file, inactive
// users in it, unmanaged users, bad rows, duplicates and status values.
func peerScenario(r *rand.Rand, n int) ([]seedUser, string) {
	var users []seedUser
	var rows []string
	titles := []string{"Dev", "Ops", "QA", "Lead", "Zoë Ünïcødé"}
	status := []string{"", "", "", "", "", "active", "INACTIVE", "deleted"}
	for i := range n {
		id := fmt.Sprintf("u%04d", i)
		if r.IntN(10) < 7 { // in the directory
			u := seedUser{id: id, mail: id + "@corp.example", title: titles[r.IntN(len(titles))], active: true, managed: true}
			switch r.IntN(15) {
			case 0:
				u.active = false
			case 1:
				u.managed = false
			}
			users = append(users, u)
		}
		if r.IntN(10) < 9 { // in the file
			switch r.IntN(40) {
			case 0:
				rows = append(rows, ","+id+"@corp.example,Dev,") // no identity
			case 1:
				rows = append(rows, id+",bad") // too few fields
			case 2:
				rows = append(rows, id+",not-an-address,Dev,") // fails the Email check
			default:
				rows = append(rows, fmt.Sprintf("%s,%s@corp.example,%s,%s", id, id, titles[r.IntN(len(titles))], status[r.IntN(len(status))]))
				if r.IntN(40) == 0 {
					rows = append(rows, rows[len(rows)-1]) // duplicate
				}
			}
		}
	}
	return users, file(rows...)
}

// peerConfig is an import configuration for p with random batches:
// kind 0-2 is full with missingUsers Ignore, Deactivate or Delete, 3 is
// delta with a status column.
func peerConfig(r *rand.Rand, p peer, opts directory.Options, kind int) Config {
	cfg := Config{
		Mapping: []v1alpha1.AttributeMapping{
			{Attribute: p.identity, Column: "id", Identity: true, Required: true},
			{Attribute: p.mailAttr, Column: "mail", Check: "Email"},
			{Attribute: "title", Column: "title"},
		},
		Directory:            opts,
		ApprovedDeprovisions: ptr(int64(1 << 30)),
		BatchSize:            1 + r.IntN(8),
		Concurrency:          1 + r.IntN(4),
	}
	if kind < 3 {
		cfg.Mode = v1alpha1.ModeFull
		cfg.MissingUsers = []v1alpha1.MissingUsersPolicy{v1alpha1.MissingIgnore, v1alpha1.MissingDeactivate, v1alpha1.MissingDelete}[kind]
	} else {
		cfg.Mode = v1alpha1.ModeDelta
		cfg.StatusColumn = &v1alpha1.StatusColumn{Column: "status", DeactivateValues: []string{"inactive"}, DeleteValues: []string{"deleted"}}
	}
	return cfg
}

// peerState renders every user of a directory (scope All) as sorted
// lines, without directory ids, for comparing two directories.
func peerState(t *testing.T, d directory.Directory, p peer) []string {
	t.Helper()
	var out []string
	err := d.List(context.Background(), []string{p.identity, p.mailAttr, "title"}, func(u directory.User) error {
		out = append(out, fmt.Sprintf("%s active=%v managed=%v mail=%v title=%v", u.Identity, u.Active, u.Managed, u.Attributes[p.mailAttr], u.Attributes["title"]))
		return nil
	})
	if err != nil {
		t.Fatalf("listing the directory: %v", err)
	}
	slices.Sort(out)
	return out
}

// duplicates returns the identities a directory holds more than once.
func duplicates(state []string) []string {
	var dup []string
	for i := 1; i < len(state); i++ {
		a, _, _ := strings.Cut(state[i-1], " ")
		b, _, _ := strings.Cut(state[i], " ")
		if a == b {
			dup = append(dup, a)
		}
	}
	return dup
}

func writes(c Counts) int64 { return c.Created + c.Updated + c.Deactivated + c.Deleted }

// TestPeersPreviewAndImportAgree: against a seeded real directory, the
// preview's counts and row errors are what the import then does, and a
// second preview finds nothing left to do.
func TestPeersPreviewAndImportAgree(t *testing.T) {
	for _, p := range peers() {
		t.Run(p.name, func(t *testing.T) {
			for s := range uint64(3) {
				r := rand.New(rand.NewPCG(s, 11))
				users, content := peerScenario(r, p.users)
				d, all := p.start(t, users)
				cfg := peerConfig(r, p, peerOptions(p.identity, p.marker, true), []int{1, 2, 3}[s])
				preview, prec, err := runOnce(t, d, cfg, content, true)
				if err != nil {
					t.Fatalf("seed %d (%s): preview: %v", s, cfg.Mode, err)
				}
				res, rec, err := runOnce(t, d, cfg, content, false)
				if err != nil {
					t.Fatalf("seed %d (%s): import: %v", s, cfg.Mode, err)
				}
				if preview.Counts != res.Counts {
					t.Errorf("seed %d (%s %s): preview counts %+v, import did %+v", s, cfg.Mode, cfg.MissingUsers, preview.Counts, res.Counts)
				}
				if !slices.Equal(prec.errorLines(), rec.errorLines()) {
					t.Errorf("seed %d: preview errors on lines %v, import on %v", s, prec.errorLines(), rec.errorLines())
				}
				if writes(res.Counts) == 0 || res.Counts.Failed == 0 {
					t.Errorf("seed %d: the scenario should both write and fail rows: %+v", s, res.Counts)
				}
				again, _, err := runOnce(t, d, cfg, content, true)
				if err != nil {
					t.Fatalf("seed %d: second preview: %v", s, err)
				}
				if writes(again.Counts) != 0 || again.Counts.Failed != res.Counts.Failed {
					t.Errorf("seed %d: after the import a preview still plans %+v", s, again.Counts)
				}
				if dup := duplicates(peerState(t, all, p)); len(dup) > 0 {
					t.Errorf("seed %d: users held twice: %v", s, dup)
				}
			}
		})
	}
}

// TestPeersResumeAfterInterruptions: an import interrupted after a random
// number of checkpoints, again and again, and resumed each time from the
// last checkpoint, leaves the directory as an uninterrupted import of
// the same file does, and creates no user twice.
func TestPeersResumeAfterInterruptions(t *testing.T) {
	for _, p := range peers() {
		t.Run(p.name, func(t *testing.T) {
			total := 0
			defer func() {
				if total < 20 {
					t.Errorf("only %d interruptions in all; the test should stop imports at 20 or more points", total)
				}
			}()
			for s := range uint64(2) {
				r := rand.New(rand.NewPCG(s, 23))
				// Hundreds of rows (fewer for the slow SCIM server): the
				// batches the workers hold when a cancel comes are still
				// written and committed, and so are the later batches
				// done by then, so an interruption moves the checkpoint
				// by a varying number of batches, and a short file could
				// finish after a few interruptions.
				users, content := peerScenario(r, max(5*p.users, 200))
				cfg := peerConfig(r, p, peerOptions(p.identity, p.marker, true), []int{1, 3}[s])
				cfg.BatchSize = 1 + r.IntN(3) // many checkpoints
				cfg.ProgressInterval = 0

				ref, refAll := p.start(t, users)
				want, _, err := runOnce(t, ref, cfg, content, false)
				if err != nil {
					t.Fatalf("seed %d: uninterrupted import: %v", s, err)
				}

				d, all := p.start(t, users)
				var cp *ResumePoint
				var res Result
				interruptions := 0
				for attempt := 0; ; attempt++ {
					if attempt > 200 {
						t.Fatalf("seed %d: the import never finished", s)
					}
					ctx, cancel := context.WithCancel(context.Background())
					rep := &cancelAfter{n: 1 + r.IntN(2), cancel: cancel}
					res, err = Run(ctx, input(content, cp), d, cfg, false, rep)
					cancel()
					if err == nil {
						break
					}
					if rep.n > 0 { // not interrupted by the test (cancelAfter, sqlite_test.go)
						t.Fatalf("seed %d: attempt %d: %v", s, attempt, err)
					}
					interruptions++
					if last := rep.lastCheckpoint(); last != nil {
						cp = last
					}
				}
				t.Logf("seed %d (%s %s): %d interruptions", s, cfg.Mode, cfg.MissingUsers, interruptions)
				total += interruptions
				got, wantState := peerState(t, all, p), peerState(t, refAll, p)
				if !slices.Equal(got, wantState) {
					t.Errorf("seed %d (%s %s, %d interruptions): directories differ\nresumed:       %v\nuninterrupted: %v",
						s, cfg.Mode, cfg.MissingUsers, interruptions, got, wantState)
				}
				if dup := duplicates(got); len(dup) > 0 {
					t.Errorf("seed %d: users created twice: %v", s, dup)
				}
				if res.Counts.Rows != want.Counts.Rows || res.Counts.Failed != want.Counts.Failed {
					t.Errorf("seed %d: resumed import counted %+v, uninterrupted %+v", s, res.Counts, want.Counts)
				}
			}
		})
	}
}

// countingLDAP counts the lookups and the probes for unmanaged users the
// engine makes.
type countingLDAP struct {
	*ldapdir.Directory
	lookups, probes atomic.Int64
}

func (c *countingLDAP) HasUnmanaged(ctx context.Context) (bool, error) {
	c.probes.Add(1)
	return c.Directory.HasUnmanaged(ctx)
}

func (c *countingLDAP) Lookup(ctx context.Context, ids, attrs []string) (map[string]directory.User, error) {
	c.lookups.Add(1)
	return c.Directory.Lookup(ctx, ids, attrs)
}

// thirtyUsersTenManaged is a file of 30 users, u0000 to u0029, the first
// 10 of them as managed users to seed a directory with, and the config
// of a full import of the file into the LDAP peer that manages only its
// own users.
func thirtyUsersTenManaged() (string, []seedUser, Config) {
	p := peers()[0]
	var rows []string
	var users []seedUser
	for i := range 30 {
		id := fmt.Sprintf("u%04d", i)
		rows = append(rows, fmt.Sprintf("%s,%s@corp.example,Dev,", id, id))
		if i < 10 {
			users = append(users, seedUser{id: id, mail: id + "@corp.example", title: "Dev", active: true, managed: true})
		}
	}
	content := "id,mail,title,status\n" + strings.Join(rows, "\n") + "\n"
	return content, users, peerConfig(rand.New(rand.NewPCG(1, 2)), p, peerOptions(p.identity, p.marker, true), 0)
}

// TestPeersLDAPCreatesLookedUpOnlyBesideUnmanagedUsers: a full import
// into an LDAP directory that holds only managed users writes its creates
// without looking them up first; beside an unmanaged user, it looks them
// up and refuses the row that would take that user over, in the preview
// and in the import alike.
func TestPeersLDAPCreatesLookedUpOnlyBesideUnmanagedUsers(t *testing.T) {
	content, users, cfg := thirtyUsersTenManaged()

	managed, _ := startLDAP(t, users)
	d := &countingLDAP{Directory: managed.(*ldapdir.Directory)}
	res, _, err := runOnce(t, d, cfg, content, false)
	if err != nil || res.Counts.Created != 20 || res.Counts.Failed != 0 {
		t.Fatalf("import beside managed users only: %+v, %v", res.Counts, err)
	}
	if n := d.lookups.Load(); n != 0 {
		t.Errorf("import beside managed users only looked up creates %d times", n)
	}

	users = append(users, seedUser{id: "u0010", mail: "u0010@corp.example", title: "Dev", active: true})
	managed, _ = startLDAP(t, users)
	d = &countingLDAP{Directory: managed.(*ldapdir.Directory)}
	for _, dry := range []bool{true, false} {
		res, rec, err := runOnce(t, d, cfg, content, dry)
		if err != nil || res.Counts.Created != 19 || res.Counts.Failed != 1 {
			t.Fatalf("dry run %v beside an unmanaged user: %+v, %v", dry, res.Counts, err)
		}
		if lines := rec.errorLines(); !slices.Equal(lines, []int64{12}) || !strings.Contains(rec.errors[0].Msg, "not managed") {
			t.Errorf("dry run %v: errors %+v, want line 12 refused as not managed", dry, rec.errors)
		}
		if dry && d.lookups.Load() == 0 {
			t.Error("preview beside an unmanaged user did not look up its creates")
		}
	}
}

// TestPeersLDAPProbesForUnmanagedUsersOnlyForCreates: the probe for users
// outside the managed scope reads the whole directory when there are
// none. A full import runs it once, when its first create needs it, and
// an import that creates no one never.
func TestPeersLDAPProbesForUnmanagedUsersOnlyForCreates(t *testing.T) {
	content, users, cfg := thirtyUsersTenManaged()
	cfg.BatchSize = 5

	managed, _ := startLDAP(t, users)
	d := &countingLDAP{Directory: managed.(*ldapdir.Directory)}
	res, _, err := runOnce(t, d, cfg, content, false)
	if err != nil || res.Counts.Created != 20 {
		t.Fatalf("import: %+v, %v", res.Counts, err)
	}
	if n := d.probes.Load(); n != 1 {
		t.Errorf("an import that creates 20 users in batches of 5 probed %d times, want once", n)
	}
	d.probes.Store(0)
	res, _, err = runOnce(t, d, cfg, content, false)
	if err != nil || res.Counts.Created != 0 || res.Counts.Unchanged != 30 {
		t.Fatalf("unchanged re-run: %+v, %v", res.Counts, err)
	}
	if n := d.probes.Load(); n != 0 {
		t.Errorf("an import that creates no one probed %d times", n)
	}
}
