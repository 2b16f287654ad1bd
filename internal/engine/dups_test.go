package engine

import (
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/userimport/user-import-operator/api/v1alpha1"
)

// TestLargeFileDuplicatesAsInMemory: a delta import that finds duplicate
// identities with temporary files (as for a large file) reports the same
// rows, counts and directory as one that keeps them in memory.
func TestLargeFileDuplicatesAsInMemory(t *testing.T) {
	defer func(v int64) { externalDupBytes = v }(externalDupBytes)
	dupRows := 0
	for s := range uint64(20) {
		r := rand.New(rand.NewPCG(s, 99))
		users, content := scenario(r, 200)
		cfg := scenarioConfig(r)
		cfg.Mode, cfg.MissingUsers = v1alpha1.ModeDelta, v1alpha1.MissingIgnore
		cfg.StatusColumn = &v1alpha1.StatusColumn{Column: "status", DeactivateValues: []string{"inactive"}, DeleteValues: []string{"deleted"}}

		type outcome struct {
			res   Result
			lines []int64
			state []string
		}
		runWith := func(limit int64, dry bool) outcome {
			externalDupBytes = limit
			d := seed(users...)
			res, rec, err := runOnce(t, d, cfg, content, dry)
			if err != nil {
				t.Fatalf("seed %d (limit %d): %v", s, limit, err)
			}
			return outcome{res, rec.errorLines(), state(d)}
		}
		for _, dry := range []bool{true, false} {
			mem, ext := runWith(1<<40, dry), runWith(-1, dry)
			if mem.res.Counts != ext.res.Counts || !slices.Equal(mem.lines, ext.lines) || !slices.Equal(mem.state, ext.state) {
				t.Errorf("seed %d dry=%v: in memory %+v errors %v, with files %+v errors %v", s, dry, mem.res.Counts, mem.lines, ext.res.Counts, ext.lines)
			}
			for _, e := range ext.res.Errors {
				if e.Msg == (&pass{r: &run{cfg: cfg}}).duplicateMsg() {
					dupRows++
				}
			}
		}
	}
	if dupRows == 0 {
		t.Fatal("no scenario had a duplicate identity")
	}
}

// The random preview and resume scenarios again, with every delta file
// taken for a large one.
func TestPreviewAndImportAgreeLargeFiles(t *testing.T) {
	defer func(v int64) { externalDupBytes = v }(externalDupBytes)
	externalDupBytes = -1
	TestPreviewAndImportAgree(t)
}

func TestResumeAfterInterruptionsLargeFiles(t *testing.T) {
	defer func(v int64) { externalDupBytes = v }(externalDupBytes)
	externalDupBytes = -1
	TestResumeAfterInterruptions(t)
}
