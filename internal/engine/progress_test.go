package engine

import (
	"fmt"
	"testing"

	"github.com/userimport/user-import-operator/api/v1alpha1"
)

// Every progress report describes one moment: the line it names is the
// last row its counts cover, not where the reader has got to.
func TestProgressLineMatchesCounts(t *testing.T) {
	var rows []string
	for i := range 5000 {
		rows = append(rows, fmt.Sprintf("u%05d,m%d@x,T,", i, i))
	}
	content := file(rows...)
	for _, dry := range []bool{true, false} {
		cfg := testConfig(v1alpha1.ModeDelta, v1alpha1.MissingIgnore)
		cfg.BatchSize = 50
		_, rec, err := runOnce(t, seed(), cfg, content, dry)
		if err != nil {
			t.Fatal(err)
		}
		if len(rec.progress) < 2 {
			t.Fatalf("dry=%v: %d progress reports", dry, len(rec.progress))
		}
		for _, p := range rec.progress {
			// One header line, no blank lines: row n is on line n+1.
			if p.Line != p.Counts.Rows+1 {
				t.Fatalf("dry=%v: progress names line %d but counts %d rows", dry, p.Line, p.Counts.Rows)
			}
			if cp := p.ResumePoint; cp != nil && (cp.Line != p.Line || cp.Offset != p.Offset) {
				t.Fatalf("dry=%v: progress at line %d offset %d, checkpoint at line %d offset %d", dry, p.Line, p.Offset, cp.Line, cp.Offset)
			}
		}
		if last := rec.progress[len(rec.progress)-1]; last.Counts.Rows != 5000 || last.Line != 5001 {
			t.Fatalf("dry=%v: last report line %d rows %d", dry, last.Line, last.Counts.Rows)
		}
	}
}
