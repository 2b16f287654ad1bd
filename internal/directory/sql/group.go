package sql

import (
	"context"
	"sync"
	"time"
)

// groupWriter writes the batches that arrive while one transaction is
// under way together, in the next one. Each Apply still returns once its
// own batch is committed; the database commits once where it would have
// committed several times, and the writes of one table go one
// transaction at a time instead of contending with each other. When a
// group's transaction fails, each of its batches sees the error and
// decides alone: a refused row sends every batch of the group back to
// be written on its own, so that the row fails alone.
type groupWriter[J any] struct {
	// writers bounds the transactions under way at once (1 when unset):
	// with two, the next group is gathered and sent while the server
	// writes the last.
	writers int

	mu      sync.Mutex
	waiting []*pending[J]
	busy    int // transactions under way
}

type pending[J any] struct {
	job   J
	err   error
	done  chan struct{} // closed once the job's transaction ended
	lead  chan struct{} // closed when this job is to write group next
	group []*pending[J]
}

// do runs job with the jobs waiting alongside it: write writes a group in
// one transaction. The transaction belongs to every job of its group, so
// it is bounded by timeout (none when 0), not by the context of the
// Apply that happens to write it.
func (w *groupWriter[J]) do(ctx context.Context, timeout time.Duration, job J, write func(ctx context.Context, group []J) error) error {
	p := &pending[J]{job: job, done: make(chan struct{}), lead: make(chan struct{})}
	w.mu.Lock()
	w.waiting = append(w.waiting, p)
	var group []*pending[J]
	if w.busy >= max(w.writers, 1) {
		w.mu.Unlock()
		select {
		case <-p.done:
			return p.err
		case <-p.lead:
			group = p.group
		}
	} else {
		w.busy++
		group = w.waiting
		w.waiting = nil
		w.mu.Unlock()
	}

	gctx, cancel := context.WithoutCancel(ctx), func() {}
	if timeout > 0 {
		gctx, cancel = context.WithTimeout(gctx, timeout)
	}
	jobs := make([]J, len(group))
	for i, q := range group {
		jobs[i] = q.job
	}
	err := write(gctx, jobs)
	if err != nil && gctx.Err() != nil {
		err = errRequestTimeout
	}
	cancel()
	for _, q := range group {
		q.err = err
		close(q.done)
	}
	w.mu.Lock()
	if len(w.waiting) > 0 {
		// The first that waits writes the next group, of all that wait.
		next := w.waiting
		w.waiting = nil
		next[0].group = next
		close(next[0].lead)
	} else {
		w.busy--
	}
	w.mu.Unlock()
	return p.err
}
