package sql

import (
	"context"
	stdsql "database/sql"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/userimport/user-import-operator/api/v1alpha1"
)

// TableSpec describes a users table for CreateTable.
type TableSpec struct {
	// Table name, optionally schema-qualified.
	Table string
	// IdentityColumn gets a NOT NULL UNIQUE constraint.
	IdentityColumn string
	// ActiveColumn is boolean, true by default (DefaultActiveColumn when
	// empty).
	ActiveColumn string
	// Columns are further text columns (the marker column among them).
	Columns []string
	// Groups, when set, is a membership table to create too.
	Groups *v1alpha1.SQLGroups
}

// CreateTable creates a users table that the provider can write to, if it
// does not exist yet. The provider itself never creates tables (they belong
// to the user); this is for tests and the local demo. For SQLite the
// database file is created too.
func CreateTable(ctx context.Context, driver v1alpha1.SQLDriver, dsn string, spec TableSpec) error {
	var db *stdsql.DB
	switch driver {
	case v1alpha1.SQLDriverPostgres:
		cfg, err := pgx.ParseConfig(dsn)
		if err != nil {
			return fmt.Errorf("dsn: not a valid PostgreSQL connection string")
		}
		db = stdlib.OpenDB(*cfg)
	case v1alpha1.SQLDriverSQLite:
		var err error
		if db, err = stdsql.Open("sqlite", sqliteURI(dsn, true, "")); err != nil {
			return err
		}
	default:
		return fmt.Errorf("driver %q: want postgres or sqlite", driver)
	}
	defer db.Close()

	active := spec.ActiveColumn
	if active == "" {
		active = DefaultActiveColumn
	}
	defs := []string{quote(spec.IdentityColumn) + " TEXT NOT NULL UNIQUE"}
	for _, c := range spec.Columns {
		if c != spec.IdentityColumn && c != active {
			defs = append(defs, quote(c)+" TEXT")
		}
	}
	defs = append(defs, quote(active)+" BOOLEAN NOT NULL DEFAULT TRUE")
	q := "CREATE TABLE IF NOT EXISTS " + pgx.Identifier(strings.Split(spec.Table, ".")).Sanitize() +
		" (" + strings.Join(defs, ", ") + ")"
	if _, err := db.ExecContext(ctx, q); err != nil {
		return err
	}
	if g := spec.Groups; g != nil {
		q := "CREATE TABLE IF NOT EXISTS " + pgx.Identifier(strings.Split(g.Table, ".")).Sanitize() + " (" +
			quote(orDefault(g.UserColumn, "user_identity")) + " TEXT NOT NULL, " +
			quote(orDefault(g.GroupColumn, "group_name")) + " TEXT NOT NULL, " +
			quote(orDefault(g.MarkerColumn, "managed_by")) + " TEXT, " +
			"UNIQUE (" + quote(orDefault(g.GroupColumn, "group_name")) + ", " + quote(orDefault(g.UserColumn, "user_identity")) + "))"
		if _, err := db.ExecContext(ctx, q); err != nil {
			return err
		}
	}
	return nil
}
