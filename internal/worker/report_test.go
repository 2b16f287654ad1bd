package worker

import (
	"bytes"
	"encoding/csv"
	"testing"

	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/engine"
	"github.com/userimport/user-import-operator/internal/runcontract"
)

// An identity or message that a spreadsheet would run as a formula is
// written as text into every CSV file of the report.
func TestReportCSVEscapesFormulaCells(t *testing.T) {
	res := engine.Result{Samples: []engine.Sample{
		{Line: 2, Op: directory.OpCreate, Identity: "=HYPERLINK(\"http://evil\",\"x\")", Attributes: []string{"mail"}},
		{Line: 3, Op: directory.OpUpdate, Identity: "@SUM(1+1)", Attributes: []string{"-title"}},
		{Line: 4, Op: directory.OpCreate, Identity: "\t+cmd", Attributes: nil},
	}}
	errs := []engine.RowError{{Line: 5, Msg: "=1+1"}, {Line: 6, Msg: "\rcmd"}}
	data := ReportData(RunReport{Result: res, Errors: errs})
	for _, key := range []string{runcontract.ReportChangesKey, runcontract.ReportErrorsKey} {
		recs, err := csv.NewReader(bytes.NewReader(data[key])).ReadAll()
		if err != nil {
			t.Fatalf("%s: %v", key, err)
		}
		if len(recs) < 3 {
			t.Fatalf("%s: %d records", key, len(recs))
		}
		for _, r := range recs {
			for _, c := range r {
				if c != "" && bytes.IndexByte([]byte("=+-@\t\r"), c[0]) >= 0 {
					t.Errorf("%s: cell %q would run as a formula", key, c)
				}
			}
		}
	}
	recs, _ := csv.NewReader(bytes.NewReader(data[runcontract.ReportChangesKey])).ReadAll()
	if got := recs[1][2]; got != "'=HYPERLINK(\"http://evil\",\"x\")" {
		t.Errorf("identity cell: got %q, want it kept behind a quote", got)
	}
}
