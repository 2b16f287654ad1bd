package engine

import (
	"context"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	sqldir "github.com/userimport/user-import-operator/internal/directory/sql"
)

// sqliteDir opens a real SQLite users table through the SQL provider.
func sqliteDir(t *testing.T) directory.Directory {
	t.Helper()
	ctx := context.Background()
	dsn := filepath.Join(t.TempDir(), "users.db")
	if err := sqldir.CreateTable(ctx, v1alpha1.SQLDriverSQLite, dsn, sqldir.TableSpec{
		Table: "users", IdentityColumn: "userName", Columns: []string{"mail", "title", "mark"},
	}); err != nil {
		t.Fatal(err)
	}
	spec := &v1alpha1.SQLDirectory{Driver: v1alpha1.SQLDriverSQLite, DSN: v1alpha1.SecretKeyRef{Name: "db", Key: "dsn"}, Table: "users"}
	opts := dirOpts
	opts.Concurrency = 4
	d, err := sqldir.New(ctx, spec, opts, func(_ context.Context, name, key string) ([]byte, error) {
		return []byte(dsn), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// listState renders any directory like state does for memdir.
func listState(t *testing.T, d directory.Directory) []string {
	t.Helper()
	var out []string
	opts := []string{"userName", "mail", "title"}
	err := d.List(context.Background(), opts, func(u directory.User) error {
		out = append(out, fmt.Sprintf("%s active=%v mail=%v title=%v", u.Identity, u.Active, u.Attributes["mail"], u.Attributes["title"]))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

// cancelAfter cancels the import after n checkpoints.
type cancelAfter struct {
	recorder
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) Progress(p Progress) {
	c.recorder.Progress(p)
	if p.ResumePoint != nil {
		if c.n--; c.n == 0 {
			c.cancel()
		}
	}
}

func TestSQLiteImportPreviewAndResume(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	var first, second []string
	for i := range 300 {
		id := fmt.Sprintf("u%03d", i)
		if i < 250 {
			first = append(first, fmt.Sprintf("%s,%s@x,T%d,", id, id, i%3))
		}
		if i >= 20 { // u000-u019 are missing from the second file
			second = append(second, fmt.Sprintf("%s,%s@x,T%d,", id, id, (i+r.IntN(2))%3))
		}
	}
	second = append(second, "u100,dup@x,T,") // a duplicate
	cfgDelta := testConfig(v1alpha1.ModeDelta, v1alpha1.MissingIgnore)
	cfgFull := testConfig(v1alpha1.ModeFull, v1alpha1.MissingDeactivate)
	cfgFull.MaxDeprovisionPercent = ptr(int64(10))
	cfgFull.BatchSize = 7

	ref := seed()
	for _, step := range []struct {
		cfg     Config
		content string
	}{{cfgDelta, file(first...)}, {cfgFull, file(second...)}} {
		if _, _, err := runOnce(t, ref, step.cfg, step.content, false); err != nil {
			t.Fatal(err)
		}
	}

	d := sqliteDir(t)
	if res, _, err := runOnce(t, d, cfgDelta, file(first...), false); err != nil || res.Counts.Created != 250 {
		t.Fatalf("first import: %+v, %v", res.Counts, err)
	}
	preview, _, err := runOnce(t, d, cfgFull, file(second...), true)
	if err != nil {
		t.Fatal(err)
	}
	if preview.PlannedDeprovisions != 20 || preview.Counts.Created != 50 || preview.Counts.Failed != 1 {
		t.Fatalf("preview %+v planned %d", preview.Counts, preview.PlannedDeprovisions)
	}

	// Import the second file, cancelled after a few checkpoints each time
	// and resumed from the last one.
	res, _ := importInterrupted(t, d, cfgFull, file(second...), r, 4)
	if res.Counts.Rows != preview.Counts.Rows || res.Counts.Failed != 1 {
		t.Fatalf("resumed import counts %+v, preview %+v", res.Counts, preview.Counts)
	}
	want := listState(t, ref)
	got := listState(t, d)
	if !slices.Equal(got, want) {
		t.Fatalf("SQLite after the resumed import:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	again, _, err := runOnce(t, d, cfgFull, file(second...), true)
	if err != nil {
		t.Fatal(err)
	}
	if c := again.Counts; c.Created+c.Updated+c.Deactivated+c.Deleted != 0 {
		t.Fatalf("after the import a preview still plans %+v", c)
	}
}
