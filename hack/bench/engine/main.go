// Command engine benchmarks the import engine: a dry run of a full import
// of a 1,000,000-row file against a directory of 1,000,000 users (5 % of
// them differ from the file), beside a bare encoding/csv read of the same
// file, and the memory of delta imports over 1M and 10M rows.
//
// Each measurement runs in a child process of its own (this binary, run
// again with -child) so that its peak RSS (VmHWM) is its own. The
// directory side is generated on the fly from the generator's seed
// (internal/hrgen): List produces the users one by one and holds none,
// so the RSS measured is the engine's: its snapshot, sets, buffers and
// batches. The last line printed is
//
//	BENCH engine rows=… rows_per_s=… bare_rows_per_s=… ratio=… peak_rss_mib=… peak_rss_mib_1m=… peak_rss_mib_10m=…
//
// The bare read and the full-mode run take turns over -rounds rounds and
// each keeps its fastest.
package main

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/hack/bench/benchio"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/engine"
	"github.com/userimport/user-import-operator/internal/hrgen"
	"github.com/userimport/user-import-operator/internal/mapping"
)

const (
	seed       = 1
	changeSeed = 2
)

func main() {
	child := flag.String("child", "", "run one measurement: bare, full or delta")
	file := flag.String("file", "", "CSV file (child)")
	rows := flag.Int("rows", 1_000_000, "rows of the full-mode file and directory")
	deltaRows := flag.String("delta-rows", "1000000,10000000", "rows of the delta-mode files")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of a -child run")
	memprofile := flag.String("memprofile", "", "write an allocation profile of a -child run")
	dir := flag.String("dir", "", "where generated files are kept (default $UIO_CACHE/bench or /tmp/uio-bench)")
	rounds := flag.Int("rounds", 3, "rounds of the bare read and the full-mode engine, taking turns; each keeps its fastest")
	flag.Parse()
	var err error
	if *child != "" {
		if *cpuprofile != "" {
			f, perr := os.Create(*cpuprofile)
			if perr == nil && pprof.StartCPUProfile(f) == nil {
				defer pprof.StopCPUProfile()
			}
		}
		err = runChild(*child, *file, *rows)
		if *memprofile != "" {
			if f, perr := os.Create(*memprofile); perr == nil {
				_ = pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
		}
	} else {
		err = parent(*rows, *rounds, *deltaRows, *dir)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench engine:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

// mappingSpec is a typical HR mapping: every column, e-mails lowered and
// checked, the hire date checked.
func mappingSpec() []v1alpha1.AttributeMapping {
	return []v1alpha1.AttributeMapping{
		{Attribute: "userName", Column: "employee_id", Identity: true, Required: true},
		{Attribute: "emails", Column: "email", Transforms: []v1alpha1.Transform{{Type: "Lower"}}, Check: "Email"},
		{Attribute: "name.givenName", Column: "first_name"},
		{Attribute: "name.familyName", Column: "last_name"},
		{Attribute: "department", Column: "department"},
		{Attribute: "title", Column: "title"},
		{Attribute: "manager", Column: "manager_email"},
		{Attribute: "hireDate", Column: "hire_date", Check: "Date"},
		{Attribute: "location", Column: "location"},
		{Attribute: "costCenter", Column: "cost_center"},
	}
}

func parent(rows, rounds int, deltaRows, dir string) error {
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "uio-bench")
		if c := os.Getenv("UIO_CACHE"); c != "" {
			dir = filepath.Join(c, "bench")
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	fullFile, err := ensureFile(dir, rows, 5)
	if err != nil {
		return err
	}
	// The bare read and the engine take turns, and each keeps its fastest
	// round: on a shared machine the speed of the same work drifts from
	// minute to minute. The peak RSS is the highest of all rounds.
	var bare, full map[string]string
	peakRSS := 0
	for range rounds {
		b, err := child("bare", fullFile, rows)
		if err != nil {
			return err
		}
		if bare == nil || benchio.Num(b, "rows_per_s") > benchio.Num(bare, "rows_per_s") {
			bare = b
		}
		f, err := child("full", fullFile, rows)
		if err != nil {
			return err
		}
		if full == nil || benchio.Num(f, "rows_per_s") > benchio.Num(full, "rows_per_s") {
			full = f
		}
		peakRSS = max(peakRSS, int(benchio.Num(f, "peak_rss_mib")))
	}
	full["peak_rss_mib"] = strconv.Itoa(peakRSS)
	// The same with the collector running a quarter as often: csvread
	// allocates the strings of every record, the live heap is a few MiB,
	// and at the default GOGC the collector runs every few thousand rows.
	// This is what a worker process that sets GOGC=400 would see.
	gc400, err := child("full", fullFile, rows, "GOGC=400")
	if err != nil {
		return err
	}
	bareRPS, _ := strconv.ParseFloat(bare["rows_per_s"], 64)
	fullRPS, _ := strconv.ParseFloat(full["rows_per_s"], 64)
	bareCPU, _ := strconv.ParseFloat(bare["cpu_s"], 64)
	fullCPU, _ := strconv.ParseFloat(full["cpu_s"], 64)
	// ratio is by wall time (the engine may use every core, the bare read
	// uses one); cpu_ratio by CPU time, which a loaded machine disturbs
	// less. load1 is the machine's load average when each run ended.
	line := fmt.Sprintf("BENCH engine rows=%s rows_per_s=%.0f bare_rows_per_s=%.0f ratio=%.2f peak_rss_mib=%s list_s=%s changes=%s bare_cpu_s=%.2f engine_cpu_s=%.2f cpu_ratio=%.2f load1=%s,%s",
		full["rows"], fullRPS, bareRPS, fullRPS/bareRPS, full["peak_rss_mib"], full["list_s"], full["updated"], bareCPU, fullCPU, bareCPU/fullCPU, bare["load1"], full["load1"])
	gc400RPS, _ := strconv.ParseFloat(gc400["rows_per_s"], 64)
	gc400CPU, _ := strconv.ParseFloat(gc400["cpu_s"], 64)
	line += fmt.Sprintf(" ratio_gogc400=%.2f cpu_ratio_gogc400=%.2f peak_rss_mib_gogc400=%s", gc400RPS/bareRPS, bareCPU/gc400CPU, gc400["peak_rss_mib"])
	for _, s := range strings.Split(deltaRows, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil {
			return fmt.Errorf("-delta-rows: %w", err)
		}
		f, err := ensureFile(dir, n, 0)
		if err != nil {
			return err
		}
		d, err := child("delta", f, n)
		if err != nil {
			return err
		}
		line += fmt.Sprintf(" peak_rss_mib_%s=%s", short(n), d["peak_rss_mib"])
		line += fmt.Sprintf(" delta_rows_per_s_%s=%s", short(n), d["rows_per_s"])
	}
	fmt.Println(line)
	return nil
}

func short(n int) string {
	switch {
	case n%1_000_000 == 0:
		return fmt.Sprintf("%dm", n/1_000_000)
	case n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return strconv.Itoa(n)
}

// ensureFile writes (once) the export of rows rows of seed with percent
// of them changed.
func ensureFile(dir string, rows int, percent float64) (string, error) {
	name := filepath.Join(dir, fmt.Sprintf("hr-%d-s%d-c%g.csv", rows, seed, percent))
	if _, err := os.Stat(name); err == nil {
		return name, nil
	}
	fmt.Fprintf(os.Stderr, "generating %s\n", name)
	tmp := name + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return "", err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	cw := csv.NewWriter(bw)
	_ = cw.Write(hrgen.Header)
	for i := range rows {
		r := hrgen.Row(seed, i)
		hrgen.Change(r, changeSeed, i, percent)
		_ = cw.Write(r)
	}
	cw.Flush()
	if err := errors.Join(cw.Error(), bw.Flush(), f.Close()); err != nil {
		return "", err
	}
	return name, os.Rename(tmp, name)
}

// child runs one measurement in a process of its own.
func child(mode, file string, rows int, env ...string) (map[string]string, error) {
	res, err := benchio.Child([]string{"-child", mode, "-file", file, "-rows", strconv.Itoa(rows)}, env)
	if err == nil {
		fmt.Fprintf(os.Stderr, "%s %s: %v\n", mode, filepath.Base(file), res)
	}
	return res, err
}

func runChild(mode, file string, rows int) error {
	f, err := os.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	start := time.Now()
	var n int64
	var listTime time.Duration
	var listCPU float64
	extra := ""
	switch mode {
	case "bare":
		r := csv.NewReader(bufio.NewReaderSize(f, 64<<10))
		for {
			_, err := r.Read()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return err
			}
			n++
		}
		n-- // header
	case "full", "delta":
		cfg := engine.Config{
			Mapping:     mappingSpec(),
			Mode:        v1alpha1.ModeFull,
			Directory:   directory.Options{IdentityAttribute: "userName", ManagedOnly: true, MarkerAttribute: "userImportManagedBy", MarkerValue: "user-import-operator"},
			BatchSize:   100,
			Concurrency: 4,
		}
		gd := &genDir{rows: rows, empty: mode == "delta"}
		if mode == "delta" {
			cfg.Mode = v1alpha1.ModeDelta
		}
		res, err := engine.Run(context.Background(), engine.Input{File: f}, gd, cfg, true, nil)
		if err != nil {
			return err
		}
		n = res.Counts.Rows
		listTime, listCPU = gd.listTime, gd.listCPU
		extra = fmt.Sprintf(" updated=%d created=%d unchanged=%d failed=%d list_s=%.2f", res.Counts.Updated, res.Counts.Created, res.Counts.Unchanged, res.Counts.Failed, gd.listTime.Seconds())
	default:
		return fmt.Errorf("unknown -child %q", mode)
	}
	secs := time.Since(start).Seconds()
	// The directory's List (generating 1M users) is the benchmark's
	// stand-in for a server and is timed apart: rows_per_s is the pass
	// over the file. list_s includes the engine's snapshot building.
	// cpu_s likewise leaves out the CPU time spent until List returned.
	plan := secs - listTime.Seconds()
	cpu := cpuSeconds() - listCPU
	fmt.Printf("RESULT rows=%d seconds=%.2f plan_s=%.2f rows_per_s=%.0f cpu_s=%.2f cpu_rows_per_s=%.0f peak_rss_mib=%d load1=%s%s\n",
		n, secs, plan, float64(n)/plan, cpu, float64(n)/cpu, benchio.PeakRSS(0)>>20, benchio.Load1(), extra)
	return nil
}

// cpuSeconds is the user and system CPU time of the process: on a shared,
// loaded machine it says more than wall time.
func cpuSeconds() float64 {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return -1
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
}

// genDir is the directory of the benchmark: the users of the previous
// export (seed, unchanged), generated on the fly, mapped with the
// import's own mapping as a provider would return them. With empty it
// holds no users (the delta measurement).
type genDir struct {
	rows     int
	empty    bool
	listTime time.Duration
	listCPU  float64 // CPU seconds of the process when List returned
}

func (g *genDir) Check(context.Context) (directory.Capabilities, error) {
	return directory.Capabilities{}, nil
}

func (g *genDir) List(ctx context.Context, attributes []string, fn func(directory.User) error) error {
	start := time.Now()
	defer func() { g.listTime, g.listCPU = time.Since(start), cpuSeconds() }()
	if g.empty {
		return nil
	}
	m, err := mapping.Compile(mappingSpec(), hrgen.Header)
	if err != nil {
		return err
	}
	for i := range g.rows {
		attrs, err := m.Map(hrgen.Row(seed, i))
		if err != nil {
			return err
		}
		id := attrs["userName"][0]
		if err := fn(directory.User{ID: "u-" + strconv.Itoa(i), Identity: id, Attributes: attrs, Active: true, Managed: true}); err != nil {
			return err
		}
	}
	return nil
}

func (g *genDir) Lookup(context.Context, []string, []string) (map[string]directory.User, error) {
	return map[string]directory.User{}, nil
}

func (g *genDir) Apply(_ context.Context, changes []directory.Change) ([]directory.Result, error) {
	return make([]directory.Result, len(changes)), nil
}

func (g *genDir) Close() error { return nil }
