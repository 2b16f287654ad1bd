package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/failure"
	"github.com/userimport/user-import-operator/internal/memdir"
)

// scenario builds a random directory and a file that differs from it:
// updates, new users, users missing from the file, inactive users back,
// bad rows, duplicates and status values.
func scenario(r *rand.Rand, n int) ([]directory.User, string) {
	var users []directory.User
	var rows []string
	titles := []string{"Dev", "Ops", "QA", "Lead", "Zoë Ünïcødé"}
	status := []string{"", "", "", "", "", "active", "INACTIVE", "deleted"}
	for i := range n {
		id := fmt.Sprintf("u%04d", i)
		if r.IntN(10) < 8 { // in the directory
			u := user(id, id+"@x", titles[r.IntN(len(titles))])
			switch r.IntN(20) {
			case 0:
				u = inactive(u)
			case 1:
				u = unmanaged(u)
			}
			users = append(users, u)
		}
		if r.IntN(10) < 9 { // in the file
			switch r.IntN(40) {
			case 0:
				rows = append(rows, ","+id+"@x,Dev,") // no identity
			case 1:
				rows = append(rows, id+",bad") // too few fields
			default:
				rows = append(rows, fmt.Sprintf("%s,%s@x,%s,%s", id, id, titles[r.IntN(len(titles))], status[r.IntN(len(status))]))
				if r.IntN(50) == 0 {
					rows = append(rows, rows[len(rows)-1]) // duplicate
				}
			}
		}
	}
	return users, file(rows...)
}

func scenarioConfig(r *rand.Rand) Config {
	var cfg Config
	if r.IntN(2) == 0 {
		cfg = testConfig(v1alpha1.ModeFull, []v1alpha1.MissingUsersPolicy{v1alpha1.MissingIgnore, v1alpha1.MissingDeactivate, v1alpha1.MissingDelete}[r.IntN(3)])
	} else {
		cfg = testConfig(v1alpha1.ModeDelta, v1alpha1.MissingIgnore)
		cfg.StatusColumn = &v1alpha1.StatusColumn{Column: "status", DeactivateValues: []string{"inactive"}, DeleteValues: []string{"deleted"}}
	}
	cfg.ApprovedDeprovisions = ptr(int64(1 << 30))
	cfg.MaxErrorPercent = nil
	cfg.BatchSize = 1 + r.IntN(7)
	cfg.Concurrency = 1 + r.IntN(4)
	return cfg
}

func TestPreviewAndImportAgree(t *testing.T) {
	for s := range uint64(30) {
		r := rand.New(rand.NewPCG(s, 7))
		users, content := scenario(r, 150)
		cfg := scenarioConfig(r)
		d := seed(users...)
		preview, prec, err := runOnce(t, d, cfg, content, true)
		if err != nil {
			t.Fatalf("seed %d: preview: %v", s, err)
		}
		res, rec, err := runOnce(t, d, cfg, content, false)
		if err != nil {
			t.Fatalf("seed %d: import: %v", s, err)
		}
		if preview.Counts != res.Counts {
			t.Fatalf("seed %d (%s): preview %+v, import %+v", s, cfg.Mode, preview.Counts, res.Counts)
		}
		if !slices.Equal(prec.errorLines(), rec.errorLines()) {
			t.Fatalf("seed %d: preview errors on %v, import on %v", s, prec.errorLines(), rec.errorLines())
		}
		st := d.Stats()
		if st.Writes != res.Counts.Created+res.Counts.Updated+res.Counts.Deactivated+res.Counts.Deleted {
			t.Fatalf("seed %d: %d writes for counts %+v", s, st.Writes, res.Counts)
		}
		if res.Counts.Created+res.Counts.Updated+res.Counts.Deactivated+res.Counts.Deleted == 0 {
			t.Fatalf("seed %d: scenario changes nothing", s)
		}
	}
}

func TestResumeAfterInterruptions(t *testing.T) {
	for s := range uint64(6) {
		r := rand.New(rand.NewPCG(s, 11))
		users, content := scenario(r, 300)
		cfg := scenarioConfig(r)
		name := fmt.Sprintf("seed%d-%s-%s-b%d-c%d", s, cfg.Mode, cfg.MissingUsers, cfg.BatchSize, cfg.Concurrency)
		t.Run(name, func(t *testing.T) {
			ref := seed(users...)
			want, _, err := runOnce(t, ref, cfg, content, false)
			if err != nil {
				t.Fatal(err)
			}

			d := seed(users...)
			res, interruptions, _ := resumeUntilDone(t, d, cfg, content, r)
			if interruptions < 20 {
				t.Fatalf("only %d interruptions", interruptions)
			}
			if got, w := state(d), state(ref); !slices.Equal(got, w) {
				t.Fatalf("after %d interruptions the directory differs:\n%s\nwant\n%s", interruptions, strings.Join(got, "\n"), strings.Join(w, "\n"))
			}
			if got, w := d.Stats().Creates, ref.Stats().Creates; got != w {
				t.Fatalf("%d creates, an uninterrupted import made %d", got, w)
			}
			// Counts carried through the checkpoints add up to those of an
			// uninterrupted import, except that a replayed change that was
			// already written counts as unchanged or again.
			if res.Counts.Rows != want.Counts.Rows || res.Counts.Failed != want.Counts.Failed {
				t.Fatalf("counts %+v, uninterrupted %+v", res.Counts, want.Counts)
			}
		})
	}
}

// resumeUntilDone runs an import into d that fails after a random number
// of writes, and resumes it from its last checkpoint until it completes.
// It returns the result, the interruptions and their checkpoints' steps.
func resumeUntilDone(t *testing.T, d *memdir.Dir, cfg Config, content string, r *rand.Rand) (Result, int, map[string]int) {
	t.Helper()
	var cp *ResumePoint
	interruptions, steps := 0, map[string]int{}
	for attempt := 0; ; attempt++ {
		if attempt > 1000 {
			t.Fatal("the import never completes")
		}
		d.FailAfter(int64(1 + r.IntN(12)))
		rec := &recorder{}
		res, err := Run(context.Background(), input(content, cp), d, cfg, false, rec)
		if err == nil {
			return res, interruptions, steps
		}
		if !strings.Contains(err.Error(), memdir.ErrInjected.Error()) {
			t.Fatalf("attempt %d: %v", attempt, err)
		}
		interruptions++
		if last := rec.lastCheckpoint(); last != nil {
			if cp != nil && last.Step == cp.Step && last.Offset < cp.Offset {
				t.Fatalf("checkpoint went back from %+v to %+v", cp, last)
			}
			cp = last
		}
		if cp != nil {
			steps[cp.Step]++
		}
	}
}

func TestResumeRefusesAnotherFile(t *testing.T) {
	cfg := testConfig(v1alpha1.ModeDelta, v1alpha1.MissingIgnore)
	cp := &ResumePoint{Line: 2, Offset: 30, SHA256: strings.Repeat("0", 64), Step: v1alpha1.StepApply}
	_, err := Run(context.Background(), input(file("a,a@x,T,"), cp), seed(), cfg, false, nil)
	if !errors.Is(err, failure.ErrChangedSinceCheckpoint) {
		t.Fatalf("got %v", err)
	}
}

// slowDir applies batches after a random delay, so that they complete out
// of order, and records the lines written.
type slowDir struct {
	*memdir.Dir
	mu      sync.Mutex
	r       *rand.Rand
	written map[int64]bool
}

func (s *slowDir) Apply(ctx context.Context, changes []directory.Change) ([]directory.Result, error) {
	s.mu.Lock()
	delay := time.Duration(s.r.IntN(3000)) * time.Microsecond
	s.mu.Unlock()
	time.Sleep(delay)
	res, err := s.Dir.Apply(ctx, changes)
	s.mu.Lock()
	for _, c := range changes {
		s.written[c.Line] = true
	}
	s.mu.Unlock()
	return res, err
}

// checkingReporter verifies, at every report, that every row before the
// checkpoint is written.
type checkingReporter struct {
	t       *testing.T
	d       *slowDir
	reports int
	last    int64
}

func (c *checkingReporter) RowError(RowError) {}
func (c *checkingReporter) Progress(p Progress) {
	c.reports++
	cp := p.ResumePoint
	if cp == nil {
		return
	}
	if cp.Line < c.last {
		c.t.Errorf("checkpoint went back from line %d to %d", c.last, cp.Line)
	}
	c.last = cp.Line
	if cp.Counts != p.Counts || cp.Counts.Rows != cp.Line-1 {
		c.t.Errorf("checkpoint %+v and counts %+v disagree", cp, p.Counts)
	}
	c.d.mu.Lock()
	defer c.d.mu.Unlock()
	for l := int64(2); l <= cp.Line; l++ {
		if !c.d.written[l] {
			c.t.Errorf("checkpoint at line %d, but line %d is not written yet", cp.Line, l)
			return
		}
	}
}

func TestCheckpointsAreOrderedWithConcurrency(t *testing.T) {
	var rows []string
	for i := range 500 {
		rows = append(rows, fmt.Sprintf("u%03d,m@x,T,", i))
	}
	d := &slowDir{Dir: seed(), r: rand.New(rand.NewPCG(1, 2)), written: map[int64]bool{}}
	cfg := testConfig(v1alpha1.ModeDelta, v1alpha1.MissingIgnore)
	cfg.BatchSize, cfg.Concurrency = 3, 8
	rep := &checkingReporter{t: t, d: d}
	res, err := Run(context.Background(), input(file(rows...), nil), d, cfg, false, rep)
	if err != nil {
		t.Fatal(err)
	}
	if res.Counts.Created != 500 || rep.reports < 100 || rep.last != 501 {
		t.Fatalf("counts %+v, %d reports, last checkpoint line %d", res.Counts, rep.reports, rep.last)
	}
}

func TestProgressIsThrottled(t *testing.T) {
	var rows []string
	for i := range 300 {
		rows = append(rows, fmt.Sprintf("u%03d,m@x,T,", i))
	}
	cfg := testConfig(v1alpha1.ModeDelta, v1alpha1.MissingIgnore)
	cfg.ProgressInterval = time.Hour
	rec := &recorder{}
	if _, err := Run(context.Background(), input(file(rows...), nil), seed(), cfg, false, rec); err != nil {
		t.Fatal(err)
	}
	// The first commit reports, then nothing until the final report.
	if len(rec.progress) != 2 || rec.progress[1].Counts.Created != 300 || rec.progress[1].RowsPerSecond <= 0 {
		t.Fatalf("progress reports: %+v", rec.progress)
	}
}

// heldDir holds the write of one line until released.
type heldDir struct {
	*memdir.Dir
	line    int64
	waiting chan struct{}
	release chan struct{}
}

func (h *heldDir) Apply(ctx context.Context, changes []directory.Change) ([]directory.Result, error) {
	for _, c := range changes {
		if c.Line == h.line {
			close(h.waiting)
			select {
			case <-h.release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
	}
	return h.Dir.Apply(ctx, changes)
}

// A report held back by the interval is sent when the interval ends, also
// while a write waits: a run stopped then resumes after what it wrote,
// not from the last report before the wait.
func TestHeldBackProgressIsSentWhileAWriteWaits(t *testing.T) {
	var rows []string
	for i := range 300 {
		rows = append(rows, fmt.Sprintf("u%03d,m@x,T,", i))
	}
	cfg := testConfig(v1alpha1.ModeDelta, v1alpha1.MissingIgnore)
	cfg.BatchSize, cfg.Concurrency = 10, 1
	cfg.ProgressInterval = 200 * time.Millisecond
	d := &heldDir{Dir: seed(), line: 251, waiting: make(chan struct{}), release: make(chan struct{})}
	rec := &recorder{}
	ran := make(chan error, 1)
	go func() {
		_, err := Run(context.Background(), input(file(rows...), nil), d, cfg, false, rec)
		ran <- err
	}()
	<-d.waiting
	// The batches before the held one are committed within the interval
	// of the first report; the next report comes without another commit.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if cp := rec.lastCheckpoint(); cp != nil && cp.Line == 241 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("while line 251 waits, the last checkpoint reported is %+v, want line 241", rec.lastCheckpoint())
		}
		time.Sleep(20 * time.Millisecond)
	}
	close(d.release)
	if err := <-ran; err != nil {
		t.Fatal(err)
	}
	if cp := rec.lastCheckpoint(); cp == nil || cp.Line != 301 {
		t.Fatalf("final checkpoint %+v", cp)
	}
}

// countingFile counts the bytes read from a file.
type countingFile struct {
	*strings.Reader
	read int64
}

func (c *countingFile) Read(p []byte) (int, error) {
	n, err := c.Reader.Read(p)
	c.read += int64(n)
	return n, err
}

// An import of a file read in place that does not deprovision (delta, or
// full with missingUsers Ignore) resumes at its checkpoint's offset: it
// reads the header and the rest, not the rows before, and ends as an
// uninterrupted import does, its duplicate rows found across the
// checkpoint included.
func TestResumeAtTheOffsetReadsOnlyTheRest(t *testing.T) {
	for s := range uint64(4) {
		r := rand.New(rand.NewPCG(s, 13))
		users, content := scenario(r, 20000)
		// Duplicates far apart: a row of the start again near the end.
		lines := strings.Split(strings.TrimSuffix(content, "\n"), "\n")
		for i := range 5 {
			at := len(lines) - 1 - i*50
			lines = slices.Insert(lines, at, lines[2+i*7])
		}
		content = strings.Join(lines, "\n") + "\n"
		cfg := testConfig(v1alpha1.ModeDelta, v1alpha1.MissingIgnore)
		cfg.StatusColumn = &v1alpha1.StatusColumn{Column: "status", DeactivateValues: []string{"inactive"}, DeleteValues: []string{"deleted"}}
		if s%2 == 1 {
			// A full import that does not deprovision seeks too.
			cfg = testConfig(v1alpha1.ModeFull, v1alpha1.MissingIgnore)
		}
		cfg.MaxErrorPercent = nil
		cfg.BatchSize = 1 + r.IntN(7)
		cfg.Concurrency = 1 + r.IntN(4)
		t.Run(fmt.Sprintf("seed%d-%s-b%d-c%d", s, cfg.Mode, cfg.BatchSize, cfg.Concurrency), func(t *testing.T) {
			ref := seed(users...)
			want, wantRec, err := runOnce(t, ref, cfg, content, false)
			if err != nil {
				t.Fatal(err)
			}
			d := seed(users...)
			var cp *ResumePoint
			errLines := map[int64]bool{}
			interruptions, seeks := 0, 0
			var res Result
			for attempt := 0; ; attempt++ {
				if attempt > 500 {
					t.Fatal("the import never completes")
				}
				d.FailAfter(int64(50 + r.IntN(400)))
				rec := &recorder{}
				in := input(content, cp)
				f := &countingFile{Reader: strings.NewReader(content)}
				in.File, in.SeekOnResume = f, true
				res, err = Run(context.Background(), in, d, cfg, false, rec)
				for _, e := range rec.errors {
					errLines[e.Line] = true
				}
				if cp != nil && cp.Duplicates != nil {
					seeks++
					// The header's buffer (read twice: for the mapping, then
					// to resume), the byte before the offset (a line ends
					// there) and the rest of the file.
					if limit := 2*int64(64<<10) + 1 + int64(len(content)) - cp.Offset; f.read > limit || f.read >= int64(len(content)) && cp.Offset > 2*64<<10 {
						t.Fatalf("resumed at offset %d of %d, read %d bytes", cp.Offset, len(content), f.read)
					}
				}
				if err == nil {
					break
				}
				if !strings.Contains(err.Error(), memdir.ErrInjected.Error()) {
					t.Fatalf("attempt %d: %v", attempt, err)
				}
				interruptions++
				if last := rec.lastCheckpoint(); last != nil {
					if last.Duplicates == nil {
						t.Fatalf("checkpoint %+v without the duplicates after it", last)
					}
					cp = last
				}
			}
			if interruptions < 20 || seeks < 20 {
				t.Fatalf("only %d interruptions, %d resumes at an offset", interruptions, seeks)
			}
			if got, w := state(d), state(ref); !slices.Equal(got, w) {
				t.Fatalf("after %d interruptions the directory differs:\n%s\nwant\n%s", interruptions, strings.Join(got, "\n"), strings.Join(w, "\n"))
			}
			var got []int64
			for l := range errLines {
				got = append(got, l)
			}
			slices.Sort(got)
			if w := slices.Compact(wantRec.errorLines()); !slices.Equal(got, w) {
				t.Fatalf("errors on lines %v, an uninterrupted import has %v", got, w)
			}
			if res.Counts.Rows != want.Counts.Rows || res.Counts.Failed != want.Counts.Failed {
				t.Fatalf("counts %+v, uninterrupted %+v", res.Counts, want.Counts)
			}
		})
	}
}
