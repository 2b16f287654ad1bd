package controllers

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	ctrlsource "sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/conditions"
	"github.com/userimport/user-import-operator/internal/egress"
	"github.com/userimport/user-import-operator/internal/executor"
	"github.com/userimport/user-import-operator/internal/metrics"
	"github.com/userimport/user-import-operator/internal/runcontract"
	"github.com/userimport/user-import-operator/internal/safetext"
)

// UserImportReconciler moves UserImports through their phases (the
// package documentation lists them). It owns status.phase and the
// conditions; the worker owns status.progress, status.source and
// status.preview.
type UserImportReconciler struct {
	// Client reads directories and Jobs from the cache and writes.
	Client client.Client
	// APIReader reads the UserImport itself (unless finished, read), and
	// the imports of a directory before one starts, without the cache:
	// the worker patches the import's status concurrently, and two
	// imports must never both see themselves at the head of a queue.
	APIReader client.Reader
	Recorder  events.EventRecorder
	Executor  executor.Executor
	Metrics   *metrics.Tracker
	// PollInterval is how often a running stage is looked at between
	// events (progress for the metrics; a missed event).
	PollInterval time.Duration
	// ReportTimeout bounds one exchange with the relay of a report.
	ReportTimeout time.Duration
	Clock         clock.PassiveClock
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
	// phases is the last phase written in each directory (queued).
	phases phaseWrites
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

// errStale says that the UserImport changed since it was read; the
// reconcile is repeated on a fresh copy without writing anything.
var errStale = errors.New("the import changed while it was reconciled")

// importRun is the state of one reconcile of one import.
type importRun struct {
	*UserImportReconciler
	imp    *v1alpha1.UserImport
	status *statusPatch
	// cached: imp is the cache's copy (see read). Its decisions may only
	// write the status, which the resourceVersion guards; anything that
	// starts or removes a run needs a fresh copy (errFresh).
	cached bool
	// phaseEvent is the place (from 1) of the Event of this reconcile's
	// phase changes among the status's pending Events; 0: none yet.
	phaseEvent int
}

func (r *UserImportReconciler) now() metav1.Time {
	return metav1.NewTime(r.Clock.Now())
}

// Reconcile implements reconcile.Reconciler.
func (r *UserImportReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	imp, cached, err := r.read(ctx, req.NamespacedName, false)
	if err == nil {
		var res ctrl.Result
		res, err = r.reconcileCopy(ctx, req, imp, cached)
		if !errors.Is(err, errFresh) {
			return res, err
		}
		// The cache's copy of a new import met a run: decide again on a
		// fresh copy, at once.
		if imp, _, err = r.read(ctx, req.NamespacedName, true); err == nil {
			return r.reconcileCopy(ctx, req, imp, false)
		}
	}
	if apierrors.IsNotFound(err) {
		r.Metrics.Forget(req.String())
		return ctrl.Result{}, nil
	}
	return ctrl.Result{}, err
}

// directoryKey names the directory of imp across namespaces: the key of
// its lock (directories) and of its last phase written (phases).
func directoryKey(imp *v1alpha1.UserImport) string {
	return imp.Namespace + "/" + imp.Spec.DirectoryRef.Name
}

// errFresh says that a decision needs a fresh copy of the import.
var errFresh = errors.New("the decision needs a fresh copy of the import")

// reconcileCopy reconciles imp, as read: cached says it is the cache's
// copy.
func (r *UserImportReconciler) reconcileCopy(ctx context.Context, req ctrl.Request, imp *v1alpha1.UserImport, cached bool) (ctrl.Result, error) {
	if !imp.DeletionTimestamp.IsZero() {
		// Owned Jobs go with the import (garbage collection); runs in the
		// manager process must be stopped here.
		return ctrl.Result{}, r.Executor.Cancel(ctx, imp)
	}
	// Imports of other directories are reconciled meanwhile; this
	// directory's queue is decided, and its status written, by one
	// reconcile at a time.
	directory := directoryKey(imp)
	defer r.directories.lock(directory)()

	run := &importRun{UserImportReconciler: r, imp: imp, status: newStatusPatch(r.Client, r.Recorder, imp), cached: cached}
	from := imp.Status.Phase
	v, err := run.reconcile(ctx)
	if errors.Is(err, errFresh) {
		return ctrl.Result{}, err
	}
	if errors.Is(err, errStale) {
		// Nothing is written: the next reconcile decides on a fresh copy.
		return ctrl.Result{RequeueAfter: 100 * time.Millisecond}, nil
	}
	if err == nil {
		conditions.Set(imp, v.state, v.reason, v.message)
		setInsecureTransport(imp, sourceInsecure(imp.Spec.Source))
	}
	moved := imp.Status.Phase != from
	if moved {
		r.phases.writing(directory, imp.Name)
	}
	if err := run.status.finish(ctx, err); err != nil {
		return finished(ctrl.Result{}, err)
	}
	if moved {
		r.phases.wrote(directory, imp.Name, imp.ResourceVersion)
	}
	r.Metrics.Observe(req.String(), imp.Status.Phase, imp.Status.Progress, safetyBlocked(imp))
	// What the phase written owes (a report, the source's archiving) is
	// the follow-up controller's.
	return lookAgain(v.requeueAfter), nil
}

// lookAgain asks to reconcile again after wait. A look by the clock (a
// poll of a run, a wait for a source, a queue's safety net, the start of
// a run just admitted, a retry after a conflict) yields to what an event
// brought: new imports are admitted before the imports already admitted
// are started or polled.
func lookAgain(wait time.Duration) ctrl.Result {
	res := ctrl.Result{RequeueAfter: wait}
	if wait > 0 {
		res.Priority = ptr.To(handler.LowPriority)
	}
	return res
}

// read reads the import afresh: the worker patches the status of one
// that runs, and a decision on a stale copy could start a run twice.
// Where no decision on a stale copy can start anything, the cache's copy
// decides (cacheDecides), and the status write is guarded by the
// resourceVersion it read: a manager restarted beside 20,000 finished
// imports reads none of them from the API server, and a running import
// looked at every poll interval costs no read. cached says that the copy
// is the cache's; fresh asks for the API server's.
func (r *UserImportReconciler) read(ctx context.Context, key client.ObjectKey, fresh bool) (*v1alpha1.UserImport, bool, error) {
	imp := &v1alpha1.UserImport{}
	if !fresh {
		if err := r.Client.Get(ctx, key, imp); err == nil && imp.DeletionTimestamp.IsZero() && r.cacheDecides(ctx, imp) {
			return imp, true, nil
		}
	}
	imp = &v1alpha1.UserImport{}
	if err := r.APIReader.Get(ctx, key, imp); err != nil {
		return nil, false, err
	}
	return imp, false, nil
}

// cacheDecides tells whether a reconcile may decide on the cache's copy
// of imp: its phase is final (nothing runs for it, nothing moves it
// again), or the run of its phase's stage is under way (the reconcile
// reports its progress; a run that has ended is decided on a fresh copy,
// running).
func (r *UserImportReconciler) cacheDecides(ctx context.Context, imp *v1alpha1.UserImport) bool {
	if imp.Status.Phase.IsFinal() {
		return true
	}
	if imp.Status.Phase == "" && imp.Spec.Action != v1alpha1.ActionCancel {
		// A new import: its admission writes only its status, and needs
		// a fresh copy before it starts or removes a run (start). This
		// spares the read of each new import of a burst.
		return true
	}
	stage, ok := phaseStage(imp.Status.Phase)
	if !ok {
		return false
	}
	return r.Executor.Running(ctx, imp, stage)
}

// phaseStage is the stage that runs in phase p: Preview in
// CreatingPreview, Import in Importing.
func phaseStage(p v1alpha1.ImportPhase) (runcontract.Stage, bool) {
	switch p {
	case v1alpha1.PhaseCreatingPreview:
		return runcontract.StagePreview, true
	case v1alpha1.PhaseImporting:
		return runcontract.StageImport, true
	}
	return "", false
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
	// The phases one reconcile went through are one Event, named after
	// the last.
	if run.phaseEvent > 0 {
		e := &run.status.events[run.phaseEvent-1]
		e.reason, e.note = string(p), e.note+" → "+string(p)
		return
	}
	run.event(corev1.EventTypeNormal, string(p), fmt.Sprintf("phase %s → %s", from, p))
	run.phaseEvent = len(run.status.events)
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
	if stage, ok := phaseStage(phase); ok {
		return run.running(ctx, stage)
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
	return p.Generation == imp.Generation || (p.SpecDigest != "" && p.SpecDigest == runcontract.SpecDigest(imp.Spec))
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

// SetupWithManager registers the reconciler. runEnded, when not nil,
// carries the ends of in-process runs: then there are no Jobs to watch,
// and the manager needs no permission on them.
func (r *UserImportReconciler) SetupWithManager(mgr ctrl.Manager, runEnded <-chan event.GenericEvent) error {
	b := ctrl.NewControllerManagedBy(mgr).
		// Status patches (the worker's progress, our own phase) must not
		// wake the reconciler; spec edits and annotations do. The
		// predicate is on For() only, so owned Jobs still reach it.
		For(&v1alpha1.UserImport{}, builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		// The import next in its directory's queue may start when
		// another import of the directory changes phase.
		Watches(&v1alpha1.UserImport{}, handler.EnqueueRequestsFromMapFunc(r.nextInQueue), builder.WithPredicates(phaseChanged())).
		// Waiting imports move when their directory becomes Ready; the
		// queue the directory shows in its status moves nothing.
		Watches(&v1alpha1.UserDirectory{}, handler.EnqueueRequestsFromMapFunc(r.importsOfDirectory), builder.WithPredicates(readinessChanged())).
		Named("userimport").
		WithOptions(controller.Options{MaxConcurrentReconciles: cmp.Or(max(r.Workers, 0), 4)})
	if runEnded != nil {
		b = b.WatchesRawSource(ctrlsource.Channel(runEnded, &handler.EnqueueRequestForObject{}))
	} else {
		b = b.Owns(&batchv1.Job{})
	}
	return b.Complete(r)
}

// readinessChanged passes creations, deletions, spec edits and changes of
// a directory's Ready condition: what an import waiting for its directory
// looks at (readyDirectory).
func readinessChanged() predicate.Predicate {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			o, ok1 := e.ObjectOld.(*v1alpha1.UserDirectory)
			n, ok2 := e.ObjectNew.(*v1alpha1.UserDirectory)
			if !ok1 || !ok2 {
				return true
			}
			if o.Generation != n.Generation || o.Status.ObservedGeneration != n.Status.ObservedGeneration {
				return true
			}
			oc := meta.FindStatusCondition(o.Status.Conditions, v1alpha1.ConditionReady)
			nc := meta.FindStatusCondition(n.Status.Conditions, v1alpha1.ConditionReady)
			if oc == nil || nc == nil {
				return oc != nc
			}
			return oc.Status != nc.Status || oc.Reason != nc.Reason || oc.Message != nc.Message
		},
	}
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

// nextInQueue is the import that runs next in the directory of obj, obj
// aside, as the cache has it: a phase change of another import may let it
// start. The others keep their place and show their new position at their
// next look (within a minute, queued): waking every waiting import at
// every change would cost each change a read per waiting import, and a
// queue of n imports n² reads.
func (r *UserImportReconciler) nextInQueue(ctx context.Context, obj client.Object) []ctrl.Request {
	imp, ok := obj.(*v1alpha1.UserImport)
	if !ok {
		return nil
	}
	var list v1alpha1.UserImportList
	// Read only: the cache's objects themselves, not copies.
	if err := r.Client.List(ctx, &list, client.InNamespace(imp.Namespace), client.MatchingFields{directoryIndex: imp.Spec.DirectoryRef.Name}, client.UnsafeDisableDeepCopy); err != nil {
		ctrl.LoggerFrom(ctx).Error(safetext.Wrap(err), "listing the imports of a directory", "directory", imp.Spec.DirectoryRef.Name)
		return nil
	}
	var next *v1alpha1.UserImport
	for i := range list.Items {
		o := &list.Items[i]
		if o.Name != imp.Name && o.Status.Phase == v1alpha1.PhaseImportPending && (next == nil || runsBefore(o, next)) {
			next = o
		}
	}
	if next == nil {
		return nil
	}
	return []ctrl.Request{{NamespacedName: client.ObjectKeyFromObject(next)}}
}

func (r *UserImportReconciler) importsOfDirectory(ctx context.Context, obj client.Object) []ctrl.Request {
	return importsOf(ctx, r.Client, obj.GetNamespace(), obj.GetName())
}

// importsOf lists the unfinished imports of a directory from the cache.
func importsOf(ctx context.Context, c client.Reader, namespace, directory string) []ctrl.Request {
	var list v1alpha1.UserImportList
	if err := c.List(ctx, &list, client.InNamespace(namespace), client.MatchingFields{directoryIndex: directory}, client.UnsafeDisableDeepCopy); err != nil {
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
