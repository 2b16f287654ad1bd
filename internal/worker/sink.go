package worker

import (
	"context"
	"sort"
	"time"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/engine"
	"github.com/userimport/user-import-operator/internal/source"
)

// Sink receives what a run has to say. The API sink writes it to the
// UserImport's status and report Secret; the console sink prints it.
type Sink interface {
	// Started reports the fetched source and whether the import resumes.
	Started(ctx context.Context, file *source.File, resumed bool) error
	// Progress reports progress and the latest checkpoint.
	Progress(ctx context.Context, p Progress) error
	// Report stores the planned changes sample and the row errors.
	Report(ctx context.Context, r RunReport) error
	// Preview reports the result of a preview (or of an import stopped by
	// the safety threshold) made for imp as the run read it, with the
	// sha256 of the invitation templates it rendered ("" without).
	Preview(ctx context.Context, imp *v1alpha1.UserImport, res engine.Result, templates string) error
	// Invitations reports the invitations of an import so far, sent by
	// this run.
	Invitations(ctx context.Context, inv engine.Invitations) error
	// Done reports the result of a finished import.
	Done(ctx context.Context, res engine.Result) error
}

// Progress is one progress report.
type Progress struct {
	engine.Progress
	// Percent of the file's bytes read.
	Percent int32
	// DryRun says the counts are planned changes of a preview, not
	// changes made.
	DryRun bool
}

// RunReport is what a run reports when it ends.
type RunReport struct {
	Result engine.Result
	// Errors are the first row errors (maxKeptErrors), by line.
	Errors []engine.RowError
	// Complete streams every outcome and group change, compressed; nil
	// when the run had none to stream.
	Complete *completeReport
}

// maxKeptErrors bounds the row errors kept for the report Secret.
const maxKeptErrors = 1000

// reporter adapts the engine's Reporter to a Sink.
type reporter struct {
	ctx     context.Context
	sink    Sink
	size    int64
	resumed bool
	dryRun  bool
	err     error
	// errors by line: after a resume the engine may report a line again.
	byLine map[int64]string
	errors []engine.RowError
	// complete lists every outcome, beyond the errors and samples kept.
	complete *completeReport
}

var _ engine.ChangeReporter = (*reporter)(nil)

func (r *reporter) Change(s engine.Sample) { r.completeReport().change(s) }

func (r *reporter) Relation(c engine.RelationChange) { r.completeReport().relation(c) }

func (r *reporter) completeReport() *completeReport {
	if r.complete == nil {
		r.complete = newCompleteReport()
	}
	return r.complete
}

// runReport is what the run reports at its end.
func (r *reporter) runReport(res engine.Result) RunReport {
	return RunReport{Result: res, Errors: r.sortedErrors(), Complete: r.complete}
}

func (r *reporter) Progress(p engine.Progress) {
	// Percent follows the checkpoint, like the counts do, so the two
	// never disagree; a dry run has no checkpoint and follows the reader.
	done := p.Offset
	if p.ResumePoint != nil {
		done = p.ResumePoint.Offset
	}
	pct := int32(100)
	if r.size > 0 {
		pct = int32(done * 100 / r.size)
	}
	// A stopped run (SIGTERM: the pod is deleted) still records its last
	// report, the checkpoint after the batches it finished: the next pod
	// then replays nothing that was written.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), reportTimeout)
	defer cancel()
	if err := r.sink.Progress(ctx, Progress{Progress: p, Percent: min(pct, 100), DryRun: r.dryRun}); err != nil && r.err == nil {
		r.err = err
	}
}

// reportTimeout bounds one progress report, well within the 30 s a pod
// is given to stop.
const reportTimeout = 10 * time.Second

func (r *reporter) RowError(e engine.RowError) {
	r.completeReport().rowError(e)
	if r.byLine == nil {
		r.byLine = map[int64]string{}
	}
	if _, seen := r.byLine[e.Line]; seen || len(r.byLine) >= maxKeptErrors {
		return
	}
	r.byLine[e.Line] = e.Msg
	r.errors = append(r.errors, e)
}

// Invitations passes the engine's invitation reports on.
func (r *reporter) Invitations(inv engine.Invitations) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.ctx), reportTimeout)
	defer cancel()
	if err := r.sink.Invitations(ctx, inv); err != nil && r.err == nil {
		r.err = err
	}
}

// sortedErrors returns the kept row errors by line.
func (r *reporter) sortedErrors() []engine.RowError {
	sort.Slice(r.errors, func(i, j int) bool { return r.errors[i].Line < r.errors[j].Line })
	return r.errors
}

// Tee passes every report to each sink in turn; the first error wins.
// A Job's worker reports to its UserImport and to its log.
func Tee(sinks ...Sink) Sink { return tee(sinks) }

type tee []Sink

func (t tee) each(fn func(Sink) error) error {
	var first error
	for _, s := range t {
		if err := fn(s); err != nil && first == nil {
			first = err
		}
	}
	return first
}

func (t tee) Started(ctx context.Context, file *source.File, resumed bool) error {
	return t.each(func(s Sink) error { return s.Started(ctx, file, resumed) })
}

func (t tee) Progress(ctx context.Context, p Progress) error {
	return t.each(func(s Sink) error { return s.Progress(ctx, p) })
}

func (t tee) Report(ctx context.Context, r RunReport) error {
	return t.each(func(s Sink) error { return s.Report(ctx, r) })
}

func (t tee) Preview(ctx context.Context, imp *v1alpha1.UserImport, res engine.Result, templates string) error {
	return t.each(func(s Sink) error { return s.Preview(ctx, imp, res, templates) })
}

func (t tee) Invitations(ctx context.Context, inv engine.Invitations) error {
	return t.each(func(s Sink) error { return s.Invitations(ctx, inv) })
}

func (t tee) Done(ctx context.Context, res engine.Result) error {
	return t.each(func(s Sink) error { return s.Done(ctx, res) })
}
