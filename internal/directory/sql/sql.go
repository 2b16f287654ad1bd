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
	"time"

	"github.com/jackc/pgx/v5"
	"golang.org/x/time/rate"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/keyread"
	"github.com/userimport/user-import-operator/internal/retry"
)

// Separator joins the values of a multi-valued attribute in its column.
const Separator = "\n"

// DefaultActiveColumn is the active column when spec.activeColumn is empty.
const DefaultActiveColumn = "active"

// lookupChunk bounds the identities of one Lookup query (well under the
// parameter limits of both databases).
const lookupChunk = 500

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
		return nil, directory.Errorf(v1alpha1.ReasonInvalidConfig, "spec.sql is not set")
	}
	if opts.IdentityAttribute == "" {
		return nil, directory.Errorf(v1alpha1.ReasonInvalidConfig, "no identity attribute")
	}
	if opts.ManagedOnly && opts.MarkerAttribute == "" {
		return nil, directory.Errorf(v1alpha1.ReasonInvalidConfig, "managed scope needs a marker attribute")
	}
	if spec.Table == "" {
		return nil, directory.Errorf(v1alpha1.ReasonInvalidConfig, "spec.sql.table is empty")
	}
	table := strings.Split(spec.Table, ".")
	if len(table) > 2 {
		return nil, directory.Errorf(v1alpha1.ReasonInvalidConfig, "spec.sql.table %q: at most one schema qualifier", spec.Table)
	}
	raw, err := directory.SecretValue(ctx, secrets, "spec.sql.dsn", spec.DSN)
	if err != nil {
		return nil, err
	}
	dsn := strings.TrimSpace(string(raw))
	if dsn == "" {
		return nil, directory.Errorf(v1alpha1.ReasonInvalidConfig, "dsn: key %q of Secret %q is empty", spec.DSN.Key, spec.DSN.Name)
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
			return nil, directory.Errorf(v1alpha1.ReasonInvalidConfig, "spec.sql: set activeColumn or statusColumn, not both")
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
		return nil, directory.Errorf(v1alpha1.ReasonInvalidConfig, "spec.sql.driver %q: want postgres or sqlite", spec.Driver)
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

// pace waits until n more statements may be sent under the rate limit.
func (s *Directory) pace(ctx context.Context, n int) error {
	if s.limiter == nil {
		return nil
	}
	for n > 0 {
		k := min(n, s.limiter.Burst())
		if err := s.limiter.WaitN(ctx, k); err != nil {
			return err
		}
		n -= k
	}
	return nil
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

// Check connects, then verifies that the table and every column the
// directory uses exist, that the identity column is unique and that the
// active column is boolean.
func (s *Directory) Check(ctx context.Context) (directory.Capabilities, error) {
	err := s.retry(ctx, func() error { return s.read.PingContext(ctx) })
	if err != nil {
		return directory.Capabilities{}, s.wrap(err, "connect")
	}
	sc, err := s.loadSchema(ctx)
	if err != nil {
		return directory.Capabilities{}, err
	}
	s.mu.Lock()
	s.schema = sc
	s.mu.Unlock()
	return directory.Capabilities{
		// A batch is one transaction; there is no bulk size limit.
		Bulk:   true,
		Patch:  true,
		Filter: true,
	}, nil
}

// loadSchema reads the table's columns and checks the fixed ones.
func (s *Directory) loadSchema(ctx context.Context) (*schema, error) {
	sc, err := s.readSchema(ctx, s.table, "read the table's columns")
	if err != nil {
		return nil, err
	}
	if sc == nil {
		return nil, directory.Errorf(v1alpha1.ReasonSchemaMismatch, "table %s not found", strings.Join(s.table, "."))
	}

	type need struct{ what, col string }
	needs := []need{
		{"identity attribute " + s.opts.IdentityAttribute, s.identityColumn()},
		{s.activeWhat(), s.active},
	}
	if s.opts.MarkerAttribute != "" {
		needs = append(needs, need{"marker attribute " + s.opts.MarkerAttribute, s.column(s.opts.MarkerAttribute)})
	}
	attrs := make([]string, 0, len(s.columns))
	for a := range s.columns {
		attrs = append(attrs, a)
	}
	sort.Strings(attrs)
	for _, a := range attrs {
		needs = append(needs, need{"attribute " + a, s.column(a)})
	}
	for _, n := range needs {
		if _, ok := sc.column(s.d, n.col); !ok {
			return nil, directory.Errorf(v1alpha1.ReasonSchemaMismatch,
				"table %s has no column %s (for the %s)", strings.Join(s.table, "."), n.col, n.what)
		}
	}
	if c, _ := sc.column(s.d, s.identityColumn()); !c.unique {
		return nil, directory.Errorf(v1alpha1.ReasonSchemaMismatch,
			"column %s of table %s (identity attribute %s) needs a single-column unique constraint; create one with: CREATE UNIQUE INDEX ON %s (%s)",
			c.name, strings.Join(s.table, "."), s.opts.IdentityAttribute, s.qtable, quote(c.name))
	}
	if s.groups != nil {
		if err := s.checkGroupTable(ctx); err != nil {
			return nil, err
		}
	}
	if c, _ := sc.column(s.d, s.active); s.status == nil && !s.d.isBoolean(c.typ) {
		return nil, directory.Errorf(v1alpha1.ReasonSchemaMismatch,
			"active column %s of table %s is of type %s, not boolean", c.name, strings.Join(s.table, "."), c.typ)
	}
	return sc, nil
}

// readSchema reads the columns and unique indexes of table, retried
// while the database cannot be reached; nil when it does not exist.
func (s *Directory) readSchema(ctx context.Context, table []string, doing string) (*schema, error) {
	var sc *schema
	err := s.retry(ctx, func() error {
		var err error
		sc, err = s.d.loadSchema(ctx, s.read, table)
		return err
	})
	return sc, s.wrap(err, doing)
}

// currentSchema returns the schema loaded by Check, loading it once if
// Check has not run.
func (s *Directory) currentSchema(ctx context.Context) (*schema, error) {
	s.mu.Lock()
	sc := s.schema
	s.mu.Unlock()
	if sc != nil {
		return sc, nil
	}
	sc, err := s.loadSchema(ctx)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.schema = sc
	s.mu.Unlock()
	return sc, nil
}

// ValidateAttributes checks that every attribute has a column in the table,
// so that an import's mapping is rejected before anything is written.
func (s *Directory) ValidateAttributes(attrs []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sc, err := s.currentSchema(ctx)
	if err != nil {
		return err
	}
	return s.validate(sc, attrs)
}

func (s *Directory) validate(sc *schema, attrs []string) error {
	var missing []string
	seen := map[string]string{}
	for _, a := range attrs {
		col := s.column(a)
		if _, ok := sc.column(s.d, col); !ok {
			missing = append(missing, fmt.Sprintf("%s (column %s)", a, col))
			continue
		}
		if s.d.normColumn(col) == s.d.normColumn(s.active) {
			return directory.Errorf(v1alpha1.ReasonInvalidConfig, "attribute %s maps to the %s %s", a, s.activeWhat(), col)
		}
		if other, ok := seen[s.d.normColumn(col)]; ok && other != a {
			return directory.Errorf(v1alpha1.ReasonInvalidConfig, "attributes %s and %s map to the same column %s", other, a, col)
		}
		seen[s.d.normColumn(col)] = a
	}
	if len(missing) > 0 {
		return directory.Errorf(v1alpha1.ReasonSchemaMismatch, "table %s has no column for attribute %s",
			strings.Join(s.table, "."), strings.Join(missing, ", "))
	}
	return nil
}

// selectList builds the select list: identity, active, marker, then the
// attributes, deduplicated.
func (s *Directory) selectList(attrs []string) (string, []string) {
	var uniq []string
	seen := map[string]bool{}
	for _, a := range attrs {
		if !seen[a] {
			seen[a] = true
			uniq = append(uniq, a)
		}
	}
	active := quote(s.active)
	if s.status != nil {
		active = s.d.textExpr(s.active)
	}
	exprs := []string{s.d.textExpr(s.identityColumn()), active}
	if s.opts.MarkerAttribute != "" {
		exprs = append(exprs, s.d.textExpr(s.column(s.opts.MarkerAttribute)))
	} else {
		exprs = append(exprs, "NULL")
	}
	for _, a := range uniq {
		exprs = append(exprs, s.d.textExpr(s.column(a)))
	}
	return strings.Join(exprs, ", "), uniq
}

// scanUser reads one row of a selectList query.
func (s *Directory) scanUser(rows *stdsql.Rows, attrs []string) (directory.User, error) {
	var id, marker, status stdsql.NullString
	var active stdsql.NullBool
	vals := make([]stdsql.NullString, len(attrs))
	dest := []any{&id, &active, &marker}
	if s.status != nil {
		dest[1] = &status
	}
	for i := range vals {
		dest = append(dest, &vals[i])
	}
	if err := rows.Scan(dest...); err != nil {
		return directory.User{}, err
	}
	u := directory.User{
		ID:         id.String,
		Identity:   id.String,
		Active:     s.isActive(active, status),
		Managed:    s.opts.MarkerAttribute != "" && marker.Valid && marker.String == s.opts.MarkerValue,
		Attributes: directory.Attributes{},
	}
	for i, a := range attrs {
		if vals[i].Valid && vals[i].String != "" {
			u.Attributes[a] = strings.Split(vals[i].String, Separator)
		}
	}
	return u, nil
}

// HasUnmanaged tells whether a row lacks the marker (List's scope is the
// rows whose marker column holds the marker value), so that the first
// full import into a table of its own users looks up none of its creates.
func (s *Directory) HasUnmanaged(ctx context.Context) (bool, error) {
	if _, err := s.currentSchema(ctx); err != nil {
		return false, err
	}
	col := quote(s.column(s.opts.MarkerAttribute))
	q := "SELECT 1 FROM " + s.qtable + " WHERE " + col + " IS NULL OR " + col + " <> " + s.d.placeholder(1) + " LIMIT 1"
	if err := s.pace(ctx, 1); err != nil {
		return false, err
	}
	found := false
	err := s.retry(ctx, func() error {
		var one int
		err := s.read.QueryRowContext(ctx, q, s.opts.MarkerValue).Scan(&one)
		found = err == nil
		if errors.Is(err, stdsql.ErrNoRows) {
			return nil
		}
		return err
	})
	if err != nil {
		return false, s.wrap(err, "look for unmanaged users")
	}
	return found, nil
}

// List streams the users in scope with the named attributes. Rows are read
// one at a time from the database cursor, never loaded whole.
func (s *Directory) List(ctx context.Context, attributes []string, fn func(directory.User) error) error {
	sc, err := s.currentSchema(ctx)
	if err != nil {
		return err
	}
	if err := s.validate(sc, attributes); err != nil {
		return err
	}
	sel, attrs := s.selectList(attributes)
	q := "SELECT " + sel + " FROM " + s.qtable
	var args []any
	if s.opts.ManagedOnly {
		q += " WHERE " + quote(s.column(s.opts.MarkerAttribute)) + " = " + s.d.placeholder(1)
		args = append(args, s.opts.MarkerValue)
	}
	if err := s.pace(ctx, 1); err != nil {
		return err
	}
	if _, ok := s.d.(postgresDialect); ok {
		return s.listPostgres(ctx, q, args, attrs, fn)
	}
	var rows *stdsql.Rows
	// Only opening the cursor is retried: once fn has seen users, a retry
	// would show them twice.
	err = s.retry(ctx, func() error {
		var err error
		rows, err = s.read.QueryContext(ctx, q, args...)
		return err
	})
	if err != nil {
		return s.wrap(err, "list users")
	}
	defer rows.Close()
	for rows.Next() {
		u, err := s.scanUser(rows, attrs)
		if err != nil {
			return s.wrap(err, "read a user")
		}
		if err := fn(u); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return s.wrap(err, "list users")
	}
	return nil
}

// Lookup returns the users with the given identities, in and out of scope,
// keyed by identity.
func (s *Directory) Lookup(ctx context.Context, identities []string, attributes []string) (map[string]directory.User, error) {
	sc, err := s.currentSchema(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.validate(sc, attributes); err != nil {
		return nil, err
	}
	sel, attrs := s.selectList(attributes)
	out := make(map[string]directory.User, len(identities))
	for start := 0; start < len(identities); start += lookupChunk {
		chunk := identities[start:min(start+lookupChunk, len(identities))]
		ph := make([]string, len(chunk))
		args := make([]any, len(chunk))
		for i, id := range chunk {
			ph[i] = s.d.placeholder(i + 1)
			args[i] = id
		}
		err := s.lookupChunk(ctx, sel, attrs, ph, args, out)
		if err != nil && s.d.classify(err) == classRow {
			// An identity the column's type cannot hold (an e-mail address
			// for a uuid) fails the whole query. Such a user cannot exist:
			// look the others up one by one, and leave it to the write,
			// which fails that line alone.
			err = nil
			for i := range args {
				if e := s.lookupChunk(ctx, sel, attrs, ph[:1], args[i:i+1], out); e != nil && s.d.classify(e) != classRow {
					err = e
					break
				}
			}
		}
		if err != nil {
			return nil, s.wrap(err, "look up users")
		}
	}
	return out, nil
}

// lookupChunk looks up the identities args (with placeholders ph) and
// adds the users found to out.
func (s *Directory) lookupChunk(ctx context.Context, sel string, attrs, ph []string, args []any, out map[string]directory.User) error {
	q := "SELECT " + sel + " FROM " + s.qtable + " WHERE " + quote(s.identityColumn()) +
		" IN (" + strings.Join(ph, ", ") + ")"
	if err := s.pace(ctx, 1); err != nil {
		return err
	}
	return s.retry(ctx, s.bounded(ctx, func(ctx context.Context) error {
		rows, err := s.read.QueryContext(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			u, err := s.scanUser(rows, attrs)
			if err != nil {
				return err
			}
			out[u.Identity] = u
		}
		return rows.Err()
	}))
}

// quote quotes an identifier. PostgreSQL and SQLite quote the same way:
// double quotes, with embedded double quotes doubled.
func quote(name string) string { return pgx.Identifier{name}.Sanitize() }

// wrap turns a database error into a *directory.Error with a reason a
// person can act on. Messages carry no values: SQL text never holds
// values, and the errors that quote them (data exceptions, constraint
// details) are row errors, reported by rowError instead.
func (s *Directory) wrap(err error, doing string) error {
	if err == nil {
		return nil
	}
	var de *directory.Error
	if errors.As(err, &de) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("%s: %w", doing, err)
	}
	reason := v1alpha1.ReasonDirectoryError
	switch s.d.classify(err) {
	case classAuth:
		reason = v1alpha1.ReasonAuthenticationFailed
	case classUnreachable, classTransient:
		reason = v1alpha1.ReasonUnreachable
	case classSchema:
		reason = v1alpha1.ReasonSchemaMismatch
	case classConfig:
		reason = v1alpha1.ReasonInvalidConfig
	case classTLS:
		reason = v1alpha1.ReasonTLSError
	}
	return &directory.Error{Reason: reason, Err: fmt.Errorf("%s: %s", doing, s.d.message(err))}
}

// bounded runs fn with a context that ends after the request timeout: a
// statement or transaction that takes longer is abandoned (and rolled
// back), and retry tries it again like a dropped connection. Only work
// complete within fn is bounded: a listing's cursor outlives its opening.
func (s *Directory) bounded(ctx context.Context, fn func(ctx context.Context) error) func() error {
	return func() error {
		timeout := s.opts.RequestTimeout
		if timeout <= 0 {
			return fn(ctx)
		}
		tctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		err := fn(tctx)
		if err != nil && ctx.Err() == nil && tctx.Err() != nil {
			return errRequestTimeout
		}
		return err
	}
}

// errRequestTimeout is a statement or transaction that outlived the
// request timeout.
var errRequestTimeout = directory.Errorf(v1alpha1.ReasonUnreachable, "the database did not answer within the request timeout")

// retry runs fn, again after a backoff while it fails transiently, up to
// opts.MaxRetries times (3 when unset).
func (s *Directory) retry(ctx context.Context, fn func() error) error {
	max := s.opts.MaxRetries
	if max <= 0 {
		max = 3
	}
	for attempt := 0; ; attempt++ {
		err := fn()
		if err == nil || attempt >= max || ctx.Err() != nil {
			return err
		}
		switch s.d.classify(err) {
		case classTransient, classUnreachable:
		default:
			if err != errRequestTimeout {
				return err
			}
		}
		if retry.Sleep(ctx, retry.Backoff(attempt, 100*time.Millisecond, 5*time.Second)) != nil {
			return err
		}
	}
}
