package sql

import (
	"context"
	stdsql "database/sql"
	"errors"
	"strings"

	"github.com/userimport/user-import-operator/internal/directory"
)

// lookupChunk bounds the identities of one Lookup query (well under the
// parameter limits of both databases).
const lookupChunk = 500

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
	q, args, attrs, err := s.listQuery(ctx, attributes)
	if err != nil {
		return err
	}
	if _, ok := s.d.(postgresDialect); ok {
		return s.listPostgres(ctx, q, args, attrs, attrs, func(u *directory.User, vals [][]string) error {
			return fn(userCopy(u, attrs, vals))
		})
	}
	return s.listRows(ctx, q, args, attrs, fn)
}

// ListValues is List for a caller that keeps nothing of the users: on
// PostgreSQL, their values are read in place from the connection's
// buffer (a full import lists every managed user, and this is most of
// what an unchanged re-run costs).
func (s *Directory) ListValues(ctx context.Context, attributes []string, fn func(*directory.User, [][]string) error) error {
	q, args, attrs, err := s.listQuery(ctx, attributes)
	if err != nil {
		return err
	}
	if _, ok := s.d.(postgresDialect); ok {
		return s.listPostgres(ctx, q, args, attrs, attributes, fn)
	}
	vals := make([][]string, len(attributes))
	return s.listRows(ctx, q, args, attrs, func(u directory.User) error {
		for i, a := range attributes {
			vals[i] = u.Attributes[a]
		}
		u.Attributes = nil
		return fn(&u, vals)
	})
}

// listQuery is List's query, its arguments and the attributes it selects.
func (s *Directory) listQuery(ctx context.Context, attributes []string) (string, []any, []string, error) {
	sc, err := s.currentSchema(ctx)
	if err != nil {
		return "", nil, nil, err
	}
	if err := s.validate(sc, attributes); err != nil {
		return "", nil, nil, err
	}
	sel, attrs := s.selectList(attributes)
	q := "SELECT " + sel + " FROM " + s.qtable
	var args []any
	if s.opts.ManagedOnly {
		q += " WHERE " + quote(s.column(s.opts.MarkerAttribute)) + " = " + s.d.placeholder(1)
		args = append(args, s.opts.MarkerValue)
	}
	if err := s.pace(ctx, 1); err != nil {
		return "", nil, nil, err
	}
	return q, args, attrs, nil
}

// listRows runs List's query through database/sql.
func (s *Directory) listRows(ctx context.Context, q string, args []any, attrs []string, fn func(directory.User) error) error {
	var rows *stdsql.Rows
	// Only opening the cursor is retried: once fn has seen users, a retry
	// would show them twice.
	err := s.retry(ctx, func() error {
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
	if fold := sc.identityFold; fold != nil {
		// The column finds a user under every spelling it folds alike:
		// each spelling asked for is answered with that user, as the
		// other directories answer.
		byKey := make(map[string]directory.User, len(out))
		for _, u := range out {
			byKey[fold(u.Identity)] = u
		}
		for _, id := range identities {
			if u, ok := byKey[fold(id)]; ok {
				out[id] = u
			}
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
