package sql

import (
	"context"
	stdsql "database/sql"
	"database/sql/driver"
	"errors"
	"net"
	"slices"
	"strings"
)

// errClass sorts database errors by what the provider does with them.
type errClass int

const (
	classOther       errClass = iota
	classRow                  // this row's values broke a rule: a ChangeError
	classTransient            // retry after a backoff
	classUnreachable          // cannot connect (retried too)
	classAuth                 // credentials refused
	classSchema               // table or column missing
	classConfig               // the DSN names something that does not exist
	classTLS                  // TLS handshake or certificate
)

// dialect is what differs between PostgreSQL and SQLite.
type dialect interface {
	// placeholder is the i-th (1-based) parameter marker.
	placeholder(i int) string
	// textExpr selects a column as text.
	textExpr(col string) string
	// normColumn folds a column name the way the database compares them.
	normColumn(col string) string
	// isBoolean tells whether a declared column type holds booleans.
	isBoolean(typ string) bool
	// cachesStatements tells whether the driver prepares a statement once
	// per connection by itself (pgx), so that Apply need not.
	cachesStatements() bool
	// identityFold is how the unique indexes on column c tell values
	// apart (see directory.IdentityFolder): nil when exactly; unknown
	// says why the provider cannot tell.
	identityFold(c columnInfo) (fold func(string) string, unknown string)
	// loadSchema reads the table's columns; nil without error when the
	// table does not exist.
	loadSchema(ctx context.Context, db *stdsql.DB, table []string) (*schema, error)
	classify(err error) errClass
	// message describes a non-row error without values.
	message(err error) string
	// rowMessage describes a row error without values; attributeOf names
	// the attribute of a column.
	rowMessage(err error, attributeOf func(col string) string) string
}

// schema is what the provider knows of the table.
type schema struct {
	columns map[string]columnInfo // by normColumn
	// uniques are the key columns of the table's unique indexes, by
	// normColumn, sorted.
	uniques [][]string
	// identityFold is how the identity column's unique index tells
	// values apart, nil when exactly (see Directory.IdentityFold).
	identityFold func(string) string
}

// addUnique records a unique index on cols; compare names how it compares
// the values of a one-column index, "" when exactly.
func (s *schema) addUnique(d dialect, cols []string, compare string) {
	key := make([]string, len(cols))
	for i, c := range cols {
		key[i] = d.normColumn(c)
	}
	slices.Sort(key)
	s.uniques = append(s.uniques, key)
	if len(key) == 1 {
		if c, ok := s.columns[key[0]]; ok {
			c.unique = true
			c.compares = append(c.compares, compare)
			s.columns[key[0]] = c
		}
	}
}

// hasUnique tells whether a unique index has exactly cols as its keys,
// in any order.
func (s *schema) hasUnique(d dialect, cols ...string) bool {
	key := make([]string, len(cols))
	for i, c := range cols {
		key[i] = d.normColumn(c)
	}
	slices.Sort(key)
	return slices.ContainsFunc(s.uniques, func(u []string) bool { return slices.Equal(u, key) })
}

type columnInfo struct {
	name   string
	typ    string
	unique bool // has a single-column, non-partial unique constraint
	// compares say how each of those constraints compares values: ""
	// exactly, else the name of its collation.
	compares []string
	// lowers says how the database's lower(), by which a citext column
	// compares, lowers letters (see lowersASCII); set for citext columns.
	lowers string
}

func (s *schema) column(d dialect, name string) (columnInfo, bool) {
	c, ok := s.columns[d.normColumn(name)]
	return c, ok
}

// classifyCommon handles errors that do not come from the database itself.
func classifyCommon(err error) (errClass, bool) {
	if errors.Is(err, driver.ErrBadConn) {
		return classTransient, true
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return classUnreachable, true
	}
	var oe *net.OpError
	if errors.As(err, &oe) {
		return classUnreachable, true
	}
	return classOther, false
}

// truncate bounds a message taken from the database.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// joinAttrs names the attributes of a list of columns.
func joinAttrs(cols []string, attributeOf func(string) string) string {
	out := make([]string, 0, len(cols))
	for _, c := range cols {
		c = strings.TrimSpace(c)
		if c != "" {
			out = append(out, attributeOf(c))
		}
	}
	return strings.Join(out, ", ")
}
