package worker

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/engine"
	"github.com/userimport/user-import-operator/internal/source"
)

// ConsoleSink prints a run's reports, for one-off imports from a laptop.
// Progress lines carry counts only; the report files, which hold
// identities, go to ReportDir when it is set.
type ConsoleSink struct {
	Out       io.Writer
	ReportDir string
}

var _ Sink = (*ConsoleSink)(nil)

func (s *ConsoleSink) Started(_ context.Context, f *source.File, resumed bool) error {
	if f.InPlace() {
		fmt.Fprintf(s.Out, "source: %s, %d bytes, modified %s, fingerprint %s\n", f.Name, f.Size, f.ModTime.UTC().Format(time.RFC3339), f.Fingerprint)
	} else {
		fmt.Fprintf(s.Out, "source: %d bytes, sha256 %s\n", f.Size, f.SHA256)
	}
	if resumed {
		fmt.Fprintln(s.Out, "resuming from the checkpoint")
	}
	return nil
}

func (s *ConsoleSink) Progress(_ context.Context, p Progress) error {
	c := p.Counts
	if p.DryRun {
		fmt.Fprintf(s.Out, "%3d%%  line %d  rows %d  planned: create %d  update %d  unchanged %d  deactivate %d  delete %d  errors %d  %.0f rows/s\n",
			p.Percent, p.Line, c.Rows, c.Created, c.Updated, c.Unchanged, c.Deactivated, c.Deleted, c.Failed, p.RowsPerSecond)
		return nil
	}
	fmt.Fprintf(s.Out, "%3d%%  line %d  rows %d  created %d  updated %d  unchanged %d  deactivated %d  deleted %d  failed %d  %.0f rows/s\n",
		p.Percent, p.Line, c.Rows, c.Created, c.Updated, c.Unchanged, c.Deactivated, c.Deleted, c.Failed, p.RowsPerSecond)
	return nil
}

func (s *ConsoleSink) Report(_ context.Context, r RunReport) error {
	res, errs := r.Result, r.Errors
	for _, e := range errs {
		fmt.Fprintf(s.Out, "line %d: %s\n", e.Line, e.Msg)
	}
	if res.Counts.Failed > int64(len(errs)) {
		fmt.Fprintf(s.Out, "… %d row errors in all\n", res.Counts.Failed)
	}
	if s.ReportDir == "" {
		return nil
	}
	if err := os.MkdirAll(s.ReportDir, 0o700); err != nil {
		return err
	}
	data := ReportData(r)
	for name, d := range data {
		if err := os.WriteFile(filepath.Join(s.ReportDir, name), d, 0o600); err != nil {
			return err
		}
	}
	// A report of an earlier run in the same directory must not pass for
	// part of this one.
	for _, name := range reportKeys {
		if _, ok := data[name]; !ok {
			if err := os.Remove(filepath.Join(s.ReportDir, name)); err != nil && !os.IsNotExist(err) {
				return err
			}
		}
	}
	return nil
}

func (s *ConsoleSink) Preview(_ context.Context, _ *v1alpha1.UserImport, res engine.Result, _ string) error {
	c := res.Counts
	fmt.Fprintf(s.Out, "preview: rows %d  create %d  update %d  unchanged %d  deactivate %d  delete %d  errors %d  (managed users %d)\n",
		c.Rows, c.Created, c.Updated, c.Unchanged, c.Deactivated, c.Deleted, c.Failed, res.ManagedUsers)
	if i := res.Invitations; i != (engine.Invitations{}) {
		fmt.Fprintf(s.Out, "preview: invitations to new users %d  to pending users %d  no address %d\n", i.NewUsers, i.PendingUsers, i.NoAddress)
	}
	return nil
}

func (s *ConsoleSink) Invitations(_ context.Context, inv engine.Invitations) error {
	st := InvitationStatus(0, inv)
	fmt.Fprintf(s.Out, "invitations: sent %d  failed %d  no address %d", st.Sent, st.Failed, st.NoAddress)
	if st.Reason != "" {
		fmt.Fprintf(s.Out, "  (%s: %s)", st.Reason, st.Message)
	}
	fmt.Fprintln(s.Out)
	return nil
}

func (s *ConsoleSink) Done(_ context.Context, res engine.Result) error {
	c := res.Counts
	fmt.Fprintf(s.Out, "done: rows %d  created %d  updated %d  unchanged %d  deactivated %d  deleted %d  failed %d\n",
		c.Rows, c.Created, c.Updated, c.Unchanged, c.Deactivated, c.Deleted, c.Failed)
	return nil
}
