package engine

import (
	"bytes"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"path/filepath"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	sqldir "github.com/userimport/user-import-operator/internal/directory/sql"
	"github.com/userimport/user-import-operator/internal/hrgen"
	"github.com/userimport/user-import-operator/internal/testpeer/postgres"
)

// TestSQLImportOf100kRows imports a 100,000-row HR export into real
// PostgreSQL and SQLite tables through the engine, interrupts it once,
// resumes it from the checkpoint, and checks that every user is there
// once and that a second preview plans nothing.
func TestSQLImportOf100kRows(t *testing.T) {
	const rows = 100_000
	var data bytes.Buffer
	cw := csv.NewWriter(&data)
	_ = cw.Write(hrgen.Header)
	for i := 0; i < rows; i++ {
		_ = cw.Write(hrgen.Row(7, i))
	}
	cw.Flush()
	content := data.Bytes()
	sum := sha256.Sum256(content)
	sha := hex.EncodeToString(sum[:])

	pg := postgres.Start(t)
	for _, tc := range []struct {
		driver v1alpha1.SQLDriver
		dsn    string
		open   string
	}{
		{v1alpha1.SQLDriverSQLite, filepath.Join(t.TempDir(), "users.db"), "sqlite"},
		{v1alpha1.SQLDriverPostgres, pg.DSN, "pgx"},
	} {
		t.Run(string(tc.driver), func(t *testing.T) {
			ctx := context.Background()
			if err := sqldir.CreateTable(ctx, tc.driver, tc.dsn, sqldir.TableSpec{
				Table: "users", IdentityColumn: "user_name",
				Columns: []string{"email", "given_name", "family_name", "department", "title", "userImportManagedBy"},
			}); err != nil {
				t.Fatal(err)
			}
			dirSpec := v1alpha1.UserDirectorySpec{
				IdentityAttribute: "user_name",
				SQL:               &v1alpha1.SQLDirectory{Driver: tc.driver, DSN: v1alpha1.SecretKeyRef{Name: "db", Key: "dsn"}, Table: "users", Insecure: true},
				Execution:         v1alpha1.ExecutionSettings{Concurrency: 4, BatchSize: 500},
			}
			impSpec := v1alpha1.UserImportSpec{
				Mode:         v1alpha1.ModeFull,
				MissingUsers: v1alpha1.MissingDeactivate,
				Mapping: []v1alpha1.AttributeMapping{
					{Attribute: "user_name", Column: "email", Identity: true, Transforms: []v1alpha1.Transform{{Type: "Trim"}, {Type: "Lower"}}},
					{Attribute: "email", Column: "email", Check: "Email"},
					{Attribute: "given_name", Column: "first_name"},
					{Attribute: "family_name", Column: "last_name"},
					{Attribute: "department", Column: "department"},
					{Attribute: "title", Column: "title"},
				},
			}
			cfg := NewConfig(impSpec, dirSpec.Execution, directory.Options{
				IdentityAttribute: "user_name", ManagedOnly: true, Concurrency: 4,
				MarkerAttribute: "userImportManagedBy", MarkerValue: "user-import-operator",
			})
			cfg.ProgressInterval = 0
			d, err := sqldir.New(ctx, dirSpec.SQL, cfg.Directory, func(context.Context, string, string) ([]byte, error) { return []byte(tc.dsn), nil })
			if err != nil {
				t.Fatal(err)
			}
			defer d.Close()

			// Interrupted after 20 checkpoints (10,000 rows or so).
			runCtx, cancel := context.WithCancel(ctx)
			rep := &cancelAfter{n: 20, cancel: cancel}
			_, err = Run(runCtx, Input{File: bytes.NewReader(content), SHA256: sha}, d, cfg, false, rep)
			cancel()
			if !errors.Is(err, context.Canceled) {
				t.Fatalf("interrupted run: %v", err)
			}
			cp := rep.lastCheckpoint()
			if cp == nil || cp.Line < 2 {
				t.Fatalf("no checkpoint before the interruption")
			}

			res, err := Run(ctx, Input{File: bytes.NewReader(content), SHA256: sha, Resume: cp}, d, cfg, false, &recorder{})
			if err != nil {
				t.Fatalf("resumed run: %v", err)
			}
			if c := res.Counts; c.Rows != rows || c.Failed != 0 || c.Created+c.Unchanged != rows {
				t.Fatalf("resumed import counts %+v", c)
			}

			db, err := sql.Open(tc.open, tc.dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			var n, distinct int
			if err := db.QueryRow(`SELECT count(*), count(DISTINCT user_name) FROM users WHERE active`).Scan(&n, &distinct); err != nil {
				t.Fatal(err)
			}
			if n != rows || distinct != rows {
				t.Fatalf("table holds %d active users (%d distinct), want %d", n, distinct, rows)
			}

			again, err := Run(ctx, Input{File: bytes.NewReader(content), SHA256: sha}, d, cfg, true, nil)
			if err != nil {
				t.Fatal(err)
			}
			if c := again.Counts; c.Unchanged != rows || c.Created+c.Updated+c.Deactivated+c.Deleted != 0 {
				t.Fatalf("a preview after the import plans %+v", c)
			}
		})
	}
}
