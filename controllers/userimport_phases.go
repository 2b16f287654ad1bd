package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/conditions"
	"github.com/userimport/user-import-operator/internal/directory/open"
	"github.com/userimport/user-import-operator/internal/executor"
	"github.com/userimport/user-import-operator/internal/jobs"
	"github.com/userimport/user-import-operator/internal/runcontract"
	"github.com/userimport/user-import-operator/internal/safetext"
)

// idle handles the phases where nothing runs: Draft, PreviewPending,
// PreviewReady and ImportPending. spec.action says where to go.
func (run *importRun) idle(ctx context.Context) (verdict, error) {
	imp := run.imp
	if imp.Status.Preview != nil && !previewFresh(imp) {
		imp.Status.Preview = nil
		run.event(corev1.EventTypeNormal, v1alpha1.ReasonPreviewInvalidated, "the spec changed since the preview; the preview was discarded")
	}
	if c := meta.FindStatusCondition(imp.Status.Conditions, v1alpha1.ConditionSafetyThreshold); c != nil && !safetyBlocked(imp) {
		meta.RemoveStatusCondition(&imp.Status.Conditions, v1alpha1.ConditionSafetyThreshold)
		run.event(corev1.EventTypeNormal, v1alpha1.ReasonSafetyThresholdCleared, "the spec changed after the safety stop; the import may run again")
	}
	if c := meta.FindStatusCondition(imp.Status.Conditions, v1alpha1.ConditionSourceChanged); c != nil && !sourceChangedBlocked(imp) {
		meta.RemoveStatusCondition(&imp.Status.Conditions, v1alpha1.ConditionSourceChanged)
	}
	if inputBlocked(imp) {
		replaced, err := run.refusedFileReplaced(ctx)
		if err != nil {
			return verdict{}, err
		}
		if replaced {
			meta.RemoveStatusCondition(&imp.Status.Conditions, v1alpha1.ConditionInputRejected)
			run.event(corev1.EventTypeNormal, v1alpha1.ReasonSourceChanged, "the source holds another file than the one refused; trying again")
		}
		fixed, err := run.refusedSecretsChanged(ctx)
		if err != nil {
			return verdict{}, err
		}
		if fixed {
			meta.RemoveStatusCondition(&imp.Status.Conditions, v1alpha1.ConditionInputRejected)
			run.event(corev1.EventTypeNormal, v1alpha1.ReasonSourceChanged, "a Secret the source names changed since its credentials or host key were refused; trying again")
		}
	}
	if c := meta.FindStatusCondition(imp.Status.Conditions, v1alpha1.ConditionInputRejected); c != nil && !inputBlocked(imp) {
		// The spec was edited: the next preview or import tries again.
		meta.RemoveStatusCondition(&imp.Status.Conditions, v1alpha1.ConditionInputRejected)
	}
	if meta.FindStatusCondition(imp.Status.Conditions, v1alpha1.ConditionInputRejected) == nil {
		imp.Status.RejectedSHA256, imp.Status.RejectedSecrets = "", ""
	}
	if imp.Spec.Action == v1alpha1.ActionDraft && imp.Status.Preview != nil {
		// A draft is edited freely: the preview it had goes.
		imp.Status.Preview = nil
		run.event(corev1.EventTypeNormal, v1alpha1.ReasonPreviewInvalidated, "the import went back to Draft; the preview was discarded")
	}

	var target v1alpha1.ImportPhase
	switch imp.Spec.Action {
	case v1alpha1.ActionDraft:
		target = v1alpha1.PhaseDraft
	case v1alpha1.ActionPreview:
		target = v1alpha1.PhasePreviewPending
		if previewFresh(imp) {
			target = v1alpha1.PhasePreviewReady
		}
	default: // Import, the API default
		target = v1alpha1.PhaseImportPending
		switch {
		case sourceChangedBlocked(imp) && !previewFresh(imp):
			target = v1alpha1.PhasePreviewPending
		case imp.Spec.RecoveryCodes.Generate == v1alpha1.CodesAll && !previewFresh(imp) && imp.Status.Progress == nil:
			// Rotating every user's code needs the count approved, which
			// a preview gives.
			target = v1alpha1.PhasePreviewPending
		case safetyBlocked(imp), sourceChangedBlocked(imp):
			target = v1alpha1.PhasePreviewReady
		}
	}
	if inputBlocked(imp) && imp.Spec.Action != v1alpha1.ActionDraft {
		target = v1alpha1.PhasePreviewPending
	}
	if target != imp.Status.Phase {
		run.setPhase(target)
		return verdict{next: true}, nil
	}

	switch target {
	case v1alpha1.PhaseDraft:
		return verdict{state: conditions.Ready, reason: v1alpha1.ReasonDraft,
			message: "draft: nothing runs until spec.action is Preview or Import"}, nil
	case v1alpha1.PhasePreviewReady:
		if sourceChangedBlocked(imp) {
			return verdict{state: conditions.Stalled, reason: v1alpha1.ReasonSourceChanged,
				message: "the source changed after the preview the import was approved on; this is a new preview of the new file (" +
					previewSummary(imp.Status.Preview) + "); to import it, set spec.action to Preview and then to Import"}, nil
		}
		if safetyBlocked(imp) {
			c := meta.FindStatusCondition(imp.Status.Conditions, v1alpha1.ConditionSafetyThreshold)
			return verdict{state: conditions.Stalled, reason: v1alpha1.ReasonApprovalRequired, message: c.Message}, nil
		}
		return verdict{state: conditions.Ready, reason: v1alpha1.ReasonPreviewReady, message: previewSummary(imp.Status.Preview)}, nil
	case v1alpha1.PhasePreviewPending:
		if inputBlocked(imp) {
			c := meta.FindStatusCondition(imp.Status.Conditions, v1alpha1.ConditionInputRejected)
			return verdict{state: conditions.Stalled, reason: c.Reason,
				message: c.Message + "; nothing was written: edit the spec (or the file, or the Secret refused) to try again",
				// A ConfigMap or Secret whose file is fixed, and a Secret
				// whose credentials are, are seen by looking again; no
				// watch tells of them.
				requeueAfter: min(30*time.Second, run.sourceWait())}, nil
		}
		return run.start(ctx, runcontract.StagePreview)
	default:
		return run.queued(ctx)
	}
}

// queued decides whether an ImportPending import may start: no import of
// its directory is Importing and it is the oldest waiting. The cache
// tells where it waits. An import the cache puts at the head starts on
// the cache's word only when the cache shows the last phase this manager
// wrote in the directory (phaseWrites); otherwise it reads the queue
// afresh, so that two imports never both see themselves there. A cache
// behind the API server only makes an import wait for the event that
// wakes it (nextInQueue) or its next look.
func (run *importRun) queued(ctx context.Context) (verdict, error) {
	imp := run.imp
	directory := directoryKey(imp)
	// Read only: the cache's objects themselves, not copies.
	list, err := run.directoryImports(ctx, run.Client, client.MatchingFields{directoryIndex: imp.Spec.DirectoryRef.Name}, client.UnsafeDisableDeepCopy)
	if err != nil {
		return verdict{}, err
	}
	q := run.queueOf(list)
	if len(q.active) == 0 && q.position(imp.Name) == 1 && !run.phases.cached(directory, imp, list) {
		if list, err = run.directoryImports(ctx, run.APIReader); err != nil {
			return verdict{}, err
		}
		run.phases.readAfresh(directory, list)
		q = run.queueOf(list)
	}
	pos := q.position(imp.Name)
	imp.Status.QueuePosition = int32(pos)
	if len(q.active) > 0 || pos != 1 {
		msg := fmt.Sprintf("position %d in the queue of UserDirectory %s", pos, imp.Spec.DirectoryRef.Name)
		if len(q.active) > 0 {
			msg += "; " + q.active[0] + " is importing"
		}
		// Imports of the directory wake this one when their phase
		// changes; the requeue is a safety net.
		return verdict{state: conditions.Progressing, reason: v1alpha1.ReasonQueued, message: msg, requeueAfter: time.Minute}, nil
	}
	return run.start(ctx, runcontract.StageImport)
}

// directoryImports lists the imports of the import's directory in its
// namespace, as reader has them.
func (run *importRun) directoryImports(ctx context.Context, reader client.Reader, opts ...client.ListOption) ([]v1alpha1.UserImport, error) {
	imp := run.imp
	var list v1alpha1.UserImportList
	if err := reader.List(ctx, &list, append(opts, client.InNamespace(imp.Namespace))...); err != nil {
		return nil, fmt.Errorf("listing imports: %w", err)
	}
	var mine []v1alpha1.UserImport
	for _, o := range list.Items {
		if o.Spec.DirectoryRef.Name == imp.Spec.DirectoryRef.Name {
			mine = append(mine, o)
		}
	}
	return mine, nil
}

// queueOf is the queue of the import's directory, with the imports
// listed and the import as this reconcile read it.
func (run *importRun) queueOf(list []v1alpha1.UserImport) directoryQueue {
	mine := []v1alpha1.UserImport{*run.imp}
	for _, o := range list {
		if o.Name != run.imp.Name {
			mine = append(mine, o)
		}
	}
	return queueOf(mine)
}

// start begins stage once the directory is Ready, adopting a run that
// exists already.
func (run *importRun) start(ctx context.Context, stage runcontract.Stage) (verdict, error) {
	imp := run.imp
	dir, wait, err := run.readyDirectory(ctx)
	if err != nil || wait != nil {
		return derefVerdict(wait), err
	}
	if err := runcontract.CheckIdentity(imp.Spec, dir.Spec); err != nil {
		// Nothing runs until the spec or the directory is fixed.
		return verdict{state: conditions.Stalled, reason: v1alpha1.ReasonIdentityMismatch, message: safetext.Of(err)}, nil
	}
	if err := open.CheckReserved(imp.Spec, dir.Spec); err != nil {
		return verdict{state: conditions.Stalled, reason: v1alpha1.ReasonInvalidMapping, message: safetext.Of(err)}, nil
	}
	if wait, err := run.sourceMissing(ctx); err != nil || wait != nil {
		return derefVerdict(wait), err
	}
	st, err := run.Executor.Status(ctx, imp, stage)
	if err != nil {
		return verdict{}, err
	}
	if run.cached && (st.Found || stage != runcontract.StageImport) {
		// The cache's copy of a new import may be behind a run that
		// exists, and a preview starts here: decide on a fresh copy.
		return verdict{}, errFresh
	}
	if st.Found && !st.Running {
		// The finished run of an earlier attempt (a preview before an
		// edit, an import before its approval) holds the name: remove it
		// and start once it is gone.
		if err := run.Executor.Reset(ctx, imp, stage); err != nil {
			return verdict{}, err
		}
		return verdict{state: conditions.Progressing, reason: string(imp.Status.Phase),
			message: "removing the finished run of an earlier attempt", requeueAfter: time.Second}, nil
	}
	imp.Status.JobName = jobs.JobName(imp, stage)
	if stage == runcontract.StageImport {
		// The phase is the directory's lock: Importing is written before
		// the Job exists, so that a manager that stops in between leaves
		// an Importing import without a Job (started by the next
		// reconcile), never a writing Job behind an import the queue
		// still counts as waiting.
		if imp.Status.StartTime == nil {
			t := run.now()
			imp.Status.StartTime = &t
		}
		if p := imp.Status.Progress; p != nil && p.Checkpoint == nil {
			// How far a preview read; the import counts from the start.
			imp.Status.Progress = nil
		}
		run.setPhase(v1alpha1.PhaseImporting)
		return verdict{state: conditions.Progressing, reason: v1alpha1.ReasonImporting,
			message: "starting the import in " + imp.Status.JobName, requeueAfter: time.Millisecond}, nil
	}
	if !st.Found {
		if err := run.launch(ctx, dir, stage); err != nil {
			return launchFailed(err)
		}
	}
	run.adopted(st)
	// Found and running: adopted (a restart between the start and the
	// status patch).
	run.setPhase(v1alpha1.PhaseCreatingPreview)
	return verdict{state: conditions.Progressing, reason: v1alpha1.ReasonCreatingPreview,
		message: "the preview runs in " + imp.Status.JobName, requeueAfter: run.PollInterval}, nil
}

// launch creates the report Secret (and, for an import that gives
// recovery codes, their Secrets) and starts the run of stage.
func (run *importRun) launch(ctx context.Context, dir *v1alpha1.UserDirectory, stage runcontract.Stage) error {
	if err := run.ensureReportSecret(ctx); err != nil {
		return err
	}
	if stage == runcontract.StageImport && run.imp.Spec.RecoveryCodes.Enabled() {
		if err := run.Executor.Prepare(ctx, run.imp); err != nil {
			return err
		}
	}
	if err := run.Executor.Start(ctx, run.imp, dir, stage); err != nil {
		return fmt.Errorf("starting the %s: %w", stage, err)
	}
	return nil
}

func derefVerdict(v *verdict) verdict {
	if v == nil {
		return verdict{}
	}
	return *v
}

// readyDirectory returns the import's directory when it is Ready, or a
// verdict saying what the import waits for.
func (run *importRun) readyDirectory(ctx context.Context) (*v1alpha1.UserDirectory, *verdict, error) {
	imp := run.imp
	var dir v1alpha1.UserDirectory
	err := run.Client.Get(ctx, client.ObjectKey{Namespace: imp.Namespace, Name: imp.Spec.DirectoryRef.Name}, &dir)
	if apierrors.IsNotFound(err) {
		return nil, &verdict{state: conditions.Progressing, reason: v1alpha1.ReasonDirectoryNotFound,
			message: fmt.Sprintf("waiting for UserDirectory %s: it does not exist in namespace %s", imp.Spec.DirectoryRef.Name, imp.Namespace)}, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("reading UserDirectory %s: %w", imp.Spec.DirectoryRef.Name, err)
	}
	c := meta.FindStatusCondition(dir.Status.Conditions, v1alpha1.ConditionReady)
	if c == nil || c.Status != metav1.ConditionTrue || dir.Status.ObservedGeneration != dir.Generation {
		msg := fmt.Sprintf("waiting for UserDirectory %s to be Ready", dir.Name)
		if c != nil && c.Status != metav1.ConditionTrue {
			msg += fmt.Sprintf(" (%s: %s)", c.Reason, c.Message)
		}
		// The directory's status changes wake this import.
		return nil, &verdict{state: conditions.Progressing, reason: v1alpha1.ReasonDirectoryNotReady, message: msg}, nil
	}
	return &dir, nil, nil
}

// launchFailed is the verdict on a run that could not start: a Secret
// of its codes that someone else made stalls it, with a check again
// later; any other failure is retried.
func launchFailed(err error) (verdict, error) {
	var notOwned *jobs.NotOwnedError
	if errors.As(err, &notOwned) {
		return verdict{state: conditions.Stalled, reason: v1alpha1.ReasonSecretNotOwned, message: safetext.Of(err), requeueAfter: time.Minute}, nil
	}
	return verdict{}, err
}

// adopted names the report Secret of a run found: the status write of
// the reconcile that started it may have failed (a conflict with the
// run's first progress), and no later reconcile starts it again.
func (run *importRun) adopted(st executor.StageStatus) {
	if st.Found && run.imp.Status.ReportSecretRef == nil {
		run.imp.Status.ReportSecretRef = &v1alpha1.LocalObjectReference{Name: jobs.ReportSecretName(run.imp)}
	}
}

// ensureReportSecret creates the empty report Secret the worker fills.
func (run *importRun) ensureReportSecret(ctx context.Context) error {
	s := jobs.ReportSecret(run.imp)
	if err := run.Client.Create(ctx, s); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating the report secret: %w", err)
	}
	run.imp.Status.ReportSecretRef = &v1alpha1.LocalObjectReference{Name: s.Name}
	return nil
}
