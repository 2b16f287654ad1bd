package engine

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	sqldir "github.com/userimport/user-import-operator/internal/directory/sql"
	"github.com/userimport/user-import-operator/internal/testpeer/postgres"
)

// One PostgreSQL server serves every test of the package; each directory
// is a table of its own.
var (
	pgShared postgres.Shared
	pgTables atomic.Int64
)

func TestMain(m *testing.M) {
	if os.Getenv(modelWorkerEnv) != "" {
		// A worker process of the model tests (model_sql_test.go).
		os.Exit(runModelWorker())
	}
	pgShared.Main(m)
}

// startPostgres makes a users table holding users in the package's
// PostgreSQL server and returns the SQL provider on it, scope Managed and
// scope All.
func startPostgres(t *testing.T, users []seedUser) (directory.Directory, directory.Directory) {
	t.Helper()
	_, _, managed, all := startPostgresTable(t, users)
	return managed, all
}

// startPostgresTable is startPostgres that also returns the DSN and the
// table.
func startPostgresTable(t *testing.T, users []seedUser) (string, string, directory.Directory, directory.Directory) {
	t.Helper()
	ctx := context.Background()
	dsn := pgShared.Get(t).DSN
	table := fmt.Sprintf("users_%d", pgTables.Add(1))
	if err := sqldir.CreateTable(ctx, v1alpha1.SQLDriverPostgres, dsn, sqldir.TableSpec{
		Table: table, IdentityColumn: "uid", Columns: []string{"mail", "title", "mark", "invited", "code", "code_expires"},
	}); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	b := &pgx.Batch{}
	for _, u := range users {
		var mark any
		if u.managed {
			mark = peerMarker
		}
		b.Queue("INSERT INTO "+pgx.Identifier{table}.Sanitize()+" (uid, mail, title, mark, active) VALUES ($1, $2, $3, $4, $5)",
			u.id, u.mail, u.title, mark, u.active)
	}
	if err := conn.SendBatch(ctx, b).Close(); err != nil {
		t.Fatalf("seeding PostgreSQL: %v", err)
	}

	spec := &v1alpha1.SQLDirectory{Driver: v1alpha1.SQLDriverPostgres, DSN: v1alpha1.SecretKeyRef{Name: "db", Key: "dsn"}, Table: table, Insecure: true}
	secrets := func(context.Context, string, string) ([]byte, error) { return []byte(dsn), nil }
	open := func(managedOnly bool) directory.Directory {
		d, err := sqldir.New(ctx, spec, peerOptions("uid", "mark", managedOnly), secrets)
		if err != nil {
			t.Fatalf("SQL provider: %v", err)
		}
		t.Cleanup(func() { _ = d.Close() })
		return d
	}
	return dsn, table, open(true), open(false)
}

// A value the identity column's type cannot hold (an e-mail address in a
// uuid column) fails its line alone, with an error that does not quote
// it; the other rows are written, and nothing else fails.
func TestPostgresIdentityOfTheWrongTypeFailsItsLineAlone(t *testing.T) {
	ctx := context.Background()
	dsn := pgShared.Get(t).DSN
	table := fmt.Sprintf("users_%d", pgTables.Add(1))
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE TABLE "+table+" (uid uuid PRIMARY KEY, mail text, title text, mark text, active boolean NOT NULL DEFAULT true)"); err != nil {
		t.Fatal(err)
	}
	spec := &v1alpha1.SQLDirectory{Driver: v1alpha1.SQLDriverPostgres, DSN: v1alpha1.SecretKeyRef{Name: "db", Key: "dsn"}, Table: table, Insecure: true}
	d, err := sqldir.New(ctx, spec, peerOptions("uid", "mark", true), func(context.Context, string, string) ([]byte, error) { return []byte(dsn), nil })
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	cfg := testConfig(v1alpha1.ModeDelta, v1alpha1.MissingIgnore)
	cfg.Mapping[0].Attribute = "uid"
	cfg.Directory = peerOptions("uid", "mark", true)
	const leaked = "ann.lee@corp.example"
	content := "id,mail,title\n" +
		"6f1c2a7e-0d6b-4d8e-9f11-2b5d0c9a1e01,a@x.org,Dev\n" +
		leaked + ",b@x.org,Dev\n" +
		"6f1c2a7e-0d6b-4d8e-9f11-2b5d0c9a1e03,c@x.org,Ops\n"
	for _, dry := range []bool{true, false} {
		res, rec, err := runOnce(t, d, cfg, content, dry)
		if err != nil {
			t.Fatalf("dry=%v: the import failed whole: %v", dry, err)
		}
		if dry {
			// A preview cannot know that the database refuses the value.
			continue
		}
		if c := res.Counts; c.Created != 2 || c.Failed != 1 {
			t.Fatalf("dry=%v: counts %+v, want 2 created and 1 failed", dry, c)
		}
		if len(rec.errors) != 1 || rec.errors[0].Line != 3 || strings.Contains(rec.errors[0].Msg, leaked) {
			t.Fatalf("dry=%v: errors %+v, want one on line 3 without the value", dry, rec.errors)
		}
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil || n != 2 {
		t.Fatalf("%d rows in the table (%v), want 2", n, err)
	}
}
