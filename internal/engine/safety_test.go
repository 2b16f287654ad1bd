package engine

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/failure"
)

// twenty returns 20 managed users u00..u19 and a file listing the first n.
func twenty(n int) ([]directory.User, string) {
	var users []directory.User
	var rows []string
	for i := range 20 {
		id := fmt.Sprintf("u%02d", i)
		users = append(users, user(id, id+"@x", "T"))
		if i < n {
			rows = append(rows, id+","+id+"@x,T,")
		}
	}
	return users, file(rows...)
}

func TestSafetyThreshold(t *testing.T) {
	cases := []struct {
		name      string
		listed    int
		max       *int64
		pct       *int64
		approved  *int64
		wantStop  bool
		wantWrite bool
	}{
		{name: "within percent", listed: 18, pct: ptr(int64(10)), wantWrite: true},
		{name: "over percent", listed: 17, pct: ptr(int64(10)), wantStop: true},
		{name: "over count", listed: 17, max: ptr(int64(2)), wantStop: true},
		{name: "approved exactly", listed: 17, pct: ptr(int64(10)), approved: ptr(int64(3)), wantWrite: true},
		{name: "approved too few", listed: 15, pct: ptr(int64(10)), approved: ptr(int64(3)), wantStop: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			users, content := twenty(tc.listed)
			cfg := testConfig(v1alpha1.ModeFull, v1alpha1.MissingDeactivate)
			cfg.MaxDeprovision, cfg.MaxDeprovisionPercent, cfg.ApprovedDeprovisions = tc.max, tc.pct, tc.approved
			d := seed(users...)
			preview, _, err := runOnce(t, d, cfg, content, true)
			if err != nil {
				t.Fatal(err)
			}
			res, _, err := runOnce(t, d, cfg, content, false)
			if err != nil {
				t.Fatal(err)
			}
			planned := int64(20 - tc.listed)
			if preview.PlannedDeprovisions != planned || res.PlannedDeprovisions != planned || res.ManagedUsers != 20 {
				t.Fatalf("planned %d/%d managed %d, want %d of 20", preview.PlannedDeprovisions, res.PlannedDeprovisions, res.ManagedUsers, planned)
			}
			if preview.SafetyStop != tc.wantStop || res.SafetyStop != tc.wantStop {
				t.Fatalf("safety stop preview=%v import=%v, want %v", preview.SafetyStop, res.SafetyStop, tc.wantStop)
			}
			if tc.wantStop {
				// An import stopped by the threshold reports what it planned,
				// as the preview does: never a summary of zeros.
				want := Counts{Rows: int64(tc.listed), ChangeCounts: v1alpha1.ChangeCounts{Unchanged: int64(tc.listed), Deactivated: planned}}
				if res.Counts != want || preview.Counts != want || !res.DryRun {
					t.Errorf("counts of the stop: import %+v (dry %v), preview %+v, want %+v", res.Counts, res.DryRun, preview.Counts, want)
				}
			}
			writes := d.Stats().Writes
			if tc.wantWrite != (writes > 0) {
				t.Fatalf("writes %d, want writes: %v", writes, tc.wantWrite)
			}
			if tc.wantWrite && res.Counts.Deactivated != planned {
				t.Fatalf("deactivated %d, want %d", res.Counts.Deactivated, planned)
			}
		})
	}
}

func TestEmptyFileNeverDeprovisions(t *testing.T) {
	users, _ := twenty(0)
	for _, content := range []string{
		"id,mail,title,status\n",
		file(",a@x,T,", ",b@x,T,"), // every row is an error
	} {
		cfg := testConfig(v1alpha1.ModeFull, v1alpha1.MissingDelete)
		cfg.MaxDeprovisionPercent, cfg.ApprovedDeprovisions, cfg.MaxErrorPercent = nil, ptr(int64(100)), nil
		for _, dry := range []bool{true, false} {
			d := seed(users...)
			_, _, err := runOnce(t, d, cfg, content, dry)
			if !errors.Is(err, ErrNoValidRows) {
				t.Fatalf("dry=%v: want ErrNoValidRows, got %v", dry, err)
			}
			if w := d.Stats().Writes; w != 0 {
				t.Fatalf("dry=%v: wrote %d changes", dry, w)
			}
		}
	}
}

func TestErrorPolicy(t *testing.T) {
	// 400 rows; rows 301..351 (51 rows) are bad: the 34th bad row, row
	// 334, is the first where bad rows exceed 10 %.
	var rows []string
	for i := range 400 {
		id := fmt.Sprintf("u%03d", i)
		if i >= 300 && i <= 350 {
			id = ""
		}
		rows = append(rows, id+",m@x,T,")
	}
	content := file(rows...)
	cases := []struct {
		name      string
		maxErrors *int64
		pct       *int64
		want      string
	}{
		{name: "percent", pct: ptr(int64(10)), want: "maxErrorPercent is 10, first exceeded at line 335"},
		{name: "count", maxErrors: ptr(int64(20)), want: "maxErrors is 20, first exceeded at line 322"},
		{name: "within", pct: ptr(int64(15))},
	}
	for _, tc := range cases {
		for _, mode := range []v1alpha1.ImportMode{v1alpha1.ModeDelta, v1alpha1.ModeFull} {
			t.Run(tc.name+"/"+string(mode), func(t *testing.T) {
				cfg := testConfig(mode, v1alpha1.MissingIgnore)
				cfg.MaxErrors, cfg.MaxErrorPercent = tc.maxErrors, tc.pct
				d := seed()
				preview, _, perr := runOnce(t, d, cfg, content, true)
				res, _, err := runOnce(t, d, cfg, content, false)
				if tc.want == "" {
					if err != nil || perr != nil {
						t.Fatalf("want no error, got %v / %v", perr, err)
					}
					if res.Counts.Failed != 51 || res.Counts.Created != 349 {
						t.Fatalf("counts %+v", res.Counts)
					}
					return
				}
				// The message gives the figures of the counts, and where the
				// policy tripped.
				var pe *PolicyError
				figures := func(c Counts) string {
					return fmt.Sprintf("error policy: %d of %d rows failed (%.1f %%); ", c.Failed, c.Rows, float64(c.Failed)*100/float64(c.Rows))
				}
				if !errors.As(err, &pe) || err.Error() != figures(res.Counts)+tc.want {
					t.Fatalf("import: got %v, want %q", err, figures(res.Counts)+tc.want)
				}
				if perr == nil || perr.Error() != figures(preview.Counts)+tc.want {
					t.Fatalf("preview: got %v, want %q", perr, figures(preview.Counts)+tc.want)
				}
				// The checkpoint covers what was written: every valid row
				// before it has its user. Batches in flight when the
				// policy stopped may have been written too.
				cp := res.ResumePoint
				if cp == nil {
					t.Fatal("no checkpoint after an error policy stop")
				}
				if cp.Counts != res.Counts || cp.Line < 301 || cp.Counts.Rows != cp.Line-1 {
					t.Fatalf("checkpoint %+v inconsistent with counts %+v", cp, res.Counts)
				}
				users := map[string]bool{}
				for _, u := range d.Users() {
					users[u.Identity] = true
				}
				for i := range int(cp.Line - 1) {
					if id := fmt.Sprintf("u%03d", i); (i < 300 || i > 350) && !users[id] {
						t.Fatalf("row of %s is before the checkpoint but its user is missing", id)
					}
				}
				if int64(len(users)) < res.Counts.Created {
					t.Fatalf("directory holds %d users, counts say %d created", len(users), res.Counts.Created)
				}
				// A preview stops at the same place every time.
				again, _, _ := runOnce(t, seed(), cfg, content, true)
				if again.Counts != preview.Counts || preview.Counts.Rows < 321 {
					t.Fatalf("previews stopped at %+v and %+v", preview.Counts, again.Counts)
				}
			})
		}
	}
}

// A full import that deprovisions plans the whole file before writing:
// an error policy exceeded there is the file's fault (a stalled error), and
// nothing is written.
func TestPlanningPassPolicyIsTheFilesFault(t *testing.T) {
	users, _ := twenty(0)
	d := seed(users...)
	before := state(d)
	cfg := testConfig(v1alpha1.ModeFull, v1alpha1.MissingDeactivate)
	cfg.Mapping[0].Check = v1alpha1.CheckEmail
	cfg.Mapping[0].Column = "mail"
	cfg.MaxErrors = ptr(int64(1))
	content := file("u00,not-an-address,T,", "u01,also-not,T,", "u02,u02@x,T,")
	res, _, err := runOnce(t, d, cfg, content, false)
	if !res.DryRun {
		t.Error("the result of the planning pass is not marked as planned (DryRun)")
	}
	if !failure.IsStalled(err) || failure.ReasonOf(err, "") != v1alpha1.ReasonErrorPolicyExceeded {
		t.Fatalf("err %v (%T), want a stalled error with reason ErrorPolicyExceeded", err, err)
	}
	if got := state(d); !slices.Equal(got, before) {
		t.Errorf("the directory changed:\n%v\nwant\n%v", got, before)
	}
}
