package sql

import (
	"context"
	stdsql "database/sql"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/keyread"
	"github.com/userimport/user-import-operator/internal/testpeer/postgres"
)

// One PostgreSQL server for the package; each test gets its own table.
var (
	pgShared postgres.Shared
	tableSeq atomic.Int64
)

func TestMain(m *testing.M) { pgShared.Main(m) }

func pg(t testing.TB) *postgres.Server { return pgShared.Get(t) }

var drivers = []v1alpha1.SQLDriver{v1alpha1.SQLDriverPostgres, v1alpha1.SQLDriverSQLite}

const marker = "user-import-operator"

// env is one driver with a fresh users table:
// userName (identity, unique), mail (unique), givenName, familyName,
// groups, managedBy (the marker), active.
type env struct {
	driver v1alpha1.SQLDriver
	dsn    string
	table  string
	raw    *stdsql.DB
}

func newEnv(t *testing.T, driver v1alpha1.SQLDriver) *env {
	t.Helper()
	e := &env{driver: driver, table: fmt.Sprintf("users_%d", tableSeq.Add(1))}
	switch driver {
	case v1alpha1.SQLDriverPostgres:
		e.dsn = pg(t).DSN
		cfg, err := pgx.ParseConfig(e.dsn)
		if err != nil {
			t.Fatal(err)
		}
		e.raw = stdlib.OpenDB(*cfg)
	case v1alpha1.SQLDriverSQLite:
		e.dsn = filepath.Join(t.TempDir(), "users.db")
		var err error
		if e.raw, err = stdsql.Open("sqlite", sqliteURI(e.dsn, true, "")); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { e.raw.Close() })
	e.exec(t, fmt.Sprintf(`CREATE TABLE %s (
		id_col TEXT NOT NULL UNIQUE,
		mail TEXT UNIQUE,
		"givenName" TEXT,
		"familyName" TEXT,
		groups TEXT,
		"managedBy" TEXT,
		active BOOLEAN NOT NULL DEFAULT TRUE)`, e.table))
	return e
}

func (e *env) exec(t testing.TB, q string, args ...any) {
	t.Helper()
	if e.driver == v1alpha1.SQLDriverPostgres {
		// Test queries are written with ? for both.
		for i := 1; strings.Contains(q, "?"); i++ {
			q = strings.Replace(q, "?", fmt.Sprintf("$%d", i), 1)
		}
	}
	if _, err := e.raw.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func (e *env) count(t testing.TB) int {
	t.Helper()
	var n int
	if err := e.raw.QueryRow("SELECT count(*) FROM " + e.table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func (e *env) spec() *v1alpha1.SQLDirectory {
	return &v1alpha1.SQLDirectory{
		Driver:  e.driver,
		DSN:     v1alpha1.SecretKeyRef{Name: "db", Key: "dsn"},
		Table:   e.table,
		Columns: map[string]string{"userName": "id_col"},
		// The test server speaks without TLS.
		Insecure: true,
	}
}

func defaultOpts() directory.Options {
	return directory.Options{
		IdentityAttribute: "userName",
		ManagedOnly:       true,
		MarkerAttribute:   "managedBy",
		MarkerValue:       marker,
		Concurrency:       4,
		MaxRetries:        2,
	}
}

func secretsWith(dsn string) keyread.KeyReader {
	return func(_ context.Context, name, key string) ([]byte, error) {
		if name != "db" || key != "dsn" {
			return nil, fmt.Errorf("no key %s in Secret %s", key, name)
		}
		return []byte(dsn + "\n"), nil
	}
}

func (e *env) open(t testing.TB, spec *v1alpha1.SQLDirectory, opts directory.Options) *Directory {
	t.Helper()
	d, err := New(context.Background(), spec, opts, secretsWith(e.dsn))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	if _, err := d.Check(context.Background()); err != nil {
		t.Fatalf("Check: %v", err)
	}
	return d
}

var attrNames = []string{"userName", "mail", "givenName", "familyName", "groups", "managedBy"}

func person(id string) directory.Attributes {
	return directory.Attributes{
		"userName":   {id},
		"mail":       {id + "@example.com"},
		"givenName":  {"Given " + id},
		"familyName": {"Family " + id},
		"groups":     {"staff", "team-" + id},
		"managedBy":  {marker},
	}
}

func create(id string) directory.Change {
	return directory.Change{Op: directory.OpCreate, Identity: id, Attributes: person(id)}
}

func mustApply(t testing.TB, d *Directory, changes ...directory.Change) []directory.Result {
	t.Helper()
	res, err := d.Apply(context.Background(), changes)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if len(res) != len(changes) {
		t.Fatalf("Apply returned %d results for %d changes", len(res), len(changes))
	}
	return res
}

func mustOK(t testing.TB, res []directory.Result) {
	t.Helper()
	for i, r := range res {
		if r.Err != nil {
			t.Fatalf("change %d failed: %v", i, r.Err)
		}
	}
}

func lookup(t testing.TB, d *Directory, id string) (directory.User, bool) {
	t.Helper()
	m, err := d.Lookup(context.Background(), []string{id}, attrNames)
	if err != nil {
		t.Fatalf("Lookup: %v", err)
	}
	u, ok := m[id]
	return u, ok
}

func forDrivers(t *testing.T, fn func(t *testing.T, e *env)) {
	for _, drv := range drivers {
		t.Run(string(drv), func(t *testing.T) { fn(t, newEnv(t, drv)) })
	}
}

func TestLifecycle(t *testing.T) {
	forDrivers(t, func(t *testing.T, e *env) {
		d := e.open(t, e.spec(), defaultOpts())

		res := mustApply(t, d, create("alice"), create("bob"))
		mustOK(t, res)
		if res[0].ID != "alice" || res[1].ID != "bob" {
			t.Fatalf("created IDs = %q, %q; want the identities", res[0].ID, res[1].ID)
		}
		alice, ok := lookup(t, d, "alice")
		if !ok || !alice.Active || !alice.Managed || alice.Identity != "alice" || alice.ID != "alice" {
			t.Fatalf("alice after create: %+v (found %v)", alice, ok)
		}
		if !reflect.DeepEqual(alice.Attributes, person("alice")) {
			t.Fatalf("alice's attributes = %v, want %v", alice.Attributes, person("alice"))
		}

		// Update one attribute: the others stay as they were.
		mustOK(t, mustApply(t, d, directory.Change{Op: directory.OpUpdate, Identity: "alice", ID: alice.ID,
			Attributes: directory.Attributes{"givenName": {"Alicia"}}}))
		alice, _ = lookup(t, d, "alice")
		want := person("alice")
		want["givenName"] = []string{"Alicia"}
		if !reflect.DeepEqual(alice.Attributes, want) {
			t.Fatalf("after updating givenName: %v, want %v", alice.Attributes, want)
		}
		bob, _ := lookup(t, d, "bob")
		if !reflect.DeepEqual(bob.Attributes, person("bob")) {
			t.Fatalf("bob changed by alice's update: %v", bob.Attributes)
		}

		// An attribute with no values is removed.
		mustOK(t, mustApply(t, d, directory.Change{Op: directory.OpUpdate, Identity: "alice", ID: "alice",
			Attributes: directory.Attributes{"groups": nil}}))
		alice, _ = lookup(t, d, "alice")
		if _, has := alice.Attributes["groups"]; has {
			t.Fatalf("groups still set after removing it: %v", alice.Attributes["groups"])
		}

		mustOK(t, mustApply(t, d, directory.Change{Op: directory.OpDeactivate, Identity: "alice", ID: "alice"}))
		alice, _ = lookup(t, d, "alice")
		if alice.Active {
			t.Fatal("alice active after deactivate")
		}
		if bob, _ := lookup(t, d, "bob"); !bob.Active {
			t.Fatal("bob deactivated with alice")
		}

		mustOK(t, mustApply(t, d, directory.Change{Op: directory.OpUpdate, Identity: "alice", ID: "alice", Reactivate: true}))
		alice, _ = lookup(t, d, "alice")
		if !alice.Active || alice.Attributes["givenName"][0] != "Alicia" {
			t.Fatalf("after reactivate: %+v", alice)
		}

		mustOK(t, mustApply(t, d, directory.Change{Op: directory.OpDelete, Identity: "alice", ID: "alice"}))
		if _, ok := lookup(t, d, "alice"); ok {
			t.Fatal("alice still there after delete")
		}
		if e.count(t) != 1 {
			t.Fatalf("rows after delete = %d, want 1", e.count(t))
		}
		// A replayed delete is harmless; updating a user that is gone is a
		// row error.
		res = mustApply(t, d,
			directory.Change{Op: directory.OpDelete, Identity: "alice", ID: "alice"},
			directory.Change{Op: directory.OpUpdate, Identity: "alice", ID: "alice", Attributes: directory.Attributes{"givenName": {"X"}}},
			directory.Change{Op: directory.OpDeactivate, Identity: "bob", ID: "bob"})
		if res[0].Err != nil || !directory.IsChangeError(res[1].Err) || res[2].Err != nil {
			t.Fatalf("results = %+v; want ok, row error, ok", res)
		}
		if bob, _ := lookup(t, d, "bob"); bob.Active {
			t.Fatal("bob's deactivation in the same batch as a failed update was lost")
		}
	})
}

// The probe a full import asks before it skips looking up its creates
// finds a row without the marker, or with another marker, and nothing in a
// table of managed users.
func TestHasUnmanaged(t *testing.T) {
	forDrivers(t, func(t *testing.T, e *env) {
		d := e.open(t, e.spec(), defaultOpts())
		probe := func(when string, want bool) {
			t.Helper()
			if got, err := d.HasUnmanaged(context.Background()); err != nil || got != want {
				t.Fatalf("%s: HasUnmanaged = %v, %v; want %v", when, got, err, want)
			}
		}
		probe("empty", false)
		mustOK(t, mustApply(t, d, create("carol")))
		probe("managed users only", false)
		e.exec(t, "INSERT INTO "+e.table+` (id_col, mail, "managedBy") VALUES (?, ?, ?)`, "admin", "admin@example.com", "someone-else")
		probe("another marker", true)
		e.exec(t, "DELETE FROM "+e.table+" WHERE id_col = ?", "admin")
		e.exec(t, "INSERT INTO "+e.table+` (id_col, active) VALUES (?, FALSE)`, "legacy")
		probe("no marker", true)
	})
}

func TestListManagedScope(t *testing.T) {
	forDrivers(t, func(t *testing.T, e *env) {
		e.exec(t, "INSERT INTO "+e.table+` (id_col, mail, "managedBy") VALUES (?, ?, ?)`, "admin", "admin@example.com", "someone-else")
		e.exec(t, "INSERT INTO "+e.table+` (id_col, active) VALUES (?, FALSE)`, "legacy")
		managed := e.open(t, e.spec(), defaultOpts())
		mustOK(t, mustApply(t, managed, create("carol"), create("dave")))

		list := func(d *Directory) map[string]directory.User {
			got := map[string]directory.User{}
			if err := d.List(context.Background(), attrNames, func(u directory.User) error {
				got[u.Identity] = u
				return nil
			}); err != nil {
				t.Fatalf("List: %v", err)
			}
			return got
		}
		got := list(managed)
		if len(got) != 2 || !got["carol"].Managed || !got["dave"].Managed {
			t.Fatalf("managed List = %v, want carol and dave", keys(got))
		}
		if !reflect.DeepEqual(got["carol"].Attributes, person("carol")) {
			t.Fatalf("listed attributes %v, want %v", got["carol"].Attributes, person("carol"))
		}

		opts := defaultOpts()
		opts.ManagedOnly = false
		all := list(e.open(t, e.spec(), opts))
		if len(all) != 4 {
			t.Fatalf("List of all = %v, want 4 users", keys(all))
		}
		if all["admin"].Managed || all["legacy"].Managed || !all["carol"].Managed {
			t.Fatalf("Managed flags wrong: admin %v legacy %v carol %v", all["admin"].Managed, all["legacy"].Managed, all["carol"].Managed)
		}
		if all["legacy"].Active || !all["admin"].Active {
			t.Fatal("Active flags wrong for unmanaged users")
		}
		// Lookup returns users out of scope too.
		m, err := managed.Lookup(context.Background(), []string{"admin", "carol", "nobody"}, attrNames)
		if err != nil {
			t.Fatal(err)
		}
		if len(m) != 2 || m["admin"].Managed || !m["carol"].Managed {
			t.Fatalf("Lookup = %v", m)
		}

		// An error from the callback stops the listing and is returned.
		stop := fmt.Errorf("stop")
		n := 0
		err = managed.List(context.Background(), nil, func(directory.User) error { n++; return stop })
		if err != stop || n != 1 {
			t.Fatalf("List with a failing callback: err %v after %d users", err, n)
		}
	})
}

func keys(m map[string]directory.User) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// ListValues reads the same users as List, in place: each callback sees
// the values of the attributes as asked, an attribute asked twice in both
// places, a multi-valued one split and an empty one absent.
func TestListValuesAgreesWithList(t *testing.T) {
	forDrivers(t, func(t *testing.T, e *env) {
		d := e.open(t, e.spec(), defaultOpts())
		bare := create("erin")
		bare.Attributes = directory.Attributes{"userName": {"erin"}, "managedBy": {marker}}
		mustOK(t, mustApply(t, d, create("carol"), create("dave"), bare))
		asked := []string{"mail", "groups", "givenName", "mail", "familyName"}

		listed := map[string]directory.User{}
		if err := d.List(context.Background(), asked, func(u directory.User) error {
			listed[u.Identity] = u
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		seen := 0
		if err := d.ListValues(context.Background(), asked, func(u *directory.User, vals [][]string) error {
			seen++
			want, ok := listed[u.Identity]
			if !ok || u.ID != want.ID || u.Active != want.Active || u.Managed != want.Managed || u.Attributes != nil {
				t.Errorf("ListValues gave %+v, List %+v", *u, want)
			}
			if len(vals) != len(asked) {
				t.Fatalf("%d values for %d attributes", len(vals), len(asked))
			}
			for i, a := range asked {
				if !reflect.DeepEqual(vals[i], want.Attributes[a]) && (len(vals[i]) != 0 || len(want.Attributes[a]) != 0) {
					t.Errorf("%s %s: ListValues %q, List %q", u.Identity, a, vals[i], want.Attributes[a])
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if seen != 3 || len(listed) != 3 {
			t.Fatalf("ListValues saw %d users, List %d; want 3", seen, len(listed))
		}
		if got := listed["carol"].Attributes["groups"]; !reflect.DeepEqual(got, []string{"staff", "team-carol"}) {
			t.Fatalf("carol's groups %q", got)
		}
		if _, ok := listed["erin"].Attributes["mail"]; ok {
			t.Fatal("erin's empty mail is listed")
		}
	})
}

// The writer lets the write-ahead log grow to walPages before copying it
// back into the database: with SQLite's 1,000, a million users keyed by
// e-mail address took five times as long as a million numbered ones
// (make bench BENCH=groups, without_s).
func TestSQLiteWriterCopiesTheLogBackInLargeSteps(t *testing.T) {
	e := newEnv(t, v1alpha1.SQLDriverSQLite)
	d := e.open(t, e.spec(), defaultOpts())
	var pages int
	if err := d.write.QueryRow("PRAGMA wal_autocheckpoint").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if pages != walPages {
		t.Fatalf("the writer's wal_autocheckpoint is %d pages, want %d", pages, walPages)
	}
	var mode string
	if err := d.write.QueryRow("PRAGMA journal_mode").Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode %q (%v), want wal", mode, err)
	}
}
