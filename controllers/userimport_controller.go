package controllers

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/userimport/user-import-operator/internal/executor"
	"github.com/userimport/user-import-operator/internal/kube"
	"github.com/userimport/user-import-operator/internal/safetext"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/conditions"
	"github.com/userimport/user-import-operator/internal/directory/open"
	"github.com/userimport/user-import-operator/internal/egress"
	"github.com/userimport/user-import-operator/internal/jobs"
	"github.com/userimport/user-import-operator/internal/metrics"
)

// UserImportReconciler moves UserImports through their phases (the
// package documentation lists them). It owns status.phase and the
// conditions; the worker owns status.progress, status.source and
// status.preview.
type UserImportReconciler struct {
	// Client reads directories and Jobs from the cache and writes.
	Client client.Client
	// APIReader reads the UserImport itself, and the imports of a
	// directory when deciding which runs next, without the cache: the
	// worker patches the import's status concurrently, and two imports
	// must never both see themselves at the head of a queue.
	APIReader client.Reader
	Recorder  events.EventRecorder
	Executor  executor.Executor
	Metrics   *metrics.Tracker
	// PollInterval is how often a running stage is looked at between
	// events (progress for the metrics; a missed event).
	PollInterval time.Duration
	Clock        clock.PassiveClock
	// AllowedHosts restricts the SFTP and S3 servers the manager itself
	// connects to, to move or delete a file after its import
	// (spec.source.afterImport).
	AllowedHosts *egress.Policy
	// AmbientS3 tells which buckets named without credentials the
	// manager may reach with its own cloud identity (afterImport); nil:
	// none.
	AmbientS3 func(bucket string) bool
	// SecretSelector, when set, is what a Secret's labels must match
	// for the operator to use it (--secret-label).
	SecretSelector labels.Selector
	// Workers is the number of imports reconciled at once (default 4).
	// Imports of one directory are reconciled one at a time (directories),
	// so that its queue is decided by one reconcile at a time.
	Workers     int
	directories keyedMutex
}

// keyedMutex is a mutex per key, kept only while it is held or waited
// for.
type keyedMutex struct {
	mu    sync.Mutex
	locks map[string]*keyedLock
}

type keyedLock struct {
	mu      sync.Mutex
	holders int
}

// lock locks key and returns its unlock.
func (k *keyedMutex) lock(key string) (unlock func()) {
	k.mu.Lock()
	if k.locks == nil {
		k.locks = map[string]*keyedLock{}
	}
	l := k.locks[key]
	if l == nil {
		l = &keyedLock{}
		k.locks[key] = l
	}
	l.holders++
	k.mu.Unlock()
	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		k.mu.Lock()
		if l.holders--; l.holders == 0 {
			delete(k.locks, key)
		}
		k.mu.Unlock()
	}
}

// verdict is the outcome of one step of the state machine.
type verdict struct {
	state   conditions.State
	reason  string
	message string
	// requeueAfter asks to look again after a while (a wait).
	requeueAfter time.Duration
	// next asks to run the state machine again: the phase changed and
	// the new phase may move on at once.
	next bool
}

// errStale says that the UserImport changed since it was read; the
// reconcile is repeated on a fresh copy without writing anything.
var errStale = errors.New("the import changed while it was reconciled")

// importRun is the state of one reconcile of one import.
type importRun struct {
	*UserImportReconciler
	imp    *v1alpha1.UserImport
	status *statusPatch
}

func (r *UserImportReconciler) now() metav1.Time {
	return metav1.NewTime(r.Clock.Now())
}

// Reconcile implements reconcile.Reconciler.
func (r *UserImportReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	imp := &v1alpha1.UserImport{}
	if err := r.APIReader.Get(ctx, req.NamespacedName, imp); err != nil {
		if apierrors.IsNotFound(err) {
			r.Metrics.Forget(req.String())
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	if !imp.DeletionTimestamp.IsZero() {
		// Owned Jobs go with the import (garbage collection); runs in the
		// manager process must be stopped here.
		return ctrl.Result{}, r.Executor.Cancel(ctx, imp)
	}
	// Imports of other directories are reconciled meanwhile; this
	// directory's queue is decided, and its status written, by one
	// reconcile at a time.
	defer r.directories.lock(imp.Namespace + "/" + imp.Spec.DirectoryRef.Name)()

	run := &importRun{UserImportReconciler: r, imp: imp, status: newStatusPatch(r.Client, r.Recorder, imp)}
	v, err := run.reconcile(ctx)
	if errors.Is(err, errStale) {
		// Nothing is written: the next reconcile decides on a fresh copy.
		return ctrl.Result{RequeueAfter: 100 * time.Millisecond}, nil
	}
	if err == nil {
		conditions.Set(&imp.Status.Conditions, imp.Generation, v.state, v.reason, v.message)
		setInsecureTransport(&imp.Status.Conditions, imp.Generation, sourceInsecure(imp.Spec.Source))
		imp.Status.ObservedGeneration = imp.Generation
	}
	if err := run.status.finish(ctx, err); err != nil {
		return finished(ctrl.Result{}, err)
	}
	r.Metrics.Observe(req.String(), imp.Status.Phase, imp.Status.Progress, safetyBlocked(imp))
	// What the phase written owes (a report, the source's archiving) is
	// the follow-up controller's.
	return ctrl.Result{RequeueAfter: v.requeueAfter}, nil
}

// event queues an Event about the import.
func (run *importRun) event(eventType, reason, note string) {
	run.status.event(eventType, reason, "Reconcile", nil, note)
}

// setPhase moves the import to p and records an Event for the transition.
func (run *importRun) setPhase(p v1alpha1.ImportPhase) {
	from := run.imp.Status.Phase
	if from == p {
		return
	}
	if from == "" {
		from = "(new)"
	}
	run.imp.Status.Phase = p
	if p != v1alpha1.PhaseImportPending {
		run.imp.Status.QueuePosition = 0
	}
	if p.IsFinal() {
		t := run.now()
		run.imp.Status.CompletionTime = &t
	}
	run.event(corev1.EventTypeNormal, string(p), fmt.Sprintf("phase %s → %s", from, p))
}

// reconcile runs the state machine until the phase settles.
func (run *importRun) reconcile(ctx context.Context) (verdict, error) {
	run.insecureSource()
	for range 8 {
		v, err := run.step(ctx)
		if err != nil || !v.next {
			return v, err
		}
	}
	// The phase keeps moving; look again soon rather than loop forever.
	return verdict{state: conditions.Progressing, reason: string(run.imp.Status.Phase), requeueAfter: time.Second}, nil
}

// step makes one move of the state machine.
func (run *importRun) step(ctx context.Context) (verdict, error) {
	imp := run.imp
	phase := imp.Status.Phase
	if phase.IsFinal() {
		return run.finalVerdict(), nil
	}
	if imp.Spec.Action == v1alpha1.ActionCancel {
		return run.cancel(ctx)
	}
	switch phase {
	case v1alpha1.PhaseCreatingPreview:
		return run.running(ctx, jobs.StagePreview)
	case v1alpha1.PhaseImporting:
		return run.running(ctx, jobs.StageImport)
	}
	return run.idle(ctx)
}

// finalVerdict keeps the conditions a final phase was given.
func (run *importRun) finalVerdict() verdict {
	ready := meta.FindStatusCondition(run.imp.Status.Conditions, v1alpha1.ConditionReady)
	v := verdict{state: conditions.Stalled, reason: string(run.imp.Status.Phase), message: "the import ended " + string(run.imp.Status.Phase)}
	if run.imp.Status.Phase == v1alpha1.PhaseCompleted {
		v = verdict{state: conditions.Ready, reason: v1alpha1.ReasonSucceeded, message: "import completed: " + progressSummary(run.imp.Status.Progress)}
	}
	if ready != nil {
		v.reason, v.message = ready.Reason, ready.Message
	}
	return v
}

// cancel stops any run, keeps the progress reported, and ends Cancelled.
func (run *importRun) cancel(ctx context.Context) (verdict, error) {
	if err := run.Executor.Cancel(ctx, run.imp); err != nil {
		return verdict{}, err
	}
	from := run.imp.Status.Phase
	run.setPhase(v1alpha1.PhaseCancelled)
	msg := fmt.Sprintf("cancelled in phase %s", orNew(from))
	if p := run.imp.Status.Progress; p != nil && (p.RowsProcessed > 0 || p.RowsTotal > 0) {
		msg += "; " + progressSummary(p)
	}
	if from == v1alpha1.PhaseImporting {
		run.observeDuration("cancelled")
	}
	return verdict{state: conditions.Stalled, reason: v1alpha1.ReasonCancelled, message: msg}, nil
}

func orNew(p v1alpha1.ImportPhase) string {
	if p == "" {
		return "(new)"
	}
	return string(p)
}

// previewFresh tells whether status.preview was computed for the current
// spec. Changing only spec.action (Preview to Import: the approval) keeps
// it, so that the import reads the file the person saw previewed.
func previewFresh(imp *v1alpha1.UserImport) bool {
	p := imp.Status.Preview
	if p == nil {
		return false
	}
	return p.Generation == imp.Generation || (p.SpecDigest != "" && p.SpecDigest == jobs.SpecDigest(imp.Spec))
}

// sourceChangedBlocked tells whether an import refused for a changed
// source waits for a person: it holds for the generation it was found at.
func sourceChangedBlocked(imp *v1alpha1.UserImport) bool {
	c := meta.FindStatusCondition(imp.Status.Conditions, v1alpha1.ConditionSourceChanged)
	return c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == imp.Generation
}

// safetyBlocked tells whether a safety stop waits for approval: it holds
// for the generation it was found at; an edit (an approval) lifts it.
func safetyBlocked(imp *v1alpha1.UserImport) bool {
	c := meta.FindStatusCondition(imp.Status.Conditions, v1alpha1.ConditionSafetyThreshold)
	return c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == imp.Generation
}

// inputBlocked tells whether an import whose spec or file was refused
// waits for an edit: it holds for the generation it was found at.
func inputBlocked(imp *v1alpha1.UserImport) bool {
	c := meta.FindStatusCondition(imp.Status.Conditions, v1alpha1.ConditionInputRejected)
	return c != nil && c.Status == metav1.ConditionTrue && c.ObservedGeneration == imp.Generation
}

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
		return run.start(ctx, jobs.StagePreview)
	default:
		return run.queued(ctx)
	}
}

// queued decides whether an ImportPending import may start: no import of
// its directory is Importing and it is the oldest waiting.
func (run *importRun) queued(ctx context.Context) (verdict, error) {
	imp := run.imp
	var list v1alpha1.UserImportList
	if err := run.APIReader.List(ctx, &list, client.InNamespace(imp.Namespace)); err != nil {
		return verdict{}, fmt.Errorf("listing imports: %w", err)
	}
	mine := []v1alpha1.UserImport{*imp}
	for _, o := range list.Items {
		if o.Name != imp.Name && o.Spec.DirectoryRef.Name == imp.Spec.DirectoryRef.Name {
			mine = append(mine, o)
		}
	}
	q := queueOf(mine)
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
	return run.start(ctx, jobs.StageImport)
}

// start begins stage once the directory is Ready, adopting a run that
// exists already.
func (run *importRun) start(ctx context.Context, stage jobs.Stage) (verdict, error) {
	imp := run.imp
	dir, wait, err := run.readyDirectory(ctx)
	if err != nil || wait != nil {
		return derefVerdict(wait), err
	}
	if err := jobs.CheckIdentity(imp.Spec, dir.Spec); err != nil {
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
	if stage == jobs.StageImport {
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
	// Found and running: adopted (a restart between the start and the
	// status patch).
	run.setPhase(v1alpha1.PhaseCreatingPreview)
	return verdict{state: conditions.Progressing, reason: v1alpha1.ReasonCreatingPreview,
		message: "the preview runs in " + imp.Status.JobName, requeueAfter: run.PollInterval}, nil
}

// launch creates the report Secret (and, for an import that gives
// recovery codes, their Secrets) and starts the run of stage.
func (run *importRun) launch(ctx context.Context, dir *v1alpha1.UserDirectory, stage jobs.Stage) error {
	if err := run.ensureReportSecret(ctx); err != nil {
		return err
	}
	if stage == jobs.StageImport && run.imp.Spec.RecoveryCodes.Enabled() {
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

// ensureReportSecret creates the empty report Secret the worker fills.
func (run *importRun) ensureReportSecret(ctx context.Context) error {
	s := jobs.ReportSecret(run.imp)
	if err := run.Client.Create(ctx, s); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating the report secret: %w", err)
	}
	run.imp.Status.ReportSecretRef = &v1alpha1.LocalObjectReference{Name: s.Name}
	return nil
}

// running watches the run of stage (CreatingPreview, Importing).
func (run *importRun) running(ctx context.Context, stage jobs.Stage) (verdict, error) {
	imp := run.imp
	if stage == jobs.StagePreview && imp.Spec.Action == v1alpha1.ActionDraft {
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
		if stage == jobs.StageImport {
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

	if st.Failed && st.Rejection != nil {
		return run.rejected(ctx, stage, st.Rejection)
	}
	if st.Failed && stage == jobs.StageImport && jobs.IsSourceChanged(st.Message) {
		return run.sourceChanged(ctx, st.Message)
	}
	if st.Failed {
		reason := v1alpha1.ReasonImportFailed
		if stage == jobs.StagePreview {
			reason = v1alpha1.ReasonPreviewFailed
		} else {
			run.observeDuration("failed")
		}
		msg := st.Message
		if msg == "" {
			msg = "the worker failed without a message"
		}
		run.setPhase(v1alpha1.PhaseFailed)
		run.event(corev1.EventTypeWarning, reason, msg)
		return verdict{state: conditions.Stalled, reason: reason, message: msg}, nil
	}
	if stage == jobs.StagePreview {
		run.setPhase(v1alpha1.PhasePreviewReady)
		return verdict{next: true}, nil
	}
	if s := st.SafetyStop; s != nil {
		msg := s.Sentence(imp.Spec)
		meta.SetStatusCondition(&imp.Status.Conditions, metav1.Condition{
			Type: v1alpha1.ConditionSafetyThreshold, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonApprovalRequired,
			Message: msg, ObservedGeneration: imp.Generation,
		})
		run.event(corev1.EventTypeWarning, v1alpha1.ReasonApprovalRequired, msg)
		run.setPhase(v1alpha1.PhasePreviewReady)
		return verdict{next: true}, nil
	}
	run.setPhase(v1alpha1.PhaseCompleted)
	run.invitationsOutcome()
	run.observeDuration("completed")
	return verdict{state: conditions.Ready, reason: v1alpha1.ReasonSucceeded, message: "import completed: " + progressSummary(imp.Status.Progress)}, nil
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
	c := metav1.Condition{Type: v1alpha1.ConditionInvitationsSent, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonInvitationsSent,
		Message: fmt.Sprintf("%d invitations sent; %d users owed one have no address", inv.Sent, inv.NoAddress), ObservedGeneration: imp.Generation}
	eventType := corev1.EventTypeNormal
	if inv.Failed > 0 {
		c.Status, c.Reason, eventType = metav1.ConditionFalse, inv.Reason, corev1.EventTypeWarning
		c.Message = fmt.Sprintf("%d invitations sent, %d not sent: %s; the users are written, and the next import with newUsers or pendingUsers invites them", inv.Sent, inv.Failed, inv.Message)
	}
	meta.SetStatusCondition(&imp.Status.Conditions, c)
	run.event(eventType, c.Reason, c.Message)
}

// sourceChanged handles an import its worker refused before writing
// because the source is not the file of its preview: the import goes
// back to a new preview and waits there for a person.
func (run *importRun) sourceChanged(ctx context.Context, msg string) (verdict, error) {
	imp := run.imp
	if err := run.Executor.Reset(ctx, imp, jobs.StageImport); err != nil {
		return verdict{}, err
	}
	meta.SetStatusCondition(&imp.Status.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionSourceChanged, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonSourceChanged,
		Message: safetext.Clean(msg), ObservedGeneration: imp.Generation,
	})
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
func (run *importRun) rejected(ctx context.Context, stage jobs.Stage, rej *jobs.Rejection) (verdict, error) {
	imp := run.imp
	if err := run.Executor.Reset(ctx, imp, stage); err != nil {
		return verdict{}, err
	}
	if stage == jobs.StageImport {
		// Nothing was written: the import leaves the directory's lock
		// and counts from the start when it runs again.
		imp.Status.StartTime = nil
		imp.Status.Progress = nil
	}
	unreachable := rej.Reason == v1alpha1.ReasonSourceUnreachable && inPlace(imp.Spec.Source)
	if rej.Reason == v1alpha1.ReasonSourceNotFound || unreachable {
		run.event(corev1.EventTypeWarning, rej.Reason, rej.Message+"; waiting for it")
		if stage == jobs.StageImport {
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
	meta.SetStatusCondition(&imp.Status.Conditions, metav1.Condition{
		Type: v1alpha1.ConditionInputRejected, Status: metav1.ConditionTrue, Reason: rej.Reason,
		Message: safetext.Clean(rej.Message), ObservedGeneration: imp.Generation,
	})
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

// sourceMissing returns a verdict to wait when the ConfigMap, Secret or key
// of the import's source does not exist (yet): with GitOps, objects arrive
// in no set order. It is asked again with a backoff that grows with the
// import's age, up to a minute.
func (run *importRun) sourceMissing(ctx context.Context) (*verdict, error) {
	_, what, ok, err := sourceKey(ctx, run.APIReader, run.SecretSelector, run.imp.Namespace, run.imp.Spec.Source)
	if !ok {
		return nil, nil
	}
	if errors.Is(err, kube.ErrNotFound) {
		wait := run.sourceWait()
		return &verdict{state: conditions.Progressing, reason: v1alpha1.ReasonSourceNotFound,
			message: fmt.Sprintf("waiting for the source, %s: %v", what, err), requeueAfter: wait}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the source %s: %w", what, err)
	}
	return nil, nil
}

// sourceWait is how long an import waits before it looks for a missing
// source again: a tenth of its age, between a second and a minute.
func (run *importRun) sourceWait() time.Duration {
	wait := run.Clock.Since(run.imp.CreationTimestamp.Time) / 10
	return min(max(wait, time.Second), time.Minute)
}

// refusedFileReplaced tells whether the ConfigMap or Secret key of an
// import whose file was refused now holds another content: a person may
// fix the file rather than the spec.
func (run *importRun) refusedFileReplaced(ctx context.Context) (bool, error) {
	refused := run.imp.Status.RejectedSHA256
	if refused == "" {
		return false, nil
	}
	data, what, ok, err := sourceKey(ctx, run.APIReader, run.SecretSelector, run.imp.Namespace, run.imp.Spec.Source)
	if !ok || errors.Is(err, kube.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading the source %s: %w", what, err)
	}
	return sha256Hex(data) != refused, nil
}

// refusedSecretsChanged tells whether a Secret the source names changed
// since the import was refused for its credentials or host key.
func (run *importRun) refusedSecretsChanged(ctx context.Context) (bool, error) {
	refused := run.imp.Status.RejectedSecrets
	if refused == "" {
		return false, nil
	}
	now, err := run.sourceSecretsDigest(ctx)
	return err == nil && now != refused, err
}

// sourceSecretsDigest identifies the versions of the Secrets the import's
// source names (a missing one counts too).
func (run *importRun) sourceSecretsDigest(ctx context.Context) (string, error) {
	h := sha256.New()
	for _, name := range jobs.SourceSecrets(run.imp.Spec.Source) {
		var s corev1.Secret
		err := run.APIReader.Get(ctx, types.NamespacedName{Namespace: run.imp.Namespace, Name: name}, &s)
		switch {
		case apierrors.IsNotFound(err):
			fmt.Fprintf(h, "%s absent\n", name)
		case err != nil:
			return "", fmt.Errorf("reading Secret %s: %w", name, err)
		default:
			fmt.Fprintf(h, "%s %s %s\n", name, s.UID, s.ResourceVersion)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

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

// SetupWithManager registers the reconciler. runEnded, when not nil,
// carries the ends of in-process runs: then there are no Jobs to watch,
// and the manager needs no permission on them.
func (r *UserImportReconciler) SetupWithManager(mgr ctrl.Manager, runEnded <-chan event.GenericEvent) error {
	b := ctrl.NewControllerManagedBy(mgr).
		// Status patches (the worker's progress, our own phase) must not
		// wake the reconciler; spec edits and annotations do. The
		// predicate is on For() only, so owned Jobs still reach it.
		For(&v1alpha1.UserImport{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		// A queued import moves when another import of its directory
		// changes phase.
		Watches(&v1alpha1.UserImport{}, handler.EnqueueRequestsFromMapFunc(r.siblings), builder.WithPredicates(phaseChanged())).
		// Waiting imports move when their directory becomes Ready.
		Watches(&v1alpha1.UserDirectory{}, handler.EnqueueRequestsFromMapFunc(r.importsOfDirectory)).
		Named("userimport").
		WithOptions(controller.Options{MaxConcurrentReconciles: cmp.Or(max(r.Workers, 0), 4)})
	if runEnded != nil {
		b = b.WatchesRawSource(source.Channel(runEnded, &handler.EnqueueRequestForObject{}))
	} else {
		b = b.Owns(&batchv1.Job{})
	}
	return b.Complete(r)
}

// phaseChanged passes creations, deletions and changes of status.phase.
func phaseChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*v1alpha1.UserImport)
			n, ok2 := e.ObjectNew.(*v1alpha1.UserImport)
			return ok1 && ok2 && o.Status.Phase != n.Status.Phase
		},
	}
}

// siblings are the unfinished imports of the directory of obj, obj aside.
func (r *UserImportReconciler) siblings(ctx context.Context, obj client.Object) []ctrl.Request {
	imp, ok := obj.(*v1alpha1.UserImport)
	if !ok {
		return nil
	}
	reqs := importsOf(ctx, r.Client, imp.Namespace, imp.Spec.DirectoryRef.Name)
	out := reqs[:0]
	for _, q := range reqs {
		if q.Name != imp.Name {
			out = append(out, q)
		}
	}
	return out
}

func (r *UserImportReconciler) importsOfDirectory(ctx context.Context, obj client.Object) []ctrl.Request {
	return importsOf(ctx, r.Client, obj.GetNamespace(), obj.GetName())
}

// importsOf lists the unfinished imports of a directory from the cache.
func importsOf(ctx context.Context, c client.Reader, namespace, directory string) []ctrl.Request {
	var list v1alpha1.UserImportList
	if err := c.List(ctx, &list, client.InNamespace(namespace), client.MatchingFields{directoryIndex: directory}); err != nil {
		ctrl.LoggerFrom(ctx).Error(safetext.Wrap(err), "listing the imports of a directory", "directory", directory)
		return nil
	}
	var reqs []ctrl.Request
	for _, i := range list.Items {
		if !i.Status.Phase.IsFinal() {
			reqs = append(reqs, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(&i)})
		}
	}
	return reqs
}
