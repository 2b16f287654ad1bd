package sql

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/failure"
)

func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
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
			if failure.ReasonOf(err, v1alpha1.ReasonDirectoryError) != v1alpha1.ReasonSchemaMismatch {
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
		if failure.ReasonOf(err, v1alpha1.ReasonDirectoryError) != v1alpha1.ReasonSchemaMismatch || !strings.Contains(err.Error(), "title") {
			t.Fatalf("ValidateAttributes(title) = %v; want SchemaMismatch naming title", err)
		}
		_, err = d.Apply(context.Background(), []directory.Change{{Op: directory.OpCreate, Identity: "x",
			Attributes: directory.Attributes{"userName": {"x"}, "title": {"Dr"}}}})
		if failure.ReasonOf(err, v1alpha1.ReasonDirectoryError) != v1alpha1.ReasonSchemaMismatch {
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
			return failure.ReasonOf(err, v1alpha1.ReasonDirectoryError), err
		}
		defer d.Close()
		_, err = d.Check(ctx)
		return failure.ReasonOf(err, v1alpha1.ReasonDirectoryError), err
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
		if failure.ReasonOf(err, v1alpha1.ReasonDirectoryError) != v1alpha1.ReasonSecretNotFound {
			t.Fatalf("New with a missing Secret: %v; want SecretNotFound", err)
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
		if failure.ReasonOf(err, v1alpha1.ReasonDirectoryError) != v1alpha1.ReasonInvalidConfig || !strings.Contains(err.Error(), "spec.sql.insecure") {
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
