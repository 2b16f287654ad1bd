package metrics

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/userimport/user-import-operator/api/v1alpha1"
)

func rows(outcome string) float64 { return testutil.ToFloat64(RowsProcessed.WithLabelValues(outcome)) }

func imports(phase v1alpha1.ImportPhase) float64 {
	return testutil.ToFloat64(Imports.WithLabelValues(string(phase)))
}

// The gauges follow each import's phase, and the row counters count each
// change once: a preview reports none, a restarted manager does not count
// again what it finds already done, and a resumed import counts only rows
// past its checkpoint.
func TestTrackerCountsEachRowOnce(t *testing.T) {
	tr := NewTracker()
	created, failed := rows("created"), rows("failed")
	pending, importing, completed := imports(v1alpha1.PhaseImportPending), imports(v1alpha1.PhaseImporting), imports(v1alpha1.PhaseCompleted)

	// A preview reads every row and plans 100 creates; status.progress
	// holds only how far it read.
	tr.Observe("ns/a", v1alpha1.PhaseCreatingPreview, nil, false)
	tr.Observe("ns/a", v1alpha1.PhasePreviewReady, &v1alpha1.ProgressStatus{RowsProcessed: 100, Percent: 100}, false)
	tr.Observe("ns/a", v1alpha1.PhaseImportPending, &v1alpha1.ProgressStatus{RowsProcessed: 100, Percent: 100}, false)
	if got := imports(v1alpha1.PhaseImportPending) - pending; got != 1 {
		t.Errorf("ImportPending gauge moved by %v, want 1", got)
	}
	tr.Observe("ns/a", v1alpha1.PhaseImporting, nil, false)
	tr.Observe("ns/a", v1alpha1.PhaseImporting, &v1alpha1.ProgressStatus{RowsProcessed: 40, ChangeCounts: v1alpha1.ChangeCounts{Created: 38, Failed: 2}}, false)
	tr.Observe("ns/a", v1alpha1.PhaseImporting, &v1alpha1.ProgressStatus{RowsProcessed: 100, ChangeCounts: v1alpha1.ChangeCounts{Created: 97, Failed: 3}}, false)
	tr.Observe("ns/a", v1alpha1.PhaseCompleted, &v1alpha1.ProgressStatus{RowsProcessed: 100, ChangeCounts: v1alpha1.ChangeCounts{Created: 97, Failed: 3}}, false)
	if got := rows("created") - created; got != 97 {
		t.Errorf("created counted %v times, want 97", got)
	}
	if got := rows("failed") - failed; got != 3 {
		t.Errorf("failed counted %v times, want 3", got)
	}
	if d := imports(v1alpha1.PhaseImportPending) - pending; d != 0 {
		t.Errorf("ImportPending gauge is off by %v after the import left it", d)
	}
	if d := imports(v1alpha1.PhaseImporting) - importing; d != 0 {
		t.Errorf("Importing gauge is off by %v after the import left it", d)
	}
	if d := imports(v1alpha1.PhaseCompleted) - completed; d != 1 {
		t.Errorf("Completed gauge moved by %v, want 1", d)
	}

	// A new manager first sees an import half done: that half was
	// counted by the manager before it.
	created = rows("created")
	fresh := NewTracker()
	fresh.Observe("ns/b", v1alpha1.PhaseImporting, &v1alpha1.ProgressStatus{RowsProcessed: 500, ChangeCounts: v1alpha1.ChangeCounts{Created: 500}}, false)
	fresh.Observe("ns/b", v1alpha1.PhaseImporting, &v1alpha1.ProgressStatus{RowsProcessed: 800, ChangeCounts: v1alpha1.ChangeCounts{Created: 800}}, false)
	if got := rows("created") - created; got != 300 {
		t.Errorf("after a restart, created counted %v, want the 300 rows since", got)
	}
	fresh.Forget("ns/b")
	if d := imports(v1alpha1.PhaseImporting) - importing; d != 0 {
		t.Errorf("Importing gauge is off by %v after the import was deleted", d)
	}
}
