package engine

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
)

// blockFirst holds the first Apply until released, counting the others.
type blockFirst struct {
	directory.Directory
	once    sync.Once
	release chan struct{}
	first   chan struct{}
	others  atomic.Int64
	line    int64 // first line of the held batch
}

func (b *blockFirst) Apply(ctx context.Context, changes []directory.Change) ([]directory.Result, error) {
	isFirst := false
	b.once.Do(func() { isFirst = true })
	if isFirst {
		b.line = changes[0].Line
		close(b.first)
		<-b.release
	} else {
		b.others.Add(1)
	}
	return b.Directory.Apply(ctx, changes)
}

// One slow request does not hold up the rest: while the first batch
// waits, the workers write the batches after it; the checkpoint moves only
// once the slow one is done, so a resume never skips it.
func TestSlowBatchDoesNotStallTheOthers(t *testing.T) {
	var rows []string
	for i := range 400 {
		rows = append(rows, fmt.Sprintf("u%03d,m%d@x,T,", i, i))
	}
	cfg := testConfig(v1alpha1.ModeDelta, v1alpha1.MissingIgnore)
	cfg.BatchSize, cfg.Concurrency = 10, 2
	d := &blockFirst{Directory: seed(), release: make(chan struct{}), first: make(chan struct{})}
	rec := &recorder{}
	done := make(chan error, 1)
	var res Result
	go func() {
		var err error
		res, err = Run(context.Background(), input(file(rows...), nil), d, cfg, false, rec)
		done <- err
	}()
	<-d.first
	deadline := time.Now().Add(10 * time.Second)
	for d.others.Load() < 5 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if n := d.others.Load(); n < 5 {
		close(d.release)
		t.Fatalf("while one batch waited, only %d others were written", n)
	}
	if cp := rec.lastCheckpoint(); cp != nil && cp.Line >= d.line {
		t.Fatalf("the checkpoint (line %d) passed the batch still being written (from line %d)", cp.Line, d.line)
	}
	close(d.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if res.Counts.Created != 400 || res.ResumePoint == nil || res.ResumePoint.Line != 401 {
		t.Fatalf("counts %+v checkpoint %+v", res.Counts, res.ResumePoint)
	}
}
