package sql

import (
	"context"
	stdsql "database/sql"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

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

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func keys(m map[string]directory.User) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestSchemaMismatch(t *testing.T) {
	forDrivers(t, func(t *testing.T, e *env) {
		check := func(spec *v1alpha1.SQLDirectory, opts directory.Options, wantIn ...string) {
			t.Helper()
			d, err := New(context.Background(), spec, opts, secretsWith(e.dsn))
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()
			_, err = d.Check(context.Background())
			if directory.ReasonOf(err) != v1alpha1.ReasonSchemaMismatch {
				t.Fatalf("Check: %v; want reason SchemaMismatch", err)
			}
			for _, w := range wantIn {
				if !strings.Contains(err.Error(), w) {
					t.Fatalf("Check error %q does not name %q", err, w)
				}
			}
		}
		spec := e.spec()
		spec.Table = "no_such_table"
		check(spec, defaultOpts(), "no_such_table")

		spec = e.spec()
		spec.Columns["mail"] = "email_address"
		check(spec, defaultOpts(), "email_address", "mail")

		spec = e.spec()
		spec.ActiveColumn = "enabled"
		check(spec, defaultOpts(), "enabled")

		opts := defaultOpts()
		opts.MarkerAttribute = "owner"
		check(e.spec(), opts, "owner")

		// The identity column must be unique for upserts.
		opts = defaultOpts()
		opts.IdentityAttribute = "givenName"
		check(e.spec(), opts, "givenName", "unique", `CREATE UNIQUE INDEX ON "`+e.table+`" ("givenName")`)

		spec = e.spec()
		spec.ActiveColumn = "mail"
		check(spec, defaultOpts(), "boolean")

		d := e.open(t, e.spec(), defaultOpts())
		if err := d.ValidateAttributes(attrNames); err != nil {
			t.Fatalf("ValidateAttributes of existing columns: %v", err)
		}
		err := d.ValidateAttributes([]string{"userName", "title"})
		if directory.ReasonOf(err) != v1alpha1.ReasonSchemaMismatch || !strings.Contains(err.Error(), "title") {
			t.Fatalf("ValidateAttributes(title) = %v; want SchemaMismatch naming title", err)
		}
		_, err = d.Apply(context.Background(), []directory.Change{{Op: directory.OpCreate, Identity: "x",
			Attributes: directory.Attributes{"userName": {"x"}, "title": {"Dr"}}}})
		if directory.ReasonOf(err) != v1alpha1.ReasonSchemaMismatch {
			t.Fatalf("Apply with an unknown attribute: %v; want SchemaMismatch", err)
		}
		if e.count(t) != 0 {
			t.Fatal("a batch with an unknown attribute wrote rows")
		}
	})
}

func TestConnectionErrors(t *testing.T) {
	ctx := context.Background()
	reason := func(drv v1alpha1.SQLDriver, dsn string) (string, error) {
		spec := &v1alpha1.SQLDirectory{Driver: drv, DSN: v1alpha1.SecretKeyRef{Name: "db", Key: "dsn"}, Table: "users", Insecure: true}
		opts := defaultOpts()
		opts.MaxRetries = 1
		d, err := New(ctx, spec, opts, secretsWith(dsn))
		if err != nil {
			return directory.ReasonOf(err), err
		}
		defer d.Close()
		_, err = d.Check(ctx)
		return directory.ReasonOf(err), err
	}

	t.Run("postgres wrong password", func(t *testing.T) {
		cfg, err := pgx.ParseConfig(pg(t).DSN)
		if err != nil {
			t.Fatal(err)
		}
		dsn := fmt.Sprintf("postgres://%s:wrong-password@127.0.0.1:%d/%s?sslmode=disable", cfg.User, cfg.Port, cfg.Database)
		r, err := reason(v1alpha1.SQLDriverPostgres, dsn)
		if r != v1alpha1.ReasonAuthenticationFailed {
			t.Fatalf("reason %s (%v); want AuthenticationFailed", r, err)
		}
		if strings.Contains(err.Error(), "wrong-password") {
			t.Fatal("the error shows the password")
		}
	})
	t.Run("postgres unreachable", func(t *testing.T) {
		// A port that was free a moment ago: nothing listens there.
		r, err := reason(v1alpha1.SQLDriverPostgres, fmt.Sprintf("postgres://u:p@127.0.0.1:%d/db?sslmode=disable", freePort(t)))
		if r != v1alpha1.ReasonUnreachable {
			t.Fatalf("reason %s (%v); want Unreachable", r, err)
		}
	})
	t.Run("postgres bad dsn", func(t *testing.T) {
		r, err := reason(v1alpha1.SQLDriverPostgres, "postgres://u:secret@127.0.0.1:notaport/db")
		if r != v1alpha1.ReasonInvalidConfig || strings.Contains(err.Error(), "secret") {
			t.Fatalf("reason %s (%v); want InvalidConfig without the password", r, err)
		}
	})
	t.Run("sqlite missing file", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "missing.db")
		r, err := reason(v1alpha1.SQLDriverSQLite, path)
		if r != v1alpha1.ReasonUnreachable {
			t.Fatalf("reason %s (%v); want Unreachable", r, err)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Fatal("Check created the missing database file")
		}
	})
	t.Run("secret missing", func(t *testing.T) {
		spec := &v1alpha1.SQLDirectory{Driver: v1alpha1.SQLDriverSQLite, DSN: v1alpha1.SecretKeyRef{Name: "other", Key: "dsn"}, Table: "users"}
		_, err := New(ctx, spec, defaultOpts(), secretsWith("x"))
		if directory.ReasonOf(err) != v1alpha1.ReasonSecretNotFound {
			t.Fatalf("New with a missing Secret: %v; want SecretNotFound", err)
		}
	})
}

func TestReplayedCreateIsHarmless(t *testing.T) {
	forDrivers(t, func(t *testing.T, e *env) {
		d := e.open(t, e.spec(), defaultOpts())
		batch := []directory.Change{create("erin"), create("frank")}
		mustOK(t, mustApply(t, d, batch...))
		// The user deactivated meanwhile, then the batch replayed after a
		// checkpoint: no duplicate, no error, the row as the batch says.
		mustOK(t, mustApply(t, d, directory.Change{Op: directory.OpDeactivate, Identity: "erin", ID: "erin"}))
		mustOK(t, mustApply(t, d, batch...))
		if n := e.count(t); n != 2 {
			t.Fatalf("rows after replay = %d, want 2", n)
		}
		erin, _ := lookup(t, d, "erin")
		if !erin.Active || !reflect.DeepEqual(erin.Attributes, person("erin")) {
			t.Fatalf("erin after replay: %+v", erin)
		}
	})
}

func TestRoundTripIsStable(t *testing.T) {
	forDrivers(t, func(t *testing.T, e *env) {
		d := e.open(t, e.spec(), defaultOpts())
		written := map[string]directory.Attributes{
			"gustav": {"userName": {"gustav"}, "mail": {"g@example.com"}, "givenName": {"Gustav Ölund"},
				"familyName": {"O'Brien \"Quote\""}, "groups": {"a", "b", "c"}, "managedBy": {marker}},
			"hanna": {"userName": {"hanna"}, "givenName": {"  spaced  "}, "managedBy": {marker}},
			"ines":  {"userName": {"ines"}, "mail": {"ines@example.com"}, "groups": {"solo"}, "managedBy": {marker}},
		}
		var batch []directory.Change
		for id, a := range written {
			batch = append(batch, directory.Change{Op: directory.OpCreate, Identity: id, Attributes: a})
		}
		mustOK(t, mustApply(t, d, batch...))
		for round := 0; round < 2; round++ {
			seen := 0
			err := d.List(context.Background(), attrNames, func(u directory.User) error {
				seen++
				if !reflect.DeepEqual(u.Attributes, written[u.Identity]) {
					t.Errorf("%s read back as %v, written as %v", u.Identity, u.Attributes, written[u.Identity])
				}
				// Writing back what was read changes nothing.
				_, err := d.Apply(context.Background(), []directory.Change{{Op: directory.OpUpdate, Identity: u.Identity, ID: u.ID, Attributes: u.Attributes}})
				return err
			})
			if err != nil || seen != len(written) {
				t.Fatalf("List: %v, %d users", err, seen)
			}
		}
	})
}

func TestConstraintViolationFailsOnlyThatRow(t *testing.T) {
	forDrivers(t, func(t *testing.T, e *env) {
		d := e.open(t, e.spec(), defaultOpts())
		mustOK(t, mustApply(t, d, create("jan")))

		dupMail := create("kim")
		dupMail.Attributes["mail"] = []string{"secret-value@example.com"}
		mustOK(t, mustApply(t, d, dupMail))

		clash := create("lea")
		clash.Attributes["mail"] = []string{"secret-value@example.com"} // taken by kim
		batch := []directory.Change{
			create("mia"),
			{Op: directory.OpUpdate, Identity: "jan", ID: "jan", Attributes: directory.Attributes{"givenName": {"Jan 2"}}},
			clash,
			{Op: directory.OpUpdate, Identity: "jan", ID: "jan", Attributes: directory.Attributes{"mail": {"secret-value@example.com"}}},
			create("noah"),
			{Op: directory.OpDeactivate, Identity: "kim", ID: "kim"},
		}
		res := mustApply(t, d, batch...)
		for i, r := range res {
			wantFail := i == 2 || i == 3
			if wantFail != (r.Err != nil) {
				t.Fatalf("change %d: err %v; want failure %v", i, r.Err, wantFail)
			}
			if !wantFail {
				continue
			}
			if !directory.IsChangeError(r.Err) {
				t.Fatalf("change %d: %T %v; want a *directory.RowError", i, r.Err, r.Err)
			}
			if !strings.Contains(r.Err.Error(), "mail") || strings.Contains(r.Err.Error(), "secret-value") {
				t.Fatalf("change %d: row error %q must name mail and not show the value", i, r.Err)
			}
		}
		for _, id := range []string{"mia", "noah"} {
			if _, ok := lookup(t, d, id); !ok {
				t.Fatalf("%s from the same batch was not created", id)
			}
		}
		if _, ok := lookup(t, d, "lea"); ok {
			t.Fatal("the clashing row was written")
		}
		jan, _ := lookup(t, d, "jan")
		if jan.Attributes["givenName"][0] != "Jan 2" || jan.Attributes["mail"][0] != "jan@example.com" {
			t.Fatalf("jan = %v; want givenName updated, mail unchanged", jan.Attributes)
		}
		if kim, _ := lookup(t, d, "kim"); kim.Active {
			t.Fatal("kim's deactivation after the failed rows was lost")
		}
	})
}

// Consecutive creates go in one statement; a row the database refuses
// among them fails alone, and the same identity twice in one batch is
// written twice, the second winning, as one statement per row would.
func TestMultiRowCreatesFailOnlyTheBadRow(t *testing.T) {
	forDrivers(t, func(t *testing.T, e *env) {
		d := e.open(t, e.spec(), defaultOpts())
		taken := create("kim")
		taken.Attributes["mail"] = []string{"taken@example.com"}
		mustOK(t, mustApply(t, d, taken))

		var batch []directory.Change
		for i := range 50 {
			batch = append(batch, create(fmt.Sprintf("u%02d", i)))
		}
		batch[20].Attributes["mail"] = []string{"taken@example.com"}
		res := mustApply(t, d, batch...)
		for i, r := range res {
			if (i == 20) != (r.Err != nil) {
				t.Fatalf("create %d: err %v", i, r.Err)
			}
		}
		for i := range 50 {
			if _, ok := lookup(t, d, fmt.Sprintf("u%02d", i)); ok == (i == 20) {
				t.Fatalf("u%02d written %v", i, ok)
			}
		}

		again := create("twice")
		again.Attributes["givenName"] = []string{"Second"}
		mustOK(t, mustApply(t, d, create("a1"), create("twice"), again, create("a2")))
		u, ok := lookup(t, d, "twice")
		if !ok || u.Attributes["givenName"][0] != "Second" {
			t.Fatalf("twice = %v, %v; want the second create's values", u.Attributes, ok)
		}
	})
}

func TestConcurrentApply(t *testing.T) {
	forDrivers(t, func(t *testing.T, e *env) {
		d := e.open(t, e.spec(), defaultOpts())
		const workers, batches, size = 8, 10, 25
		var wg sync.WaitGroup
		errs := make(chan error, workers*batches)
		for w := 0; w < workers; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for b := 0; b < batches; b++ {
					var batch []directory.Change
					for i := 0; i < size; i++ {
						batch = append(batch, create(fmt.Sprintf("w%d-b%d-u%d", w, b, i)))
					}
					// Every worker also updates the same shared users.
					res, err := d.Apply(context.Background(), batch)
					if err == nil {
						for _, r := range res {
							if r.Err != nil {
								err = r.Err
							}
						}
					}
					if err != nil {
						errs <- err
						return
					}
					if _, err := d.Lookup(context.Background(), []string{batch[0].Identity}, attrNames); err != nil {
						errs <- err
						return
					}
				}
			}(w)
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatalf("concurrent Apply: %v", err)
		}
		if n := e.count(t); n != workers*batches*size {
			t.Fatalf("rows = %d, want %d", n, workers*batches*size)
		}
	})
}

func TestBulkCreate100k(t *testing.T) {
	forDrivers(t, func(t *testing.T, e *env) {
		opts := defaultOpts()
		d := e.open(t, e.spec(), opts)
		const total, batchSize = 100_000, 500
		batches := make(chan []directory.Change)
		go func() {
			defer close(batches)
			for start := 0; start < total; start += batchSize {
				b := make([]directory.Change, 0, batchSize)
				for i := start; i < start+batchSize; i++ {
					b = append(b, create(fmt.Sprintf("user%06d", i)))
				}
				batches <- b
			}
		}()
		began := time.Now()
		var wg sync.WaitGroup
		var failed atomic.Int64
		for w := 0; w < opts.Concurrency; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for b := range batches {
					res, err := d.Apply(context.Background(), b)
					if err != nil {
						t.Errorf("Apply: %v", err)
						failed.Add(int64(len(b)))
						continue
					}
					for _, r := range res {
						if r.Err != nil {
							failed.Add(1)
						}
					}
				}
			}()
		}
		wg.Wait()
		elapsed := time.Since(began)
		if failed.Load() != 0 {
			t.Fatalf("%d creates failed", failed.Load())
		}
		t.Logf("%s: created %d users in batches of %d with %d workers in %v: %.0f rows/s",
			e.driver, total, batchSize, opts.Concurrency, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds())

		began = time.Now()
		n := 0
		if err := d.List(context.Background(), attrNames, func(u directory.User) error {
			n++
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s: listed %d users in %v", e.driver, n, time.Since(began).Round(time.Millisecond))
		if n != total || e.count(t) != total {
			t.Fatalf("listed %d, table holds %d; want %d", n, e.count(t), total)
		}
	})
}

func TestNonTextColumns(t *testing.T) {
	forDrivers(t, func(t *testing.T, e *env) {
		e.exec(t, "ALTER TABLE "+e.table+` ADD COLUMN "employeeNumber" INTEGER`)
		d := e.open(t, e.spec(), defaultOpts())
		c := create("olga")
		c.Attributes["employeeNumber"] = []string{"4711"}
		bad := create("paul")
		bad.Attributes["employeeNumber"] = []string{"not-a-number"}
		res := mustApply(t, d, c, bad)
		if res[0].Err != nil {
			t.Fatalf("integer column: %v", res[0].Err)
		}
		m, err := d.Lookup(context.Background(), []string{"olga"}, []string{"employeeNumber"})
		if err != nil {
			t.Fatal(err)
		}
		if got := m["olga"].Attributes["employeeNumber"]; !reflect.DeepEqual(got, []string{"4711"}) {
			t.Fatalf("employeeNumber read back as %v", got)
		}
		if e.driver == v1alpha1.SQLDriverPostgres {
			// SQLite stores what it is given; PostgreSQL refuses it, for
			// this row alone and without quoting it.
			if !directory.IsChangeError(res[1].Err) || strings.Contains(res[1].Err.Error(), "not-a-number") {
				t.Fatalf("a non-number in an integer column: %v; want a row error without the value", res[1].Err)
			}
		}
	})
}

// spec.execution.rateLimit paces the statements sent: with 40 a second,
// 40 rows more than the first burst take a second.
func TestRateLimit(t *testing.T) {
	forDrivers(t, func(t *testing.T, e *env) {
		opts := defaultOpts()
		opts.RateLimit = 40
		d := e.open(t, e.spec(), opts)
		batch := func(from int) []directory.Change {
			var b []directory.Change
			for i := from; i < from+40; i++ {
				b = append(b, create(fmt.Sprintf("r%03d", i)))
			}
			return b
		}
		mustOK(t, mustApply(t, d, batch(0)...)) // the burst
		start := time.Now()
		mustOK(t, mustApply(t, d, batch(40)...))
		if took := time.Since(start); took < 900*time.Millisecond {
			t.Errorf("40 rows past the burst took %v at 40 a second", took)
		}
		if n := e.count(t); n != 80 {
			t.Errorf("rows = %d, want 80", n)
		}
	})
}

// A status column in place of the boolean active column: creates and
// reactivations write the active value, deactivations the inactive one,
// and only the inactive value reads as deactivated.
func TestStatusColumn(t *testing.T) {
	forDrivers(t, func(t *testing.T, e *env) {
		e.exec(t, "ALTER TABLE "+e.table+" ADD COLUMN employment TEXT")
		spec := e.spec()
		spec.StatusColumn = &v1alpha1.SQLStatusColumn{Name: "employment", ActiveValue: "employed", InactiveValue: "left"}
		d := e.open(t, spec, defaultOpts())
		status := func(id string) any {
			t.Helper()
			q := "SELECT employment FROM " + e.table + " WHERE id_col = ?"
			if e.driver == v1alpha1.SQLDriverPostgres {
				q = strings.Replace(q, "?", "$1", 1)
			}
			var v stdsql.NullString
			if err := e.raw.QueryRow(q, id).Scan(&v); err != nil {
				t.Fatal(err)
			}
			if !v.Valid {
				return nil
			}
			return v.String
		}

		mustOK(t, mustApply(t, d, create("alice"), create("bob")))
		if s := status("alice"); s != "employed" {
			t.Fatalf("status after create = %v, want employed", s)
		}
		mustOK(t, mustApply(t, d, directory.Change{Op: directory.OpDeactivate, Identity: "alice", ID: "alice"}))
		if s := status("alice"); s != "left" {
			t.Fatalf("status after deactivate = %v, want left", s)
		}
		if alice, _ := lookup(t, d, "alice"); alice.Active {
			t.Fatal("alice reads active with status left")
		}
		if bob, _ := lookup(t, d, "bob"); !bob.Active {
			t.Fatal("bob reads deactivated")
		}
		mustOK(t, mustApply(t, d, directory.Change{Op: directory.OpUpdate, Identity: "alice", ID: "alice", Reactivate: true,
			Attributes: directory.Attributes{"givenName": {"Alicia"}}}))
		if s := status("alice"); s != "employed" {
			t.Fatalf("status after reactivate = %v, want employed", s)
		}
		// A replayed create of a deactivated user makes it active again,
		// as with the boolean column.
		mustOK(t, mustApply(t, d, directory.Change{Op: directory.OpDeactivate, Identity: "bob", ID: "bob"}))
		mustOK(t, mustApply(t, d, create("bob")))
		if s := status("bob"); s != "employed" {
			t.Fatalf("status after a create of a deactivated user = %v, want employed", s)
		}
		// Rows written by others: no status, or another one, read active.
		e.exec(t, "INSERT INTO "+e.table+` (id_col, "managedBy", employment) VALUES ('carol', ?, NULL), ('dave', ?, 'on leave')`, marker, marker)
		for _, id := range []string{"carol", "dave"} {
			if u, ok := lookup(t, d, id); !ok || !u.Active {
				t.Fatalf("%s with status %v reads deactivated", id, status(id))
			}
		}
		var inactive []string
		if err := d.List(context.Background(), attrNames, func(u directory.User) error {
			if !u.Active {
				inactive = append(inactive, u.Identity)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		if len(inactive) != 0 {
			t.Fatalf("List reads %v as deactivated", inactive)
		}

		// A missing status column is named by Check.
		spec.StatusColumn = &v1alpha1.SQLStatusColumn{Name: "contract", ActiveValue: "a", InactiveValue: "b"}
		nd, err := New(context.Background(), spec, defaultOpts(), secretsWith(e.dsn))
		if err != nil {
			t.Fatal(err)
		}
		defer nd.Close()
		if _, err := nd.Check(context.Background()); directory.ReasonOf(err) != v1alpha1.ReasonSchemaMismatch ||
			!strings.Contains(err.Error(), "contract") || !strings.Contains(err.Error(), "status column") {
			t.Fatalf("Check without the status column: %v", err)
		}
	})
}

// A PostgreSQL DSN below verify-ca is refused unless the directory says
// insecure: the password and every user could go in clear, or to a
// server nobody verified.
func TestPostgresNeedsAVerifiedServerOrInsecure(t *testing.T) {
	for _, mode := range []string{"disable", "allow", "prefer", "require"} {
		dsn := "postgres://u:p@db.example:5432/hr?sslmode=" + mode
		_, err := openPostgres(dsn, 1, nil, false)
		if directory.ReasonOf(err) != v1alpha1.ReasonInvalidConfig || !strings.Contains(err.Error(), "spec.sql.insecure") {
			t.Errorf("sslmode=%s: %v, want InvalidConfig naming spec.sql.insecure", mode, err)
		}
		if db, err := openPostgres(dsn, 1, nil, true); err != nil {
			t.Errorf("sslmode=%s with insecure: %v", mode, err)
		} else {
			db.Close()
		}
	}
	for _, mode := range []string{"verify-ca", "verify-full"} {
		db, err := openPostgres("postgres://u:p@db.example:5432/hr?sslmode="+mode, 1, nil, false)
		if err != nil {
			t.Errorf("sslmode=%s: %v", mode, err)
			continue
		}
		db.Close()
	}
}

// TestMixedBatchInOneGo writes a batch of every kind of change, with
// values COPY's text format must escape, and checks each result and row:
// on PostgreSQL it goes through COPY and the set-based statements.
func TestMixedBatchInOneGo(t *testing.T) {
	forDrivers(t, func(t *testing.T, e *env) {
		d := e.open(t, e.spec(), defaultOpts())
		for _, id := range []string{"ana", "ben", "cleo", "dan", "eve"} {
			mustOK(t, mustApply(t, d, create(id)))
		}
		mustOK(t, mustApply(t, d, directory.Change{Op: directory.OpDeactivate, Identity: "eve", ID: "eve"}))

		odd := directory.Attributes{"userName": {"fay"}, "givenName": {"tab\there, back\\slash, cr\rlf, \\N"},
			"familyName": {`\.`}, "groups": {"one\\", "two\t"}, "managedBy": {marker}}
		short := directory.Attributes{"userName": {"gil"}, "mail": {"gil@example.com"}, "managedBy": {marker}}
		batch := []directory.Change{
			{Op: directory.OpCreate, Identity: "fay", Attributes: odd},
			{Op: directory.OpUpdate, Identity: "ana", ID: "ana", Attributes: directory.Attributes{"givenName": {"Ana 2"}, "groups": nil}},
			{Op: directory.OpCreate, Identity: "gil", Attributes: short},
			{Op: directory.OpUpdate, Identity: "ben", ID: "ben", Attributes: directory.Attributes{"userName": {"benjamin"}}},
			{Op: directory.OpDeactivate, Identity: "cleo", ID: "cleo"},
			{Op: directory.OpDelete, Identity: "dan", ID: "dan"},
			{Op: directory.OpUpdate, Identity: "eve", ID: "eve", Reactivate: true},
			{Op: directory.OpUpdate, Identity: "zoe", ID: "zoe", Attributes: directory.Attributes{"givenName": {"Zoe"}}},
		}
		res := mustApply(t, d, batch...)
		wantIDs := []string{"fay", "ana", "gil", "benjamin", "cleo", "dan", "eve", ""}
		for i, r := range res {
			if i == len(res)-1 {
				if r.Err == nil || !strings.Contains(r.Err.Error(), "no such user") {
					t.Errorf("update of a missing user: %v, want no such user", r.Err)
				}
				continue
			}
			if r.Err != nil || r.ID != wantIDs[i] {
				t.Errorf("change %d (%s %s): ID %q, err %v; want ID %q", i, batch[i].Op, batch[i].Identity, r.ID, r.Err, wantIDs[i])
			}
		}

		users := map[string]directory.User{}
		err := d.List(context.Background(), attrNames, func(u directory.User) error {
			users[u.Identity] = u
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		if u := users["fay"]; !u.Active || !reflect.DeepEqual(u.Attributes, odd) {
			t.Errorf("fay read back as %+v, written as %v", u, odd)
		}
		if u := users["gil"]; !reflect.DeepEqual(u.Attributes, short) {
			t.Errorf("gil read back as %v, written as %v", u.Attributes, short)
		}
		ana := person("ana")
		ana["givenName"] = []string{"Ana 2"}
		delete(ana, "groups")
		if u := users["ana"]; !reflect.DeepEqual(u.Attributes, ana) {
			t.Errorf("ana after the update: %v, want %v", u.Attributes, ana)
		}
		if _, ok := users["ben"]; ok {
			t.Error("ben is still there after the rename")
		}
		if u, ok := users["benjamin"]; !ok || u.Attributes["mail"][0] != "ben@example.com" {
			t.Errorf("benjamin after the rename: %+v", u)
		}
		if users["cleo"].Active || !users["eve"].Active {
			t.Errorf("cleo active %v (want false), eve active %v (want true)", users["cleo"].Active, users["eve"].Active)
		}
		if _, ok := users["dan"]; ok {
			t.Error("dan is still there after the delete")
		}
		if len(users) != 6 {
			t.Errorf("%d users, want 6", len(users))
		}
	})
}

// TestBatchNamingAUserTwiceKeepsItsOrder: set-based statements cannot
// apply two changes of one user in order, so such a batch is written
// change by change.
func TestBatchNamingAUserTwiceKeepsItsOrder(t *testing.T) {
	forDrivers(t, func(t *testing.T, e *env) {
		d := e.open(t, e.spec(), defaultOpts())
		mustOK(t, mustApply(t, d, create("hal")))
		mustOK(t, mustApply(t, d,
			directory.Change{Op: directory.OpUpdate, Identity: "hal", ID: "hal", Attributes: directory.Attributes{"givenName": {"first"}}},
			directory.Change{Op: directory.OpUpdate, Identity: "hal", ID: "hal", Attributes: directory.Attributes{"givenName": {"second"}}},
		))
		if u, _ := lookup(t, d, "hal"); u.Attributes["givenName"][0] != "second" {
			t.Fatalf("givenName = %v, want the batch's last", u.Attributes["givenName"])
		}
	})
}

// TestConcurrentCreatesWithARefusedRow: batches that arrive together may
// share a transaction; a row the database refuses in one of them fails
// that row alone, and every other row of every batch is written.
func TestConcurrentCreatesWithARefusedRow(t *testing.T) {
	forDrivers(t, func(t *testing.T, e *env) {
		d := e.open(t, e.spec(), defaultOpts())
		mustOK(t, mustApply(t, d, create("taken")))
		const workers, batches, size = 8, 10, 20
		var wg sync.WaitGroup
		var mu sync.Mutex
		failed := map[string]error{}
		for w := range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for b := range batches {
					var batch []directory.Change
					for i := range size {
						c := create(fmt.Sprintf("w%d-b%d-u%d", w, b, i))
						if w == 3 && i == 7 {
							c.Attributes["mail"] = []string{"taken@example.com"}
						}
						batch = append(batch, c)
					}
					res, err := d.Apply(context.Background(), batch)
					mu.Lock()
					if err != nil {
						failed["batch"] = err
					}
					for i, r := range res {
						if r.Err != nil {
							failed[batch[i].Identity] = r.Err
						}
					}
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if len(failed) != batches {
			t.Fatalf("%d failures, want the %d rows that reuse a taken mail: %v", len(failed), batches, failed)
		}
		for id, err := range failed {
			if !strings.HasPrefix(id, "w3-") || !strings.HasSuffix(id, "-u7") || !strings.Contains(err.Error(), "already taken") {
				t.Errorf("%s: %v", id, err)
			}
		}
		if n, want := e.count(t), 1+workers*batches*size-batches; n != want {
			t.Fatalf("rows = %d, want %d", n, want)
		}
	})
}

// TestStagingSurvivesALostSession: behind a pooler that hands each
// transaction a server session of its own, temporary tables made by an
// earlier transaction are gone. Staged writes must not count on them.
func TestStagingSurvivesALostSession(t *testing.T) {
	e := newEnv(t, v1alpha1.SQLDriverPostgres)
	opts := defaultOpts()
	opts.Concurrency = 1
	d := e.open(t, e.spec(), opts)
	mustOK(t, mustApply(t, d, create("ida")))
	update := func(name string) directory.Change {
		return directory.Change{Op: directory.OpUpdate, Identity: "ida", ID: "ida", Attributes: directory.Attributes{"givenName": {name}}}
	}
	mustOK(t, mustApply(t, d, update("Ida 1")))
	// Every session of the pool loses its temporary tables.
	for range 4 {
		if _, err := d.write.ExecContext(context.Background(), "DISCARD TEMP"); err != nil {
			t.Fatal(err)
		}
	}
	mustOK(t, mustApply(t, d, update("Ida 2")))
	if u, _ := lookup(t, d, "ida"); u.Attributes["givenName"][0] != "Ida 2" {
		t.Fatalf("givenName = %v", u.Attributes["givenName"])
	}
}
