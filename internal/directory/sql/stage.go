package sql

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/userimport/user-import-operator/internal/directory"
)

// On PostgreSQL a batch is written with COPY, in one round trip when it
// only creates users:
//
//   - creates are copied straight into the users table ("BEGIN; COPY
//     users (…) FROM STDIN; COMMIT"), one COPY per set of columns: the
//     server reads each value with the same input function as a bound
//     parameter, so a value too long or not a valid uuid fails as it
//     would in an INSERT;
//   - updates, deactivations and deletions are copied into a temporary
//     table typed like the users table, then written by one set-based
//     statement per kind ("DELETE … USING", "UPDATE … FROM … RETURNING").
//
// The staging table is temporary, ON COMMIT DELETE ROWS, created if need
// be by the transaction that uses it: each batch finds it empty. A batch the database refuses in part (a
// constraint, a value, a create replayed after a crash that finds its
// user) is rolled back and written again statement by statement, each
// under a savepoint and creates as upserts, so that only the refused
// changes fail. A batch that names one user twice is written that way
// from the start: set-based statements would not apply its changes in
// order.

// Operations in the staging table's op column.
const (
	stageCreate = 1 // copied into the users table, not staged
	stageUpdate = 2 // updates and deactivations: must match a row
	stageDelete = 3
)

// maxStagedColumns bounds the table columns a staging table holds: the
// columns a row sets are a bit mask in a bigint.
const maxStagedColumns = 62

// stage is the staging table of one schema of the users table.
type stage struct {
	name       string // temporary table, quoted
	create     string // CREATE TEMP TABLE IF NOT EXISTS …
	stagedCols string // its columns, for COPY
	cols       []string
	index      map[string]int // normColumn → position in cols
	id         int            // position of the identity column
	active     int            // position of the active or status column
	marker     int            // position of the marker column, -1 without one
	// activeTrue and activeFalse are what the active or status column
	// holds, in COPY's text form.
	activeTrue, activeFalse string
	// broken: the staging table cannot be created (a column named like
	// one of its own); batches take the statement path.
	broken atomic.Bool
	copies sync.Map // mask → COPY of creates
}

// stageOf returns the staging table of sc, nil when batches take the
// statement path (SQLite, or a table too wide for the column mask).
func (s *Directory) stageOf(sc *schema) *stage {
	if _, ok := s.d.(postgresDialect); !ok || len(sc.columns) > maxStagedColumns {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.staged != nil && s.stagedFor == sc {
		return s.staged
	}
	st := &stage{index: map[string]int{}, marker: -1, activeTrue: "t", activeFalse: "f"}
	for _, c := range sc.columns {
		st.cols = append(st.cols, c.name)
	}
	slices.Sort(st.cols)
	h := sha256.New()
	h.Write([]byte(s.qtable))
	for i, c := range st.cols {
		st.index[s.d.normColumn(c)] = i
		h.Write([]byte{0})
		h.Write([]byte(c))
		h.Write([]byte{0})
		h.Write([]byte(sc.columns[s.d.normColumn(c)].typ))
	}
	st.name = quote("uio_stage_" + hex.EncodeToString(h.Sum(nil))[:16])
	st.id = st.index[s.d.normColumn(s.identityColumn())]
	st.active = st.index[s.d.normColumn(s.active)]
	if m := s.opts.MarkerAttribute; m != "" {
		st.marker = st.index[s.d.normColumn(s.column(m))]
	}
	if s.status != nil {
		st.activeTrue, st.activeFalse = s.status.ActiveValue, s.status.InactiveValue
	}
	sel := []string{`0::int4 AS "uio$ord"`, `0::int2 AS "uio$op"`, `0::int8 AS "uio$mask"`, "t." + quote(s.identityColumn()) + ` AS "uio$key"`}
	names := []string{`"uio$ord"`, `"uio$op"`, `"uio$mask"`, `"uio$key"`}
	for _, c := range st.cols {
		sel = append(sel, "t."+quote(c))
		names = append(names, quote(c))
	}
	st.create = "CREATE TEMP TABLE IF NOT EXISTS " + st.name + " ON COMMIT DELETE ROWS AS SELECT " +
		strings.Join(sel, ", ") + " FROM " + s.qtable + " t WITH NO DATA"
	st.stagedCols = strings.Join(names, ", ")
	s.staged, s.stagedFor = st, sc
	return st
}

// stagedBatch is a batch in COPY's text format.
type stagedBatch struct {
	staged  []byte       // updates, deactivations, deletions: rows of the staging table
	creates []createCopy // rows of the users table, by set of columns
	ids     []string     // per change: the user's ID after it
	ops     []int8
	// updateMask is the union of the updates' masks; deletes tells
	// whether the staging table holds any.
	updateMask uint64
	deletes    bool
}

// createCopy is the creates of one set of columns.
type createCopy struct {
	mask uint64
	data []byte
}

// cell is one column of a row.
type cell struct {
	set  bool
	null bool     // no values: NULL
	vals []string // several values, joined with Separator
	one  string   // a single value, without allocating vals
}

// encode stages changes. ok is false when the batch must take the
// statement path: it names one user twice, or a change cannot be staged.
func (st *stage) encode(s *Directory, changes []directory.Change, b *stagedBatch) (ok bool) {
	b.staged = b.staged[:0]
	for i := range b.creates {
		b.creates[i].data = b.creates[i].data[:0]
	}
	b.creates = b.creates[:0]
	b.ids = slices.Grow(b.ids[:0], len(changes))[:len(changes)]
	b.ops = slices.Grow(b.ops[:0], len(changes))[:len(changes)]
	b.updateMask, b.deletes = 0, false
	seen := make(map[string]struct{}, len(changes))
	claim := func(key string) bool {
		if _, dup := seen[key]; dup {
			return false
		}
		seen[key] = struct{}{}
		return true
	}
	cells := make([]cell, len(st.cols))
	var mask uint64
	set := func(col string, v []string) bool {
		k, ok := st.index[s.d.normColumn(col)]
		if !ok || k == st.active || cells[k].set {
			return false
		}
		switch len(v) {
		case 0:
			cells[k] = cell{set: true, null: true}
		case 1:
			cells[k] = cell{set: true, one: v[0]}
		default:
			cells[k] = cell{set: true, vals: v}
		}
		mask |= 1 << k
		return true
	}
	setOne := func(k int, v string) {
		cells[k] = cell{set: true, one: v}
		mask |= 1 << k
	}
	idCol := s.d.normColumn(s.identityColumn())
	for i, c := range changes {
		clear(cells)
		mask = 0
		key := c.ID
		if key == "" {
			key = c.Identity
		}
		switch c.Op {
		case directory.OpCreate:
			for a, v := range c.Attributes {
				col := s.column(a)
				if len(v) == 0 && s.d.normColumn(col) == idCol {
					continue
				}
				if !set(col, v) {
					return false
				}
			}
			if !cells[st.id].set {
				if c.Identity == "" {
					return false // the statement path names the line
				}
				setOne(st.id, c.Identity)
			}
			if st.marker >= 0 && !cells[st.marker].set {
				setOne(st.marker, s.opts.MarkerValue)
			}
			setOne(st.active, st.activeTrue)
			id := cells[st.id].text()
			if id == "" || !claim(id) {
				return false
			}
			b.ids[i], b.ops[i] = id, stageCreate
			k := slices.IndexFunc(b.creates, func(cc createCopy) bool { return cc.mask == mask })
			if k < 0 {
				k = len(b.creates)
				if k < cap(b.creates) {
					b.creates = b.creates[:k+1]
					b.creates[k].mask = mask
				} else {
					b.creates = append(b.creates, createCopy{mask: mask})
				}
			}
			d := b.creates[k].data
			sep := false
			for j, cl := range cells {
				if mask&(1<<j) == 0 {
					continue
				}
				if sep {
					d = append(d, '\t')
				}
				sep = true
				d = cl.appendTo(d)
			}
			b.creates[k].data = append(d, '\n')
			continue
		case directory.OpUpdate, directory.OpDeactivate:
			if c.Op == directory.OpDeactivate {
				setOne(st.active, st.activeFalse)
			} else {
				for a, v := range c.Attributes {
					if !set(s.column(a), v) {
						return false
					}
				}
				if c.Reactivate {
					setOne(st.active, st.activeTrue)
				}
			}
			id := key
			if cells[st.id].set {
				id = cells[st.id].text()
				if id != key && !claim(id) {
					return false
				}
			}
			if !claim(key) {
				return false
			}
			b.ids[i], b.ops[i] = id, stageUpdate
			b.updateMask |= mask
		case directory.OpDelete:
			if !claim(key) {
				return false
			}
			b.ids[i], b.ops[i] = key, stageDelete
			b.deletes = true
		default:
			return false
		}
		d := strconv.AppendInt(b.staged, int64(i), 10)
		d = append(d, '\t')
		d = strconv.AppendInt(d, int64(b.ops[i]), 10)
		d = append(d, '\t')
		d = strconv.AppendInt(d, int64(mask), 10)
		d = append(d, '\t')
		d = appendCopyText(d, key)
		for _, cl := range cells {
			d = append(d, '\t')
			d = cl.appendTo(d)
		}
		b.staged = append(d, '\n')
	}
	return true
}

// text is the cell's value as its column holds it.
func (c cell) text() string {
	if c.vals == nil {
		return c.one
	}
	return strings.Join(c.vals, Separator)
}

func (c cell) appendTo(d []byte) []byte {
	switch {
	case !c.set, c.null:
		return append(d, '\\', 'N')
	case c.vals == nil:
		return appendCopyText(d, c.one)
	}
	for j, v := range c.vals {
		if j > 0 {
			d = append(d, '\\', 'n') // Separator
		}
		d = appendCopyText(d, v)
	}
	return d
}

// appendCopyText appends v escaped for COPY's text format: a backslash,
// newline, carriage return or tab in a value would otherwise end it.
func appendCopyText(d []byte, v string) []byte {
	start := 0
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c != '\\' && c >= ' ' {
			continue
		}
		var esc byte
		switch c {
		case '\\':
			esc = '\\'
		case '\n':
			esc = 'n'
		case '\r':
			esc = 'r'
		case '\t':
			esc = 't'
		default:
			continue
		}
		d = append(d, v[start:i]...)
		d = append(d, '\\', esc)
		start = i + 1
	}
	return append(d, v[start:]...)
}

// merge is the SQL that writes the staging table's rows, and the
// position of the UPDATE's result among its statements (-1 without one).
func (st *stage) merge(s *Directory, b *stagedBatch) (string, int) {
	var q []string
	update := -1
	key := quote(s.identityColumn())
	if b.deletes {
		q = append(q, "DELETE FROM "+s.qtable+" t USING "+st.name+` s WHERE s."uio$op" = 3 AND t.`+key+` = s."uio$key"`)
	}
	if b.updateMask != 0 {
		var set []string
		for k, c := range st.cols {
			if b.updateMask&(1<<k) != 0 {
				set = append(set, quote(c)+` = CASE WHEN s."uio$mask" & `+strconv.FormatUint(1<<k, 10)+
					" <> 0 THEN s."+quote(c)+" ELSE t."+quote(c)+" END")
			}
		}
		update = len(q)
		q = append(q, "UPDATE "+s.qtable+" t SET "+strings.Join(set, ", ")+" FROM "+st.name+
			` s WHERE s."uio$op" = 2 AND t.`+key+` = s."uio$key" RETURNING s."uio$ord"`)
	}
	return strings.Join(q, "; "), update
}

// copyInto is the COPY of creates of the columns of mask.
func (st *stage) copyInto(s *Directory, mask uint64) string {
	if q, ok := st.copies.Load(mask); ok {
		return q.(string)
	}
	var cols []string
	for k, c := range st.cols {
		if mask&(1<<k) != 0 {
			cols = append(cols, quote(c))
		}
	}
	q := "COPY " + s.qtable + " (" + strings.Join(cols, ", ") + ") FROM STDIN"
	st.copies.Store(mask, q)
	return q
}

var batchPool = sync.Pool{New: func() any { return new(stagedBatch) }}

// step is one statement of a staged write: a COPY of rows, or the merge.
type step struct {
	sql  string
	rows [][]byte // COPY's rows, in parts; nil for the merge
}

// applyStaged writes a batch with COPY. staged is false when the batch
// must take the statement path; rowFailed when the database refused part
// of it: nothing was written, and the batch must be written change by
// change.
func (s *Directory) applyStaged(ctx context.Context, st *stage, changes []directory.Change) (results []directory.Result, staged, rowFailed bool, err error) {
	b := batchPool.Get().(*stagedBatch)
	defer batchPool.Put(b)
	if !st.encode(s, changes, b) {
		return nil, false, false, nil
	}
	matched := make([]bool, len(changes))
	if len(b.staged) == 0 {
		// Batches of creates that arrive while one is written go in
		// together: one transaction and one COPY, where the server would
		// otherwise do several, which is most of its cost for batches of
		// a hundred.
		err = s.creates.do(ctx, s.opts.RequestTimeout, b, func(ctx context.Context, group []*stagedBatch) error {
			return s.writeCreates(ctx, st, group)
		})
	} else {
		// The staging table's rows and their merge, then a COPY per set
		// of columns of the creates.
		merge, update := st.merge(s, b)
		steps := []step{{sql: "COPY " + st.name + " (" + st.stagedCols + ") FROM STDIN", rows: [][]byte{b.staged}}, {sql: merge}}
		for _, cc := range b.creates {
			steps = append(steps, step{sql: st.copyInto(s, cc.mask), rows: [][]byte{cc.data}})
		}
		err = s.writeSteps(ctx, st, steps, true, update, matched)
	}
	if err != nil {
		if s.d.classify(err) == classRow {
			return nil, true, true, nil
		}
		return nil, true, false, err
	}
	results = make([]directory.Result, len(changes))
	for i := range changes {
		if b.ops[i] == stageUpdate && !matched[i] {
			results[i].Err = &directory.ChangeError{Msg: s.opts.IdentityAttribute + ": no such user (deleted meanwhile?)"}
			continue
		}
		results[i].ID = b.ids[i]
	}
	return results, true, false, nil
}

// writeSteps runs steps in one transaction on one connection: the first
// begins it and the last commits it. staging says whether the steps use
// the staging table; the update-th statement of the merge is its UPDATE,
// whose rows mark the changes it matched.
func (s *Directory) writeSteps(ctx context.Context, st *stage, steps []step, staging bool, update int, matched []bool) error {
	begin := "BEGIN; "
	if staging {
		// Created in the transaction that uses it, not once per
		// connection: behind a pooler that hands each transaction a
		// server session of its own, a table made in another would not
		// be there.
		begin += st.create + "; "
	}
	steps[0].sql = begin + steps[0].sql
	steps[len(steps)-1].sql += "; COMMIT"
	conn, err := s.write.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	return conn.Raw(func(dc any) error {
		pc := dc.(*stdlib.Conn).Conn().PgConn()
		defer func() {
			if pc.TxStatus() != 'I' && !pc.IsClosed() {
				if _, rerr := pc.Exec(context.WithoutCancel(ctx), "ROLLBACK").ReadAll(); rerr != nil {
					_ = pc.Close(context.WithoutCancel(ctx))
				}
			}
		}()
		for _, sp := range steps {
			if sp.rows == nil {
				if err := readMerge(pc.Exec(ctx, sp.sql), update, matched); err != nil {
					return err
				}
				continue
			}
			readers := make([]io.Reader, len(sp.rows))
			for i, r := range sp.rows {
				readers[i] = bytes.NewReader(r)
			}
			if _, err := pc.CopyFrom(ctx, io.MultiReader(readers...), sp.sql); err != nil {
				var pe *pgconn.PgError
				if staging && errors.As(err, &pe) && pe.Code == "42701" {
					// The users table has a column named like one of the
					// staging table's own.
					st.broken.Store(true)
				}
				return err
			}
		}
		return nil
	})
}

// writeCreates copies the creates of batches in one transaction, one
// COPY per set of columns.
func (s *Directory) writeCreates(ctx context.Context, st *stage, batches []*stagedBatch) error {
	var steps []step
	for _, b := range batches {
		for _, cc := range b.creates {
			i := slices.IndexFunc(steps, func(sp step) bool { return sp.sql == st.copyInto(s, cc.mask) })
			if i < 0 {
				i = len(steps)
				steps = append(steps, step{sql: st.copyInto(s, cc.mask)})
			}
			steps[i].rows = append(steps[i].rows, cc.data)
		}
	}
	return s.writeSteps(ctx, st, steps, false, -1, nil)
}

// readMerge reads the results of the merge statements: the rows of the
// UPDATE's, the update-th, are the ordinals of the changes it matched.
func readMerge(mrr *pgconn.MultiResultReader, update int, matched []bool) error {
	for i := 0; mrr.NextResult(); i++ {
		rr := mrr.ResultReader()
		for rr.NextRow() {
			if i != update {
				continue
			}
			ord, err := strconv.Atoi(string(rr.Values()[0]))
			if err != nil || ord < 0 || ord >= len(matched) {
				_, _ = rr.Close()
				_ = mrr.Close()
				return errBadOrdinal
			}
			matched[ord] = true
		}
		if _, err := rr.Close(); err != nil {
			_ = mrr.Close()
			return err
		}
	}
	return mrr.Close()
}

var errBadOrdinal = errors.New("the staged batch returned a row it does not hold")
