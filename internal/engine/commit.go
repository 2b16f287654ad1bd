package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Committing: completed batches are taken strictly in file order; only
// then are their counts added, their row errors reported and the
// checkpoint moved past them.

// commitLoop commits batches in sequence as they complete.
func (p *pass) commitLoop(done <-chan *batch, slots <-chan struct{}, cancel context.CancelCauseFunc) error {
	pending := map[int]*batch{}
	var stop error
	broken := false // a batch failed: nothing after it counts
	// A report held back by the interval is sent when the interval ends,
	// also while no batch completes (one waits on a lock, the directory
	// is slow): a pod stopped then resumes from what was written.
	var held <-chan time.Time
	for {
		if held == nil && p.unreported {
			held = time.After(time.Until(p.lastReport.Add(p.r.cfg.ProgressInterval)))
		}
		var b *batch
		select {
		case b = <-done:
		case <-held:
			held = nil
			if p.unreported {
				p.report(false)
			}
			continue
		}
		if b == nil {
			break // every batch is in
		}
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
	p.step = b.step
	if b.endLine > 0 {
		p.doneLine, p.doneOff = b.endLine, b.endOff
	}
	if !p.dry {
		p.checkpoint = &ResumePoint{Line: b.endLine, Offset: b.endOff, SHA256: p.r.in.SHA256, Step: b.step, Counts: p.counts,
			Duplicates: p.r.duplicatesAfter(b.endOff), KnownGroups: p.r.knownGroups()}
	}
	if cr, ok := p.rep.(ChangeReporter); ok {
		for _, c := range b.changes {
			cr.Change(Sample{Line: c.Line, Op: c.Op, Identity: c.Identity})
		}
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
		p.unreported = true
		return
	}
	p.lastReport, p.unreported = now, false
	pr := Progress{Step: p.step, Counts: p.counts, Line: p.doneLine, Offset: p.doneOff}
	if secs := now.Sub(p.start).Seconds(); secs > 0 {
		pr.RowsPerSecond = float64(p.counts.Rows-p.baseRows) / secs
	}
	if !p.dry && p.checkpoint != nil {
		c := *p.checkpoint
		pr.ResumePoint = &c
	}
	p.rep.Progress(pr)
}
