package main

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	sqldir "github.com/userimport/user-import-operator/internal/directory/sql"
	"github.com/userimport/user-import-operator/internal/failure"
	"github.com/userimport/user-import-operator/internal/keyread"
	"github.com/userimport/user-import-operator/internal/recoverycode"
	"github.com/userimport/user-import-operator/internal/runcontract"
	"github.com/userimport/user-import-operator/internal/worker"
)

// laptop is a one-off import from files: a SQLite directory, its DSN
// Secret in a secrets directory, import.yaml and a CSV file.
type laptop struct {
	dir, db, yaml, csv, secrets string
}

func newLaptop(t *testing.T, importSpec string) *laptop {
	t.Helper()
	l := &laptop{dir: t.TempDir()}
	l.db = filepath.Join(l.dir, "users.db")
	l.yaml = filepath.Join(l.dir, "import.yaml")
	l.csv = filepath.Join(l.dir, "users.csv")
	l.secrets = filepath.Join(l.dir, "secrets")
	if err := sqldir.CreateTable(context.Background(), v1alpha1.SQLDriverSQLite, l.db, sqldir.TableSpec{
		Table: "users", IdentityColumn: "user_name", Columns: []string{"given_name", "userImportManagedBy"},
	}); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(l.secrets, "dsn"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(l.secrets, "dsn", "dsn"), []byte(l.db), 0o600); err != nil {
		t.Fatal(err)
	}
	doc := `apiVersion: userimport.dev/v1alpha1
kind: UserDirectory
metadata: {name: local}
spec:
  identityAttribute: user_name
  execution: {concurrency: 1, batchSize: 20}
  sql: {driver: sqlite, dsn: {name: dsn, key: dsn}, table: users}
---
apiVersion: userimport.dev/v1alpha1
kind: UserImport
metadata: {name: local}
spec:
  directoryRef: {name: local}
  source: {configMap: {name: unused, key: users.csv}}
  mapping:
  - {attribute: user_name, column: email, identity: true}
  - {attribute: given_name, column: first_name}
` + importSpec
	if err := os.WriteFile(l.yaml, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return l
}

func (l *laptop) writeCSV(t *testing.T, rows int, extra string) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("email,first_name\n")
	for i := range rows {
		fmt.Fprintf(&b, "person%05d@corp.example,Given%05d\n", i, i)
	}
	b.WriteString(extra)
	if err := os.WriteFile(l.csv, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(b.String()))
	return hex.EncodeToString(sum[:])
}

func (l *laptop) run(ctx context.Context, stage worker.Stage, expect string) error {
	return runWorkerFromFile(ctx, localRun{
		path: l.yaml, sourceFile: l.csv, stage: stage, secrets: keyread.MountedSecrets(l.secrets),
		workDir: l.dir, statePath: l.yaml + ".state", expectSHA256: expect,
	})
}

func (l *laptop) users(t *testing.T) int {
	t.Helper()
	db, err := sql.Open("sqlite", l.db)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(`SELECT count(*) FROM users`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func exitCode(err error) int {
	var st exitStatus
	switch {
	case err == nil:
		return 0
	case errors.As(err, &st):
		return st.code
	}
	return 1
}

// An interrupted one-off import keeps its checkpoint in the state file; a
// rerun resumes there, and a changed file is refused.
func TestLaptopImportResumesFromItsStateFile(t *testing.T) {
	l := newLaptop(t, "  mode: Delta\n")
	const rows = 6000
	l.writeCSV(t, rows, "")
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		// Interrupt once some users are written, as Ctrl-C would.
		for ctx.Err() == nil {
			if l.usersQuiet() > 200 {
				cancel()
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	err := l.run(ctx, runcontract.StageImport, "")
	cancel()
	if err == nil {
		t.Fatal("the interrupted import reported success")
	}
	state, rerr := (&worker.StateFile{Path: l.yaml + ".state"}).Load()
	if rerr != nil || state == nil {
		t.Fatalf("no state after the interruption: %v", rerr)
	}
	cp := state.Checkpoint
	if cp.Line < 2 || cp.Line >= rows+1 || state.RowsProcessed != cp.Line-1 {
		t.Fatalf("state: checkpoint line %d, rows %d", cp.Line, state.RowsProcessed)
	}
	if got := l.users(t); int64(got) < state.Created {
		t.Fatalf("state says %d created, the directory holds %d", state.Created, got)
	}

	// A different file is never resumed on.
	orig, _ := os.ReadFile(l.csv)
	l.writeCSV(t, rows, "late@corp.example,Late\n")
	before := l.users(t)
	err = l.run(context.Background(), runcontract.StageImport, "")
	if exitCode(err) != exitFailed || !strings.Contains(err.Error(), "sha256 differs") || !strings.Contains(err.Error(), ".state") {
		t.Fatalf("changed file: %v (exit %d), want a refusal naming the state file", err, exitCode(err))
	}
	if l.users(t) != before {
		t.Fatal("the refused run wrote users")
	}

	// The same file resumes and completes; the state goes.
	if err := os.WriteFile(l.csv, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := l.run(context.Background(), runcontract.StageImport, ""); err != nil {
		t.Fatalf("resumed import: %v", err)
	}
	if got := l.users(t); got != rows {
		t.Fatalf("directory holds %d users, want %d", got, rows)
	}
	if _, err := os.Stat(l.yaml + ".state"); !os.IsNotExist(err) {
		t.Fatalf("state file left after completion: %v", err)
	}
}

func (l *laptop) usersQuiet() int {
	db, err := sql.Open("sqlite", l.db+"?mode=ro")
	if err != nil {
		return 0
	}
	defer db.Close()
	var n int
	_ = db.QueryRow(`SELECT count(*) FROM users`).Scan(&n)
	return n
}

// --expect-sha256 makes the import refuse any file but the previewed one.
func TestLaptopImportRefusesAFileOtherThanThePreviewed(t *testing.T) {
	l := newLaptop(t, "  mode: Delta\n")
	sum := l.writeCSV(t, 50, "")
	if err := l.run(context.Background(), runcontract.StagePreview, ""); err != nil {
		t.Fatal(err)
	}
	l.writeCSV(t, 50, "extra@corp.example,Extra\n")
	err := l.run(context.Background(), runcontract.StageImport, sum)
	if sc := failure.ChangedOf(err); sc == nil || sc.Since != failure.SincePreview || exitCode(err) != exitFailed || sc.Want != sum || !strings.HasPrefix(err.Error(), "SourceChanged: ") {
		t.Fatalf("got %v (exit %d), want the file changed since the preview", err, exitCode(err))
	}
	if n := l.users(t); n != 0 {
		t.Fatalf("the refused import wrote %d users", n)
	}
	sum = l.writeCSV(t, 50, "")
	if err := l.run(context.Background(), runcontract.StageImport, sum); err != nil {
		t.Fatalf("the previewed file: %v", err)
	}
	if n := l.users(t); n != 50 {
		t.Fatalf("%d users, want 50", n)
	}
}

// The exit status tells a script how the run ended.
func TestLaptopExitStatus(t *testing.T) {
	l := newLaptop(t, "  mode: Full\n  missingUsers: Deactivate\n  safety: {maxDeprovision: 2}\n  errorPolicy: {maxErrorPercent: 100}\n")
	l.writeCSV(t, 20, "")
	if err := l.run(context.Background(), runcontract.StageImport, ""); exitCode(err) != 0 {
		t.Fatalf("clean import: exit %d (%v)", exitCode(err), err)
	}
	l.writeCSV(t, 20, ",NoIdentity\n")
	for _, stage := range []worker.Stage{runcontract.StagePreview, runcontract.StageImport} {
		err := l.run(context.Background(), stage, "")
		if exitCode(err) != exitRowErrors || !strings.Contains(err.Error(), "1 of 21 rows failed") {
			t.Fatalf("%s with a bad row: exit %d (%v), want %d", stage, exitCode(err), err, exitRowErrors)
		}
	}
	// Five users gone from the file: over maxDeprovision 2.
	l.writeCSV(t, 15, "")
	err := l.run(context.Background(), runcontract.StageImport, "")
	want := "stopped by the safety threshold: a full import would deactivate 5 of 20 managed users (25 %), over the threshold of 2 users or 10 %; set spec.safety.approvedDeprovisions: 5 to approve"
	if exitCode(err) != exitSafety || err.Error() != want {
		t.Fatalf("safety stop: exit %d, %q\nwant exit %d, %q", exitCode(err), err, exitSafety, want)
	}
}

// A file the mapping does not fit is refused before anything is written,
// with its own exit status and the reason first.
func TestLaptopRefusedInputExitsFive(t *testing.T) {
	l := newLaptop(t, "")
	if err := os.WriteFile(l.csv, []byte("mail,first_name\nperson@corp.example,Given\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, stage := range []worker.Stage{runcontract.StagePreview, runcontract.StageImport} {
		err := l.run(context.Background(), stage, "")
		if exitCode(err) != runcontract.ExitRejected || !strings.HasPrefix(err.Error(), "InvalidMapping: ") || !strings.Contains(err.Error(), `"email"`) {
			t.Fatalf("%s with a column missing: exit %d (%v), want %d naming the column", stage, exitCode(err), err, runcontract.ExitRejected)
		}
	}
	if n := l.users(t); n != 0 {
		t.Fatalf("%d users written", n)
	}
}

// import.yaml is checked with the CRDs' rules, naming the field.
func TestLaptopImportFileIsValidatedLikeTheAPI(t *testing.T) {
	cases := map[string]struct{ spec, want string }{
		"negative batch size":  {"  mode: Delta\n", "spec.execution.batchSize"},
		"unknown missingUsers": {"  mode: Full\n  missingUsers: Sometimes\n", "spec.missingUsers"},
		"negative threshold":   {"  mode: Full\n  safety: {maxDeprovision: -1}\n", "spec.safety.maxDeprovision"},
		"unknown field":        {"  mode: Delta\n  batchSize: 10\n", "batchSize"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			l := newLaptop(t, c.spec)
			if name == "negative batch size" {
				data, _ := os.ReadFile(l.yaml)
				_ = os.WriteFile(l.yaml, []byte(strings.Replace(string(data), "batchSize: 20", "batchSize: -5", 1)), 0o600)
			}
			l.writeCSV(t, 5, "")
			err := l.run(context.Background(), runcontract.StagePreview, "")
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error naming %s", err, c.want)
			}
		})
	}
	// Defaults come from the CRD too: maxErrorPercent is 10 unless set.
	l := newLaptop(t, "  mode: Delta\n")
	_, imp, err := readImportFile(l.yaml)
	if err != nil {
		t.Fatal(err)
	}
	if p := imp.Spec.ErrorPolicy.MaxErrorPercent; p == nil || *p != 10 {
		t.Fatalf("errorPolicy.maxErrorPercent = %v, want the CRD default 10", p)
	}
}

// A one-off import that gives out recovery codes keeps them in
// --codes-dir, readable by its owner only; without one it is refused.
func TestLaptopCodesGoToTheCodesDir(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "users.db")
	if err := sqldir.CreateTable(context.Background(), v1alpha1.SQLDriverSQLite, db, sqldir.TableSpec{
		Table: "users", IdentityColumn: "user_name", Columns: []string{"given_name", "code", "userImportManagedBy"},
	}); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "secrets", "dsn"), 0o700)
	os.WriteFile(filepath.Join(dir, "secrets", "dsn", "dsn"), []byte(db), 0o600)
	doc := `apiVersion: userimport.dev/v1alpha1
kind: UserDirectory
metadata: {name: local}
spec:
  identityAttribute: user_name
  recoveryCodes: {attribute: code, memoryKiB: 64, iterations: 1}
  sql: {driver: sqlite, dsn: {name: dsn, key: dsn}, table: users}
---
apiVersion: userimport.dev/v1alpha1
kind: UserImport
metadata: {name: local}
spec:
  directoryRef: {name: local}
  source: {configMap: {name: unused, key: users.csv}}
  mode: Delta
  recoveryCodes: {generate: ForNewUsers}
  mapping:
  - {attribute: user_name, column: email, identity: true}
  - {attribute: given_name, column: first_name}
`
	yamlPath, csvPath := filepath.Join(dir, "import.yaml"), filepath.Join(dir, "users.csv")
	os.WriteFile(yamlPath, []byte(doc), 0o600)
	var b strings.Builder
	b.WriteString("email,first_name\n")
	for i := range 50 {
		fmt.Fprintf(&b, "person%02d@corp.example,Given%02d\n", i, i)
	}
	os.WriteFile(csvPath, []byte(b.String()), 0o600)
	run := func(codesDir string) error {
		return runWorkerFromFile(context.Background(), localRun{path: yamlPath, sourceFile: csvPath, stage: runcontract.StageImport,
			secrets: keyread.MountedSecrets(filepath.Join(dir, "secrets")), workDir: dir, statePath: yamlPath + ".state", codesDir: codesDir})
	}
	if err := run(""); err == nil || !strings.Contains(err.Error(), "--codes-dir") {
		t.Fatalf("a run with codes and no --codes-dir: %v", err)
	}
	codesDir := filepath.Join(dir, "codes")
	if err := run(codesDir); err != nil {
		t.Fatalf("import: %v", err)
	}
	for _, name := range []string{"key", "codes.csv"} {
		st, err := os.Stat(filepath.Join(codesDir, name))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, mode %v; want 0600", name, err, st.Mode().Perm())
		}
	}
	if _, err := os.Stat(filepath.Join(codesDir, "codes.log")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("codes.log is left after the run: %v", err)
	}
	data, _ := os.ReadFile(filepath.Join(codesDir, "codes.csv"))
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 51 || lines[0] != "identity,code,expires" {
		t.Fatalf("codes.csv has %d lines, first %q", len(lines), lines[0])
	}
	sqlDB, err := sql.Open("sqlite", db)
	if err != nil {
		t.Fatal(err)
	}
	defer sqlDB.Close()
	for _, line := range lines[1:] {
		f := strings.Split(line, ",")
		var hash string
		if err := sqlDB.QueryRow(`SELECT code FROM users WHERE user_name = ?`, f[0]).Scan(&hash); err != nil {
			t.Fatal(err)
		}
		if ok, err := recoverycode.Verify(hash, f[1]); err != nil || !ok {
			t.Fatalf("%s: the stored hash does not verify its code (%v)", f[0], err)
		}
	}
	os.Chmod(codesDir, 0o755)
	if err := run(codesDir); err == nil || !strings.Contains(err.Error(), "mode 755") {
		t.Fatalf("a codes directory others may read: %v", err)
	}
}
