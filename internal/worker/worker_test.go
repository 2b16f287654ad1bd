package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/directory/open"
	sqldir "github.com/userimport/user-import-operator/internal/directory/sql"
	"github.com/userimport/user-import-operator/internal/failure"
	"github.com/userimport/user-import-operator/internal/keyread"
	"github.com/userimport/user-import-operator/internal/runcontract"
	"github.com/userimport/user-import-operator/internal/source"
	"github.com/userimport/user-import-operator/internal/testenv"
)

// writeCSV writes rows users whose values are all distinctive strings, so
// that a test can look for them where they must not be.
func writeCSV(t *testing.T, path string, rows int) []string {
	t.Helper()
	var b strings.Builder
	b.WriteString("email,first_name,last_name,department\n")
	var values []string
	for i := 0; i < rows; i++ {
		email := fmt.Sprintf("person%05d@corp.example", i)
		first := fmt.Sprintf("Firstname%05d", i)
		last := fmt.Sprintf("Lastname%05d", i)
		fmt.Fprintf(&b, "%s,%s,%s,Dept%d\n", email, first, last, i%7)
		if i%97 == 0 {
			values = append(values, email, first, last)
		}
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	return values
}

type fixture struct {
	c       client.Client
	key     types.NamespacedName
	dirSpec v1alpha1.UserDirectorySpec
	secrets keyread.KeyReader
	csvPath string
	dbPath  string
}

func newFixture(t *testing.T, c client.Client, name string) *fixture {
	t.Helper()
	ctx := context.Background()
	work := t.TempDir()
	f := &fixture{c: c, key: types.NamespacedName{Namespace: "default", Name: name}, csvPath: filepath.Join(work, "users.csv"), dbPath: filepath.Join(work, "users.db")}
	if err := sqldir.CreateTable(ctx, v1alpha1.SQLDriverSQLite, f.dbPath, sqldir.TableSpec{
		Table: "users", IdentityColumn: "email", Columns: []string{"given_name", "family_name", "department", "userImportManagedBy"},
	}); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(work, "secrets", "db"), 0o700)
	os.WriteFile(filepath.Join(work, "secrets", "db", "dsn"), []byte(f.dbPath), 0o600)
	f.secrets = keyread.MountedSecrets(filepath.Join(work, "secrets"))
	f.dirSpec = v1alpha1.UserDirectorySpec{
		IdentityAttribute: "email",
		SQL:               &v1alpha1.SQLDirectory{Driver: v1alpha1.SQLDriverSQLite, DSN: v1alpha1.SecretKeyRef{Name: "db", Key: "dsn"}, Table: "users", ActiveColumn: "active"},
		Execution:         v1alpha1.ExecutionSettings{BatchSize: 50, Concurrency: 2},
	}
	imp := &v1alpha1.UserImport{
		ObjectMeta: metav1.ObjectMeta{Namespace: f.key.Namespace, Name: f.key.Name},
		Spec: v1alpha1.UserImportSpec{
			DirectoryRef: v1alpha1.LocalObjectReference{Name: "db"},
			Source:       v1alpha1.ImportSource{ConfigMap: &v1alpha1.ConfigMapKeyRef{Name: "hr", Key: "users.csv"}},
			Mode:         v1alpha1.ModeFull,
			Mapping: []v1alpha1.AttributeMapping{
				{Attribute: "email", Column: "email", Identity: true, Check: "Email"},
				{Attribute: "given_name", Column: "first_name"},
				{Attribute: "family_name", Column: "last_name"},
				{Attribute: "department", Column: "department"},
			},
		},
	}
	if err := c.Create(ctx, imp); err != nil {
		t.Fatal(err)
	}
	report := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.key.Namespace, Name: name + "-report"}}
	if err := c.Create(ctx, report); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) get(t *testing.T) *v1alpha1.UserImport {
	t.Helper()
	var imp v1alpha1.UserImport
	if err := f.c.Get(context.Background(), f.key, &imp); err != nil {
		t.Fatal(err)
	}
	return &imp
}

func (f *fixture) run(ctx context.Context, t *testing.T, stage Stage, sink Sink) (Result, error) {
	t.Helper()
	return Run(ctx, Config{
		Stage:            stage,
		Import:           f.get(t),
		Directory:        f.dirSpec,
		Secrets:          f.secrets,
		Source:           source.Options{Dir: t.TempDir(), MountedFile: f.csvPath},
		Open:             open.Directory,
		Sink:             sink,
		ProgressInterval: time.Millisecond,
	})
}

func (f *fixture) sink() *APISink {
	return &APISink{Client: f.c, Import: f.key, ReportSecret: f.key.Name + "-report"}
}

func (f *fixture) countUsers(t *testing.T) int {
	t.Helper()
	dir, err := open.Directory(context.Background(), f.dirSpec, f.secrets)
	if err != nil {
		t.Fatal(err)
	}
	defer dir.Close()
	n := 0
	if err := dir.List(context.Background(), []string{"email"}, func(directory.User) error { n++; return nil }); err != nil {
		t.Fatal(err)
	}
	return n
}

// cancelAfter cancels the run after a number of checkpoints (of step, or
// of any step when it is empty), as a pod killed mid-import would stop.
type cancelAfter struct {
	*APISink
	checkpoints int
	step        string
	cancel      context.CancelFunc
}

func (s *cancelAfter) Progress(ctx context.Context, p Progress) error {
	err := s.APISink.Progress(ctx, p)
	if p.ResumePoint != nil && (s.step == "" || p.ResumePoint.Step == s.step) {
		s.checkpoints--
		if s.checkpoints == 0 {
			s.cancel()
		}
	}
	return err
}

func TestWorkerReportsToTheUserImport(t *testing.T) {
	_, c := testenv.Shared(t)
	ctx := context.Background()

	t.Run("preview, then an import interrupted and resumed", func(t *testing.T) {
		f := newFixture(t, c, "hr-nightly")
		values := writeCSV(t, f.csvPath, 2000)

		out, err := f.run(ctx, t, runcontract.StagePreview, f.sink())
		if err != nil {
			t.Fatalf("preview: %v", err)
		}
		imp := f.get(t)
		if imp.Status.Preview == nil || imp.Status.Preview.Counts.Created != 2000 || imp.Status.Preview.Generation != imp.Generation {
			t.Fatalf("preview status: %+v", imp.Status.Preview)
		}
		if imp.Status.Source == nil || imp.Status.Source.Rows != 2000 || len(imp.Status.Source.SHA256) != 64 {
			t.Fatalf("source status: %+v", imp.Status.Source)
		}
		if out.Result.Counts.Created != 2000 || f.countUsers(t) != 0 {
			t.Fatalf("a preview must write nothing: %+v, %d users", out.Result.Counts, f.countUsers(t))
		}
		// status.progress says how far the preview read; its counts are
		// changes made (printer columns, metrics), and a preview makes none.
		if p := imp.Status.Progress; p == nil || p.RowsProcessed == 0 ||
			p.Created+p.Updated+p.Unchanged+p.Deactivated+p.Deleted+p.Failed != 0 || p.Checkpoint != nil {
			t.Fatalf("progress after the preview: %+v", p)
		}
		var report corev1.Secret
		if err := c.Get(ctx, types.NamespacedName{Namespace: "default", Name: "hr-nightly-report"}, &report); err != nil {
			t.Fatal(err)
		}
		if lines := strings.Count(string(report.Data[runcontract.ReportChangesKey]), "\n"); lines < 2 || !strings.HasPrefix(string(report.Data[runcontract.ReportChangesKey]), "line,op,identity,attributes\n") {
			t.Fatalf("changes sample: %d lines", lines)
		}
		if !strings.Contains(string(report.Data[runcontract.ReportSummaryKey]), "create=2000") {
			t.Fatalf("summary: %s", report.Data[runcontract.ReportSummaryKey])
		}

		// The import is stopped after its third checkpoint, like a pod
		// that is killed; the next run resumes from the checkpoint.
		runCtx, cancel := context.WithCancel(ctx)
		_, err = f.run(runCtx, t, runcontract.StageImport, &cancelAfter{APISink: f.sink(), checkpoints: 3, cancel: cancel})
		cancel()
		if err == nil {
			t.Fatal("the interrupted import reported success")
		}
		imp = f.get(t)
		cp := imp.Status.Progress.Checkpoint
		if cp == nil || cp.Line < 2 || cp.SHA256 != imp.Status.Source.SHA256 {
			t.Fatalf("checkpoint after the interruption: %+v", cp)
		}
		written := f.countUsers(t)
		if int64(written) < imp.Status.Progress.Created || written == 2000 {
			t.Fatalf("after the interruption: %d users written, status says %d created", written, imp.Status.Progress.Created)
		}

		out, err = f.run(ctx, t, runcontract.StageImport, f.sink())
		if err != nil {
			t.Fatalf("resumed import: %v", err)
		}
		imp = f.get(t)
		if !out.Resumed || imp.Status.Progress.Resumes != 1 {
			t.Fatalf("resume not recorded: resumed=%t resumes=%d", out.Resumed, imp.Status.Progress.Resumes)
		}
		// Rows written after the last checkpoint but before the
		// interruption are replayed and found unchanged: at most the
		// batches in flight (concurrency 2 × batch size 50).
		if p := imp.Status.Progress; p.Created+p.Unchanged != 2000 || p.Created < 2000-2*50 || p.Failed != 0 || p.Percent != 100 || p.RowsProcessed != 2000 {
			t.Fatalf("final progress: %+v", p)
		}
		if n := f.countUsers(t); n != 2000 {
			t.Fatalf("directory holds %d users, want 2000", n)
		}

		// Row values are personal data: none may appear in status.
		st, _ := json.Marshal(imp.Status)
		for _, v := range values {
			if strings.Contains(string(st), v) {
				t.Fatalf("status contains a row value")
			}
		}
	})

	// Once rows are written, the checkpoint pins the file, also after a
	// preview: a change is a failure to resume, never "nothing was written".
	for _, previewed := range []bool{false, true} {
		t.Run(fmt.Sprintf("a checkpoint of another file is not resumed (previewed %v)", previewed), func(t *testing.T) {
			f := newFixture(t, c, fmt.Sprintf("hr-changed-%v", previewed))
			writeCSV(t, f.csvPath, 300)
			if previewed {
				if _, err := f.run(ctx, t, runcontract.StagePreview, f.sink()); err != nil {
					t.Fatal(err)
				}
			}
			runCtx, cancel := context.WithCancel(ctx)
			_, _ = f.run(runCtx, t, runcontract.StageImport, &cancelAfter{APISink: f.sink(), checkpoints: 1, cancel: cancel})
			cancel()
			if f.get(t).Status.Progress.Checkpoint == nil {
				t.Fatal("no checkpoint recorded")
			}
			writeCSV(t, f.csvPath, 301)
			_, err := f.run(ctx, t, runcontract.StageImport, f.sink())
			if !errors.Is(err, failure.ErrChangedSinceCheckpoint) || runcontract.OutcomeOf(nil, "", err).Kind != runcontract.Failed {
				t.Fatalf("got %v, want ErrChangedSinceCheckpoint", err)
			}
		})
	}
}

// stopAfterApplies cancels the run once a number of batches were written,
// as the SIGTERM of a deleted pod does.
type stopAfterApplies struct {
	directory.Directory
	applies atomic.Int32
	stopAt  int32
	cancel  context.CancelFunc
}

func (d *stopAfterApplies) Apply(ctx context.Context, changes []directory.Change) ([]directory.Result, error) {
	res, err := d.Directory.Apply(ctx, changes)
	if d.applies.Add(1) == d.stopAt {
		d.cancel()
	}
	return res, err
}

// A run stopped between two progress reports still records the checkpoint
// after the batches it wrote, so the next pod replays none of them.
func TestStoppedRunRecordsItsLastCheckpoint(t *testing.T) {
	_, c := testenv.Shared(t)
	f := newFixture(t, c, "hr-stopped")
	writeCSV(t, f.csvPath, 3000)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err := Run(ctx, Config{
		Stage:     runcontract.StageImport,
		Import:    f.get(t),
		Directory: f.dirSpec,
		Secrets:   f.secrets,
		Source:    source.Options{Dir: t.TempDir(), MountedFile: f.csvPath},
		Open: func(ctx context.Context, spec v1alpha1.UserDirectorySpec, secrets keyread.KeyReader) (directory.Directory, error) {
			d, err := open.Directory(ctx, spec, secrets)
			return &stopAfterApplies{Directory: d, stopAt: 10, cancel: cancel}, err
		},
		Sink: f.sink(),
		// No report comes due while the run goes: only the last one.
		ProgressInterval: time.Hour,
	})
	if err == nil {
		t.Fatal("the stopped run reported success")
	}
	p := f.get(t).Status.Progress
	if p == nil || p.Checkpoint == nil {
		t.Fatalf("no checkpoint recorded when the run stopped: %+v", p)
	}
	written := int64(f.countUsers(t))
	if p.Created < 10*50 || p.Created > written || written-p.Created > 2*50 {
		t.Fatalf("checkpoint counts %d created, the directory holds %d users (batches of 50, 2 at a time)", p.Created, written)
	}
}
