package controllers

import (
	"fmt"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/metrics"
)

func (run *importRun) observeDuration(result string) {
	if s := run.imp.Status.StartTime; s != nil {
		metrics.ImportDuration.WithLabelValues(result).Observe(run.now().Sub(s.Time).Seconds())
	}
}

func progressSummary(p *v1alpha1.ProgressStatus) string {
	if p == nil {
		return "no progress reported yet"
	}
	s := fmt.Sprintf("%d %% (%d of %d rows)", p.Percent, p.RowsProcessed, p.RowsTotal)
	if p.RowsTotal == 0 {
		// The file's rows are counted when it has been read through.
		s = fmt.Sprintf("%d %% of the file (%d rows)", p.Percent, p.RowsProcessed)
	}
	s += fmt.Sprintf("; created %d, updated %d, unchanged %d, deactivated %d, deleted %d, failed %d",
		p.Created, p.Updated, p.Unchanged, p.Deactivated, p.Deleted, p.Failed)
	if p.Resumes > 0 {
		s += fmt.Sprintf("; resumed %d times", p.Resumes)
	}
	return s
}

func previewSummary(p *v1alpha1.PreviewStatus) string {
	if p == nil {
		return "preview ready"
	}
	c := p.Counts
	return fmt.Sprintf("preview of generation %d: %d to create, %d to update, %d unchanged, %d to deactivate, %d to delete, %d errors; %d managed users in the directory when previewed (a running import may change them)",
		p.Generation, c.Created, c.Updated, c.Unchanged, c.Deactivated, c.Deleted, c.Failed, p.ManagedUsers)
}
