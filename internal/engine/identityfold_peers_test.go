package engine

import (
	"context"
	stdsql "database/sql"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	ldapdir "github.com/userimport/user-import-operator/internal/directory/ldap"
	sqldir "github.com/userimport/user-import-operator/internal/directory/sql"
	"github.com/userimport/user-import-operator/internal/failure"
	"github.com/userimport/user-import-operator/internal/testpeer/samba"
)

// sqlTable makes a users table with the DDL create (the table named
// %[1]s in it) holding u0000, u0001 and u0002, managed and active, and
// returns the SQL provider on it, scope Managed and scope All, and its
// rows read without the provider ("uid title", by uid).
func sqlTable(t *testing.T, driver v1alpha1.SQLDriver, create string) (directory.Directory, directory.Directory, func() []string) {
	t.Helper()
	managed, all, rows, _ := sqlTableWithDB(t, driver, create)
	return managed, all, rows
}

// sqlTableWithDB is sqlTable that also returns a connection pool to the
// database.
func sqlTableWithDB(t *testing.T, driver v1alpha1.SQLDriver, create string) (directory.Directory, directory.Directory, func() []string, *stdsql.DB) {
	t.Helper()
	dsn := ""
	if driver == v1alpha1.SQLDriverPostgres {
		dsn = pgShared.Get(t).DSN
	}
	return sqlTableIn(t, driver, dsn, create)
}

// pgDatabase creates a database of the shared PostgreSQL server with
// the options of CREATE DATABASE (a locale), owned by the test role, and
// returns the role's DSN to it.
func pgDatabase(t *testing.T, options string) string {
	t.Helper()
	pg := pgShared.Get(t)
	name := fmt.Sprintf("uio_%d", pgTables.Add(1))
	db, err := stdsql.Open("pgx", pg.SuperuserDSN)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(fmt.Sprintf("CREATE DATABASE %s OWNER %s TEMPLATE template0 ENCODING 'UTF8' %s", name, pg.Role, options)); err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(pg.DSN)
	if err != nil {
		t.Fatal(err)
	}
	u.Path = "/" + name
	return u.String()
}

// sqlTableIn is sqlTableWithDB in the database of dsn (SQLite: a new
// file), with more users: an identity and a mail each.
func sqlTableIn(t *testing.T, driver v1alpha1.SQLDriver, dsn, create string, more ...[2]string) (directory.Directory, directory.Directory, func() []string, *stdsql.DB) {
	t.Helper()
	ctx := context.Background()
	var table, open string
	switch driver {
	case v1alpha1.SQLDriverPostgres:
		table, open = fmt.Sprintf("users_%d", pgTables.Add(1)), "pgx"
	default:
		dsn, table, open = filepath.Join(t.TempDir(), "users.db"), "users", "sqlite"
	}
	db, err := stdsql.Open(open, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	stmts := []string{fmt.Sprintf(create, table)}
	users := [][2]string{{"u0000", "u0000@corp.example"}, {"u0001", "u0001@corp.example"}, {"u0002", "u0002@corp.example"}}
	for _, u := range append(users, more...) {
		stmts = append(stmts, fmt.Sprintf("INSERT INTO %s (uid, mail, title, mark, active) VALUES ('%s', '%s', 'Dev', '%s', true)", table, u[0], u[1], peerMarker))
	}
	for _, s := range stmts {
		if _, err := db.ExecContext(ctx, s); err != nil {
			t.Fatalf("%s: %v", s, err)
		}
	}
	spec := &v1alpha1.SQLDirectory{Driver: driver, DSN: v1alpha1.SecretKeyRef{Name: "db", Key: "dsn"}, Table: table, Insecure: true}
	secrets := func(context.Context, string, string) ([]byte, error) { return []byte(dsn), nil }
	dir := func(managedOnly bool) directory.Directory {
		d, err := sqldir.New(ctx, spec, peerOptions("uid", "mark", managedOnly), secrets)
		if err != nil {
			t.Fatalf("SQL provider: %v", err)
		}
		t.Cleanup(func() { _ = d.Close() })
		return d
	}
	rows := func() []string {
		rs, err := db.QueryContext(ctx, fmt.Sprintf("SELECT uid, title FROM %s ORDER BY uid", table))
		if err != nil {
			t.Fatal(err)
		}
		defer rs.Close()
		var out []string
		for rs.Next() {
			var uid, title string
			if err := rs.Scan(&uid, &title); err != nil {
				t.Fatal(err)
			}
			out = append(out, uid+" "+title)
		}
		return out
	}
	return dir(true), dir(false), rows, db
}

// An SQL identity column that ignores case (citext in PostgreSQL, the
// collation NOCASE in SQLite) is read as the database reads it: a full
// import takes a row that spells a user in other case for that user,
// updates it under its own spelling, and deprovisions nobody; a second
// row naming it is a duplicate. Read exactly, the first row would be a
// create the database takes for the user, and the user, missing from the
// file under its own spelling, would be deleted.
func TestPeersSQLIdentityThatIgnoresCase(t *testing.T) {
	for _, tc := range []struct {
		name   string
		driver v1alpha1.SQLDriver
		create string
	}{
		{"PostgreSQL citext", v1alpha1.SQLDriverPostgres,
			"CREATE EXTENSION IF NOT EXISTS citext; CREATE TABLE %s (uid citext PRIMARY KEY, mail text, title text, mark text, active boolean NOT NULL DEFAULT true)"},
		{"SQLite NOCASE", v1alpha1.SQLDriverSQLite,
			"CREATE TABLE %s (uid TEXT COLLATE NOCASE UNIQUE NOT NULL, mail TEXT, title TEXT, mark TEXT, active BOOLEAN NOT NULL DEFAULT 1)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := peer{name: tc.name, identity: "uid", mailAttr: "mail", marker: "mark"}
			managed, all, _ := sqlTable(t, tc.driver, tc.create)
			content := "id,mail,title,status\n" +
				"U0000,u0000@corp.example,Lead,\n" + // another case, another title
				"u0001,u0001@corp.example,Dev,\n" +
				"U0001,u0001@corp.example,Ops,\n" + // the same user again
				"u0002,u0002@corp.example,Dev,\n"
			cfg := peerConfig(rand.New(rand.NewPCG(1, 2)), p, peerOptions("uid", "mark", true), 2)
			if cfg.MissingUsers != v1alpha1.MissingDelete {
				t.Fatalf("the test needs a full import that deletes, got %s", cfg.MissingUsers)
			}
			preview, _, err := runOnce(t, managed, cfg, content, true)
			if err != nil {
				t.Fatal(err)
			}
			res, rec, err := runOnce(t, managed, cfg, content, false)
			if err != nil {
				t.Fatal(err)
			}
			want := v1alpha1.ChangeCounts{Updated: 1, Unchanged: 2, Failed: 1}
			if res.Counts.ChangeCounts != want || preview.Counts.ChangeCounts != want {
				t.Errorf("preview %+v, import %+v; want %+v", preview.Counts.ChangeCounts, res.Counts.ChangeCounts, want)
			}
			if len(rec.errors) != 1 || rec.errors[0].Line != 4 || !strings.Contains(rec.errors[0].Msg, "duplicate identity") {
				t.Errorf("want line 4 a duplicate, got %+v", rec.errors)
			}
			wantState := []string{
				"u0000 active=true managed=true mail=[u0000@corp.example] title=[Lead]",
				"u0001 active=true managed=true mail=[u0001@corp.example] title=[Dev]",
				"u0002 active=true managed=true mail=[u0002@corp.example] title=[Dev]",
			}
			if state := peerState(t, all, p); !slices.Equal(state, wantState) {
				t.Fatalf("state\n%s\nwant\n%s", strings.Join(state, "\n"), strings.Join(wantState, "\n"))
			}
		})
	}
}

// A user another tool wrote with a combining accent, or with blanks
// around its identity, is named by the line that spells it so, in a
// table that compares identities exactly: the mapping reads a line's
// identity composed and trimmed, and a full import reads the table's
// alike. Compared as spelled, the user looked missing from the file and
// was deleted, and the line made a second user.
func TestSQLIdentitySpelledOtherwiseThanALineIsNamedByIt(t *testing.T) {
	for _, tc := range []struct {
		name, create string
		driver       v1alpha1.SQLDriver
	}{
		{"PostgreSQL text", "CREATE TABLE %s (uid text PRIMARY KEY, mail text, title text, mark text, active boolean NOT NULL DEFAULT true)", v1alpha1.SQLDriverPostgres},
		{"SQLite TEXT", "CREATE TABLE %s (uid TEXT UNIQUE NOT NULL, mail TEXT, title TEXT, mark TEXT, active BOOLEAN NOT NULL DEFAULT 1)", v1alpha1.SQLDriverSQLite},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dsn := ""
			if tc.driver == v1alpha1.SQLDriverPostgres {
				dsn = pgShared.Get(t).DSN
			}
			lines := "u0000,u0000@corp.example,Dev,\nu0001,u0001@corp.example,Dev,\nu0002,u0002@corp.example,Dev,\n" +
				"jose\u0301,jose@corp.example,Lead,\n" + // read composed
				" ann ,ann@corp.example,Lead,\n" // read trimmed
			importFullIntoSQL(t, tc.driver, dsn, tc.create, [][2]string{{"jose\u0301", "jose@corp.example"}, {" ann ", "ann@corp.example"}},
				lines, v1alpha1.ChangeCounts{Updated: 2, Unchanged: 3}, []string{
					" ann  active=true managed=true mail=[ann@corp.example] title=[Lead]",
					"jose\u0301 active=true managed=true mail=[jose@corp.example] title=[Lead]",
					"u0000 active=true managed=true mail=[u0000@corp.example] title=[Dev]",
					"u0001 active=true managed=true mail=[u0001@corp.example] title=[Dev]",
					"u0002 active=true managed=true mail=[u0002@corp.example] title=[Dev]",
				})
		})
	}
}

// Where two users read alike once composed and trimmed, a line names the
// one the directory itself finds equal to it: in a column that ignores
// the case of A to Z, "josé" names "JOSé", not "jose" with a combining
// accent, which another tool wrote and the column tells apart (and which
// is not missing from the file either). Taken as naming neither, the
// line was a create that the table applied to "JOSé", and "JOSé",
// missing from the file, was deleted.
func TestALineNamesTheUserTheDirectoryFindsEqualAmongUsersThatReadAlike(t *testing.T) {
	lines := "u0000,u0000@corp.example,Dev,\nu0001,u0001@corp.example,Dev,\nu0002,u0002@corp.example,Dev,\n" +
		"jos\u00e9,jose@corp.example,Lead,\n"
	importFullIntoSQL(t, v1alpha1.SQLDriverSQLite, "",
		"CREATE TABLE %s (uid TEXT COLLATE NOCASE UNIQUE NOT NULL, mail TEXT, title TEXT, mark TEXT, active BOOLEAN NOT NULL DEFAULT 1)",
		[][2]string{{"JOS\u00e9", "jose@corp.example"}, {"jose\u0301", "jose2@corp.example"}},
		lines, v1alpha1.ChangeCounts{Updated: 1, Unchanged: 3}, []string{
			"JOS\u00e9 active=true managed=true mail=[jose@corp.example] title=[Lead]",
			"jose\u0301 active=true managed=true mail=[jose2@corp.example] title=[Dev]",
			"u0000 active=true managed=true mail=[u0000@corp.example] title=[Dev]",
			"u0001 active=true managed=true mail=[u0001@corp.example] title=[Dev]",
			"u0002 active=true managed=true mail=[u0002@corp.example] title=[Dev]",
		})
}

// Two users of a table that compares exactly whose identities read alike
// composed and trimmed (another tool wrote one person twice) are both
// named by a line that spells them so: the line updates the one the
// table finds equal to it, or creates its user when the table finds
// neither, and neither is deprovisioned as missing from the file.
func TestUsersThatReadAlikeAreNotDeprovisioned(t *testing.T) {
	lines := "u0000,u0000@corp.example,Dev,\nu0001,u0001@corp.example,Lead,\nu0002,u0002@corp.example,Dev,\n" +
		"ann,ann@corp.example,Lead,\n"
	importFullIntoSQL(t, v1alpha1.SQLDriverSQLite, "",
		"CREATE TABLE %s (uid TEXT UNIQUE NOT NULL, mail TEXT, title TEXT, mark TEXT, active BOOLEAN NOT NULL DEFAULT 1)",
		[][2]string{{" u0001", "u0001@corp.example"}, {"ann ", "ann@corp.example"}, {" ann", "ann@corp.example"}},
		lines, v1alpha1.ChangeCounts{Created: 1, Updated: 1, Unchanged: 2}, []string{
			" ann active=true managed=true mail=[ann@corp.example] title=[Dev]",
			" u0001 active=true managed=true mail=[u0001@corp.example] title=[Dev]",
			"ann  active=true managed=true mail=[ann@corp.example] title=[Dev]",
			"ann active=true managed=true mail=[ann@corp.example] title=[Lead]",
			"u0000 active=true managed=true mail=[u0000@corp.example] title=[Dev]",
			"u0001 active=true managed=true mail=[u0001@corp.example] title=[Lead]",
			"u0002 active=true managed=true mail=[u0002@corp.example] title=[Dev]",
		})
}

// An identity column whose unique index compares as only PostgreSQL's
// ICU library knows (a nondeterministic collation), or a citext column in
// a database whose lower() lowers I to a dotless ı, is refused before
// anything is written, with an error that names the column and why.
func TestPostgresIdentityThatCannotBeFollowedIsRefused(t *testing.T) {
	for _, tc := range []struct{ name, database, create, why string }{
		{name: "nondeterministic collation",
			create: "CREATE COLLATION IF NOT EXISTS ignore_case (provider = icu, locale = 'und-u-ks-level2', deterministic = false); " +
				"CREATE TABLE %s (uid text COLLATE ignore_case PRIMARY KEY, mail text, title text, mark text, active boolean NOT NULL DEFAULT true)",
			why: "collation ignore_case"},
		{name: "citext in Turkish", database: "LOCALE 'C.UTF-8' LOCALE_PROVIDER icu ICU_LOCALE 'tr'",
			create: "CREATE EXTENSION IF NOT EXISTS citext; CREATE TABLE %s (uid citext PRIMARY KEY, mail text, title text, mark text, active boolean NOT NULL DEFAULT true)",
			why:    "dotless ı"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dsn := pgShared.Get(t).DSN
			if tc.database != "" {
				dsn = pgDatabase(t, tc.database)
			}
			managed, _, rows, _ := sqlTableIn(t, v1alpha1.SQLDriverPostgres, dsn, tc.create)
			p := peer{identity: "uid", mailAttr: "mail", marker: "mark"}
			cfg := peerConfig(rand.New(rand.NewPCG(1, 2)), p, peerOptions("uid", "mark", true), 2)
			_, _, err := runOnce(t, managed, cfg, "id,mail,title,status\nU0000,u0000@corp.example,Lead,\n", false)
			var f *failure.Error
			if !errors.As(err, &f) || f.Reason != v1alpha1.ReasonSchemaMismatch ||
				!strings.Contains(err.Error(), "column uid of table") || !strings.Contains(err.Error(), tc.why) {
				t.Fatalf("want SchemaMismatch naming column uid and %q, got %v", tc.why, err)
			}
			if got, want := rows(), []string{"u0000 Dev", "u0001 Dev", "u0002 Dev"}; !slices.Equal(got, want) {
				t.Fatalf("rows %q, want %q", got, want)
			}
		})
	}
}

// LDAP and Active Directory read a run of blanks inside an identity as
// one, and LDAP compares identities in Unicode's compatibility form: a
// full import takes "ANN   LEE" for the user "ann lee", and "José"
// (composed, as the mapping reads every value) for the user "jose" and a
// combining accent that another tool wrote; it keeps them and creates
// nobody. Compared as written, the line was a create the server refused
// as that user's name, and the user, missing from the file, was deleted.
func TestLDAPAnIdentitySpelledOtherwiseNamesItsUser(t *testing.T) {
	for _, tc := range []struct{ name, user, line string }{
		{"a run of blanks", "ann lee", "ANN   LEE"},
		{"another Unicode form", "jose\u0301", "Jos\u00e9"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			users := []seedUser{
				{id: tc.user, mail: "ann@corp.example", title: "Dev", active: true, managed: true},
				{id: "bob", mail: "bob@corp.example", title: "Dev", active: true, managed: true},
			}
			p := peers()[0]
			managed, all := p.start(t, users)
			cfg := peerConfig(rand.New(rand.NewPCG(1, 2)), p, peerOptions(p.identity, p.marker, true), 2)
			if cfg.MissingUsers != v1alpha1.MissingDelete {
				t.Fatalf("the test needs a full import that deletes, got %s", cfg.MissingUsers)
			}
			content := "id,mail,title,status\n" + tc.line + ",ann@corp.example,Lead,\nbob,bob@corp.example,Dev,\n"
			state := []string{
				tc.user + " active=true managed=true mail=[ann@corp.example] title=[Lead]",
				"bob active=true managed=true mail=[bob@corp.example] title=[Dev]",
			}
			slices.Sort(state)
			importCleanly(t, managed, all, p, cfg, content, v1alpha1.ChangeCounts{Updated: 1, Unchanged: 1}, state)
		})
	}
}

// A server may compare identities by any case mapping: the SCIM test
// server's unique userName lowers as JavaScript does, a final "Σ" to
// "ς", and Active Directory upper-cases letter by letter. A line that
// spells the user "ΟΔΟΣ" as "οδος" names that user: lowered one letter
// to one, the two read apart, and the line was a create the server
// refused as that user's name, and the user, missing from the file, was
// deleted.
func TestAnIdentityTheServerFindsEqualNamesItsUser(t *testing.T) {
	ad := peer{name: "Active Directory", identity: "sAMAccountName", mailAttr: "mail", marker: "businessCategory", start: startAD}
	for _, tc := range []struct {
		name       string
		p          peer
		user, line string
	}{
		{"SCIM, a final sigma", peers()[1], "ΟΔΟΣ", "οδος"},
		{"SCIM, a sharp s", peers()[1], "STRASSE", "straße"},
		{"Active Directory, a final sigma", ad, "ΟΔΟΣ", "οδος"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			users := []seedUser{
				{id: tc.user, mail: "ann@corp.example", title: "Dev", active: true, managed: true},
				{id: "bob", mail: "bob@corp.example", title: "Dev", active: true, managed: true},
			}
			managed, all := tc.p.start(t, users)
			cfg := peerConfig(rand.New(rand.NewPCG(1, 2)), tc.p, peerOptions(tc.p.identity, tc.p.marker, true), 2)
			if cfg.MissingUsers != v1alpha1.MissingDelete {
				t.Fatalf("the test needs a full import that deletes, got %s", cfg.MissingUsers)
			}
			content := "id,mail,title,status\n" + tc.line + ",ann@corp.example,Lead,\nbob,bob@corp.example,Dev,\n"
			state := []string{
				"bob active=true managed=true mail=[bob@corp.example] title=[Dev]",
				tc.user + " active=true managed=true mail=[ann@corp.example] title=[Lead]",
			}
			slices.Sort(state)
			importCleanly(t, managed, all, tc.p, cfg, content, v1alpha1.ChangeCounts{Updated: 1, Unchanged: 1}, state)
		})
	}
}

// startAD starts a Samba AD DC holding users (their cn their identity)
// and opens the provider on it with the spec an AD administrator writes.
func startAD(t *testing.T, users []seedUser) (directory.Directory, directory.Directory) {
	t.Helper()
	dc := samba.Start(t)
	open := func(managedOnly bool) directory.Directory {
		d, err := ldapdir.New(context.Background(), dc.Spec(), peerOptions("sAMAccountName", "businessCategory", managedOnly), dc.Secrets())
		if err != nil {
			t.Fatalf("AD provider: %v", err)
		}
		t.Cleanup(func() { _ = d.Close() })
		return d
	}
	all := open(false)
	for _, u := range users {
		attrs := directory.Attributes{"sAMAccountName": {u.id}, "cn": {u.id}, "sn": {u.id}, "mail": {u.mail}, "title": {u.title}}
		if u.managed {
			attrs["businessCategory"] = []string{peerMarker}
		}
		res, err := all.Apply(context.Background(), []directory.Change{{Op: directory.OpCreate, Line: 2, Identity: u.id, Attributes: attrs}})
		if err == nil {
			err = res[0].Err
		}
		if err != nil {
			t.Fatalf("seeding the DC: %v", err)
		}
	}
	return open(true), all
}

// importFullIntoSQL imports lines (after the header) into a table made
// by create, holding u0000 to u0002 and the users seeds (identity and
// mail), with a full import that deletes the users missing from the
// file, and fails the test unless it counts want and leaves state.
func importFullIntoSQL(t *testing.T, driver v1alpha1.SQLDriver, dsn, create string, seeds [][2]string, lines string, want v1alpha1.ChangeCounts, state []string) {
	t.Helper()
	p := peer{name: string(driver), identity: "uid", mailAttr: "mail", marker: "mark"}
	managed, all, _, _ := sqlTableIn(t, driver, dsn, create, seeds...)
	cfg := peerConfig(rand.New(rand.NewPCG(1, 2)), p, peerOptions("uid", "mark", true), 2)
	if cfg.MissingUsers != v1alpha1.MissingDelete {
		t.Fatalf("the test needs a full import that deletes, got %s", cfg.MissingUsers)
	}
	importCleanly(t, managed, all, p, cfg, "id,mail,title,status\n"+lines, want, state)
}

// importCleanly imports content into managed and fails the test unless
// the import counts want, with no line in error, and leaves all (the
// same directory, scope All) as state says (see peerState).
func importCleanly(t *testing.T, managed, all directory.Directory, p peer, cfg Config, content string, want v1alpha1.ChangeCounts, state []string) {
	t.Helper()
	res, rec, err := runOnce(t, managed, cfg, content, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.Counts.ChangeCounts != want || len(rec.errors) != 0 {
		t.Errorf("counts %+v, errors %+v; want %+v and none", res.Counts.ChangeCounts, rec.errors, want)
	}
	if got := peerState(t, all, p); !slices.Equal(got, state) {
		t.Fatalf("state\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(state, "\n"))
	}
}

// A delta import finds a user under every spelling the directory folds
// alike, as the directory itself finds it: the line updates or deletes
// that user; it is not a create that the directory applies to the user.
func TestPeersDeltaFindsAUserSpelledAsTheDirectoryFolds(t *testing.T) {
	for _, tc := range []struct {
		name    string
		driver  v1alpha1.SQLDriver // none: LDAP
		create  string
		spelled [2]string // u0000 and u0002 as the lines spell them
	}{
		{"LDAP", "", "", [2]string{"U0000", "u0002"}},
		{"PostgreSQL citext", v1alpha1.SQLDriverPostgres,
			"CREATE EXTENSION IF NOT EXISTS citext; CREATE TABLE %s (uid citext PRIMARY KEY, mail text, title text, mark text, active boolean NOT NULL DEFAULT true)",
			[2]string{"U0000", "U0002"}},
		{"SQLite NOCASE", v1alpha1.SQLDriverSQLite,
			"CREATE TABLE %s (uid TEXT COLLATE NOCASE UNIQUE NOT NULL, mail TEXT, title TEXT, mark TEXT, active BOOLEAN NOT NULL DEFAULT 1)",
			[2]string{"U0000", "U0002"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := peer{name: tc.name, identity: "uid", mailAttr: "mail", marker: "mark"}
			var managed, all directory.Directory
			ids := [3]string{"u0000", "u0001", "u0002"}
			if tc.driver == "" {
				p = peers()[0]
				ids = [3]string{"ann lee", "bob", "cid lee"}
				tc.spelled = [2]string{"ANN   LEE", "Cid\u00a0Lee"}
				var users []seedUser
				for _, id := range ids {
					users = append(users, seedUser{id: id, mail: strings.ReplaceAll(id, " ", ".") + "@corp.example", title: "Dev", active: true, managed: true})
				}
				managed, all = p.start(t, users)
			} else {
				managed, all, _ = sqlTable(t, tc.driver, tc.create)
			}
			mail := func(id string) string { return strings.ReplaceAll(id, " ", ".") + "@corp.example" }
			content := "id,mail,title,status\n" +
				tc.spelled[0] + "," + mail(ids[0]) + ",Lead,\n" +
				tc.spelled[1] + "," + mail(ids[2]) + ",Dev,deleted\n"
			cfg := peerConfig(rand.New(rand.NewPCG(1, 2)), p, peerOptions(p.identity, p.marker, true), 3)
			importCleanly(t, managed, all, p, cfg, content, v1alpha1.ChangeCounts{Updated: 1, Deleted: 1}, []string{
				ids[0] + " active=true managed=true mail=[" + mail(ids[0]) + "] title=[Lead]",
				ids[1] + " active=true managed=true mail=[" + mail(ids[1]) + "] title=[Dev]",
			})
		})
	}
}

// The fold an SQL directory reports for its identity column agrees with
// the database's own comparison of that column's type, spelling by
// spelling: citext lowers "Ë" only where the database's locale does.
func TestSQLIdentityFoldAgreesWithTheDatabase(t *testing.T) {
	pairs := [][2]string{{"U0000", "u0000"}, {"ZOË", "zoë"}, {"Ünal", "ünal"}, {"ann lee", "ann  lee"}, {"bob ", "bob"}, {"ǅ", "ǆ"},
		{"İLKER", "i\u0307lker"}, {"ΟΔΟΣ", "οδος"}, {"ΟΔΟΣ", "οδοσ"}, {"STRAẞE", "straße"}}
	const citext = "CREATE EXTENSION IF NOT EXISTS citext; CREATE TABLE %s (uid citext PRIMARY KEY, mail text, title text, mark text, active boolean NOT NULL DEFAULT true)"
	for _, tc := range []struct {
		name, create, equal string
		driver              v1alpha1.SQLDriver
		// database, for PostgreSQL, creates a database with these
		// options; the server's own is in the locale C.
		database string
	}{
		// citext lowers as the database's collation does: the C
		// library's one letter to one, or ICU's full mapping.
		{name: "PostgreSQL citext, database in C.UTF-8", create: citext, equal: "SELECT $1::citext = $2::citext",
			driver: v1alpha1.SQLDriverPostgres, database: "LOCALE 'C.UTF-8'"},
		{name: "PostgreSQL citext, database in ICU", create: citext, equal: "SELECT $1::citext = $2::citext",
			driver: v1alpha1.SQLDriverPostgres, database: "LOCALE 'C.UTF-8' LOCALE_PROVIDER icu ICU_LOCALE 'und'"},
		{name: "PostgreSQL citext", create: citext, equal: "SELECT $1::citext = $2::citext", driver: v1alpha1.SQLDriverPostgres},
		// citext lowers under the database's collation whatever the
		// column's (here C, which lowers A to Z only, where ICU would
		// lower every letter).
		{name: "PostgreSQL citext under a collation of its own",
			create: `CREATE EXTENSION IF NOT EXISTS citext; CREATE TABLE %s (uid citext COLLATE "und-x-icu" PRIMARY KEY, mail text, title text, mark text, active boolean NOT NULL DEFAULT true)`,
			equal:  `SELECT $1::citext COLLATE "und-x-icu" = $2::citext`, driver: v1alpha1.SQLDriverPostgres},
		{name: "PostgreSQL text",
			create: "CREATE TABLE %s (uid text PRIMARY KEY, mail text, title text, mark text, active boolean NOT NULL DEFAULT true)",
			equal:  "SELECT $1::text = $2::text", driver: v1alpha1.SQLDriverPostgres},
		{name: "SQLite NOCASE",
			create: "CREATE TABLE %s (uid TEXT COLLATE NOCASE UNIQUE NOT NULL, mail TEXT, title TEXT, mark TEXT, active BOOLEAN NOT NULL DEFAULT 1)",
			equal:  "SELECT ? = ? COLLATE NOCASE", driver: v1alpha1.SQLDriverSQLite},
		{name: "SQLite RTRIM",
			create: "CREATE TABLE %s (uid TEXT COLLATE RTRIM UNIQUE NOT NULL, mail TEXT, title TEXT, mark TEXT, active BOOLEAN NOT NULL DEFAULT 1)",
			equal:  "SELECT ? = ? COLLATE RTRIM", driver: v1alpha1.SQLDriverSQLite},
		{name: "SQLite TEXT",
			create: "CREATE TABLE %s (uid TEXT UNIQUE NOT NULL, mail TEXT, title TEXT, mark TEXT, active BOOLEAN NOT NULL DEFAULT 1)",
			equal:  "SELECT ? = ?", driver: v1alpha1.SQLDriverSQLite},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var managed directory.Directory
			var query *stdsql.DB
			if tc.database != "" {
				managed, _, _, query = sqlTableIn(t, tc.driver, pgDatabase(t, tc.database), tc.create)
			} else {
				managed, _, _, query = sqlTableWithDB(t, tc.driver, tc.create)
			}
			fold, err := managed.(directory.IdentityFolder).IdentityFold(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range pairs {
				var equal bool
				if err := query.QueryRowContext(context.Background(), tc.equal, p[0], p[1]).Scan(&equal); err != nil {
					t.Fatal(err)
				}
				folded := p[0] == p[1] || fold != nil && fold(p[0]) == fold(p[1])
				if folded != equal {
					t.Errorf("%q and %q: the database finds them equal: %v; the directory's fold: %v", p[0], p[1], equal, folded)
				}
			}
		})
	}
}
