package worker

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/userimport/user-import-operator/internal/engine"
	"github.com/userimport/user-import-operator/internal/runcontract"
)

// A report directory used again holds this run's report only.
func TestConsoleReportDirDropsAnEarlierRunsGroups(t *testing.T) {
	dir := t.TempDir()
	s := &ConsoleSink{Out: io.Discard, ReportDir: dir}
	withGroups := engine.Result{Relations: []engine.RelationChange{{Line: 2, Identity: "ann", Group: "eng", Change: "add member"}}}
	if err := s.Report(context.Background(), RunReport{Result: withGroups}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, runcontract.ReportGroupsKey)); err != nil {
		t.Fatalf("the first run's report has no %s: %v", runcontract.ReportGroupsKey, err)
	}
	if err := s.Report(context.Background(), RunReport{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, runcontract.ReportGroupsKey)); !os.IsNotExist(err) {
		t.Fatalf("%s of the earlier run is still there (%v)", runcontract.ReportGroupsKey, err)
	}
	if _, err := os.Stat(filepath.Join(dir, runcontract.ReportErrorsKey)); err != nil {
		t.Fatalf("this run's %s: %v", runcontract.ReportErrorsKey, err)
	}
}
