package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/csvread"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/mapping"
)

// A pass reads the file once, plans every row and sends the changes
// through the pipeline: batches are applied (or, in a dry run, counted)
// by up to Concurrency workers, and committed strictly in file order, so
// that counts and checkpoint always cover a prefix of the file.
type pass struct {
	r        *run
	dry      bool
	rep      Reporter
	planErrs bool        // report planning errors (not only refused changes)
	resume   *Checkpoint // rows before it are planned again, not written

	seen    *idSet // delta: identities of the file so far
	dupNext int    // delta with run.dups: index of the next duplicate
	created *idSet // full: identities created so far

	// Planner state (the goroutine that calls run).
	cur      *batch
	seq      int
	baseRows int64 // rows counted before this pass (from the checkpoint)
	planned  int64 // rows of this pass, replayed ones excluded
	endLine  int64
	endOff   int64

	// Committer state (one goroutine at a time; read after the pipeline).
	next       int
	stage      string
	counts     Counts
	checkpoint *Checkpoint
	errors     []RowError
	samples    []Sample
	// doneLine and doneOff are the end of the last batch committed: what
	// progress reports, so that line and counts describe one moment.
	doneLine, doneOff int64
	start             time.Time
	lastReport        time.Time
}

// batch is a run of consecutive rows with their changes.
type batch struct {
	seq     int
	stage   string
	endLine int64 // last line of the batch
	endOff  int64 // offset of the record after it
	rows    int64

	unchanged int64
	changes   []directory.Change
	changeRow []int64 // row number of each change, for the error policy
	pending   []pendingRow
	errs      []rowErr

	// Set by the worker.
	counts Counts
	err    error
}

// pendingRow is a delta row waiting for its user to be looked up.
type pendingRow struct {
	line, row int64
	identity  string
	attrs     directory.Attributes
	action    directory.Op // OpCreate = upsert, or OpDeactivate / OpDelete
}

type rowErr struct {
	RowError
	row  int64
	plan bool // found while planning, as opposed to refused by the directory
}

// item is one record, or one bad record, read from the file.
type item struct {
	rec     csvread.Record
	lineErr *csvread.LineError
	next    int64 // offset of the record after it
}

const readChunk = 512

func (r *run) newPass(dry bool, rep Reporter, resume *Checkpoint, planErrs bool) *pass {
	p := &pass{r: r, dry: dry, rep: rep, planErrs: planErrs, resume: resume, stage: StageApply, start: time.Now()}
	if r.cfg.Mode == v1alpha1.ModeDelta {
		// With run.dups the set stays empty (its first block only).
		p.seen = newIDSet(0)
		r.sets = append(r.sets, p.seen)
	} else {
		p.created = newIDSet(0)
		r.sets = append(r.sets, p.created)
	}
	if resume != nil {
		p.baseRows = resume.Counts.Rows
		p.counts = resume.Counts
		if !dry {
			c := *resume
			p.checkpoint = &c
		}
	}
	return p
}

// run plans and applies the file, then, with deprovision, the users in
// scope that the file does not list.
func (p *pass) run(ctx context.Context, deprovision bool) error {
	return p.pipeline(ctx, func(ctx context.Context, send func(*batch) error) error {
		if err := p.readFile(ctx, send); err != nil {
			return err
		}
		if deprovision {
			return p.produceDeprovision(send)
		}
		return nil
	})
}

// deprovision runs only the deprovision stage, after run.
func (p *pass) deprovision(ctx context.Context) error {
	return p.pipeline(ctx, func(_ context.Context, send func(*batch) error) error {
		return p.produceDeprovision(send)
	})
}

func (p *pass) fill(res *Result) {
	res.Counts = p.counts
	res.Errors = p.errors
	res.Samples = p.samples
	if !p.dry && p.checkpoint != nil {
		c := *p.checkpoint
		res.Checkpoint = &c
	}
}

// pipeline runs produce, which plans batches and sends them, against the
// workers and the committer. The first error in file order wins.
func (p *pass) pipeline(ctx context.Context, produce func(context.Context, func(*batch) error) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	conc := p.r.cfg.Concurrency
	jobs := make(chan *batch)
	done := make(chan *batch, conc)
	// A slot is taken when a batch is sent and given back when it is
	// committed. There are more slots than workers: while one batch waits
	// for a slow or retried request, the other workers go on with the
	// batches after it, which commit once it is done. The window bounds
	// the batches held in memory.
	slots := make(chan struct{}, window(conc))

	// A batch a worker holds is finished even when the pass stops (a
	// SIGTERM, an error): what it writes is then committed, so the next
	// run replays nothing written and a later batch is never written
	// while an earlier one is given up. The drain has a bound, within the
	// time a pod is given to stop.
	held, stopHeld := context.WithCancel(context.WithoutCancel(ctx))
	defer stopHeld()
	stopDrain := context.AfterFunc(ctx, func() { time.AfterFunc(drainGrace, stopHeld) })
	defer stopDrain()

	var wg sync.WaitGroup
	for range conc {
		wg.Go(func() {
			for b := range jobs {
				p.work(held, b)
				done <- b
			}
		})
	}
	committed := make(chan error, 1)
	go func() { committed <- p.commitLoop(done, slots, cancel) }()

	send := func(b *batch) error {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		b.seq = p.seq
		p.seq++
		select {
		case jobs <- b:
			return nil
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	perr := produce(ctx, send)
	close(jobs)
	wg.Wait()
	close(done)
	if cerr := <-committed; cerr != nil {
		return cerr
	}
	return perr
}

// drainGrace bounds the time the workers go on with the batches they hold
// after a pass stops.
const drainGrace = 10 * time.Second

// window is how many batches may be between planning and commit with
// conc workers.
func window(conc int) int { return max(4*conc, conc+8) }

// readFile plans the rows of the file. A reader goroutine parses chunks
// of records; mapping workers map them (and, in full mode, compare them
// with the snapshot), which is most of the work of a row and depends on
// no other row; the planner takes the chunks back in file order and
// decides what depends on earlier rows (duplicates, seen flags) and the
// batches. The result is the same as planning row by row.
func (p *pass) readFile(ctx context.Context, send func(*batch) error) error {
	p.cur = p.newBatch(StageApply)
	end, err := p.r.scanFile(ctx, p.mapChunk, func(c *chunk) error {
		for i := range c.rows {
			if err := p.plan(ctx, &c.rows[i], send); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	p.endOff = end
	return p.flush(send)
}

// scanFile reads the file in chunks, has mapChunk run on them by
// several workers and hands them to consume in file order. It returns
// the offset of the end of the file.
func (r *run) scanFile(ctx context.Context, mapChunk func(*chunk, *mapping.Record), consume func(*chunk) error) (int64, error) {
	rd, err := r.open()
	if err != nil {
		return 0, err
	}
	rctx, stop := context.WithCancel(ctx)
	workers := mapWorkers()
	work := make(chan *chunk, workers)
	ordered := make(chan *chunk, 2*workers+2)
	// Consumed chunks go back to the reader: a million rows would
	// otherwise allocate a hundred megabytes of chunks for the collector.
	free := make(chan *chunk, cap(ordered)+workers+2)
	readErr := make(chan error, 1)
	go func() {
		defer close(ordered)
		defer close(work)
		readErr <- readAll(rctx, rd, work, ordered, free)
	}()
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var rec mapping.Record
			for c := range work {
				if rctx.Err() == nil {
					mapChunk(c, &rec)
				}
				close(c.done)
			}
		}()
	}
	// The workers read the snapshot, which Run frees when it returns:
	// they must be done before scanFile is.
	defer func() {
		stop()
		for range ordered {
		}
		wg.Wait()
	}()

	for c := range ordered {
		<-c.done
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if err := consume(c); err != nil {
			return 0, err
		}
		select {
		case free <- c:
		default:
		}
	}
	if err := <-readErr; err != nil {
		return 0, err
	}
	return rd.Offset(), nil
}

// mapWorkers is the number of goroutines that map rows: one per core
// beside the reader and the planner, which are lighter.
func mapWorkers() int { return min(max(runtime.GOMAXPROCS(0), 1), 8) }

// chunk is a run of consecutive records on their way from the reader to
// the planner; done is closed once rows are filled in.
type chunk struct {
	rows []mappedRow
	done chan struct{}
	// hashes is mapChunk's scratch space; touched keeps the reads of its
	// first round from being optimised away.
	hashes  []uint64
	touched uint64
	// arena holds the records' text, reused with the chunk: what
	// outlives the chunk is detached from it (mappedRow.detach).
	arena csvread.Arena
}

// mappedRow is one record (or bad record) with what its row maps to.
type mappedRow struct {
	item
	// msg is the row's error found while mapping, "" when none.
	msg      string
	identity string
	// entry is the snapshot entry of identity (full mode), -1 when none.
	entry int
	// attrs are the values the row's change needs: every attribute for a
	// create (full mode: entry -1) and for every delta row, the ones that
	// differ for an update; nil when nothing differs.
	attrs directory.Attributes
}

func readAll(ctx context.Context, rd *csvread.Reader, work, ordered chan<- *chunk, free <-chan *chunk) error {
	newChunk := func() *chunk {
		select {
		case c := <-free:
			clear(c.rows)
			c.rows, c.done = c.rows[:0], make(chan struct{})
			c.arena.Reset()
			rd.SetArena(&c.arena)
			return c
		default:
			c := &chunk{rows: make([]mappedRow, 0, readChunk), done: make(chan struct{})}
			rd.SetArena(&c.arena)
			return c
		}
	}
	c := newChunk()
	emit := func() error {
		select {
		case ordered <- c:
		case <-ctx.Done():
			return ctx.Err()
		}
		// Once in ordered, the chunk must reach a worker: the planner
		// waits for it.
		work <- c
		c = newChunk()
		return nil
	}
	for {
		rec, err := rd.Next()
		var it item
		var le *csvread.LineError
		switch {
		case errors.Is(err, io.EOF):
			if len(c.rows) > 0 {
				return emit()
			}
			return nil
		case errors.As(err, &le):
			it = item{lineErr: le, next: rd.Offset()}
		case err != nil:
			return fmt.Errorf("reading the source: %w", err)
		default:
			it = item{rec: rec, next: rd.Offset()}
		}
		c.rows = append(c.rows, mappedRow{item: it, entry: -1})
		if len(c.rows) == readChunk {
			if err := emit(); err != nil {
				return err
			}
		}
	}
}

// mapChunk maps the rows of c. It reads only what no planner writes
// during a pass: the mapper and the snapshot's index and hashes.
//
// In full mode it works in two rounds: the first maps every row and keeps
// only hashes (of the identity and of each compared attribute), touching
// the identity's slot of the snapshot index; the second looks the rows up
// and compares hashes. Most rows are unchanged and need nothing else;
// the few that are created or updated are mapped again for their values,
// which costs less than copying every row's values.
func (p *pass) mapChunk(c *chunk, rec *mapping.Record) {
	s := p.r.snap
	if p.seen != nil || s == nil || s.len() == 0 {
		for i := range c.rows {
			if m := &c.rows[i]; p.mapRow(m, rec) {
				m.attrs = p.r.mapper.AttributesOf(rec)
			}
		}
		return
	}
	k := 1 + len(p.r.compare)
	if cap(c.hashes) < k*len(c.rows) {
		c.hashes = make([]uint64, k*len(c.rows))
	}
	hashes := c.hashes[:k*len(c.rows)]
	var touched uint64
	for i := range c.rows {
		m := &c.rows[i]
		if !p.mapRow(m, rec) {
			continue
		}
		h := hashes[i*k : (i+1)*k]
		h[0] = xxhash.Sum64String(m.identity)
		touched += s.touch(h[0])
		for j := 1; j < k; j++ {
			h[j] = hashValues(rec.Values[j])
		}
	}
	c.touched = touched
	for i := range c.rows {
		m := &c.rows[i]
		if m.lineErr != nil || m.msg != "" {
			continue
		}
		h := hashes[i*k : (i+1)*k]
		m.entry = s.findHashed(m.identity, h[0])
		changed := m.entry < 0
		for j := 1; j < k && !changed; j++ {
			changed = h[j] != s.hash(m.entry, j-1)
		}
		if !changed {
			continue
		}
		p.mapRow(m, rec)
		if m.entry < 0 {
			m.attrs = p.r.mapper.AttributesOf(rec)
			continue
		}
		// compare[j-1] is attribute j of the Record (0 is the identity).
		m.attrs = directory.Attributes{}
		for j := 1; j < k; j++ {
			if h[j] != s.hash(m.entry, j-1) {
				m.attrs[p.r.compare[j-1]] = append([]string{}, rec.Values[j]...)
			}
		}
	}
}

// mapRow maps the record of m into rec and sets m's identity, or its
// error; it reports whether the row mapped.
func (p *pass) mapRow(m *mappedRow, rec *mapping.Record) bool { return p.r.mapRow(m, rec) }

func (r *run) mapRow(m *mappedRow, rec *mapping.Record) bool {
	if m.lineErr != nil {
		return false
	}
	if err := r.mapper.MapRecord(m.rec.Fields, rec); err != nil {
		m.msg = err.Error()
		return false
	}
	m.identity = first(rec.Values[0])
	if m.identity == "" {
		m.msg = r.cfg.Directory.IdentityAttribute + ": the identity is empty"
		return false
	}
	return true
}

func (p *pass) newBatch(stage string) *batch { return &batch{stage: stage} }

// rowsPerBatch bounds the rows of a batch whose rows need no change, so
// that checkpoints and progress move on through unchanged stretches.
func (p *pass) rowsPerBatch() int64 { return max(int64(p.r.cfg.BatchSize), 1024) }

func (p *pass) flush(send func(*batch) error) error {
	b := p.cur
	if b.rows == 0 && len(b.changes) == 0 {
		return nil
	}
	p.cur = p.newBatch(b.stage)
	return send(b)
}

// replaying tells whether the record at off was done before the
// checkpoint being resumed.
func (p *pass) replaying(off int64) bool {
	cp := p.resume
	if cp == nil {
		return false
	}
	return cp.Stage == StageDeprovision || off < cp.Offset
}

// plan plans one mapped record.
func (p *pass) plan(ctx context.Context, m *mappedRow, send func(*batch) error) error {
	line, off := m.rec.Line, m.rec.Offset
	if m.lineErr != nil {
		line, off = m.lineErr.Line, m.lineErr.Offset
	}
	p.endLine = line
	replay := p.replaying(off)
	b := p.cur
	var row int64
	if !replay {
		p.planned++
		row = p.baseRows + p.planned
		b.rows++
		b.endLine = line
		b.endOff = m.next
	}
	fail := func(msg string) {
		if !replay {
			b.errs = append(b.errs, rowErr{RowError: RowError{Line: line, Msg: msg}, row: row, plan: true})
		}
	}
	switch {
	case m.lineErr != nil:
		fail(m.lineErr.Msg)
	case m.msg != "":
		fail(m.msg)
	case p.seen != nil:
		p.planDelta(b, line, row, m, replay, fail)
	default:
		p.planFull(b, line, row, m, replay, fail)
	}
	if len(b.changes) >= p.r.cfg.BatchSize || len(b.pending) >= p.r.cfg.BatchSize || b.rows >= p.rowsPerBatch() {
		return p.flush(send)
	}
	return nil
}

func (p *pass) duplicateMsg() string {
	return p.r.cfg.Directory.IdentityAttribute + ": duplicate identity, an earlier line of the file has the same value"
}

func (p *pass) planFull(b *batch, line, row int64, m *mappedRow, replay bool, fail func(string)) {
	s := p.r.snap
	i := m.entry
	if i < 0 {
		if !p.created.add(hashIdentity(m.identity)) {
			fail(p.duplicateMsg())
			return
		}
		if replay {
			return
		}
		m.detach()
		m.attrs[p.r.cfg.Directory.MarkerAttribute] = []string{p.r.cfg.Directory.MarkerValue}
		b.add(directory.Change{Op: directory.OpCreate, Line: line, Identity: m.identity, Attributes: m.attrs}, row)
		return
	}
	if s.seen(i) {
		fail(p.duplicateMsg())
		return
	}
	s.markSeen(i)
	if replay {
		return
	}
	if m.attrs == nil && s.active(i) {
		b.unchanged++
		return
	}
	m.detach()
	b.add(directory.Change{Op: directory.OpUpdate, Line: line, Identity: m.identity, ID: s.id(i), Attributes: m.attrs, Reactivate: !s.active(i)}, row)
}

func (p *pass) planDelta(b *batch, line, row int64, m *mappedRow, replay bool, fail func(string)) {
	action := directory.OpCreate
	if sc := p.r.cfg.StatusColumn; sc != nil {
		v := strings.TrimSpace(m.rec.Fields[p.r.status])
		switch {
		case slices.ContainsFunc(sc.DeleteValues, func(s string) bool { return strings.EqualFold(s, v) }):
			action = directory.OpDelete
		case slices.ContainsFunc(sc.DeactivateValues, func(s string) bool { return strings.EqualFold(s, v) }):
			action = directory.OpDeactivate
		}
	}
	if p.isDuplicate(m) {
		fail(p.duplicateMsg())
		return
	}
	if replay {
		return
	}
	m.detach()
	b.pending = append(b.pending, pendingRow{line: line, row: row, identity: m.identity, attrs: m.attrs, action: action})
}

// isDuplicate tells whether a delta row's identity was on an earlier
// line: from the identity set, or, for a large file, from the duplicates
// found before the pass (rows come in offset order).
func (p *pass) isDuplicate(m *mappedRow) bool {
	d := p.r.dups
	if d == nil {
		return !p.seen.add(hashIdentity(m.identity))
	}
	for p.dupNext < len(d) && d[p.dupNext] < m.rec.Offset {
		p.dupNext++
	}
	return p.dupNext < len(d) && d[p.dupNext] == m.rec.Offset
}

// detach copies the row's identity and values, which point into its
// chunk's arena, into one string of their own: they go into a batch, which
// outlives the chunk. The attribute slices belong to the row.
func (m *mappedRow) detach() {
	n := len(m.identity)
	lists := make([][]string, 0, len(m.attrs))
	for _, vs := range m.attrs {
		lists = append(lists, vs)
		for _, v := range vs {
			n += len(v)
		}
	}
	var sb strings.Builder
	sb.Grow(n)
	sb.WriteString(m.identity)
	for _, vs := range lists {
		for _, v := range vs {
			sb.WriteString(v)
		}
	}
	s := sb.String()
	m.identity, s = s[:len(m.identity)], s[len(m.identity):]
	for _, vs := range lists {
		for i, v := range vs {
			vs[i], s = s[:len(v)], s[len(v):]
		}
	}
}

func (b *batch) add(c directory.Change, row int64) {
	b.changes = append(b.changes, c)
	b.changeRow = append(b.changeRow, row)
}

func (p *pass) produceDeprovision(send func(*batch) error) error {
	if !p.r.deprovisions() {
		return nil
	}
	s := p.r.snap
	row := p.baseRows + p.planned
	b := p.newBatch(StageDeprovision)
	for i := range s.len() {
		op := p.r.deprovisionOp(i)
		if op == 0 {
			continue
		}
		b.add(directory.Change{Op: op, Identity: s.identity(i), ID: s.id(i)}, row)
		if len(b.changes) >= p.r.cfg.BatchSize {
			b.endLine, b.endOff = p.endLine, p.endOff
			if err := send(b); err != nil {
				return err
			}
			b = p.newBatch(StageDeprovision)
		}
	}
	// An empty last batch still records that the stage is done.
	b.endLine, b.endOff = p.endLine, p.endOff
	return send(b)
}

// work looks up, plans the rest of and applies one batch.
func (p *pass) work(ctx context.Context, b *batch) {
	if len(b.pending) > 0 {
		if b.err = p.resolve(ctx, b); b.err != nil {
			return
		}
	} else if b.stage == StageApply {
		if b.err = p.checkCreates(ctx, b); b.err != nil {
			return
		}
	}
	b.counts.Unchanged = b.unchanged
	if p.dry {
		for _, c := range b.changes {
			b.counts.count(c.Op)
		}
		return
	}
	if len(b.changes) == 0 {
		return
	}
	results, err := p.r.dir.Apply(ctx, b.changes)
	if err != nil {
		b.err = fmt.Errorf("writing to the directory: %w", err)
		return
	}
	if len(results) != len(b.changes) {
		b.err = fmt.Errorf("writing to the directory: %d results for %d changes", len(results), len(b.changes))
		return
	}
	for i, res := range results {
		if res.Err != nil {
			msg := res.Err.Error()
			if !directory.IsRowError(res.Err) {
				// Only a RowError promises a message free of values.
				msg = b.changes[i].Op.String() + " refused by the directory"
			}
			b.errs = append(b.errs, rowErr{RowError: RowError{Line: b.changes[i].Line, Msg: msg}, row: b.changeRow[i]})
			continue
		}
		b.counts.count(b.changes[i].Op)
	}
}

func (c *Counts) count(op directory.Op) {
	switch op {
	case directory.OpCreate:
		c.Created++
	case directory.OpUpdate:
		c.Updated++
	case directory.OpDeactivate:
		c.Deactivated++
	case directory.OpDelete:
		c.Deleted++
	}
}

func (p *pass) unmanagedMsg() string {
	return p.r.cfg.Directory.IdentityAttribute + ": a user with this identity exists in the directory but is not managed by imports (it lacks the marker attribute)"
}

// resolve looks up the users of a delta batch and plans their changes.
func (p *pass) resolve(ctx context.Context, b *batch) error {
	ids := make([]string, len(b.pending))
	for i, pr := range b.pending {
		ids[i] = pr.identity
	}
	users, err := p.r.dir.Lookup(ctx, ids, p.r.attrs)
	if err != nil {
		return fmt.Errorf("looking up users: %w", err)
	}
	cfg := p.r.cfg
	for _, pr := range b.pending {
		u, ok := users[pr.identity]
		if ok && cfg.Directory.ManagedOnly && !u.Managed {
			b.errs = append(b.errs, rowErr{RowError: RowError{Line: pr.line, Msg: p.unmanagedMsg()}, row: pr.row, plan: true})
			continue
		}
		c := directory.Change{Line: pr.line, Identity: pr.identity, ID: u.ID}
		switch {
		case pr.action == directory.OpDelete && ok:
			c.Op = directory.OpDelete
		case pr.action == directory.OpDeactivate && ok && u.Active:
			c.Op = directory.OpDeactivate
		case pr.action != directory.OpCreate:
			// Nothing to deactivate or delete.
			b.unchanged++
			continue
		case !ok:
			pr.attrs[cfg.Directory.MarkerAttribute] = []string{cfg.Directory.MarkerValue}
			c.Op, c.Attributes = directory.OpCreate, pr.attrs
		default:
			for _, a := range p.r.compare {
				if hashValues(pr.attrs[a]) != hashValues(u.Attributes[a]) {
					if c.Attributes == nil {
						c.Attributes = directory.Attributes{}
					}
					c.Attributes[a] = nonNil(pr.attrs[a])
				}
			}
			if c.Attributes == nil && u.Active {
				b.unchanged++
				continue
			}
			c.Op, c.Reactivate = directory.OpUpdate, !u.Active
		}
		b.add(c, pr.row)
	}
	b.pending = nil
	return nil
}

// checkCreates finds the creates of a full import whose identity is taken
// by a user outside the scope: writing them would take over (or collide
// with) a user that imports do not own. A directory that holds no such
// user needs no lookups.
func (p *pass) checkCreates(ctx context.Context, b *batch) error {
	cfg := p.r.cfg
	if !cfg.Directory.ManagedOnly || !p.r.unmanaged {
		return nil
	}
	var ids []string
	for _, c := range b.changes {
		if c.Op == directory.OpCreate {
			ids = append(ids, c.Identity)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	users, err := p.r.dir.Lookup(ctx, ids, []string{cfg.Directory.IdentityAttribute})
	if err != nil {
		return fmt.Errorf("looking up users: %w", err)
	}
	keep := b.changes[:0]
	keepRow := b.changeRow[:0]
	for i, c := range b.changes {
		if u, ok := users[c.Identity]; c.Op == directory.OpCreate && ok && !u.Managed {
			b.errs = append(b.errs, rowErr{RowError: RowError{Line: c.Line, Msg: p.unmanagedMsg()}, row: b.changeRow[i], plan: true})
			continue
		}
		keep = append(keep, c)
		keepRow = append(keepRow, b.changeRow[i])
	}
	b.changes, b.changeRow = keep, keepRow
	return nil
}

// commitLoop commits batches in sequence as they complete.
func (p *pass) commitLoop(done <-chan *batch, slots <-chan struct{}, cancel context.CancelCauseFunc) error {
	pending := map[int]*batch{}
	var stop error
	broken := false // a batch failed: nothing after it counts
	for b := range done {
		if broken {
			continue
		}
		pending[b.seq] = b
		for !broken {
			nb, ok := pending[p.next]
			if !ok {
				break
			}
			delete(pending, p.next)
			p.next++
			<-slots
			if stop != nil {
				// The error policy stopped the import; batches already in
				// flight that were written still count, so that counts and
				// checkpoint say what the directory holds. A dry run stops
				// exactly where the policy did.
				if nb.err != nil || p.dry {
					broken = true
				} else {
					p.commitDone(nb)
				}
				continue
			}
			if err := p.commit(nb); err != nil {
				stop = err
				cancel(err)
				var pe *PolicyError
				broken = !errors.As(err, &pe)
			}
		}
	}
	var pe *PolicyError
	if errors.As(stop, &pe) {
		// The counts go on past the row where the policy tripped (the rest
		// of its batch, batches in flight that were written): the message
		// gives the same figures as the counts, and where it tripped.
		pe.Failed, pe.Rows = p.counts.Failed, p.counts.Rows
	}
	p.report(true)
	return stop
}

// commit adds a batch to the counts and moves the checkpoint past it.
func (p *pass) commit(b *batch) error {
	if b.err != nil {
		return b.err
	}
	slices.SortStableFunc(b.errs, func(x, y rowErr) int { return int(x.row - y.row) })
	policy := p.commitErrors(b)
	p.commitDone(b)
	if policy == nil {
		policy = p.policy(p.counts.Failed, p.counts.Rows, b.endLine)
	}
	return policy
}

// commitErrors reports the row errors of a batch and checks the error
// policy at each of them, in file order.
func (p *pass) commitErrors(b *batch) error {
	var policy error
	before := p.counts.Rows
	failed := p.counts.Failed
	for _, e := range b.errs {
		// Once 100 rows are read the percentage counts, also at the
		// 100th row itself when no error falls on it.
		if policy == nil && before < 100 && e.row > 100 {
			policy = p.policy(failed, 100, 0)
		}
		failed++
		if e.plan == p.planErrs || !e.plan {
			p.rep.RowError(e.RowError)
			if len(p.errors) < p.r.cfg.KeepErrors {
				p.errors = append(p.errors, e.RowError)
			}
		}
		if policy == nil {
			policy = p.policy(failed, e.row, e.Line)
		}
	}
	return policy
}

// commitDone adds a batch to the counts and moves the checkpoint past it.
func (p *pass) commitDone(b *batch) {
	b.counts.Failed = int64(len(b.errs))
	b.counts.Rows = b.rows
	p.counts.add(b.counts)
	p.stage = b.stage
	if b.endLine > 0 {
		p.doneLine, p.doneOff = b.endLine, b.endOff
	}
	if !p.dry {
		p.checkpoint = &Checkpoint{Line: b.endLine, Offset: b.endOff, SHA256: p.r.in.SHA256, Stage: b.stage, Counts: p.counts}
	}
	for _, c := range b.changes {
		if len(p.samples) >= p.r.cfg.KeepSamples {
			break
		}
		s := Sample{Line: c.Line, Op: c.Op, Identity: c.Identity}
		for a := range c.Attributes {
			s.Attributes = append(s.Attributes, a)
		}
		slices.Sort(s.Attributes)
		p.samples = append(p.samples, s)
	}
	p.report(false)
}

// policy checks the error policy with failed bad rows of rows read; line
// is where the check is made (0: at the 100th row, where the percentage
// starts to count).
func (p *pass) policy(failed, rows, line int64) error {
	c := p.r.cfg
	if c.MaxErrors != nil && failed > *c.MaxErrors {
		return &PolicyError{Failed: failed, Rows: rows, Line: line, limit: fmt.Sprintf("maxErrors is %d", *c.MaxErrors)}
	}
	if c.MaxErrorPercent != nil && rows >= 100 && failed*100 > *c.MaxErrorPercent*rows {
		return &PolicyError{Failed: failed, Rows: rows, Line: line, limit: fmt.Sprintf("maxErrorPercent is %d", *c.MaxErrorPercent)}
	}
	return nil
}

func (p *pass) report(final bool) {
	now := time.Now()
	if !final && p.r.cfg.ProgressInterval > 0 && now.Sub(p.lastReport) < p.r.cfg.ProgressInterval {
		return
	}
	p.lastReport = now
	pr := Progress{Stage: p.stage, Counts: p.counts, Line: p.doneLine, Offset: p.doneOff}
	if secs := now.Sub(p.start).Seconds(); secs > 0 {
		pr.RowsPerSecond = float64(p.counts.Rows-p.baseRows) / secs
	}
	if !p.dry && p.checkpoint != nil {
		c := *p.checkpoint
		pr.Checkpoint = &c
	}
	p.rep.Progress(pr)
}

func first(v []string) string {
	if len(v) == 0 {
		return ""
	}
	return v[0]
}

func nonNil(v []string) []string {
	if v == nil {
		return []string{}
	}
	return v
}
