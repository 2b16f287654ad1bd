// Package benchio holds what the directory benchmarks share: the HR
// export they import, a Reporter that counts, and CPU time readings.
package benchio

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/engine"
	"github.com/userimport/user-import-operator/internal/hrgen"
)

// Seed is the generator seed of every benchmark file.
const Seed = 1

// WriteCSV writes rows generated rows (hrgen, Seed) to dir/name and
// returns the path and the file's sha256.
func WriteCSV(dir, name string, rows int) (string, string, error) {
	path := filepath.Join(dir, name)
	f, err := os.Create(path)
	if err != nil {
		return "", "", err
	}
	h := sha256.New()
	bw := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	cw := csv.NewWriter(bw)
	_ = cw.Write(hrgen.Header)
	for i := range rows {
		_ = cw.Write(hrgen.Row(Seed, i))
	}
	cw.Flush()
	if err := errors.Join(cw.Error(), bw.Flush(), f.Close()); err != nil {
		return "", "", err
	}
	return path, hex.EncodeToString(h.Sum(nil)), nil
}

// TempCSV writes a file of rows generated users, named name, into a new
// temporary directory whose name starts with prefix, and returns the
// directory, the file's path and sha256, and the function that removes
// them.
func TempCSV(prefix, name string, rows int) (dir, path, sum string, cleanup func(), err error) {
	dir, err = os.MkdirTemp("", prefix)
	if err != nil {
		return "", "", "", nil, err
	}
	cleanup = func() { _ = os.RemoveAll(dir) }
	path, sum, err = WriteCSV(dir, name, rows)
	if err != nil {
		cleanup()
		return "", "", "", nil, err
	}
	return dir, path, sum, cleanup, nil
}

// Rows calls fn with every row of a file that WriteCSV wrote.
func Rows(rows int, fn func(i int, row []string) error) error {
	for i := range rows {
		if err := fn(i, hrgen.Row(Seed, i)); err != nil {
			return err
		}
	}
	return nil
}

// Reporter prints progress to stderr now and then and keeps the first
// row errors.
type Reporter struct {
	Name string

	mu     sync.Mutex
	errs   []engine.RowError
	last   time.Time
	step   string
	start  time.Time
	Errors int
}

// Progress implements engine.Reporter.
func (r *Reporter) Progress(p engine.Progress) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.start.IsZero() {
		r.start = time.Now()
	}
	// A step's first report is always told, with the time since the
	// run's first: where an import's time goes, step by step (a step
	// reports once it has written its first round, or when it ends).
	if string(p.Step) != r.step {
		r.step = string(p.Step)
		fmt.Fprintf(os.Stderr, "%s: %s first reported at %.2f s\n", r.Name, p.Step, time.Since(r.start).Seconds())
	} else if time.Since(r.last) < 5*time.Second {
		return
	}
	r.last = time.Now()
	fmt.Fprintf(os.Stderr, "%s: %s line %d, %d created, %d updated, %d failed, %.0f rows/s\n",
		r.Name, p.Step, p.Line, p.Counts.Created, p.Counts.Updated, p.Counts.Failed, p.RowsPerSecond)
}

// RowError implements engine.Reporter.
func (r *Reporter) RowError(e engine.RowError) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.Errors++
	if len(r.errs) < 5 {
		r.errs = append(r.errs, e)
	}
}

// FirstErrors describes the first row errors (lines and rules, no values).
func (r *Reporter) FirstErrors() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var b strings.Builder
	for _, e := range r.errs {
		fmt.Fprintf(&b, "line %d: %s; ", e.Line, e.Msg)
	}
	return b.String()
}

// Import imports the file at path (whose sha256 is sum) into d and
// returns the seconds it took; row errors make it fail.
func Import(ctx context.Context, path, sum string, d directory.Directory, cfg engine.Config) (float64, engine.Result, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, engine.Result{}, err
	}
	defer f.Close()
	rep := &Reporter{Name: "import"}
	start := time.Now()
	res, err := engine.Run(ctx, engine.Input{File: f, SHA256: sum}, d, cfg, false, rep)
	secs := time.Since(start).Seconds()
	if err == nil && rep.Errors > 0 {
		err = fmt.Errorf("%d row errors: %s", rep.Errors, rep.FirstErrors())
	}
	return secs, res, err
}

// Writes is the number of changes a result wrote.
func Writes(c engine.Counts) int64 { return c.Created + c.Updated + c.Deactivated + c.Deleted }

// ProcessCPU is the user and system time of a running process.
func ProcessCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	utime, _ := strconv.ParseInt(fields[11], 10, 64)
	stime, _ := strconv.ParseInt(fields[12], 10, 64)
	return time.Duration(utime+stime) * time.Second / 100 // USER_HZ
}

// SelfCPU is the CPU time of this process and its reaped children.
func SelfCPU() time.Duration {
	var self, children syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children)
	tv := func(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return tv(self.Utime) + tv(self.Stime) + tv(children.Utime) + tv(children.Stime)
}

// Load1 is the machine's one-minute load average.
func Load1() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Fields(string(b))[0]
}

// Child runs this benchmark's binary again with args, as a process of its
// own (so that its peak RSS is its own), with env added, and returns the
// keys of the "RESULT k=v …" line it prints.
func Child(args, env []string) (map[string]string, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", strings.Join(args, " "), err)
	}
	res := map[string]string{}
	for _, l := range strings.Split(string(out), "\n") {
		if rest, ok := strings.CutPrefix(l, "RESULT "); ok {
			for _, kv := range strings.Fields(rest) {
				k, v, _ := strings.Cut(kv, "=")
				res[k] = v
			}
		}
	}
	return res, nil
}

// Num is the number under key k of a child's result, 0 when absent.
func Num(res map[string]string, k string) float64 {
	v, _ := strconv.ParseFloat(res[k], 64)
	return v
}

// PeakRSS is the peak resident set size (VmHWM) of process pid, or of
// this process when pid is 0, in bytes; 0 when it cannot be read.
func PeakRSS(pid int) int64 {
	path := "/proc/self/status"
	if pid != 0 {
		path = fmt.Sprintf("/proc/%d/status", pid)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

// HeapAtPeak samples the heap in use every 100 ms and writes a heap
// profile to path each time it is higher than ever before, so that the
// profile left shows what the heap held at its peak. The function it
// returns stops the sampling.
func HeapAtPeak(path string) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		var peak uint64
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				return
			case <-tick.C:
			}
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			// A new profile only when the peak grows by a tenth: writing
			// one costs more than a sample.
			if ms.HeapInuse < peak+peak/10 {
				continue
			}
			peak = ms.HeapInuse
			if f, err := os.Create(path); err == nil {
				_ = pprof.Lookup("heap").WriteTo(f, 0)
				_ = f.Close()
			}
		}
	}()
	return func() { close(done); <-finished }
}
