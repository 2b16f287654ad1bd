package controllers

import (
	"context"
	"fmt"
	"net/http"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	crsource "sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/conditions"
	"github.com/userimport/user-import-operator/internal/egress"
	"github.com/userimport/user-import-operator/internal/metrics"
	"github.com/userimport/user-import-operator/internal/safetext"
	"github.com/userimport/user-import-operator/internal/schedule"
)

// scheduleOwnerIndex indexes UserImports by the name of the ImportSchedule
// that controls them.
const scheduleOwnerIndex = ".metadata.controller.importschedule"

// requeueMargin is added to the wait for the next run, so that the
// reconcile that follows finds the run due rather than a few
// microseconds early.
const requeueMargin = 100 * time.Millisecond

// ImportScheduleReconciler creates a UserImport from an ImportSchedule's
// template at each scheduled time, as the CronJob controller creates Jobs.
type ImportScheduleReconciler struct {
	Client client.Client
	// APIReader reads the ConfigMaps and Secrets of sources for
	// skipIfUnchanged, uncached, so that the manager does not cache every
	// ConfigMap and Secret of the cluster.
	APIReader client.Reader
	Recorder  events.EventRecorder
	Clock     clock.PassiveClock
	// HTTPClient, when set, makes the HEAD requests of skipIfUnchanged
	// (tests); otherwise a client per source honours its caBundle.
	HTTPClient *http.Client
	// HeadTimeout bounds the HEAD request of skipIfUnchanged (default 10s).
	HeadTimeout time.Duration
	// AllowedHosts restricts the hosts of those HEAD requests; nil allows
	// every host. A host not allowed is not asked: the run goes ahead.
	AllowedHosts *egress.Policy
	// AmbientS3 tells which buckets named without credentials the
	// manager may list with its own cloud identity; nil: none.
	AmbientS3 func(bucket string) bool
	// SecretSelector, when set, is what a Secret's labels must match
	// for the operator to use it (--secret-label).
	SecretSelector labels.Selector
	// ConfigMapVersion tells the resourceVersion of a ConfigMap as the
	// manager's metadata-only watch last saw it, "" when it has none: a
	// source whose version did not move is not read again. Set by
	// SetupWithManager; nil reads every time.
	ConfigMapVersion func(ctx context.Context, namespace, name string) string
	// MaxConcurrentReconciles is the number of schedules reconciled at
	// once (default 4).
	MaxConcurrentReconciles int
	// polls shares the reads of the sources of schedules on change; made
	// by SetupWithManager.
	polls *sourcePolls
}

// NewImportScheduleReconciler returns the reconciler with the manager's
// clients and event recorder.
func NewImportScheduleReconciler(mgr ctrl.Manager) *ImportScheduleReconciler {
	return &ImportScheduleReconciler{
		Client:    mgr.GetClient(),
		APIReader: mgr.GetAPIReader(),
		Recorder:  mgr.GetEventRecorder("importschedule-controller"),
		Clock:     clock.RealClock{},
	}
}

// SetupWithManager registers the index of imports by schedule and the
// reconciler with mgr.
func (r *ImportScheduleReconciler) SetupWithManager(mgr ctrl.Manager) error {
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1alpha1.UserImport{}, scheduleOwnerIndex, func(o client.Object) []string {
		ref := metav1.GetControllerOf(o)
		if ref == nil || ref.Kind != "ImportSchedule" || ref.APIVersion != v1alpha1.GroupVersion.String() {
			return nil
		}
		return []string{ref.Name}
	}); err != nil {
		return fmt.Errorf("indexing imports by schedule: %w", err)
	}
	workers := r.MaxConcurrentReconciles
	if workers <= 0 {
		workers = 4
	}
	r.polls = newSourcePolls(func() time.Time { return r.Clock.Now() })
	if r.ConfigMapVersion == nil {
		versions, err := configMapVersions(mgr, r.polls.configMapMoved)
		if err != nil {
			return err
		}
		r.ConfigMapVersion = versions
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("importschedule").
		// Status writes of the controller itself do not wake it; spec
		// edits and annotations (run-now) do.
		For(&v1alpha1.ImportSchedule{}, builder.WithPredicates(predicate.Or(
			predicate.GenerationChangedPredicate{}, predicate.AnnotationChangedPredicate{}))).
		Owns(&v1alpha1.UserImport{}).
		// A read of a source that found a new fingerprint wakes the
		// schedules that watch it.
		WatchesRawSource(crsource.Channel(r.polls.wake, &handler.EnqueueRequestForObject{})).
		WithOptions(controller.Options{MaxConcurrentReconciles: workers}).
		Complete(r)
}

// scheduleRun is one reconcile of one schedule.
type scheduleRun struct {
	*ImportScheduleReconciler
	sched    *v1alpha1.ImportSchedule
	now      time.Time
	children []v1alpha1.UserImport
	status   *statusPatch
}

// record emits an Event about something done in the API (an import
// created, cancelled, deleted) at once: it happened, whatever becomes of
// the status write.
func (run *scheduleRun) record(eventType, reason, action string, related runtime.Object, format string, args ...any) {
	run.Recorder.Eventf(run.sched, related, eventType, reason, action, format, args...)
}

// event queues an Event about a decision kept only in the status (a run
// skipped or missed): it goes out once that status is written.
func (run *scheduleRun) event(eventType, reason, action string, related runtime.Object, format string, args ...any) {
	run.status.event(eventType, reason, action, related, fmt.Sprintf(format, args...))
}

// Reconcile implements reconcile.Reconciler.
func (r *ImportScheduleReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	sched := &v1alpha1.ImportSchedule{}
	if err := r.Client.Get(ctx, req.NamespacedName, sched); err != nil {
		if apierrors.IsNotFound(err) {
			metrics.ScheduleMissedRuns.DeleteLabelValues(req.Namespace, req.Name)
			r.polls.forget(req.NamespacedName)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	// Present for every schedule, so that the alert on missed runs has
	// a series to read.
	metrics.ScheduleMissedRuns.WithLabelValues(sched.Namespace, sched.Name).Add(0)
	if !sched.DeletionTimestamp.IsZero() {
		return ctrl.Result{}, nil // the garbage collector deletes the imports
	}
	run := &scheduleRun{ImportScheduleReconciler: r, sched: sched, now: r.Clock.Now(),
		status: newStatusPatch(r.Client, r.Recorder, sched)}
	result, err := run.reconcile(ctx)
	return finished(result, run.status.finish(ctx, err))
}

func (run *scheduleRun) reconcile(ctx context.Context) (ctrl.Result, error) {
	sched := run.sched
	if err := run.listChildren(ctx); err != nil {
		return ctrl.Result{}, err
	}
	// The summary is written last, with the imports this reconcile made.
	defer run.summarizeChildren()
	if err := run.trimHistory(ctx); err != nil {
		return ctrl.Result{}, err
	}

	var sch *schedule.Schedule
	if sched.Spec.Schedule != "" {
		var err error
		sch, err = schedule.Parse(sched.Spec.Schedule, sched.Spec.TimeZone)
		if err != nil {
			// The API server refuses such specs; one that got through (an
			// older CRD, a zone missing here) waits for an edit: no requeue.
			sched.Status.NextScheduleTime = nil
			conditions.Set(sched, conditions.Stalled, v1alpha1.ReasonInvalidSchedule, safetext.Of(err))
			return ctrl.Result{}, nil
		}
	} else {
		sched.Status.NextScheduleTime = nil
	}

	if err := run.runNow(ctx); err != nil {
		return ctrl.Result{}, err
	}

	var timed, change verdict
	if sch != nil {
		var err error
		if timed, err = run.onClock(ctx, sch); err != nil {
			return ctrl.Result{}, err
		}
	}
	if runsOnChange(sched) {
		var err error
		if change, err = run.onChange(ctx); err != nil {
			return ctrl.Result{}, err
		}
	} else {
		run.polls.forget(client.ObjectKeyFromObject(sched))
	}
	st := timed.and(change)
	conditions.Set(sched, st.state, st.reason, st.message)
	return ctrl.Result{RequeueAfter: st.requeueAfter}, nil
}

// and combines the states of the clock and of the change trigger: the
// schedule is Ready while one of them can still run, and is looked at
// again at the earlier of their times.
func (s verdict) and(o verdict) verdict {
	switch {
	case s.reason == "":
		return o
	case o.reason == "":
		return s
	}
	out := s
	if s.state != conditions.Ready && o.state == conditions.Ready {
		out.state, out.reason = o.state, o.reason
	}
	out.message = s.message + "; " + o.message
	if out.requeueAfter == 0 || (o.requeueAfter > 0 && o.requeueAfter < out.requeueAfter) {
		out.requeueAfter = o.requeueAfter
	}
	return out
}

// onClock decides on the runs of the cron schedule.
func (run *scheduleRun) onClock(ctx context.Context, sch *schedule.Schedule) (verdict, error) {
	sched := run.sched
	// The cursor is kept from the first reconcile on, suspended or not,
	// so that the runs missed while suspended are counted from it.
	from := run.cursor(sch)
	if from.IsZero() {
		sched.Status.NextScheduleTime = nil
		return verdict{state: conditions.Stalled, reason: v1alpha1.ReasonNeverFires,
			message: fmt.Sprintf("spec.schedule %q has no run in the next five years", sched.Spec.Schedule)}, nil
	}
	sched.Status.NextScheduleTime = &metav1.Time{Time: from}

	if sched.Spec.Suspend {
		// status.nextScheduleTime stays: it is the first run not yet
		// decided on, and the window of missed runs starts there when the
		// schedule is resumed.
		return verdict{state: conditions.Ready, reason: v1alpha1.ReasonSuspended,
			message: "suspended: no new runs; imports already started go on"}, nil
	}

	next, err := run.runDue(ctx, sch, from)
	if err != nil {
		return verdict{}, err
	}
	if next.IsZero() {
		sched.Status.NextScheduleTime = nil
		return verdict{state: conditions.Stalled, reason: v1alpha1.ReasonNeverFires,
			message: fmt.Sprintf("spec.schedule %q has no run after %s", sched.Spec.Schedule, run.now.Format(time.RFC3339))}, nil
	}
	sched.Status.NextScheduleTime = &metav1.Time{Time: next}
	return verdict{state: conditions.Ready, reason: v1alpha1.ReasonScheduled,
		message: "next run at " + next.In(sch.Location()).Format(time.RFC3339), requeueAfter: next.Sub(run.now) + requeueMargin}, nil
}

// cursor returns the first scheduled time not yet decided on: the one
// kept in status.nextScheduleTime; for a new schedule, the first after its
// creation; for one that was stalled, the first after now (what it missed
// while its spec was broken is not caught up).
func (run *scheduleRun) cursor(sch *schedule.Schedule) time.Time {
	if c := run.sched.Status.NextScheduleTime; c != nil {
		// An edit of schedule or timeZone leaves a cursor the new schedule
		// would not fire at: the new schedule counts from now.
		if sch.Next(c.Add(-time.Nanosecond)).Equal(c.Time) {
			return c.Time
		}
		return sch.Next(run.now)
	}
	start := run.sched.CreationTimestamp.Time
	if start.IsZero() || start.After(run.now) || run.sched.Status.ObservedGeneration > 0 {
		start = run.now
	}
	return sch.Next(start)
}

// runDue decides on the runs scheduled since the cursor: at most the most
// recent one starts; the others, and a most recent one older than
// startingDeadlineSeconds, are counted as missed. It returns the new
// cursor, the first scheduled time after now.
func (run *scheduleRun) runDue(ctx context.Context, sch *schedule.Schedule, from time.Time) (time.Time, error) {
	sched := run.sched
	due := sch.Due(from, run.now)
	if due.Count == 0 {
		return from, nil
	}
	missed := due.Count - 1
	late := false
	if d := sched.Spec.StartingDeadlineSeconds; d != nil && run.now.Sub(due.Latest) > time.Duration(*d)*time.Second {
		missed, late = due.Count, true
	}
	if !late {
		if w, ok := sch.ShiftedFrom(due.Latest); ok {
			loc := sch.Location()
			run.event(corev1.EventTypeNormal, v1alpha1.ReasonClockChange, "Schedule", nil,
				"%s does not exist on %s in %s (the clock jumps forward); its run is the one at %s",
				w.Format("15:04"), w.Format("2006-01-02"), loc, due.Latest.In(loc).Format("15:04 MST"))
		}
		if err := run.startScheduled(ctx, due.Latest); err != nil {
			return time.Time{}, err
		}
	}
	if missed > 0 {
		metrics.ScheduleMissedRuns.WithLabelValues(sched.Namespace, sched.Name).Add(float64(missed))
		sched.Status.MissedRuns += int64(missed)
		loc := sch.Location()
		switch {
		case late && missed == 1:
			run.event(corev1.EventTypeWarning, v1alpha1.ReasonMissedRuns, "Schedule", nil,
				"the run scheduled at %s was missed: it could not start within startingDeadlineSeconds (%ds)",
				due.Latest.In(loc).Format(time.RFC3339), *sched.Spec.StartingDeadlineSeconds)
		case late:
			run.event(corev1.EventTypeWarning, v1alpha1.ReasonMissedRuns, "Schedule", nil,
				"%d runs were missed, the last scheduled at %s: none could start within startingDeadlineSeconds (%ds)",
				missed, due.Latest.In(loc).Format(time.RFC3339), *sched.Spec.StartingDeadlineSeconds)
		default:
			run.event(corev1.EventTypeWarning, v1alpha1.ReasonMissedRuns, "Schedule", nil,
				"%d runs were missed between %s and %s; only the last one, scheduled at %s, was started",
				missed, from.In(loc).Format(time.RFC3339), run.now.In(loc).Format(time.RFC3339), due.Latest.In(loc).Format(time.RFC3339))
		}
	}
	return due.Next, nil
}

// startScheduled starts the run scheduled at t, or adopts the import that
// a crashed reconcile created for it, or skips it by concurrencyPolicy or
// skipIfUnchanged.
func (run *scheduleRun) startScheduled(ctx context.Context, t time.Time) error {
	sched := run.sched
	name := schedule.ChildName(sched.Name, t)
	// Get by name first: an import for this run that exists already was
	// created by an earlier reconcile whose status write was lost.
	existing, err := run.getChild(ctx, run.Client, name)
	if err != nil {
		return err
	}
	if existing != nil {
		if !run.owns(existing) {
			run.skip(fmt.Sprintf("the UserImport %s exists and does not belong to this schedule", name))
			return nil
		}
		run.recordStart(t)
		return nil
	}

	active := run.active()
	if sched.Spec.ConcurrencyPolicy == v1alpha1.ConcurrencyForbid && len(active) > 0 {
		run.skip(fmt.Sprintf("concurrencyPolicy Forbid: the import %s is %s", active[0].Name, phaseOf(&active[0])))
		return nil
	}
	if skipped, err := run.admit(ctx, active); skipped || err != nil {
		return err
	}
	if err := run.createChild(ctx, name, t, nil, v1alpha1.ReasonRunStarted, "for the run scheduled at "+t.UTC().Format(time.RFC3339)); err != nil {
		return err
	}
	run.recordStart(t)
	return nil
}

// admit decides, just before a run starts, by skipIfUnchanged (it tells
// whether the run was skipped) and by concurrencyPolicy Replace (it
// cancels the active imports).
func (run *scheduleRun) admit(ctx context.Context, active []v1alpha1.UserImport) (skipped bool, err error) {
	if run.sched.Spec.SkipIfUnchanged {
		unchanged, why, err := run.sourceUnchanged(ctx)
		switch {
		case err != nil:
			// Not knowing is no reason to skip: the run goes ahead.
			run.event(corev1.EventTypeWarning, v1alpha1.ReasonSourceCheckFailed, "Schedule", nil, "skipIfUnchanged: %s; the run goes ahead", safetext.Of(err))
		case unchanged:
			run.skip("skipIfUnchanged: " + why)
			return true, nil
		}
	}
	if run.sched.Spec.ConcurrencyPolicy == v1alpha1.ConcurrencyReplace {
		for i := range active {
			if err := run.cancel(ctx, &active[i]); err != nil {
				return false, err
			}
		}
	}
	return false, nil
}

func (run *scheduleRun) recordStart(t time.Time) {
	run.sched.Status.LastScheduleTime = &metav1.Time{Time: t}
}

func (run *scheduleRun) skip(reason string) {
	run.sched.Status.SkippedRuns++
	run.sched.Status.LastSkipReason = safetext.Clean(reason)
	run.event(corev1.EventTypeNormal, v1alpha1.ReasonRunSkipped, "Schedule", nil, "run skipped: %s", reason)
}

// runNow starts a run when the run-now annotation holds a value not yet
// acted on. It bypasses concurrencyPolicy and skipIfUnchanged (a person
// asked for it) and works while suspended, like `kubectl create job
// --from=cronjob/...`.
func (run *scheduleRun) runNow(ctx context.Context) error {
	sched := run.sched
	token := sched.Annotations[v1alpha1.RunNowAnnotation]
	if token == "" || token == sched.Status.LastRunNowToken {
		return nil
	}
	name := schedule.RunNowName(sched.Name, token)
	existing, err := run.getChild(ctx, run.Client, name)
	if err != nil {
		return err
	}
	if existing == nil {
		note := fmt.Sprintf("to run now (%s=%s)", v1alpha1.RunNowAnnotation, safetext.Clean(token))
		if err := run.createChild(ctx, name, run.now, nil, v1alpha1.ReasonRunNow, note); err != nil {
			return err
		}
	}
	sched.Status.LastRunNowToken = token
	return nil
}

// configMapVersions watches the metadata of ConfigMaps (names and
// resourceVersions, never their data), in the namespaces the manager
// watches, and returns a lookup of a ConfigMap's resourceVersion in that
// watch. A ConfigMap that appears, or whose version moves, is passed to
// moved, after the lookup shows its new version. The informer is made
// here, so the manager starts it, and waits for it, before the
// controllers.
func configMapVersions(mgr ctrl.Manager, moved func(types.NamespacedName)) (func(context.Context, string, string) string, error) {
	gvk := corev1.SchemeGroupVersion.WithKind("ConfigMap")
	meta := &metav1.PartialObjectMetadata{}
	meta.SetGroupVersionKind(gvk)
	inf, err := mgr.GetCache().GetInformer(context.Background(), meta)
	if err != nil {
		return nil, fmt.Errorf("watching the metadata of ConfigMaps: %w", err)
	}
	tell := func(o any) {
		if m, ok := o.(metav1.Object); ok {
			moved(types.NamespacedName{Namespace: m.GetNamespace(), Name: m.GetName()})
		}
	}
	_, err = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc: tell,
		UpdateFunc: func(old, o any) {
			// A resync delivers the version the watch has seen already.
			if a, ok := old.(metav1.Object); ok {
				if b, ok := o.(metav1.Object); ok && a.GetResourceVersion() == b.GetResourceVersion() {
					return
				}
			}
			tell(o)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("watching the metadata of ConfigMaps: %w", err)
	}
	return func(ctx context.Context, namespace, name string) string {
		m := &metav1.PartialObjectMetadata{}
		m.SetGroupVersionKind(gvk)
		if err := mgr.GetCache().Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, m); err != nil {
			return ""
		}
		return m.ResourceVersion
	}, nil
}
