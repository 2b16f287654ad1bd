package engine

import (
	"context"
	"sync"
	"time"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
)

// A pass reads the file once, plans every row and sends the changes
// through the pipeline: batches are applied (or, in a dry run, counted)
// by up to Concurrency workers, and committed strictly in file order, so
// that counts and checkpoint always cover a prefix of the file.
type pass struct {
	r        *run
	dry      bool
	rep      Reporter
	planErrs bool         // report planning errors (not only refused changes)
	resume   *ResumePoint // rows before it are planned again, not written

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
	// unreadable counts the rows whose identity could not be read.
	unreadable int64

	// Committer state (one goroutine at a time; read after the pipeline).
	next       int
	step       string
	counts     Counts
	checkpoint *ResumePoint
	errors     []RowError
	samples    []Sample
	// doneLine and doneOff are the end of the last batch committed: what
	// progress reports, so that line and counts describe one moment.
	doneLine, doneOff int64
	start             time.Time
	lastReport        time.Time
	unreported        bool // a report was held back by the interval
}

// batch is a run of consecutive rows with their changes.
type batch struct {
	seq     int
	step    string
	endLine int64 // last line of the batch
	endOff  int64 // offset of the record after it
	rows    int64

	unchanged int64
	changes   []directory.Change
	changeRow []int64   // row number of each change, for the error policy
	codes     []codeFor // recovery codes the changes give
	recorded  chan error
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
	code      string       // imported recovery code, or ""
}

type rowErr struct {
	RowError
	row  int64
	plan bool // found while planning, as opposed to refused by the directory
}

func (r *run) newPass(dry bool, rep Reporter, resume *ResumePoint, planErrs bool) *pass {
	p := &pass{r: r, dry: dry, rep: rep, planErrs: planErrs, resume: resume, step: v1alpha1.StepApply, start: time.Now()}
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

// deprovision runs only the deprovision step, after run.
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
		res.ResumePoint = &c
	}
}

// pipeline runs produce, which plans batches and sends them, against the
// workers and the committer. The first error in file order wins.
func (p *pass) pipeline(ctx context.Context, produce func(context.Context, func(*batch) error) error) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	conc := p.r.cfg.Concurrency
	// Batches wait for a worker in the hand-off; with recovery codes they
	// queue up to the window instead, so that the codes of the batches
	// ahead are recorded while the workers write (see recordCodes). A
	// queued batch no worker took before the pass stopped is not written.
	queue := 0
	if p.r.cfg.Codes != nil && !p.dry {
		queue = window(conc)
	}
	jobs := make(chan *batch, queue)
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
				if err := context.Cause(ctx); err != nil && queue > 0 {
					b.err = err
					p.abandon(b)
				} else {
					p.work(held, b)
				}
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
		// Recorded like a held batch is written: on to the end when the
		// pass stops, within the drain's bound.
		p.startRecording(held, b)
		select {
		case jobs <- b:
			return nil
		case <-ctx.Done():
			p.abandon(b)
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
