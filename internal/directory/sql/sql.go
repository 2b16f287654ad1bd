// Package sql is the directory provider for a table of users in a
// PostgreSQL (pgx) or SQLite (pure-Go modernc.org/sqlite) database.
//
// The table belongs to the user; the provider never creates or alters it
// (CreateTable exists for tests and the local demo). One row is one user:
//
//   - every attribute is stored in the column of its name, or in the column
//     that spec.columns maps it to;
//   - the identity attribute's column must carry a single-column unique
//     constraint (creates are upserts on it, so a replayed create after a
//     checkpoint is harmless); a user's ID is its identity value;
//   - spec.activeColumn (default "active") is a boolean column, false for a
//     deactivated user (NULL reads as active); or spec.statusColumn is a
//     column whose inactiveValue marks a deactivated user (any other
//     value, NULL included, reads as active), compared as text;
//   - the marker attribute is a column holding the marker value on the
//     rows that imports manage.
//
// Values are read as text and written as text parameters. A multi-valued
// attribute is stored as its values joined with a newline ("\n"), and read
// back split on newlines; an attribute with no values is stored as NULL, and
// a NULL or empty column reads as an attribute with no values (absent from
// User.Attributes). A single value that itself contains a newline therefore
// reads back as several values.
//
// Identifiers are always quoted, so table and column names are used
// exactly as written (case-sensitive on PostgreSQL). SQL text never holds a
// value: values are bound as parameters.
package sql

import (
	"context"
	stdsql "database/sql"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"golang.org/x/time/rate"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/credentials"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/failure"
	"github.com/userimport/user-import-operator/internal/keyread"
)

// Separator joins the values of a multi-valued attribute in its column.
const Separator = "\n"

// DefaultActiveColumn is the active column when spec.activeColumn is empty.
const DefaultActiveColumn = "active"

// Directory is a table of users. It is safe for concurrent use.
type Directory struct {
	d       dialect
	read    *stdsql.DB // queries
	write   *stdsql.DB // transactions of Apply; the same as read on PostgreSQL
	table   []string   // table name, split at the schema dot
	qtable  string     // quoted table name
	columns map[string]string
	active  string                    // the active or status column
	status  *v1alpha1.SQLStatusColumn // nil: active is a boolean column
	opts    directory.Options
	groups  *groupTable // nil without spec.groups
	// limiter paces the statements sent (a query, or one row written);
	// nil without a rate limit.
	limiter *rate.Limiter

	mu     sync.Mutex
	schema *schema // loaded by the first Check, List, Lookup or ValidateAttributes

	// A batch repeats a few sets of attributes: their validation and the
	// SQL of their upserts are computed once.
	validated sync.Map // attribute set → *schema it was validated against
	upserts   sync.Map // column set → *upsert
	prepared  sync.Map // query → *stdsql.Stmt on write (SQLite)

	// staged is the staging table of stagedFor (PostgreSQL).
	staged    *stage
	stagedFor *schema
	creates   groupWriter[*stagedBatch] // PostgreSQL: batches of creates
	txs       groupWriter[*stmtBatch]   // SQLite: batches of statements
}

var _ directory.Directory = (*Directory)(nil)

// New opens the database named by the DSN in the spec's Secret. It does not
// connect: Check does, and reports what is wrong.
func New(ctx context.Context, spec *v1alpha1.SQLDirectory, opts directory.Options, secrets keyread.KeyReader) (*Directory, error) {
	if spec == nil {
		return nil, failure.Errorf(v1alpha1.ReasonInvalidConfig, "spec.sql is not set")
	}
	if opts.IdentityAttribute == "" {
		return nil, failure.Errorf(v1alpha1.ReasonInvalidConfig, "no identity attribute")
	}
	if opts.ManagedOnly && opts.MarkerAttribute == "" {
		return nil, failure.Errorf(v1alpha1.ReasonInvalidConfig, "managed scope needs a marker attribute")
	}
	if spec.Table == "" {
		return nil, failure.Errorf(v1alpha1.ReasonInvalidConfig, "spec.sql.table is empty")
	}
	table := strings.Split(spec.Table, ".")
	if len(table) > 2 {
		return nil, failure.Errorf(v1alpha1.ReasonInvalidConfig, "spec.sql.table %q: at most one schema qualifier", spec.Table)
	}
	raw, err := credentials.SecretValue(ctx, secrets, "spec.sql.dsn", spec.DSN)
	if err != nil {
		return nil, err
	}
	dsn := strings.TrimSpace(string(raw))
	if dsn == "" {
		return nil, failure.Errorf(v1alpha1.ReasonInvalidConfig, "dsn: key %q of Secret %q is empty", spec.DSN.Key, spec.DSN.Name)
	}

	dir := &Directory{
		table:   table,
		qtable:  pgx.Identifier(table).Sanitize(),
		columns: spec.Columns,
		active:  spec.ActiveColumn,
		opts:    opts,
	}
	if spec.StatusColumn != nil {
		if spec.ActiveColumn != "" {
			return nil, failure.Errorf(v1alpha1.ReasonInvalidConfig, "spec.sql: set activeColumn or statusColumn, not both")
		}
		dir.active, dir.status = spec.StatusColumn.Name, spec.StatusColumn
	}
	if dir.active == "" {
		dir.active = DefaultActiveColumn
	}
	if dir.groups, err = newGroupTable(spec.Groups); err != nil {
		return nil, err
	}
	if opts.RateLimit > 0 {
		dir.limiter = rate.NewLimiter(rate.Limit(opts.RateLimit), opts.RateLimit)
	}
	conc := opts.Concurrency
	if conc < 1 {
		conc = 1
	}
	switch spec.Driver {
	case v1alpha1.SQLDriverPostgres:
		dir.d = postgresDialect{}
		dir.creates.writers = min(conc, 2)
		dir.read, err = openPostgres(dsn, conc, opts.DialControl, spec.Insecure)
		dir.write = dir.read
	case v1alpha1.SQLDriverSQLite:
		dir.d = sqliteDialect{}
		dir.read, dir.write, err = openSQLite(dsn, conc)
	default:
		return nil, failure.Errorf(v1alpha1.ReasonInvalidConfig, "spec.sql.driver %q: want postgres or sqlite", spec.Driver)
	}
	if err != nil {
		return nil, err
	}
	return dir, nil
}

// Close releases the database connections.
func (s *Directory) Close() error {
	var err error
	s.prepared.Range(func(_, p any) bool {
		err = errors.Join(err, p.(*stdsql.Stmt).Close())
		return true
	})
	err = errors.Join(err, s.read.Close())
	if s.write != s.read {
		err = errors.Join(err, s.write.Close())
	}
	return err
}

// activeWhat names the column that says whether a user is active, for
// messages.
func (s *Directory) activeWhat() string {
	if s.status != nil {
		return "status column"
	}
	return "active column"
}

// isActive reads the active or status column of a row: only false, or
// the inactive value, deactivates.
func (s *Directory) isActive(active stdsql.NullBool, status stdsql.NullString) bool {
	if s.status != nil {
		return !status.Valid || status.String != s.status.InactiveValue
	}
	return !active.Valid || active.Bool
}

// activeValue is the SQL for setting the active or status column: a
// boolean literal, or the status value as one more parameter.
func (s *Directory) activeValue(active bool, args []any) (string, []any) {
	if s.status == nil {
		if active {
			return "TRUE", args
		}
		return "FALSE", args
	}
	v := s.status.InactiveValue
	if active {
		v = s.status.ActiveValue
	}
	args = append(args, v)
	return s.d.placeholder(len(args)), args
}

// column is the column of an attribute.
func (s *Directory) column(attr string) string {
	if c, ok := s.columns[attr]; ok && c != "" {
		return c
	}
	return attr
}

func (s *Directory) identityColumn() string { return s.column(s.opts.IdentityAttribute) }

// attributeOf names a column for an error message: the attribute that maps
// to it, with the column when they differ.
func (s *Directory) attributeOf(col string) string {
	var attrs []string
	for a, c := range s.columns {
		if s.d.normColumn(c) == s.d.normColumn(col) {
			attrs = append(attrs, a)
		}
	}
	if len(attrs) == 0 {
		return col
	}
	sort.Strings(attrs)
	return fmt.Sprintf("%s (column %s)", strings.Join(attrs, ", "), col)
}
