package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"

	"github.com/userimport/user-import-operator/api/v1alpha1"

	"github.com/userimport/user-import-operator/internal/csvread"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/mapping"
)

// Reading: the file is parsed in chunks by one goroutine and handed on
// in file order.

// item is one record, or one bad record, read from the file.
type item struct {
	rec     csvread.Record
	lineErr *csvread.LineError
	next    int64 // offset of the record after it
}

const readChunk = 512

// readFile plans the rows of the file. A reader goroutine parses chunks
// of records; mapping workers map them (and, in full mode, compare them
// with the snapshot), which is most of the work of a row and depends on
// no other row; the planner takes the chunks back in file order and
// decides what depends on earlier rows (duplicates, seen flags) and the
// batches. The result is the same as planning row by row.
func (p *pass) readFile(ctx context.Context, send func(*batch) error) error {
	p.cur = p.newBatch(v1alpha1.StepApply)
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
	// relRec is mapChunk's scratch record for the groups and manager
	// entries (see checkRelations).
	relRec mapping.Record
}

// mappedRow is one record (or bad record) with what its row maps to.
type mappedRow struct {
	item
	// msg is the row's error found while mapping, "" when none; relMsg
	// that of its groups and manager (see groups.go).
	msg      string
	relMsg   string
	identity string
	// entry is the snapshot entry of identity (full mode), -1 when none.
	entry int
	// attrs are the values the row's change needs: every attribute for a
	// create (full mode: entry -1) and for every delta row, the ones that
	// differ for an update; nil when nothing differs.
	attrs directory.Attributes
}

// claims tells whether the row is the first of the file to name its
// user: its identity can be read (whether or not the rest of the row
// maps) and was not in seen, to which it is added. A later row with the
// same identity is a duplicate.
func (r *run) claims(m *mappedRow, seen *idSet) bool {
	return m.lineErr == nil && m.identity != "" && seen.add(r.identityHash(m.identity))
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
