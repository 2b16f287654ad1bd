package worker

import (
	"fmt"
	"strconv"

	"github.com/userimport/user-import-operator/internal/csvsafe"
	"github.com/userimport/user-import-operator/internal/engine"
)

// Budgets of the compressed reports in the report Secret: with the row
// errors (at most maxKeptErrors), the sample of changes and the summary,
// the Secret stays under the API server's 1 MiB.
const (
	outcomeGzipBudget = 600 << 10
	groupsGzipBudget  = 150 << 10
)

// completeReport streams every outcome of a run, and every group and
// manager change, into gzip-compressed CSVs held in memory, each within
// its budget: a run of any size lists as many rows as fit, then a line
// that says how many more there were.
type completeReport struct {
	outcome *csvsafe.GzipWriter
	groups  *csvsafe.GzipWriter
	// changes counts the changes streamed: none, while the Result holds
	// samples, means the run's changes were planned by a pass that does
	// not stream them (a full import stopped by the safety threshold).
	changes int64
	// errorLines are the lines whose error is listed: after a resume,
	// and between the planning and the writing pass, the engine may
	// report a line again.
	errorLines bitset
}

func newCompleteReport() *completeReport {
	return &completeReport{
		outcome: csvsafe.NewGzipWriter(outcomeGzipBudget, []string{"line", "identity", "action", "error"}),
		groups:  csvsafe.NewGzipWriter(groupsGzipBudget, []string{"line", "identity", "group", "change"}),
	}
}

func (c *completeReport) change(s engine.Sample) {
	c.changes++
	c.outcome.Write([]string{lineCell(s.Line), s.Identity, s.Op.String(), ""})
}

func (c *completeReport) rowError(e engine.RowError) {
	if e.Line > 0 && c.errorLines.testAndSet(e.Line) {
		return
	}
	action := "error"
	if e.Warning {
		action = "warning"
	}
	c.outcome.Write([]string{lineCell(e.Line), e.Identity, action, e.Msg})
}

func (c *completeReport) relation(rc engine.RelationChange) {
	c.groups.Write([]string{lineCell(rc.Line), rc.Identity, rc.Group, rc.Change})
}

func lineCell(line int64) string {
	if line == 0 {
		return ""
	}
	return strconv.FormatInt(line, 10)
}

// omittedRows is the last line of a report CSV that left rows out.
func omittedRows(budget int) func(int64) []string {
	return func(n int64) []string {
		return []string{"", "", "", fmt.Sprintf("%d more rows are not listed: the report keeps %d KiB compressed; the counts in the report are complete", n, budget>>10)}
	}
}

// bitset is a set of line numbers, one bit a line.
type bitset []uint64

// testAndSet adds n and tells whether it was there already.
func (b *bitset) testAndSet(n int64) bool {
	i, bit := n/64, uint64(1)<<(n%64)
	for int64(len(*b)) <= i {
		*b = append(*b, 0)
	}
	was := (*b)[i]&bit != 0
	(*b)[i] |= bit
	return was
}
