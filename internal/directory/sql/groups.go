package sql

import (
	"context"
	stdsql "database/sql"
	"errors"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/failure"
)

// Groups are kept in a membership table (spec.groups): one row per user
// and group. A group is the set of rows with its name, and exists while it
// has a row. Every row an import writes carries the marker value; a group
// is managed when all its rows do, so a group with a row written by hand
// is never emptied by an import. A user is referred to by its identity,
// as a manager is.

// groupTable is the membership table of a Directory.
type groupTable struct {
	table               []string // name, split at the schema dot
	qtable              string
	user, group, marker string // column names
	mu                  sync.Mutex
	indexed             *bool // whether the table has a unique index on (group, user); nil until read
}

func newGroupTable(spec *v1alpha1.SQLGroups) (*groupTable, error) {
	if spec == nil {
		return nil, nil
	}
	table := strings.Split(spec.Table, ".")
	if spec.Table == "" || len(table) > 2 {
		return nil, failure.Errorf(v1alpha1.ReasonInvalidConfig, "spec.sql.groups.table %q: want a table name, optionally schema-qualified", spec.Table)
	}
	return &groupTable{
		table:  table,
		qtable: pgx.Identifier(table).Sanitize(),
		user:   orDefault(spec.UserColumn, "user_identity"),
		group:  orDefault(spec.GroupColumn, "group_name"),
		marker: orDefault(spec.MarkerColumn, "managed_by"),
	}, nil
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// HasGroups tells whether spec.groups is set.
func (s *Directory) HasGroups() bool { return s.groups != nil }

// MemberReference is the user's identity as the table holds it, which is
// its ID: where the identity column ignores case, a line may spell it
// otherwise.
func (s *Directory) MemberReference(u directory.User) string { return u.ID }

// ManagerReference is the manager's identity as the table holds it (see
// MemberReference).
func (s *Directory) ManagerReference(u directory.User) string { return u.ID }

// PredictReference is the identity: a manager is referred to by it.
func (s *Directory) PredictReference(identity string) (string, bool) { return identity, true }

// ListGroups reads the membership table, one group after the other.
func (s *Directory) ListGroups(ctx context.Context, fn func(directory.Group) error) error {
	g := s.groups
	if g == nil {
		return failure.Errorf(v1alpha1.ReasonInvalidConfig, "spec.sql.groups is not set")
	}
	q := "SELECT " + s.d.textExpr(g.group) + ", " + s.d.textExpr(g.user) + ", " + s.d.textExpr(g.marker) +
		" FROM " + g.qtable + " ORDER BY 1"
	if err := s.pace(ctx, 1); err != nil {
		return err
	}
	var rows *stdsql.Rows
	err := s.retry(ctx, func() error {
		var err error
		rows, err = s.read.QueryContext(ctx, q)
		return err
	})
	if err != nil {
		return s.wrap(err, "list groups")
	}
	defer rows.Close()
	var cur *directory.Group
	for rows.Next() {
		var name, user, mark stdsql.NullString
		if err := rows.Scan(&name, &user, &mark); err != nil {
			return s.wrap(err, "read a membership")
		}
		if cur != nil && cur.Name != name.String {
			if err := fn(*cur); err != nil {
				return err
			}
			cur = nil
		}
		if cur == nil {
			cur = &directory.Group{ID: name.String, Name: name.String, Managed: true}
		}
		cur.Members = append(cur.Members, user.String)
		cur.Managed = cur.Managed && mark.String == s.opts.MarkerValue
	}
	if err := rows.Err(); err != nil {
		return s.wrap(err, "list groups")
	}
	if cur != nil {
		return fn(*cur)
	}
	return nil
}

// membershipsPerInsert is the number of membership rows one statement
// adds when the table has its unique index: a statement a row made a
// million memberships cost a million round trips.
const membershipsPerInsert = 200

// groupIndexed tells whether the membership table has a unique index on
// (group, user), read once.
func (s *Directory) groupIndexed(ctx context.Context) (bool, error) {
	g := s.groups
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.indexed == nil {
		sc, err := s.readSchema(ctx, g.table, "read the membership table's indexes")
		if err != nil {
			return false, err
		}
		indexed := sc != nil && sc.hasUnique(s.d, g.user, g.group)
		g.indexed = &indexed
	}
	return *g.indexed, nil
}

// insertMemberships is the statement that adds n membership rows (three
// parameters a row: user, group, marker), each unless the user is a
// member of the group already. With the table's unique index, the rows
// are a list of VALUES whose conflicts on it are skipped; the values take
// the columns' types. Without it, a row is added unless a query finds it,
// one a statement (five parameters: the row, then user and group).
func (s *Directory) insertMemberships(n int, indexed bool) string {
	g := s.groups
	user, group := quote(g.user), quote(g.group)
	p := s.d.placeholder
	insert := "INSERT INTO " + g.qtable + " (" + user + ", " + group + ", " + quote(g.marker) + ") "
	if !indexed {
		return insert + "SELECT " + p(1) + ", " + p(2) + ", " + p(3) + " WHERE NOT EXISTS (SELECT 1 FROM " + g.qtable +
			" WHERE " + user + " = " + p(4) + " AND " + group + " = " + p(5) + ")"
	}
	var b strings.Builder
	b.WriteString(insert + "VALUES ")
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("(" + p(3*i+1) + ", " + p(3*i+2) + ", " + p(3*i+3) + ")")
	}
	b.WriteString(" ON CONFLICT (" + group + ", " + user + ") DO NOTHING")
	return b.String()
}

// membershipArgs appends the arguments of the memberships of users in
// group to args.
func (s *Directory) membershipArgs(args []any, users []string, group string, indexed bool) []any {
	for _, u := range users {
		args = append(args, u, group, s.opts.MarkerValue)
		if !indexed {
			args = append(args, u, group)
		}
	}
	return args
}

// ApplyGroup adds and removes membership rows in one transaction. A row
// is added only when the user is not a member yet, so that a change
// applied again adds nothing.
func (s *Directory) ApplyGroup(ctx context.Context, ch directory.GroupChange) (string, error) {
	g := s.groups
	if g == nil {
		return "", failure.Errorf(v1alpha1.ReasonInvalidConfig, "spec.sql.groups is not set")
	}
	p := s.d.placeholder
	user, group := quote(g.user), quote(g.group)
	remove := "DELETE FROM " + g.qtable + " WHERE " + group + " = " + p(1) + " AND " + user + " = " + p(2)
	if err := s.pace(ctx, len(ch.Add)+len(ch.Remove)); err != nil {
		return "", err
	}
	indexed, err := s.groupIndexed(ctx)
	if err != nil {
		return "", err
	}
	if indexed && len(ch.Remove) == 0 && len(ch.Add) >= membershipsPerInsert && s.copyMemberships(ctx, ch) == nil {
		return ch.Name, nil
	}
	per := 1
	if indexed {
		per = membershipsPerInsert
	}
	err = s.retry(ctx, s.bounded(ctx, func(ctx context.Context) error {
		tx, err := s.write.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer func() { _ = tx.Rollback() }()
		var args []any
		var full *stdsql.Stmt // the statement of a whole chunk, prepared once
		for start := 0; start < len(ch.Add); start += per {
			part := ch.Add[start:min(start+per, len(ch.Add))]
			args = s.membershipArgs(args[:0], part, ch.Name, indexed)
			if len(part) < per {
				if _, err := tx.ExecContext(ctx, s.insertMemberships(len(part), indexed), args...); err != nil {
					return err
				}
				continue
			}
			if full == nil {
				if full, err = tx.PrepareContext(ctx, s.insertMemberships(len(part), indexed)); err != nil {
					return err
				}
				defer full.Close()
			}
			if _, err := full.ExecContext(ctx, args...); err != nil {
				return err
			}
		}
		if len(ch.Remove) > 0 {
			st, err := tx.PrepareContext(ctx, remove)
			if err != nil {
				return err
			}
			defer st.Close()
			for _, u := range ch.Remove {
				if _, err := st.ExecContext(ctx, ch.Name, u); err != nil {
					return err
				}
			}
		}
		return tx.Commit()
	}))
	if err != nil && s.d.classify(err) == classRow {
		// The database refused a value (a name too long, of the wrong
		// type): its message may quote it.
		return "", &directory.ChangeError{Msg: s.d.rowMessage(err, func(col string) string { return col })}
	}
	if err != nil {
		return "", s.wrap(err, "write the memberships of a group")
	}
	return ch.Name, nil
}

// copyMemberships adds the members of a group that only gains members
// with COPY, on PostgreSQL, in one transaction: the server adds two
// million memberships with COPY in half the time it takes with
// statements. COPY cannot skip a membership that is there already, as a
// replay of the change finds, nor tell which value a column refused:
// then it writes nothing, and the caller writes the change with
// statements, which do both. Its error is never shown.
func (s *Directory) copyMemberships(ctx context.Context, ch directory.GroupChange) error {
	if _, ok := s.d.(postgresDialect); !ok {
		return errors.ErrUnsupported
	}
	g := s.groups
	var group, marker []byte
	group = appendCopyText(group, ch.Name)
	marker = appendCopyText(marker, s.opts.MarkerValue)
	buf := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(buf)
	data := (*buf)[:0]
	defer func() { *buf = data[:0] }()
	for _, u := range ch.Add {
		data = appendCopyText(data, u)
		data = append(data, '\t')
		data = append(data, group...)
		data = append(data, '\t')
		data = append(data, marker...)
		data = append(data, '\n')
	}
	copyIn := "COPY " + g.qtable + " (" + quote(g.user) + ", " + quote(g.group) + ", " + quote(g.marker) + ") FROM STDIN"
	return s.bounded(ctx, func(ctx context.Context) error {
		return s.writeSteps(ctx, nil, []step{{sql: copyIn, rows: [][]byte{data}}}, false, -1, nil)
	})()
}

// copyBuffers hold the rows of copyMemberships, a few hundred KiB a group.
var copyBuffers = sync.Pool{New: func() any { return new([]byte) }}

// checkGroupTable checks the membership table: its columns, and a unique
// index on (group, user), in either order. A membership is added only when it is not
// there yet: without the index, each addition reads the whole table, and
// a million of them take hours.
func (s *Directory) checkGroupTable(ctx context.Context) error {
	g := s.groups
	name := strings.Join(g.table, ".")
	sc, err := s.readSchema(ctx, g.table, "read the membership table's columns")
	if err != nil {
		return err
	}
	if sc == nil {
		return failure.Errorf(v1alpha1.ReasonSchemaMismatch, "membership table %s (spec.sql.groups.table) not found", name)
	}
	for _, c := range []struct{ what, col string }{{"userColumn", g.user}, {"groupColumn", g.group}, {"markerColumn", g.marker}} {
		if _, ok := sc.column(s.d, c.col); !ok {
			return failure.Errorf(v1alpha1.ReasonSchemaMismatch, "membership table %s has no column %s (spec.sql.groups.%s)", name, c.col, c.what)
		}
	}
	if !sc.hasUnique(s.d, g.user, g.group) {
		// The group first: an import writes a group's memberships
		// together, which such an index keeps on a few pages.
		return failure.Errorf(v1alpha1.ReasonSchemaMismatch,
			"membership table %s has no unique index on (%s, %s): without it every membership written reads the whole table; create it with: CREATE UNIQUE INDEX ON %s (%s, %s)",
			name, g.group, g.user, g.qtable, quote(g.group), quote(g.user))
	}
	return nil
}
