package controllers

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/conditions"
	"github.com/userimport/user-import-operator/internal/runcontract"
	"github.com/userimport/user-import-operator/internal/safetext"
)

// running watches the run of stage (CreatingPreview, Importing).
func (run *importRun) running(ctx context.Context, stage runcontract.Stage) (verdict, error) {
	imp := run.imp
	if stage == runcontract.StagePreview && imp.Spec.Action == v1alpha1.ActionDraft {
		if err := run.Executor.Reset(ctx, imp, stage); err != nil {
			return verdict{}, err
		}
		run.setPhase(v1alpha1.PhaseDraft)
		return verdict{next: true}, nil
	}
	st, err := run.Executor.Status(ctx, imp, stage)
	if err != nil {
		return verdict{}, err
	}
	run.adopted(st)
	if !st.Found {
		// An import that has just entered Importing starts here. Later,
		// the Job was deleted by someone, or the manager restarted with
		// the in-process executor: start again; the worker resumes from
		// the checkpoint.
		dir, wait, err := run.readyDirectory(ctx)
		if err != nil || wait != nil {
			return derefVerdict(wait), err
		}
		if err := run.launch(ctx, dir, stage); err != nil {
			return launchFailed(err)
		}
		msg := "the " + string(stage) + " runs in " + imp.Status.JobName
		if imp.Status.Progress != nil {
			run.event(corev1.EventTypeNormal, v1alpha1.ReasonRestarted, fmt.Sprintf("the %s run was gone; started it again", stage))
			msg = "restarted the " + string(stage) + " in " + imp.Status.JobName
		}
		return verdict{state: conditions.Progressing, reason: string(imp.Status.Phase), message: msg, requeueAfter: run.PollInterval}, nil
	}
	if st.Running {
		msg := "the preview runs in " + imp.Status.JobName
		if stage == runcontract.StageImport {
			// The worker fills codes Secrets: make the next ones.
			if err := run.Executor.Prepare(ctx, imp); err != nil {
				return launchFailed(err)
			}
			msg = "the import runs in " + imp.Status.JobName + ": " + progressSummary(imp.Status.Progress)
		}
		return verdict{state: conditions.Progressing, reason: string(imp.Status.Phase), message: msg, requeueAfter: run.PollInterval}, nil
	}

	// The run ended: its last status patch came before its end, so a copy
	// read before now may miss it. Decide on a fresh copy.
	var fresh v1alpha1.UserImport
	if err := run.APIReader.Get(ctx, client.ObjectKeyFromObject(imp), &fresh); err != nil {
		return verdict{}, err
	}
	if fresh.ResourceVersion != imp.ResourceVersion {
		return verdict{}, errStale
	}

	out := st.Outcome
	switch out.Kind {
	case runcontract.Rejected:
		return run.rejected(ctx, stage, out)
	case runcontract.SourceChanged:
		if stage == runcontract.StageImport {
			return run.sourceChanged(ctx, out.Message)
		}
		return run.failed(stage, out.Message)
	case runcontract.Failed:
		return run.failed(stage, out.Message)
	}
	if stage == runcontract.StagePreview {
		run.setPhase(v1alpha1.PhasePreviewReady)
		return verdict{next: true}, nil
	}
	if s := out.Stop; out.Kind == runcontract.SafetyStopped && s != nil {
		msg := s.Sentence(imp.Spec)
		conditions.MarkTrue(imp, v1alpha1.ConditionSafetyThreshold, v1alpha1.ReasonApprovalRequired, "%s", msg)
		run.event(corev1.EventTypeWarning, v1alpha1.ReasonApprovalRequired, msg)
		run.setPhase(v1alpha1.PhasePreviewReady)
		return verdict{next: true}, nil
	}
	run.setPhase(v1alpha1.PhaseCompleted)
	run.invitationsOutcome()
	run.observeDuration("completed")
	return verdict{state: conditions.Ready, reason: v1alpha1.ReasonSucceeded, message: "import completed: " + progressSummary(imp.Status.Progress)}, nil
}

// failed ends the import Failed with the message of its run.
func (run *importRun) failed(stage runcontract.Stage, msg string) (verdict, error) {
	reason := v1alpha1.ReasonImportFailed
	if stage == runcontract.StagePreview {
		reason = v1alpha1.ReasonPreviewFailed
	} else {
		run.observeDuration("failed")
	}
	if msg == "" {
		msg = "the worker failed without a message"
	}
	run.setPhase(v1alpha1.PhaseFailed)
	run.event(corev1.EventTypeWarning, reason, msg)
	return verdict{state: conditions.Stalled, reason: reason, message: msg}, nil
}

// invitationsOutcome sets the condition InvitationsSent of a completed
// import that sent invitations, and tells of it in an Event: counts and
// reasons, never addresses.
func (run *importRun) invitationsOutcome() {
	imp := run.imp
	inv := imp.Status.Invitations
	if !imp.Spec.Invitations.Enabled() || inv == nil {
		return
	}
	if inv.Failed > 0 {
		msg := fmt.Sprintf("%d invitations sent, %d not sent: %s; the users are written, and the next import with newUsers or pendingUsers invites them", inv.Sent, inv.Failed, inv.Message)
		conditions.MarkFalse(imp, v1alpha1.ConditionInvitationsSent, inv.Reason, "%s", msg)
		run.event(corev1.EventTypeWarning, inv.Reason, msg)
		return
	}
	msg := fmt.Sprintf("%d invitations sent; %d users owed one have no address", inv.Sent, inv.NoAddress)
	conditions.MarkTrue(imp, v1alpha1.ConditionInvitationsSent, v1alpha1.ReasonInvitationsSent, "%s", msg)
	run.event(corev1.EventTypeNormal, v1alpha1.ReasonInvitationsSent, msg)
}

// sourceChanged handles an import its worker refused before writing
// because the source is not the file of its preview: the import goes
// back to a new preview and waits there for a person.
func (run *importRun) sourceChanged(ctx context.Context, msg string) (verdict, error) {
	imp := run.imp
	if err := run.Executor.Reset(ctx, imp, runcontract.StageImport); err != nil {
		return verdict{}, err
	}
	conditions.MarkTrue(imp, v1alpha1.ConditionSourceChanged, v1alpha1.ReasonSourceChanged, "%s", msg)
	run.event(corev1.EventTypeWarning, v1alpha1.ReasonSourceChanged, msg+"; previewing the new file")
	imp.Status.Preview = nil
	imp.Status.StartTime = nil
	imp.Status.Progress = nil
	run.setPhase(v1alpha1.PhasePreviewPending)
	return verdict{next: true}, nil
}

// rejected handles a run that refused the import's spec or file before
// writing anything. A missing source (or an SFTP or S3 server that cannot
// be reached) sends the import back to wait for it; any other problem
// waits in PreviewPending for an edit of the spec.
func (run *importRun) rejected(ctx context.Context, stage runcontract.Stage, rej runcontract.Outcome) (verdict, error) {
	imp := run.imp
	if err := run.Executor.Reset(ctx, imp, stage); err != nil {
		return verdict{}, err
	}
	if stage == runcontract.StageImport {
		// Nothing was written: the import leaves the directory's lock
		// and counts from the start when it runs again.
		imp.Status.StartTime = nil
		imp.Status.Progress = nil
	}
	unreachable := rej.Reason == v1alpha1.ReasonSourceUnreachable && inPlace(imp.Spec.Source)
	if rej.Reason == v1alpha1.ReasonSourceNotFound || unreachable {
		run.event(corev1.EventTypeWarning, rej.Reason, rej.Message+"; waiting for it")
		if stage == runcontract.StageImport {
			run.setPhase(v1alpha1.PhaseImportPending)
		} else {
			run.setPhase(v1alpha1.PhasePreviewPending)
		}
		if !inPlace(imp.Spec.Source) {
			return verdict{next: true}, nil
		}
		// Only a worker can look for a file on a claim, an SFTP or S3 file
		// may arrive any time, and a server that cannot be reached may be
		// back soon: look again after a backoff that grows with the
		// import's age, up to a minute.
		return verdict{state: conditions.Progressing, reason: rej.Reason,
			message: "waiting for the source: " + safetext.Clean(rej.Message), requeueAfter: run.sourceWait()}, nil
	}
	conditions.MarkTrue(imp, v1alpha1.ConditionInputRejected, rej.Reason, "%s", rej.Message)
	imp.Status.RejectedSHA256 = rej.SHA256
	imp.Status.RejectedSecrets = ""
	if rej.Reason == v1alpha1.ReasonSourceAuthenticationFailed || rej.Reason == v1alpha1.ReasonHostKeyMismatch {
		digest, err := run.sourceSecretsDigest(ctx)
		if err != nil {
			return verdict{}, err
		}
		imp.Status.RejectedSecrets = digest
	}
	run.event(corev1.EventTypeWarning, rej.Reason, "the "+string(stage)+" refused its input, nothing was written: "+rej.Message)
	imp.Status.Preview = nil
	run.setPhase(v1alpha1.PhasePreviewPending)
	return verdict{next: true}, nil
}
