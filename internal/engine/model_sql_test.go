package engine

import (
	"bufio"
	"context"
	stdsql "database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	sqldir "github.com/userimport/user-import-operator/internal/directory/sql"
	"github.com/userimport/user-import-operator/internal/syncmodel"
)

// The model's scenarios against a real SQLite database (and PostgreSQL),
// with imports run by a worker process that is killed with SIGKILL at
// random points, in every step, and resumed from the checkpoint it
// recorded, as a Job's pod is.

var (
	modelSQLScenarios = flag.Int("model.sql", 150, "random scenarios against SQLite, each killed and resumed")
	modelPGScenarios  = flag.Int("model.postgres", 30, "random scenarios against PostgreSQL")
)

// sqlModelDir is a users table with a membership table, opened as the
// import sees it (scope Managed), as a person who made entries by hand
// does (another marker) and as a reader of everything (scope All).
type sqlModelDir struct {
	Driver            v1alpha1.SQLDriver
	DSN, Table, Group string
}

func (s sqlModelDir) spec() *v1alpha1.SQLDirectory {
	return &v1alpha1.SQLDirectory{Driver: s.Driver, DSN: v1alpha1.SecretKeyRef{Name: "db", Key: "dsn"}, Table: s.Table, Insecure: true,
		Groups: &v1alpha1.SQLGroups{Table: s.Group}}
}

func (s sqlModelDir) options() directory.Options {
	return directory.Options{IdentityAttribute: "userName", ManagedOnly: true, MarkerAttribute: "mark", MarkerValue: "uio", Concurrency: 2}
}

func (s sqlModelDir) open(marker string, managedOnly bool) (*sqldir.Directory, error) {
	o := s.options()
	o.MarkerValue, o.ManagedOnly = marker, managedOnly
	return sqldir.New(context.Background(), s.spec(), o, func(context.Context, string, string) ([]byte, error) { return []byte(s.DSN), nil })
}

// newSQLModelDir creates the tables and writes the model's directory in.
// With foldCase, the identity column ignores case as the database reads
// it (citext in PostgreSQL, COLLATE NOCASE in SQLite), and fold is how.
func newSQLModelDir(t *testing.T, driver v1alpha1.SQLDriver, dsn string, d syncmodel.Directory, foldCase bool) (s sqlModelDir, fold func(string) string) {
	t.Helper()
	ctx := context.Background()
	n := pgTables.Add(1)
	s = sqlModelDir{Driver: driver, DSN: dsn, Table: fmt.Sprintf("model_users_%d", n), Group: fmt.Sprintf("model_members_%d", n)}
	if foldCase {
		fold = createFoldingTable(t, driver, dsn, s.Table)
	}
	if err := sqldir.CreateTable(ctx, driver, dsn, sqldir.TableSpec{
		Table: s.Table, IdentityColumn: "userName", Columns: []string{"mail", "title", "mark", "manager"}, Groups: s.spec().Groups,
	}); err != nil {
		t.Fatal(err)
	}
	mine, err := s.open("uio", true)
	if err != nil {
		t.Fatal(err)
	}
	defer mine.Close()
	hand, err := s.open("someone-else", true)
	if err != nil {
		t.Fatal(err)
	}
	defer hand.Close()
	write := func(dir *sqldir.Directory, ch directory.Change) {
		res, err := dir.Apply(ctx, []directory.Change{ch})
		if err == nil {
			err = res[0].Err
		}
		if err != nil {
			t.Fatalf("seeding %s: %v", ch.Identity, err)
		}
	}
	for _, id := range sortedKeys(d.Users) {
		u := d.Users[id]
		dir := mine
		if !u.Managed {
			dir = hand
		}
		a := directory.Attributes{}
		for k, v := range map[string]string{"mail": u.Mail, "title": u.Title, "manager": u.Manager} {
			if v != "" {
				a[k] = []string{v}
			}
		}
		write(dir, directory.Change{Op: directory.OpCreate, Identity: id, Attributes: a})
		if !u.Active {
			write(dir, directory.Change{Op: directory.OpDeactivate, Identity: id, ID: id})
		}
	}
	for _, k := range sortedKeys(d.Groups) {
		g := d.Groups[k]
		dir := mine
		if !g.Managed {
			dir = hand
		}
		if _, err := dir.ApplyGroup(ctx, directory.GroupChange{Name: g.Name, Add: g.Members}); err != nil {
			t.Fatal(err)
		}
	}
	return s, fold
}

// createFoldingTable creates the model's users table with an identity
// column that ignores case, and returns how the database folds it:
// SQLite's NOCASE lowers A to Z; citext lowers as the database's lower()
// does, A to Z only in the locale C.
func createFoldingTable(t *testing.T, driver v1alpha1.SQLDriver, dsn, table string) func(string) string {
	t.Helper()
	ctx := context.Background()
	open, identity, fold := "sqlite", `"userName" TEXT COLLATE NOCASE NOT NULL UNIQUE`, directory.FoldASCIICase
	if driver == v1alpha1.SQLDriverPostgres {
		open, identity = "pgx", `"userName" citext NOT NULL UNIQUE`
	}
	db, err := stdsql.Open(open, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if driver == v1alpha1.SQLDriverPostgres {
		var unicode bool
		if _, err := db.ExecContext(ctx, "CREATE EXTENSION IF NOT EXISTS citext"); err != nil {
			t.Fatal(err)
		}
		if err := db.QueryRowContext(ctx, "SELECT lower(chr(203)) = chr(235)").Scan(&unicode); err != nil {
			t.Fatal(err)
		}
		if unicode {
			fold = directory.FoldCase
		}
	}
	q := fmt.Sprintf(`CREATE TABLE %s (%s, "mail" TEXT, "title" TEXT, "mark" TEXT, "manager" TEXT, "active" BOOLEAN NOT NULL DEFAULT TRUE)`, table, identity)
	if _, err := db.ExecContext(ctx, q); err != nil {
		t.Fatal(err)
	}
	return fold
}

// render reads the tables back as the model renders its directory.
func (s sqlModelDir) render() ([]string, error) {
	all, err := s.open("uio", false)
	if err != nil {
		return nil, err
	}
	defer all.Close()
	rb, err := readBackAll(all, "mail", "manager")
	return rb.render(), err
}

// workerJob is what a worker process is asked to do.
type workerJob struct {
	SQL        *sqlModelDir
	LDAP       *ldapModelDir
	SCIM       *scimModelDir
	Config     Config
	File       string
	SHA256     string
	Resume     *ResumePoint
	Checkpoint string // where each checkpoint is written
	Errors     string // where row errors are appended, one JSON object a line
	KillAfter  int64  // writes (counted before and after each) until the process kills itself; 0: never
	// KillAtCheckpoint kills the process once it recorded that many
	// checkpoints; 0: never.
	KillAtCheckpoint int
}

const modelWorkerEnv = "UIO_MODEL_WORKER"

// runModelWorker is the worker process: one import run, recording its
// checkpoints and row errors in files, as the real worker records them in
// the UserImport's status and report.
func runModelWorker() int {
	var job workerJob
	b, err := os.ReadFile(os.Getenv(modelWorkerEnv))
	if err == nil {
		err = json.Unmarshal(b, &job)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var dir modelDirectory
	switch {
	case job.SQL != nil:
		dir, err = job.SQL.open("uio", true)
	case job.LDAP != nil:
		dir, err = job.LDAP.open(true)
	default:
		dir, err = job.SCIM.open(peerMarker, true)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	k := &killingDir{modelDirectory: dir}
	k.left.Store(job.KillAfter)
	f, err := os.Open(job.File)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	errs, err := os.OpenFile(job.Errors, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	rep := &fileReporter{checkpoint: job.Checkpoint, errs: errs, killAt: job.KillAtCheckpoint}
	_, err = Run(context.Background(), Input{File: f, SHA256: job.SHA256, Resume: job.Resume}, k, job.Config, false, rep)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// killingDir kills its process with SIGKILL after a number of writes,
// counted before and after each, so that the process dies both before a
// write and after one whose checkpoint was not recorded.
type killingDir struct {
	modelDirectory
	left atomic.Int64
}

// modelDirectory is a directory with groups and managers.
type modelDirectory interface {
	directory.Directory
	directory.GroupDirectory
	directory.ManagerDirectory
}

// IdentityFold passes on the directory's (directory.IdentityFolder).
func (k *killingDir) IdentityFold(ctx context.Context) (func(string) string, error) {
	if f, ok := k.modelDirectory.(directory.IdentityFolder); ok {
		return f.IdentityFold(ctx)
	}
	return nil, nil
}

func (k *killingDir) tick() {
	if k.left.Add(-1) == 0 {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
}

func (k *killingDir) Apply(ctx context.Context, ch []directory.Change) ([]directory.Result, error) {
	k.tick()
	res, err := k.modelDirectory.Apply(ctx, ch)
	k.tick()
	return res, err
}

func (k *killingDir) ApplyGroup(ctx context.Context, ch directory.GroupChange) (string, error) {
	k.tick()
	id, err := k.modelDirectory.ApplyGroup(ctx, ch)
	k.tick()
	return id, err
}

type fileReporter struct {
	checkpoint string
	errs       *os.File
	killAt     int
}

func (r *fileReporter) Progress(p Progress) {
	if p.ResumePoint == nil {
		return
	}
	b, _ := json.Marshal(p.ResumePoint)
	tmp := r.checkpoint + ".tmp"
	if os.WriteFile(tmp, b, 0o600) == nil {
		_ = os.Rename(tmp, r.checkpoint)
	}
	if r.killAt--; r.killAt == 0 {
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
	}
}

func (r *fileReporter) RowError(e RowError) {
	b, _ := json.Marshal(e)
	_, _ = r.errs.Write(append(b, '\n'))
}

// importKilled imports a scenario with worker processes that kill
// themselves at random points, resuming each time from the last
// checkpoint recorded, until one completes. It returns the row errors of
// all runs and the interruptions by the step resumed from.
func importKilled(t *testing.T, s modelScenario, job workerJob, r *rand.Rand, steps map[string]int) (*recorder, error) {
	t.Helper()
	dir := t.TempDir()
	content := s.content()
	job.File, job.SHA256 = filepath.Join(dir, "users.csv"), input(content, nil).SHA256
	job.Checkpoint, job.Errors = filepath.Join(dir, "checkpoint.json"), filepath.Join(dir, "errors.jsonl")
	if err := os.WriteFile(job.File, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	jobFile := filepath.Join(dir, "job.json")
	for attempt := 0; ; attempt++ {
		if attempt > 200 {
			return nil, errors.New("the import never completes")
		}
		if b, err := os.ReadFile(job.Checkpoint); err == nil {
			job.Resume = &ResumePoint{}
			if err := json.Unmarshal(b, job.Resume); err != nil {
				t.Fatalf("checkpoint: %v", err)
			}
		}
		// Killed in a write, or after a checkpoint, which reaches the
		// later steps more often; the first time where the job says so.
		first := job.KillAfter
		job.KillAfter, job.KillAtCheckpoint = 0, 0
		switch {
		case attempt == 0 && first > 0:
			job.KillAfter = first
		case r.IntN(2) == 0:
			job.KillAfter = int64(1 + r.IntN(8))
		default:
			job.KillAtCheckpoint = 1 + r.IntN(4)
		}
		b, err := json.Marshal(job)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(jobFile, b, 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), modelWorkerEnv+"="+jobFile)
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		switch {
		case err == nil:
			return readErrors(t, job.Errors), nil
		case errors.As(err, &exit) && exit.Sys().(syscall.WaitStatus).Signal() == syscall.SIGKILL:
			step := "before the first checkpoint"
			if job.Resume != nil {
				step = job.Resume.Step
			}
			steps[step]++
		default:
			return readErrors(t, job.Errors), fmt.Errorf("worker: %v: %s", err, out)
		}
	}
}

// readErrors reads the row errors the workers appended; a line cut short
// by a kill is skipped.
func readErrors(t *testing.T, path string) *recorder {
	rec := &recorder{}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return rec
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e RowError
		if json.Unmarshal(sc.Bytes(), &e) == nil {
			rec.errors = append(rec.errors, e)
		}
	}
	return rec
}

// modelTarget is a real directory holding a scenario's directory.
type modelTarget struct {
	dir    modelDirectory // scope Managed, for previews and imports here
	cfg    Config
	render func() ([]string, error)
	job    workerJob // for worker processes
}

// checkSQLScenario checks a scenario in a new SQL directory.
func checkSQLScenario(t *testing.T, driver v1alpha1.SQLDriver, dsn string, s modelScenario, r *rand.Rand, steps map[string]int, firstKill int64) string {
	d, fold := newSQLModelDir(t, driver, dsn, s.before, s.foldingColumn)
	s.spec.Fold = fold
	dir, err := d.open("uio", true)
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	cfg := s.configAs("userName", "mail", "manager", d.options())
	msg := checkTarget(t, s, modelTarget{dir: dir, cfg: cfg, render: d.render, job: workerJob{SQL: &d, Config: cfg, KillAfter: firstKill}}, r, steps)
	if msg != "" && fold != nil {
		msg = "(the identity column ignores case) " + msg
	}
	return msg
}

// checkTarget runs a scenario's preview in this process and its import
// in killed worker processes (or, without r, here in one run), and
// compares both with the model; "" when they agree.
func checkTarget(t *testing.T, s modelScenario, target modelTarget, r *rand.Rand, steps map[string]int) string {
	want := syncmodel.Import(s.before, s.lines, s.spec)
	before, err := target.render()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(before, s.before.Render()) {
		t.Fatalf("the directory was not seeded as the model's:\n%s", lineDiff(before, s.before.Render()))
	}
	prec := &recorder{}
	preview, perr := Run(context.Background(), input(s.content(), nil), target.dir, target.cfg, true, prec)
	var rec *recorder
	var ierr error
	var res Result
	if r != nil {
		rec, ierr = importKilled(t, s, target.job, r, steps)
	} else {
		rec = &recorder{}
		res, ierr = Run(context.Background(), input(s.content(), nil), target.dir, target.cfg, false, rec)
	}
	got, err := target.render()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want.After.Render()) {
		return fmt.Sprintf("after the import, the directory differs from the model's (+ engine, - model):\n%s", lineDiff(got, want.After.Render()))
	}
	return compareWithModel(s, want, modelRun{preview: preview, perr: perr, res: res, err: ierr, prec: prec, rec: rec, result: r == nil, exact: r == nil})
}

func TestSQLiteAgreesWithTheModelWhenKilled(t *testing.T) {
	// Each scenario has directories and files of its own: these long
	// runs overlap with the other tests that allow it.
	t.Parallel()
	n := *modelSQLScenarios
	if testing.Short() {
		n = 20
	}
	steps := map[string]int{}
	failed := 0
	for i := range uint64(n) {
		seed := *modelSeed + i
		s := genScenario(seed)
		s.foldingColumn = seed%3 == 0 // one scenario in three
		if seed%3 == 1 {
			s.respell(true, true) // one in three more
		}
		dsn := filepath.Join(t.TempDir(), "users.db")
		if msg := checkSQLScenario(t, v1alpha1.SQLDriverSQLite, dsn, s, rand.New(rand.NewPCG(seed, 2)), steps, 0); msg != "" {
			t.Errorf("SQLite, killed: %s%s", s, msg)
			if failed++; failed >= 3 {
				t.FailNow()
			}
		}
	}
	total := 0
	for _, c := range steps {
		total += c
	}
	t.Logf("%d scenarios, %d SIGKILLs, resumed from %v", n, total, steps)
	for _, step := range []string{v1alpha1.StepApply, v1alpha1.StepGroups, v1alpha1.StepManagers} {
		if steps[step] < max(1, n/50) {
			t.Errorf("only %d kills resumed in the %s step: %v", steps[step], step, steps)
		}
	}
}

func TestPostgresAgreesWithTheModelWhenKilled(t *testing.T) {
	n := *modelPGScenarios
	if testing.Short() {
		n = 5
	}
	dsn := pgShared.Get(t).DSN
	steps := map[string]int{}
	for i := range uint64(n) {
		seed := *modelSeed + 7919*i
		s := genScenario(seed)
		s.foldingColumn = seed%3 == 0 // one scenario in three
		if seed%3 == 1 {
			s.respell(true, true) // one in three more
		}
		if msg := checkSQLScenario(t, v1alpha1.SQLDriverPostgres, dsn, s, rand.New(rand.NewPCG(seed, 4)), steps, 0); msg != "" {
			t.Fatalf("PostgreSQL, killed: %s%s", s, msg)
		}
	}
	t.Logf("%d scenarios, resumed after SIGKILL from %v", n, steps)
}

// A delta line deletes the last member of a managed group, and another
// names the group, with createGroups false: the group, which SQL drops
// with its last member, is the directory's own and takes the new member,
// whether the worker runs through or is killed right after the removal.
func TestSQLiteGroupEmptiedByItsImportIsKnown(t *testing.T) {
	eng := &syncmodel.Group{Name: "eng", Managed: true, Members: []string{"dan"}}
	s := modelScenario{
		before: syncmodel.Directory{Users: map[string]*syncmodel.User{"dan": {Identity: "dan", Managed: true, Active: true}},
			Groups: map[string]*syncmodel.Group{"eng": eng}},
		lines: []string{"dan,,,deleted,,", "new1,,Dev,,eng,"},
		spec:  syncmodel.Spec{Mode: v1alpha1.ModeDelta, Missing: v1alpha1.MissingIgnore},
		batch: 1, conc: 1,
	}
	if msg := checkSQLScenario(t, v1alpha1.SQLDriverSQLite, filepath.Join(t.TempDir(), "a.db"), s, nil, nil, 0); msg != "" {
		t.Fatalf("uninterrupted: %s", msg)
	}
	// Killed after its first write, the removal of dan from eng.
	steps := map[string]int{}
	if msg := checkSQLScenario(t, v1alpha1.SQLDriverSQLite, filepath.Join(t.TempDir(), "b.db"), s, rand.New(rand.NewPCG(1, 1)), steps, 2); msg != "" {
		t.Fatalf("killed after the removal: %s", msg)
	}
	if steps[v1alpha1.StepApply] == 0 {
		t.Fatalf("the worker was not killed after the removal: %v", steps)
	}
}

// Where the identity column ignores case, a delta line that spells its
// user, and its manager, otherwise keeps the user's memberships and
// manager as they are: the table refers to users as it spells them.
func TestSQLiteFoldingColumnKeepsMembershipsAndManager(t *testing.T) {
	user := func(id, mgr string) *syncmodel.User {
		return &syncmodel.User{Identity: id, Managed: true, Active: true, Title: "Dev", Manager: mgr}
	}
	s := modelScenario{
		before: syncmodel.Directory{
			Users:  map[string]*syncmodel.User{"ann": user("ann", ""), "bob": user("bob", "ann"), "eve": user("eve", "bob")},
			Groups: map[string]*syncmodel.Group{"eng": {Name: "eng", Managed: true, Members: []string{"eve"}}},
		},
		lines:         []string{"EVE,,Ops,,eng,BOB", "Bob,,Dev,,eng,ANN"},
		spec:          syncmodel.Spec{Mode: v1alpha1.ModeDelta, Missing: v1alpha1.MissingIgnore},
		batch:         1,
		conc:          1,
		foldingColumn: true,
	}
	if msg := checkSQLScenario(t, v1alpha1.SQLDriverSQLite, filepath.Join(t.TempDir(), "a.db"), s, nil, nil, 0); msg != "" {
		t.Fatal(msg)
	}
}
