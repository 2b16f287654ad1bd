package worker

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/csvsafe"
	"github.com/userimport/user-import-operator/internal/engine"
	"github.com/userimport/user-import-operator/internal/failure"
	"github.com/userimport/user-import-operator/internal/runcontract"
	"github.com/userimport/user-import-operator/internal/source"
)

// ReportKeepChanges is the number of changes the plain outcome lists,
// sorted by line; the counts are always complete.
const ReportKeepChanges = 10000

// reportKeys are the keys a report may have but not every run writes:
// an earlier run's must not pass for part of this one.
var reportKeys = []string{runcontract.ReportGroupsKey, runcontract.ReportGroupsGzipKey, runcontract.ReportErrorsKey, runcontract.ReportChangesKey, runcontract.ReportOutcomeKey, runcontract.ReportOutcomeGzipKey}

// APISink writes a run's reports to the UserImport's status and to its
// report Secret. It never writes phase or conditions: the controller owns
// them. Every status write is a fresh get and a patch, retried on
// conflict, so it never overwrites what the controller wrote meanwhile.
type APISink struct {
	Client client.Client
	// Import names the UserImport.
	Import types.NamespacedName
	// ReportSecret is the name of the Secret, created by the controller,
	// that the report goes to; empty means no report Secret.
	ReportSecret string

	// sentBefore is the number of invitations earlier workers of the
	// import sent, read when this one started.
	sentBefore int64
	// file is the source, whose content's sha256 a read in place learns.
	file *source.File
	// last is the import as the last status patch returned it.
	last *v1alpha1.UserImport
}

var _ Sink = (*APISink)(nil)

// patchStatus changes the import's status, guarded by the resourceVersion
// of the copy it changes: the copy the last patch returned, while nobody
// else wrote the import since, else a fresh one. A run's patches cost one
// request each, not a read and a write.
func (s *APISink) patchStatus(ctx context.Context, mutate func(st *v1alpha1.UserImportStatus)) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		imp := s.last
		s.last = nil
		if imp == nil {
			imp = &v1alpha1.UserImport{}
			if err := s.Client.Get(ctx, s.Import, imp); err != nil {
				return err
			}
		}
		base := imp.DeepCopy()
		mutate(&imp.Status)
		if err := s.Client.Status().Patch(ctx, imp, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{})); err != nil {
			return err
		}
		s.last = imp
		return nil
	})
}

// Started records the source facts and counts a resume.
func (s *APISink) Started(ctx context.Context, file *source.File, resumed bool) error {
	s.file = file
	return s.patchStatus(ctx, func(st *v1alpha1.UserImportStatus) {
		if st.Source == nil {
			st.Source = &v1alpha1.SourceStatus{}
		}
		sum := file.SHA256
		if file.InPlace() && sum == "" && st.Source.Fingerprint == file.Fingerprint {
			// The same file, whose content an earlier run read whole.
			sum = st.Source.SHA256
		}
		st.Source.Size, st.Source.SHA256, st.Source.Fingerprint, st.Source.ETag = file.Size, sum, file.Fingerprint, file.ETag
		st.Source.Name, st.Source.VersionID, st.Source.ModTime = file.Name, file.VersionID, nil
		if file.InPlace() {
			t := metav1.NewTime(file.ModTime)
			st.Source.ModTime = &t
		}
		if resumed {
			if st.Progress == nil {
				st.Progress = &v1alpha1.ProgressStatus{}
			}
			st.Progress.Resumes++
			if st.Invitations != nil {
				s.sentBefore = st.Invitations.Sent
			}
		}
	})
}

// Progress records counts and the checkpoint. A preview records only how
// far it read: its planned changes go to status.preview when it ends, and
// counts in status.progress (the Created, Updated, Failed columns and the
// rows metrics) are changes made.
func (s *APISink) Progress(ctx context.Context, p Progress) error {
	return s.patchStatus(ctx, func(st *v1alpha1.UserImportStatus) {
		if st.Progress == nil {
			st.Progress = &v1alpha1.ProgressStatus{}
		}
		counts := p.Counts
		if p.DryRun {
			counts = engine.Counts{Rows: counts.Rows}
		}
		setCounts(st.Progress, counts)
		setCodesIssued(st, counts)
		st.Progress.Percent = p.Percent
		st.Progress.RowsPerSecond = int64(p.RowsPerSecond)
		now := metav1.Now()
		st.Progress.UpdateTime = &now
		if cp := p.ResumePoint; cp != nil {
			st.Progress.Checkpoint = statusCheckpoint(cp)
		}
	})
}

// Report fills the report Secret.
func (s *APISink) Report(ctx context.Context, r RunReport) error {
	if s.ReportSecret == "" {
		return nil
	}
	data := ReportData(r)
	for _, k := range reportKeys {
		if _, ok := data[k]; !ok {
			// A merge patch with null removes an earlier run's key.
			data[k] = nil
		}
	}
	patch := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: s.Import.Namespace, Name: s.ReportSecret}, Data: data}
	// A merge patch needs no read: the worker may write this Secret but
	// never read one.
	raw, err := mergePatchOfData(data)
	if err != nil {
		return err
	}
	return s.Client.Patch(ctx, patch, client.RawPatch(types.MergePatchType, raw))
}

// Preview records the result of a preview, pinned to its file and spec.
func (s *APISink) Preview(ctx context.Context, imp *v1alpha1.UserImport, res engine.Result, templates string) error {
	return s.patchStatus(ctx, func(st *v1alpha1.UserImportStatus) {
		now := metav1.Now()
		st.Preview = &v1alpha1.PreviewStatus{
			Generation:     imp.Generation,
			Counts:         res.Counts.ChangeCounts,
			ManagedUsers:   res.ManagedUsers,
			SHA256:         res.SHA256,
			SpecDigest:     runcontract.SpecDigest(imp.Spec),
			CompletionTime: &now,
			Templates:      templates,
		}
		if imp.Spec.Invitations.Enabled() {
			counts := res.Invitations.InvitationCounts
			st.Preview.Invitations = &counts
		}
		st.Preview.RecoveryCodes = res.Counts.Codes
		if hasRelations(imp.Spec) {
			g := res.Counts.Groups
			st.Preview.Groups = &g
		}
		if st.Source != nil {
			st.Source.Rows = res.Counts.Rows
		}
		s.recordContentSHA256(st)
		if s.file != nil && s.file.InPlace() {
			// res.SHA256 is the file's ID: here, its fingerprint.
			st.Preview.SHA256, st.Preview.Fingerprint = s.file.ContentSHA256(), s.file.Fingerprint
		}
	})
}

// hasRelations tells whether the mapping has an entry with target Groups
// or Manager.
func hasRelations(spec v1alpha1.UserImportSpec) bool {
	for _, m := range spec.Mapping {
		if m.Target == v1alpha1.TargetGroups || m.Target == v1alpha1.TargetManager {
			return true
		}
	}
	return false
}

// Invitations records the invitations sent so far, those of earlier
// workers included.
func (s *APISink) Invitations(ctx context.Context, inv engine.Invitations) error {
	return s.patchStatus(ctx, func(st *v1alpha1.UserImportStatus) {
		st.Invitations = InvitationStatus(s.sentBefore, inv)
	})
}

// InvitationStatus is the status of the invitations inv of a run, after
// sentBefore sent by earlier runs. Failed and noAddress are the run's
// own: each run finds again every invitation still owed.
func InvitationStatus(sentBefore int64, inv engine.Invitations) *v1alpha1.InvitationStatus {
	st := &v1alpha1.InvitationStatus{Sent: sentBefore + inv.Sent, Failed: inv.Failed, NoAddress: inv.NoAddress}
	switch {
	case inv.RelayError != nil:
		st.Reason = failure.ReasonOf(inv.RelayError, v1alpha1.ReasonMailUnreachable)
		st.Message = fmt.Sprintf("%d invitations not sent: %v", inv.Failed, inv.RelayError)
	case inv.Failed > 0:
		st.Reason = v1alpha1.ReasonRecipientsRefused
		st.Message = fmt.Sprintf("the mail relay refused %d recipients; their lines are in the report", inv.Failed)
	}
	return st
}

// Done records the final counts of an import.
func (s *APISink) Done(ctx context.Context, res engine.Result) error {
	return s.patchStatus(ctx, func(st *v1alpha1.UserImportStatus) {
		if st.Progress == nil {
			st.Progress = &v1alpha1.ProgressStatus{}
		}
		setCounts(st.Progress, res.Counts)
		setCodesIssued(st, res.Counts)
		st.Progress.RowsTotal = res.Counts.Rows
		st.Progress.Percent = 100
		now := metav1.Now()
		st.Progress.UpdateTime = &now
		if cp := res.ResumePoint; cp != nil {
			st.Progress.Checkpoint = statusCheckpoint(cp)
		}
		if st.Source != nil {
			st.Source.Rows = res.Counts.Rows
		}
		s.recordContentSHA256(st)
	})
}

// recordContentSHA256 records the sha256 of a file read in place once a
// read has covered it whole.
func (s *APISink) recordContentSHA256(st *v1alpha1.UserImportStatus) {
	if s.file == nil || !s.file.InPlace() || st.Source == nil || st.Source.Fingerprint != s.file.Fingerprint {
		return
	}
	if sum := s.file.ContentSHA256(); sum != "" {
		st.Source.SHA256 = sum
	}
}

func setCounts(p *v1alpha1.ProgressStatus, c engine.Counts) {
	p.RowsProcessed = c.Rows
	p.ChangeCounts = c.ChangeCounts
	p.RecoveryCodes = c.Codes
	p.Groups = nil
	if c.Groups != (v1alpha1.GroupCounts{}) {
		g := c.Groups
		p.Groups = &g
	}
}

// setCodesIssued counts the recovery codes of the users written, beside
// the users: the Secrets may already hold the codes of batches ahead.
func setCodesIssued(st *v1alpha1.UserImportStatus, c engine.Counts) {
	if c.Codes == 0 && st.RecoveryCodes == nil {
		return
	}
	if st.RecoveryCodes == nil {
		st.RecoveryCodes = &v1alpha1.RecoveryCodeStatus{}
	}
	st.RecoveryCodes.Issued = c.Codes
}

// ReportData renders the report: row errors, a sample of the planned
// changes, the outcome by row, and the counts. Its CSV files escape
// formula cells: an identity such as "=cmd" is data, not a formula, in a
// spreadsheet.
func ReportData(r RunReport) map[string][]byte {
	res, errs := r.Result, r.Errors
	var eb, cb, ob bytes.Buffer
	ew := csvsafe.NewWriter(&eb)
	_ = ew.Write([]string{"line", "identity", "message"})
	for _, e := range errs {
		msg := e.Msg
		if e.Warning {
			msg = "warning: " + msg
		}
		_ = ew.Write([]string{strconv.FormatInt(e.Line, 10), e.Identity, msg})
	}
	_ = ew.Flush()
	cw := csvsafe.NewWriter(&cb)
	_ = cw.Write([]string{"line", "op", "identity", "attributes"})
	for i, c := range res.Samples {
		if i == sampleChanges {
			break
		}
		_ = cw.Write([]string{strconv.FormatInt(c.Line, 10), c.Op.String(), c.Identity, strings.Join(c.Attributes, " ")})
	}
	_ = cw.Flush()
	data := map[string][]byte{runcontract.ReportErrorsKey: eb.Bytes(), runcontract.ReportChangesKey: cb.Bytes()}
	c := res.Counts
	changed := c.Created + c.Updated + c.Deactivated + c.Deleted
	// The complete outcome replaces the sample beyond it, unless the
	// changes were planned by a pass that did not stream them.
	if full := r.Complete; full != nil && changed > int64(len(res.Samples)) && (full.changes > 0 || len(res.Samples) == 0) {
		data[runcontract.ReportOutcomeGzipKey] = full.outcome.Close(omittedRows(outcomeGzipBudget))
	} else {
		writeOutcome(&ob, res, errs)
		data[runcontract.ReportOutcomeKey] = ob.Bytes()
	}
	g := c.Groups
	relations := g.GroupsCreated + g.MembershipsAdded + g.MembershipsRemoved + g.ManagersSet
	if full := r.Complete; full != nil && relations > int64(len(res.Relations)) && full.groups.Rows > 0 {
		data[runcontract.ReportGroupsGzipKey] = full.groups.Close(omittedRows(groupsGzipBudget))
	} else if len(res.Relations) > 0 || res.Counts.Groups != (v1alpha1.GroupCounts{}) {
		var gb bytes.Buffer
		gw := csvsafe.NewWriter(&gb)
		_ = gw.Write([]string{"line", "identity", "group", "change"})
		for _, rc := range res.Relations {
			_ = gw.Write([]string{lineCell(rc.Line), rc.Identity, rc.Group, rc.Change})
		}
		if relations > int64(len(res.Relations)) {
			_ = gw.Write([]string{"", "", "", fmt.Sprintf("%d more changes are not listed; the counts in the report are complete", relations-int64(len(res.Relations)))})
		}
		_ = gw.Flush()
		data[runcontract.ReportGroupsKey] = gb.Bytes()
	}
	summary := fmt.Sprintf("sha256=%s\ndryRun=%t\nrows=%d\ncreate=%d\nupdate=%d\nunchanged=%d\ndeactivate=%d\ndelete=%d\nerrors=%d\nmanagedUsers=%d\nplannedDeprovisions=%d\nsafetyStop=%t\n",
		res.SHA256, res.DryRun, c.Rows, c.Created, c.Updated, c.Unchanged, c.Deactivated, c.Deleted, c.Failed, res.ManagedUsers, res.PlannedDeprovisions, res.SafetyStop)
	if i := res.Invitations; i != (engine.Invitations{}) {
		summary += fmt.Sprintf("invitationsNewUsers=%d\ninvitationsPendingUsers=%d\ninvitationsNoAddress=%d\ninvitationsSent=%d\ninvitationsFailed=%d\n",
			i.NewUsers, i.PendingUsers, i.NoAddress, i.Sent, i.Failed)
	}
	if g := c.Groups; g != (v1alpha1.GroupCounts{}) || res.MembershipStop {
		summary += fmt.Sprintf("groupsCreated=%d\nmembershipsAdded=%d\nmembershipsRemoved=%d\nmanagersSet=%d\nmanagersMissing=%d\nmanagedMemberships=%d\nplannedMembershipRemovals=%d\n",
			g.GroupsCreated, g.MembershipsAdded, g.MembershipsRemoved, g.ManagersSet, g.ManagersMissing, res.ManagedMemberships, res.PlannedMembershipRemovals)
	}
	data[runcontract.ReportSummaryKey] = []byte(summary)
	return data
}

// sampleChanges is the number of changes changes.csv lists.
const sampleChanges = 100

// writeOutcome writes the changes and the errors of a run merged by line.
// Users a full import deprovisions (line 0) come last.
func writeOutcome(w io.Writer, res engine.Result, errs []engine.RowError) {
	type row struct {
		line                     int64
		identity, action, errMsg string
	}
	rows := make([]row, 0, len(res.Samples)+len(errs))
	for _, c := range res.Samples {
		rows = append(rows, row{c.Line, c.Identity, c.Op.String(), ""})
	}
	for _, e := range errs {
		action := "error"
		if e.Warning {
			action = "warning"
		}
		rows = append(rows, row{e.Line, e.Identity, action, e.Msg})
	}
	order := func(l int64) int64 {
		if l == 0 {
			return math.MaxInt64
		}
		return l
	}
	slices.SortStableFunc(rows, func(a, b row) int { return cmp.Compare(order(a.line), order(b.line)) })
	cw := csvsafe.NewWriter(w)
	_ = cw.Write([]string{"line", "identity", "action", "error"})
	for _, r := range rows {
		_ = cw.Write([]string{lineCell(r.line), r.identity, r.action, r.errMsg})
	}
	listed := int64(len(res.Samples))
	if c := res.Counts; c.Created+c.Updated+c.Deactivated+c.Deleted > listed {
		_ = cw.Write([]string{"", "", "", fmt.Sprintf("%d more changes are not listed; the counts in the report are complete", c.Created+c.Updated+c.Deactivated+c.Deleted-listed)})
	}
	_ = cw.Flush()
}
