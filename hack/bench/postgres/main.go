// Command postgres benchmarks the SQL directory at the limit of its
// database: 1,000,000 new users (the HR generator's file) imported into
// the PostgreSQL server of the test peers, against COPY of the same rows
// into the same kind of table in the same run, each on a fresh table;
// then an unchanged re-run of the same file (it must write nothing) and a
// run with 5 % of the rows changed. The same file also goes into an
// SQLite file, against one transaction of plain prepared inserts.
//
// Each measurement runs in a child process of its own (this binary, run
// again with -child), so that the peak RSS (VmHWM) of an import is its
// own. The last line printed is
//
//	BENCH postgres users=… import_s=… copy_s=… ratio=… noop_s=… noop_writes=… delta5_s=… list_s=… peak_rss_mib=… sqlite_import_s=… sqlite_raw_s=… sqlite_ratio=… load1=…
//
// list_s is the floor of noop_s and delta5_s: the managed users read
// with the import's query and dropped. ratio is copy_s / import_s, sqlite_ratio sqlite_raw_s / sqlite_import_s:
// 1 means the import costs nothing over the database's fastest way in.
// The *_cpu_s keys say where the time goes: the CPU of the client process
// and of the server while the import and COPY run. Each child runs under
// the memory settings a worker derives from its Job's default limit;
// -cpuprofile profiles each child, and -perf the whole machine while each
// child runs (the server's share: perf report --comm postgres). The
// import uses the default execution settings (batches of 100, concurrency 4);
// $UIO_BENCH_BATCH and $UIO_BENCH_CONCURRENCY change them.
package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	stdsql "database/sql"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/hack/bench/benchio"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/directory/open"
	sqldir "github.com/userimport/user-import-operator/internal/directory/sql"
	"github.com/userimport/user-import-operator/internal/engine"
	"github.com/userimport/user-import-operator/internal/hrgen"
	"github.com/userimport/user-import-operator/internal/jobs"
	"github.com/userimport/user-import-operator/internal/memlimit"
	"github.com/userimport/user-import-operator/internal/testpeer/postgres"
)

const marker = "userImportManagedBy"

func main() {
	child := flag.String("child", "", "run one measurement: copy, import, list, sqlite-import or sqlite-raw")
	file := flag.String("file", "", "CSV file (child)")
	dsn := flag.String("dsn", "", "PostgreSQL DSN or SQLite file (child)")
	table := flag.String("table", "", "table (child)")
	rows := flag.Int("rows", 1_000_000, "users")
	rounds := flag.Int("rounds", 2, "rounds of COPY and the import, taking turns; each keeps its fastest")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of each -child run to this path plus the child's name, table and file")
	perfData := flag.String("perf", "", "record every process of the machine with perf while each child runs (the server's profile: perf report --comm postgres), to this path plus the run's number, the child's name, table and file")
	flag.Parse()
	var err error
	if *child != "" {
		// A child runs as a worker in its Job's default container would.
		limits := jobs.DefaultResources().Limits
		memlimit.Set(limits.Memory().Value())
		if *cpuprofile != "" {
			name := fmt.Sprintf("%s.%s.%s.%s.%d", *cpuprofile, *child, *table, strings.TrimSuffix(filepath.Base(*file), ".csv"), time.Now().Unix())
			if f, perr := os.Create(name); perr == nil && pprof.StartCPUProfile(f) == nil {
				defer pprof.StopCPUProfile()
			}
		}
		err = runChild(*child, *file, *dsn, *table)
	} else {
		err = parent(*rows, *rounds, *cpuprofile, *perfData)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench postgres:", err)
		pprof.StopCPUProfile()
		os.Exit(1)
	}
}

func parent(rows, rounds int, cpuprofile, perfData string) error {
	work, file, _, cleanup, err := benchio.TempCSV("uio-bench-postgres-", "hr.csv", rows)
	if err != nil {
		return err
	}
	defer cleanup()
	delta, err := writeDelta(work, rows, 5)
	if err != nil {
		return err
	}
	pg, err := postgres.StartProcess()
	if err != nil {
		return fmt.Errorf("%w (%s)", err, postgres.InstallHint)
	}
	defer pg.Stop()
	ctx := context.Background()

	// Where the time goes: the CPU of the client (the child process) and
	// of the server's processes while each side runs.
	server, err := benchio.Postmaster(ctx, pg.DSN)
	if err != nil {
		return err
	}
	runs := 0
	run := func(mode, file, dsn, table string) (map[string]string, error) {
		before := benchio.ServerCPU(server)
		runs++
		if perfData != "" {
			stop, err := perfRecord(fmt.Sprintf("%s.%d.%s.%s.%s", perfData, runs, mode, table, strings.TrimSuffix(filepath.Base(file), ".csv")))
			if err != nil {
				return nil, err
			}
			defer stop()
		}
		res, err := child(mode, file, dsn, table, cpuprofile)
		if err == nil && dsn == pg.DSN {
			// The child's backends end after it does; the server reaps
			// them within moments.
			time.Sleep(time.Second)
			res["server_cpu_s"] = fmt.Sprintf("%.2f", (benchio.ServerCPU(server) - before).Seconds())
		}
		return res, err
	}
	// COPY and the import take turns, each on a fresh table, and each
	// keeps its fastest round: on a shared machine the speed of the same
	// work drifts from minute to minute.
	var cp, imp map[string]string
	importTable := ""
	for r := range rounds {
		copyTable, impTable := fmt.Sprintf("users_copy_%d", r), fmt.Sprintf("users_import_%d", r)
		for _, t := range []string{copyTable, impTable} {
			if err := createTable(ctx, v1alpha1.SQLDriverPostgres, pg.DSN, t); err != nil {
				return err
			}
		}
		c, err := run("copy", file, pg.DSN, copyTable)
		if err != nil {
			return err
		}
		if cp == nil || benchio.Num(c, "seconds") < benchio.Num(cp, "seconds") {
			cp = c
		}
		i, err := run("import", file, pg.DSN, impTable)
		if err != nil {
			return err
		}
		if imp == nil || benchio.Num(i, "seconds") < benchio.Num(imp, "seconds") {
			imp, importTable = i, impTable
		}
	}
	if imp["created"] != strconv.Itoa(rows) {
		return fmt.Errorf("the import created %s users, want %d", imp["created"], rows)
	}
	before, err := tableWrites(ctx, pg.DSN, importTable)
	if err != nil {
		return err
	}
	noop, err := run("import", file, pg.DSN, importTable)
	if err != nil {
		return err
	}
	after, err := tableWrites(ctx, pg.DSN, importTable)
	if err != nil {
		return err
	}
	// The engine's count of changes and the server's count of rows
	// written must both be zero.
	noopWrites := max(benchio.Num(noop, "writes"), float64(after-before))
	d5, err := run("import", delta, pg.DSN, importTable)
	if err != nil {
		return err
	}
	// The floor of noop_s and delta5_s: the users listed, and nothing
	// done with them.
	list, err := run("list", file, pg.DSN, importTable)
	if err != nil {
		return err
	}

	db := filepath.Join(work, "users.db")
	raw := filepath.Join(work, "raw.db")
	for _, p := range []string{db, raw} {
		if err := createTable(ctx, v1alpha1.SQLDriverSQLite, p, "users"); err != nil {
			return err
		}
	}
	sqliteImp, err := run("sqlite-import", file, db, "users")
	if err != nil {
		return err
	}
	sqliteRaw, err := run("sqlite-raw", file, raw, "users")
	if err != nil {
		return err
	}

	fmt.Printf("BENCH postgres users=%d import_s=%s copy_s=%s ratio=%.2f noop_s=%s noop_writes=%.0f delta5_s=%s delta5_updated=%s list_s=%s list_client_cpu_s=%s list_server_cpu_s=%s peak_rss_mib=%.0f sqlite_import_s=%s sqlite_raw_s=%s sqlite_ratio=%.2f import_client_cpu_s=%s import_server_cpu_s=%s copy_client_cpu_s=%s copy_server_cpu_s=%s load1=%s\n",
		rows, imp["seconds"], cp["seconds"], benchio.Num(cp, "seconds")/benchio.Num(imp, "seconds"), noop["seconds"], noopWrites, d5["seconds"], d5["updated"], list["seconds"], list["cpu_s"], list["server_cpu_s"],
		max(benchio.Num(imp, "peak_rss_mib"), benchio.Num(noop, "peak_rss_mib"), benchio.Num(d5, "peak_rss_mib")),
		sqliteImp["seconds"], sqliteRaw["seconds"], benchio.Num(sqliteRaw, "seconds")/benchio.Num(sqliteImp, "seconds"),
		imp["cpu_s"], imp["server_cpu_s"], cp["cpu_s"], cp["server_cpu_s"], benchio.Load1())
	return nil
}

// columns are the table's columns besides the identity: every column of
// the file, and the marker of managed users.
func columns() []string {
	return append(append([]string{}, hrgen.Header[1:]...), marker)
}

// createTable creates a users table. On PostgreSQL, autovacuum is off
// for it: the vacuum of a table a step just filled would otherwise take a
// core from the next step (on 2 cores, the import ran at a tenth of its
// speed while the COPY table was vacuumed).
func createTable(ctx context.Context, driver v1alpha1.SQLDriver, dsn, table string) error {
	if err := sqldir.CreateTable(ctx, driver, dsn, sqldir.TableSpec{Table: table, IdentityColumn: hrgen.Header[0], Columns: columns()}); err != nil {
		return err
	}
	if driver != v1alpha1.SQLDriverPostgres {
		return nil
	}
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	_, err = c.Exec(ctx, "ALTER TABLE "+pgx.Identifier{table}.Sanitize()+" SET (autovacuum_enabled = false)")
	return err
}

// writeDelta writes the file with percent of its rows changed.
func writeDelta(dir string, rows int, percent float64) (string, error) {
	path := filepath.Join(dir, fmt.Sprintf("hr-delta%g.csv", percent))
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	cw := csv.NewWriter(bw)
	_ = cw.Write(hrgen.Header)
	_ = benchio.Rows(rows, func(i int, row []string) error {
		hrgen.Change(row, 2, i, percent)
		return cw.Write(row)
	})
	cw.Flush()
	return path, errors.Join(cw.Error(), bw.Flush(), f.Close())
}

// tableWrites is the number of rows the server inserted, updated or
// deleted in table so far.
func tableWrites(ctx context.Context, dsn, table string) (int64, error) {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer c.Close(ctx)
	var n int64
	err = c.QueryRow(ctx, "SELECT n_tup_ins + n_tup_upd + n_tup_del FROM pg_stat_user_tables WHERE relname = $1", table).Scan(&n)
	return n, err
}

// child runs one measurement in a process of its own.
func child(mode, file, dsn, table, cpuprofile string) (map[string]string, error) {
	args := []string{"-child", mode, "-file", file, "-dsn", dsn, "-table", table}
	if cpuprofile != "" {
		args = append(args, "-cpuprofile", cpuprofile)
	}
	res, err := benchio.Child(args, nil)
	if err == nil {
		fmt.Fprintf(os.Stderr, "%s %s %s: %v\n", mode, filepath.Base(file), table, res)
	}
	return res, err
}

func runChild(mode, file, dsn, table string) error {
	ctx := context.Background()
	start := time.Now()
	var extra string
	switch mode {
	case "copy":
		n, err := copyRows(ctx, file, dsn, table)
		if err != nil {
			return err
		}
		extra = fmt.Sprintf("rows=%d", n)
	case "list":
		n, err := listRows(ctx, dsn, table)
		if err != nil {
			return err
		}
		extra = fmt.Sprintf("rows=%d", n)
	case "sqlite-raw":
		n, err := sqliteInserts(file, dsn, table)
		if err != nil {
			return err
		}
		extra = fmt.Sprintf("rows=%d", n)
	case "import", "sqlite-import":
		driver := v1alpha1.SQLDriverPostgres
		if mode == "sqlite-import" {
			driver = v1alpha1.SQLDriverSQLite
		}
		res, err := importFile(ctx, file, driver, dsn, table)
		if err != nil {
			return err
		}
		c := res.Counts
		extra = fmt.Sprintf("rows=%d created=%d updated=%d unchanged=%d failed=%d writes=%d", c.Rows, c.Created, c.Updated, c.Unchanged, c.Failed, benchio.Writes(c))
	default:
		return fmt.Errorf("unknown child %q", mode)
	}
	fmt.Printf("RESULT seconds=%.2f cpu_s=%.2f peak_rss_mib=%d %s\n", time.Since(start).Seconds(), benchio.SelfCPU().Seconds(), benchio.PeakRSS(0)>>20, extra)
	return nil
}

// importFile runs a full import of file with the default execution
// settings, every column mapped.
func importFile(ctx context.Context, file string, driver v1alpha1.SQLDriver, dsn, table string) (engine.Result, error) {
	opts := directory.Options{IdentityAttribute: hrgen.Header[0], ManagedOnly: true, MarkerAttribute: marker, MarkerValue: "user-import-operator", Concurrency: concurrency(), MaxRetries: 3}
	spec := &v1alpha1.SQLDirectory{Driver: driver, DSN: v1alpha1.SecretKeyRef{Name: "db", Key: "dsn"}, Table: table, Insecure: true}
	dir, err := sqldir.New(ctx, spec, opts, func(context.Context, string, string) ([]byte, error) { return []byte(dsn), nil })
	if err != nil {
		return engine.Result{}, err
	}
	defer dir.Close()
	var mapping []v1alpha1.AttributeMapping
	for i, col := range hrgen.Header {
		mapping = append(mapping, v1alpha1.AttributeMapping{Attribute: col, Column: col, Identity: i == 0})
	}
	f, err := os.Open(file)
	if err != nil {
		return engine.Result{}, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return engine.Result{}, err
	}
	cfg := engine.Config{Mode: v1alpha1.ModeFull, MissingUsers: v1alpha1.MissingIgnore, Mapping: mapping, Directory: opts, BatchSize: batchSize(), Concurrency: concurrency()}
	rep := &benchio.Reporter{Name: "import"}
	res, err := engine.Run(ctx, engine.Input{File: f, SHA256: hex.EncodeToString(h.Sum(nil))}, dir, cfg, false, rep)
	if err == nil && res.Counts.Failed > 0 {
		err = fmt.Errorf("%d rows failed: %s", res.Counts.Failed, rep.FirstErrors())
	}
	return res, err
}

// concurrency is the import's spec.execution.concurrency: the default
// (4), or $UIO_BENCH_CONCURRENCY.
func concurrency() int {
	if n, err := strconv.Atoi(os.Getenv("UIO_BENCH_CONCURRENCY")); err == nil && n > 0 {
		return n
	}
	return 4
}

// batchSize is the import's spec.execution.batchSize: the default (100),
// or $UIO_BENCH_BATCH.
// batchSize is UIO_BENCH_BATCH, or an SQL directory's default.
func batchSize() int {
	if n, err := strconv.Atoi(os.Getenv("UIO_BENCH_BATCH")); err == nil && n > 0 {
		return n
	}
	return open.DefaultSQLBatchSize
}

// records reads the data rows of file.
func records(file string, fn func([]string) error) (int, error) {
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r := csv.NewReader(bufio.NewReaderSize(f, 1<<20))
	r.ReuseRecord = true
	if _, err := r.Read(); err != nil {
		return 0, err
	}
	n := 0
	for {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		if err := fn(rec); err != nil {
			return n, err
		}
		n++
	}
}

// copyRows copies the file's rows into table with COPY, streaming, the
// marker set as an import sets it.
func copyRows(ctx context.Context, file, dsn, table string) (int, error) {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer c.Close(ctx)
	f, err := os.Open(file)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	r := csv.NewReader(bufio.NewReaderSize(f, 1<<20))
	if _, err := r.Read(); err != nil {
		return 0, err
	}
	cols := append(append([]string{}, hrgen.Header...), marker)
	src := &csvSource{r: r, row: make([]any, len(cols))}
	n, err := c.CopyFrom(ctx, pgx.Identifier{table}, cols, src)
	return int(n), err
}

// listRows reads the managed users' columns from table as a full import
// lists them, and does nothing with them: the fastest a full import can
// learn what the directory holds.
func listRows(ctx context.Context, dsn, table string) (int, error) {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer c.Close(ctx)
	cols := make([]string, 0, len(hrgen.Header)+1)
	for _, col := range hrgen.Header {
		cols = append(cols, pgx.Identifier{col}.Sanitize())
	}
	q := "SELECT " + strings.Join(cols, ", ") + " FROM " + pgx.Identifier{table}.Sanitize() + " WHERE " + pgx.Identifier{marker}.Sanitize() + " = $1"
	rows, err := c.Query(ctx, q, "user-import-operator")
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		_ = rows.RawValues()
		n++
	}
	return n, rows.Err()
}

type csvSource struct {
	r   *csv.Reader
	row []any
	err error
}

func (s *csvSource) Next() bool {
	rec, err := s.r.Read()
	if err != nil {
		if !errors.Is(err, io.EOF) {
			s.err = err
		}
		return false
	}
	for i, v := range rec {
		s.row[i] = v
	}
	s.row[len(rec)] = "user-import-operator"
	return true
}

func (s *csvSource) Values() ([]any, error) { return s.row, nil }
func (s *csvSource) Err() error             { return s.err }

// sqliteInserts inserts the file's rows in one transaction of prepared
// inserts.
func sqliteInserts(file, path, table string) (int, error) {
	db, err := stdsql.Open("sqlite", path)
	if err != nil {
		return 0, err
	}
	defer db.Close()
	tx, err := db.Begin()
	if err != nil {
		return 0, err
	}
	cols := append(append([]string{}, hrgen.Header...), marker)
	ph := strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ")
	st, err := tx.Prepare("INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES (" + ph + ")")
	if err != nil {
		return 0, err
	}
	args := make([]any, len(cols))
	n, err := records(file, func(rec []string) error {
		for i, v := range rec {
			args[i] = v
		}
		args[len(rec)] = "user-import-operator"
		_, err := st.Exec(args...)
		return err
	})
	if err != nil {
		return n, err
	}
	return n, tx.Commit()
}

// perfRecord starts perf recording every process of the machine, with
// call graphs, into path; stop ends it once it has written the file. The
// server's backends start after the recording does, so that they cannot
// be named in advance.
func perfRecord(path string) (stop func(), err error) {
	cmd := exec.Command("perf", "record", "-a", "-g", "-F", "499", "-o", path)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("perf: %w", err)
	}
	time.Sleep(300 * time.Millisecond) // until it records
	return func() {
		_ = cmd.Process.Signal(os.Interrupt)
		_ = cmd.Wait()
	}, nil
}
