package sql

import (
	"context"
	stdsql "database/sql"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/userimport/user-import-operator/api/v1alpha1"

	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/failure"
)

// stmt is one change turned into SQL.
type stmt struct {
	query string
	args  []any
	// mustMatch: the change needs an existing row (update, deactivate); no
	// row matched is a row error.
	mustMatch bool
	id        string // ID of the user after the change
	// insert, for a create, is its upsert in parts, so that consecutive
	// creates of the same columns go in one multi-row statement.
	insert *upsert
}

// upsert is "INSERT INTO t (cols) VALUES (row), (row)… ON CONFLICT …"
// in parts: values are the value expressions of one row, "" for a
// parameter (numbered when the statement is built).
type upsert struct {
	head   string
	values []string
	tail   string
	// activeParam: the active column's value is a parameter (a status
	// value), after those of the columns.
	activeParam bool
	queries     sync.Map // rows → query
}

type colValue struct {
	col string
	val any
}

// upsertOf returns the upsert of a create of the columns of vals (sorted).
func (s *Directory) upsertOf(vals []colValue) *upsert {
	var key strings.Builder
	for _, v := range vals {
		key.WriteString(v.col)
		key.WriteByte(0)
	}
	if u, ok := s.upserts.Load(key.String()); ok {
		return u.(*upsert)
	}
	idCol := s.identityColumn()
	var names, set []string
	u := &upsert{}
	for _, v := range vals {
		names = append(names, quote(v.col))
		u.values = append(u.values, "")
		if v.col != idCol {
			set = append(set, quote(v.col)+" = excluded."+quote(v.col))
		}
	}
	active, args := s.activeValue(true, nil)
	if len(args) > 0 {
		active, u.activeParam = "", true
	}
	names = append(names, quote(s.active))
	u.values = append(u.values, active)
	set = append(set, quote(s.active)+" = excluded."+quote(s.active))
	u.head = "INSERT INTO " + s.qtable + " (" + strings.Join(names, ", ") + ") VALUES "
	u.tail = " ON CONFLICT (" + quote(idCol) + ") DO UPDATE SET " + strings.Join(set, ", ")
	got, _ := s.upserts.LoadOrStore(key.String(), u)
	return got.(*upsert)
}

// query renders the upsert of rows rows.
func (u *upsert) query(d dialect, rows int) string {
	if q, ok := u.queries.Load(rows); ok {
		return q.(string)
	}
	q := u.render(d, rows)
	u.queries.Store(rows, q)
	return q
}

func (u *upsert) render(d dialect, rows int) string {
	var b strings.Builder
	b.WriteString(u.head)
	n := 0
	for r := range rows {
		if r > 0 {
			b.WriteString(", ")
		}
		b.WriteByte('(')
		for i, v := range u.values {
			if i > 0 {
				b.WriteString(", ")
			}
			if v == "" {
				n++
				v = d.placeholder(n)
			}
			b.WriteString(v)
		}
		b.WriteByte(')')
	}
	b.WriteString(u.tail)
	return b.String()
}

// params is the number of parameters of one row.
func (u *upsert) params() int {
	n := 0
	for _, v := range u.values {
		if v == "" {
			n++
		}
	}
	return n
}

// maxParams bounds the parameters of one statement: PostgreSQL takes at
// most 65535, SQLite (SQLITE_MAX_VARIABLE_NUMBER) 32766.
const maxParams = 32766

// maxRowsPerInsert bounds the rows of one multi-row upsert.
const maxRowsPerInsert = 1000

// Apply writes a batch in one transaction. Creates are upserts on the
// identity column, updates set only the attributes they carry,
// deactivations set the active column false and deletions delete the row.
// On PostgreSQL the batch goes in with COPY (stage.go); on SQLite, and
// for a batch COPY cannot take, as statements, consecutive creates of
// the same columns in one multi-row upsert.
//
// When a change breaks a constraint, the transaction is rolled back and
// the batch is written again with a savepoint around each change, so that
// only the changes the database refuses fail (with a *directory.ChangeError)
// and the others are written. The fast path pays nothing for this.
func (s *Directory) Apply(ctx context.Context, changes []directory.Change) ([]directory.Result, error) {
	if len(changes) == 0 {
		return nil, nil
	}
	sc, err := s.currentSchema(ctx)
	if err != nil {
		return nil, err
	}
	if err := s.pace(ctx, len(changes)); err != nil {
		return nil, err
	}
	isolate := false
	// The staged path takes only changes whose attributes each map to a
	// column of their own; any other batch is validated below, and
	// refused with the reason.
	if st := s.stageOf(sc); st != nil && !st.broken.Load() {
		var results []directory.Result
		var staged bool
		err := s.retry(ctx, s.bounded(ctx, func(ctx context.Context) error {
			var err error
			results, staged, isolate, err = s.applyStaged(ctx, st, changes)
			return err
		}))
		if err != nil && !st.broken.Load() {
			return nil, s.wrap(err, "apply a batch")
		}
		if err == nil && staged && !isolate {
			return results, nil
		}
	}

	stmts := make([]stmt, len(changes))
	for i, c := range changes {
		if err := s.validateOnce(sc, c.Attributes); err != nil {
			return nil, err
		}
		st, err := s.statement(c)
		if err != nil {
			return nil, err
		}
		stmts[i] = st
	}
	var results []directory.Result
	err = s.retry(ctx, s.bounded(ctx, func(ctx context.Context) error {
		var rowFailed bool
		var err error
		if !isolate && !s.d.cachesStatements() {
			// SQLite writes one transaction at a time: the batches that
			// wait for it go in together, in the next one.
			b := &stmtBatch{stmts: stmts}
			err := s.txs.do(ctx, s.opts.RequestTimeout, b, s.applyGroupTx)
			if err == nil {
				results = b.results
				return nil
			}
			if !errors.Is(err, errRowInGroup) {
				return err
			}
		}
		results, rowFailed, err = s.applyTx(ctx, stmts, isolate)
		if err == nil && rowFailed {
			results, _, err = s.applyTx(ctx, stmts, true)
		}
		return err
	}))
	if err != nil {
		return nil, s.wrap(err, "apply a batch")
	}
	return results, nil
}

// applyTx runs the statements in one transaction. Without isolate, the
// first row error rolls everything back and reports rowFailed; with
// isolate, each statement runs under a savepoint and a row error undoes
// only that statement.
func (s *Directory) applyTx(ctx context.Context, stmts []stmt, isolate bool) (results []directory.Result, rowFailed bool, err error) {
	prepared, err := s.prepareAll(ctx, isolate, stmts)
	if err != nil {
		return nil, false, err
	}
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return nil, false, err
	}
	defer func() {
		if err != nil || rowFailed {
			_ = tx.Rollback()
		}
	}()
	if results, rowFailed, err = s.execAll(ctx, tx, prepared, stmts, isolate); err != nil || rowFailed {
		return nil, rowFailed, err
	}
	if err := tx.Commit(); err != nil {
		return nil, false, err
	}
	return results, false, nil
}

// stmtBatch is one Apply's statements and, once written, their results.
type stmtBatch struct {
	stmts   []stmt
	results []directory.Result
}

// errRowInGroup: a row of one of the batches of a group was refused;
// nothing of the group was written, and each batch is written alone.
var errRowInGroup = errors.New("a row of the group was refused")

// applyGroupTx writes the statements of batches in one transaction,
// without savepoints.
func (s *Directory) applyGroupTx(ctx context.Context, batches []*stmtBatch) (err error) {
	all := make([][]stmt, len(batches))
	for i, b := range batches {
		all[i] = b.stmts
	}
	prepared, err := s.prepareAll(ctx, false, all...)
	if err != nil {
		return err
	}
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	for _, b := range batches {
		results, rowFailed, err := s.execAll(ctx, tx, prepared, b.stmts, false)
		if err != nil {
			return err
		}
		if rowFailed {
			return errRowInGroup
		}
		b.results = results
	}
	return tx.Commit()
}

// prepareAll prepares the statements of batches on the write pool. A
// batch repeats a few statement shapes: each is prepared once per
// connection and kept across transactions. PostgreSQL's driver does that
// by itself (nil); SQLite's writes go through one connection, on which
// the statements are prepared here, before the transaction takes it.
func (s *Directory) prepareAll(ctx context.Context, isolate bool, batches ...[]stmt) (map[string]*stdsql.Stmt, error) {
	if s.d.cachesStatements() {
		return nil, nil
	}
	prepared := map[string]*stdsql.Stmt{}
	for _, stmts := range batches {
		for i := 0; i < len(stmts); i++ {
			q := stmts[i].query
			if n := s.sameInserts(stmts[i:]); !isolate && n > 1 {
				q = stmts[i].insert.query(s.d, n)
				i += n - 1
			}
			if prepared[q] == nil {
				p, err := s.writeStatement(ctx, q)
				if err != nil {
					return nil, err
				}
				prepared[q] = p
			}
		}
	}
	return prepared, nil
}

// execAll runs stmts in tx: see applyTx.
func (s *Directory) execAll(ctx context.Context, tx *stdsql.Tx, prepared map[string]*stdsql.Stmt, stmts []stmt, isolate bool) (results []directory.Result, rowFailed bool, err error) {
	exec := func(q string, args ...any) (stdsql.Result, error) {
		if p := prepared[q]; p != nil {
			return tx.StmtContext(ctx, p).ExecContext(ctx, args...)
		}
		return tx.ExecContext(ctx, q, args...)
	}
	results = make([]directory.Result, len(stmts))
	for i := 0; i < len(stmts); i++ {
		st := stmts[i]
		if n := s.sameInserts(stmts[i:]); !isolate && n > 1 {
			// Consecutive creates of the same columns go in one statement:
			// one round trip instead of n. A row the database refuses fails
			// the statement, and the batch is written again row by row.
			args := make([]any, 0, n*len(st.args))
			for _, o := range stmts[i : i+n] {
				args = append(args, o.args...)
			}
			if _, err := exec(st.insert.query(s.d, n), args...); err != nil {
				if s.d.classify(err) != classRow {
					return nil, false, err
				}
				return nil, true, nil
			}
			for k := i; k < i+n; k++ {
				results[k].ID = stmts[k].id
			}
			i += n - 1
			continue
		}
		if isolate {
			if _, err := tx.ExecContext(ctx, "SAVEPOINT uio_row"); err != nil {
				return nil, false, err
			}
		}
		res, err := exec(st.query, st.args...)
		if err != nil {
			if s.d.classify(err) != classRow {
				return nil, false, err
			}
			if !isolate {
				return nil, true, nil
			}
			if _, err := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT uio_row"); err != nil {
				return nil, false, err
			}
			results[i].Err = &directory.ChangeError{Msg: s.d.rowMessage(err, s.attributeOf)}
			continue
		}
		if isolate {
			if _, err := tx.ExecContext(ctx, "RELEASE SAVEPOINT uio_row"); err != nil {
				return nil, false, err
			}
		}
		if st.mustMatch {
			n, err := res.RowsAffected()
			if err != nil {
				return nil, false, err
			}
			if n == 0 {
				// Nothing was written, so nothing to undo.
				results[i].Err = &directory.ChangeError{Msg: s.opts.IdentityAttribute + ": no such user (deleted meanwhile?)"}
				continue
			}
		}
		results[i].ID = st.id
	}
	return results, false, nil
}

// writeStatement returns q prepared on the write pool, once.
func (s *Directory) writeStatement(ctx context.Context, q string) (*stdsql.Stmt, error) {
	if p, ok := s.prepared.Load(q); ok {
		return p.(*stdsql.Stmt), nil
	}
	p, err := s.write.PrepareContext(ctx, q)
	if err != nil {
		return nil, err
	}
	if old, loaded := s.prepared.LoadOrStore(q, p); loaded {
		_ = p.Close()
		return old.(*stdsql.Stmt), nil
	}
	return p, nil
}

// validateOnce validates the attributes of a change, each set of them
// once per schema. A set is known by its size and two order-independent
// sums of its names' hashes, so that a batch of known sets costs no
// allocation.
func (s *Directory) validateOnce(sc *schema, attrs directory.Attributes) error {
	key := attrSetKey{n: len(attrs)}
	for a := range attrs {
		h := maphash.String(attrSeed, a)
		key.xor ^= h
		key.sum += h * 0x9e3779b97f4a7c15
	}
	if v, ok := s.validated.Load(key); ok && v.(*schema) == sc {
		return nil
	}
	names := make([]string, 0, len(attrs))
	for a := range attrs {
		names = append(names, a)
	}
	slices.Sort(names)
	if err := s.validate(sc, names); err != nil {
		return err
	}
	s.validated.Store(key, sc)
	return nil
}

var attrSeed = maphash.MakeSeed()

type attrSetKey struct {
	n        int
	xor, sum uint64
}

// sameInserts is the number of creates at the start of stmts that have
// the same SQL, within the bounds of one statement.
func (s *Directory) sameInserts(stmts []stmt) int {
	first := stmts[0]
	if first.insert == nil {
		return 0
	}
	limit := min(maxRowsPerInsert, maxParams/max(first.insert.params(), 1))
	n := 1
	for n < len(stmts) && n < limit && stmts[n].insert != nil && stmts[n].query == first.query {
		n++
	}
	return n
}

// statement builds the SQL of one change. Columns are sorted so that the
// same set of attributes gives the same SQL text (and a cached prepared
// statement on PostgreSQL).
func (s *Directory) statement(c directory.Change) (stmt, error) {
	idCol := s.identityColumn()
	key := c.ID
	if key == "" {
		key = c.Identity
	}
	switch c.Op {
	case directory.OpCreate:
		vals := make([]colValue, 0, len(c.Attributes)+2)
		hasID, hasMarker := false, false
		marker := ""
		if m := s.opts.MarkerAttribute; m != "" {
			marker = s.column(m)
		}
		for a, v := range c.Attributes {
			col := s.column(a)
			val := joinValues(v)
			switch col {
			case idCol:
				if val == nil {
					continue
				}
				hasID = true
			case marker:
				hasMarker = true
			}
			vals = append(vals, colValue{col, val})
		}
		if !hasID {
			if c.Identity == "" {
				return stmt{}, failure.Errorf(v1alpha1.ReasonInvalidConfig, "line %d: create without identity", c.Line)
			}
			vals = append(vals, colValue{idCol, c.Identity})
		}
		// Users an import creates are managed, whether or not the engine
		// passed the marker along.
		if marker != "" && !hasMarker {
			vals = append(vals, colValue{marker, s.opts.MarkerValue})
		}
		slices.SortFunc(vals, func(a, b colValue) int { return strings.Compare(a.col, b.col) })
		args := make([]any, len(vals), len(vals)+1)
		var id string
		for i, v := range vals {
			args[i] = v.val
			if v.col == idCol {
				id, _ = v.val.(string)
			}
		}
		if id == "" {
			return stmt{}, failure.Errorf(v1alpha1.ReasonInvalidConfig, "line %d: create without identity", c.Line)
		}
		u := s.upsertOf(vals)
		if u.activeParam {
			_, args = s.activeValue(true, args)
		}
		return stmt{query: u.query(s.d, 1), args: args, id: id, insert: u}, nil

	case directory.OpUpdate:
		vals := map[string]any{}
		for a, v := range c.Attributes {
			vals[s.column(a)] = joinValues(v)
		}
		cols := sortedKeys(vals)
		var set []string
		var args []any
		for i, col := range cols {
			set = append(set, quote(col)+" = "+s.d.placeholder(i+1))
			args = append(args, vals[col])
		}
		if c.Reactivate {
			var active string
			active, args = s.activeValue(true, args)
			set = append(set, quote(s.active)+" = "+active)
		}
		if len(set) == 0 {
			// Nothing to change: still check that the user exists.
			set = append(set, quote(idCol)+" = "+quote(idCol))
		}
		args = append(args, key)
		q := "UPDATE " + s.qtable + " SET " + strings.Join(set, ", ") +
			" WHERE " + quote(idCol) + " = " + s.d.placeholder(len(args))
		id := key
		if v, ok := vals[idCol].(string); ok {
			id = v
		}
		return stmt{query: q, args: args, mustMatch: true, id: id}, nil

	case directory.OpDeactivate:
		inactive, args := s.activeValue(false, nil)
		args = append(args, key)
		q := "UPDATE " + s.qtable + " SET " + quote(s.active) + " = " + inactive + " WHERE " + quote(idCol) + " = " + s.d.placeholder(len(args))
		return stmt{query: q, args: args, mustMatch: true, id: key}, nil

	case directory.OpDelete:
		// Deleting a user that is already gone is what was asked: a
		// replayed delete is harmless.
		q := "DELETE FROM " + s.qtable + " WHERE " + quote(idCol) + " = " + s.d.placeholder(1)
		return stmt{query: q, args: []any{key}, id: key}, nil
	}
	return stmt{}, fmt.Errorf("line %d: unknown change %v", c.Line, c.Op)
}

// joinValues stores an attribute's values in one column: NULL for none.
func joinValues(v []string) any {
	if len(v) == 0 {
		return nil
	}
	return strings.Join(v, Separator)
}

func sortedKeys(m map[string]any) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
