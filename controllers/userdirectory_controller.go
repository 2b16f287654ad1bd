package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/userimport/user-import-operator/internal/failure"
	"github.com/userimport/user-import-operator/internal/keyread/fromapi"
	"github.com/userimport/user-import-operator/internal/mail"
	"github.com/userimport/user-import-operator/internal/safetext"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/conditions"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/directory/open"
	"github.com/userimport/user-import-operator/internal/egress"
	"github.com/userimport/user-import-operator/internal/keyread"
	"github.com/userimport/user-import-operator/internal/metrics"
)

// UserDirectoryReconciler checks that directories answer and accept their
// credentials, and shows the imports that write to each.
type UserDirectoryReconciler struct {
	Client client.Client
	// APIReader reads the directory's Secrets: only at check time, so
	// that the manager does not cache every Secret of the cluster.
	APIReader client.Reader
	Recorder  events.EventRecorder
	// CheckInterval is the time between checks of a Ready directory.
	CheckInterval time.Duration
	// RetryInterval is the time between checks of a directory that is not
	// Ready (a Secret created later, a server coming back).
	RetryInterval time.Duration
	// CheckTimeout bounds one check.
	CheckTimeout time.Duration
	// Workers is the number of directories reconciled at once.
	Workers int
	// AllowedHosts restricts the hosts a check connects to; nil allows
	// every host.
	AllowedHosts *egress.Policy
	// SecretSelector, when set, is what a Secret's labels must match
	// for the operator to use it (--secret-label).
	SecretSelector labels.Selector
	Clock          clock.PassiveClock
}

// Reconcile implements reconcile.Reconciler.
func (r *UserDirectoryReconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	dir := &v1alpha1.UserDirectory{}
	if err := r.Client.Get(ctx, req.NamespacedName, dir); err != nil {
		if apierrors.IsNotFound(err) {
			metrics.QueueLength.DeleteLabelValues(req.Namespace, req.Name)
			metrics.DirectoryReady.DeleteLabelValues(req.Namespace, req.Name)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	status := newStatusPatch(r.Client, r.Recorder, dir)
	dir.Status.Type = open.Type(dir.Spec)
	var result ctrl.Result
	err := r.reconcileQueue(ctx, dir)
	if err == nil {
		result = r.reconcileCheck(ctx, dir)
	}
	ready := 0.0
	if c := meta.FindStatusCondition(dir.Status.Conditions, v1alpha1.ConditionReady); c != nil && c.Status == metav1.ConditionTrue {
		ready = 1
	}
	metrics.DirectoryReady.WithLabelValues(dir.Namespace, dir.Name).Set(ready)
	for _, t := range []string{v1alpha1.ConditionReady, v1alpha1.ConditionMailReady} {
		if e := conditionChange(status.orig.(*v1alpha1.UserDirectory), dir, t); e != nil {
			status.event(e.eventType, e.reason, e.action, nil, e.note)
		}
	}
	return finished(result, status.finish(ctx, err))
}

// reconcileQueue shows the import writing to the directory and the ones
// waiting, computed from the imports that name it.
func (r *UserDirectoryReconciler) reconcileQueue(ctx context.Context, dir *v1alpha1.UserDirectory) error {
	var list v1alpha1.UserImportList
	// Read only: the cache's objects themselves, not copies.
	if err := r.Client.List(ctx, &list, client.InNamespace(dir.Namespace), client.MatchingFields{directoryIndex: dir.Name}, client.UnsafeDisableDeepCopy); err != nil {
		return fmt.Errorf("listing imports: %w", err)
	}
	q := queueOf(list.Items)
	dir.Status.ActiveImport = ""
	if len(q.active) > 0 {
		dir.Status.ActiveImport = q.active[0]
	}
	dir.Status.Queue = q.pending
	dir.Status.QueueLength = int32(len(q.pending))
	metrics.QueueLength.WithLabelValues(dir.Namespace, dir.Name).Set(float64(len(q.pending)))
	return nil
}

// reconcileCheck checks the directory when its spec changed or the last
// check is older than the interval.
func (r *UserDirectoryReconciler) reconcileCheck(ctx context.Context, dir *v1alpha1.UserDirectory) ctrl.Result {
	setInsecureTransport(dir, directoryInsecure(dir.Spec))
	ready := meta.FindStatusCondition(dir.Status.Conditions, v1alpha1.ConditionReady)
	interval := r.CheckInterval
	if ready == nil || ready.Status != metav1.ConditionTrue || meta.IsStatusConditionFalse(dir.Status.Conditions, v1alpha1.ConditionMailReady) {
		interval = r.RetryInterval
	}
	if ready != nil && ready.Reason == v1alpha1.ReasonInvalidConfig && dir.Status.ObservedGeneration == dir.Generation {
		// Stalled on the spec: only an edit helps.
		return ctrl.Result{}
	}
	if dir.Status.ObservedGeneration == dir.Generation && dir.Status.LastCheckTime != nil {
		if wait := dir.Status.LastCheckTime.Add(interval).Sub(r.Clock.Now()); wait > 0 {
			return ctrl.Result{RequeueAfter: wait}
		}
	}

	r.checkMail(ctx, dir)
	cctx, cancel := context.WithTimeout(ctx, r.CheckTimeout)
	defer cancel()
	caps, err := checkDirectory(cctx, dir, fromapi.SecretsMatching(r.APIReader, dir.Namespace, r.SecretSelector), r.AllowedHosts)
	t := metav1.NewTime(r.Clock.Now())
	dir.Status.LastCheckTime = &t
	if err != nil {
		reason := failure.ReasonOf(err, v1alpha1.ReasonDirectoryError)
		if errors.Is(err, context.DeadlineExceeded) {
			reason = v1alpha1.ReasonUnreachable
		}
		switch reason {
		case v1alpha1.ReasonInvalidConfig:
			conditions.Set(dir, conditions.Stalled, reason, safetext.Of(err))
			return ctrl.Result{}
		case v1alpha1.ReasonAuthenticationFailed, v1alpha1.ReasonTLSError:
			// Refused credentials or certificates do not mend by waiting:
			// Stalled, so that Argo CD and Flux report the directory as
			// failed. It is still checked again, for a fixed Secret.
			conditions.Set(dir, conditions.Stalled, reason, safetext.Of(err))
		default:
			conditions.Set(dir, conditions.Failing, reason, safetext.Of(err))
		}
		return ctrl.Result{RequeueAfter: r.RetryInterval}
	}
	dir.Status.Capabilities = &v1alpha1.DirectoryCapabilities{
		Bulk:                caps.Bulk,
		MaxBulkOperations:   int32(caps.MaxBulkOperations),
		MaxBulkPayloadBytes: caps.MaxBulkPayloadBytes,
		Patch:               caps.Patch,
		Filter:              caps.Filter,
		PagedSearch:         caps.PagedSearch,
	}
	conditions.Set(dir, conditions.Ready, v1alpha1.ReasonConnected,
		fmt.Sprintf("the %s directory answers and accepts the credentials", dir.Status.Type))
	if meta.IsStatusConditionFalse(dir.Status.Conditions, v1alpha1.ConditionMailReady) {
		return ctrl.Result{RequeueAfter: r.RetryInterval}
	}
	return ctrl.Result{RequeueAfter: r.CheckInterval}
}

// checkDirectory opens the provider of dir and checks that it answers.
// The provider retries little: the controller checks again later anyway.
func checkDirectory(ctx context.Context, dir *v1alpha1.UserDirectory, secrets keyread.KeyReader, allowed *egress.Policy) (directory.Capabilities, error) {
	dsn := func() (string, error) {
		b, err := secrets(ctx, dir.Spec.SQL.DSN.Name, dir.Spec.SQL.DSN.Key)
		return string(b), err
	}
	if err := allowed.AllowDirectory(dir.Spec, dsn); err != nil {
		// Nothing is sent: the check says no more than the policy.
		return directory.Capabilities{}, &failure.Error{Reason: v1alpha1.ReasonHostNotAllowed, Err: err}
	}
	opts := open.Options(dir.Spec)
	opts.MaxRetries = 1
	opts.Concurrency = 1
	opts.DialControl = allowed.Control
	d, err := open.DirectoryWith(ctx, dir.Spec, opts, secrets)
	if err != nil {
		return directory.Capabilities{}, err
	}
	defer func() { _ = d.Close() }()
	return d.Check(ctx)
}

// conditionChange is the Event to record when the condition t changed
// status or reason, nil otherwise: not every periodic check makes an
// Event.
func conditionChange(orig, dir *v1alpha1.UserDirectory, t string) *pendingEvent {
	before := meta.FindStatusCondition(orig.Status.Conditions, t)
	after := meta.FindStatusCondition(dir.Status.Conditions, t)
	if after == nil || (before != nil && before.Status == after.Status && before.Reason == after.Reason) {
		return nil
	}
	eventType := corev1.EventTypeNormal
	if after.Status != metav1.ConditionTrue {
		eventType = corev1.EventTypeWarning
	}
	return &pendingEvent{eventType: eventType, reason: after.Reason, action: "Check", note: after.Message}
}

// checkMail checks the mail relay of spec.mail into the MailReady
// condition; without spec.mail there is no such condition.
func (r *UserDirectoryReconciler) checkMail(ctx context.Context, dir *v1alpha1.UserDirectory) {
	relay := dir.Spec.Mail
	if relay == nil {
		conditions.Remove(dir, v1alpha1.ConditionMailReady)
		return
	}
	err := r.AllowedHosts.Allow(relay.Host)
	reason := v1alpha1.ReasonHostNotAllowed
	if err == nil {
		mctx, cancel := context.WithTimeout(ctx, r.CheckTimeout)
		defer cancel()
		err = mail.Check(mctx, relay, fromapi.SecretsMatching(r.APIReader, dir.Namespace, r.SecretSelector), r.CheckTimeout, r.AllowedHosts.Control)
		reason = failure.ReasonOf(err, v1alpha1.ReasonMailUnreachable)
	}
	if err != nil {
		conditions.MarkFalse(dir, v1alpha1.ConditionMailReady, reason, "%s", safetext.Of(err))
		return
	}
	conditions.MarkTrue(dir, v1alpha1.ConditionMailReady, v1alpha1.ReasonMailConnected, "the mail relay %s answers and accepts the credentials", relay.Host)
}

// SetupWithManager registers the reconciler.
func (r *UserDirectoryReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.UserDirectory{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// The queue in status follows the phases of the imports, a
		// second behind: the phase changes of a burst of imports are one
		// write of the directory's status, not one each.
		Watches(&v1alpha1.UserImport{}, queueWatch(time.Second), builder.WithPredicates(phaseChanged())).
		// A check waits for servers outside the cluster, up to its
		// timeout: one directory's server that hangs must not hold up the
		// checks of the others.
		WithOptions(controller.Options{MaxConcurrentReconciles: max(r.Workers, 1)}).
		Named("userdirectory").
		Complete(r)
}

// queueWatch enqueues the directory of an import whose phase changed, after
// delay; the changes within it are reconciled once.
func queueWatch(delay time.Duration) handler.EventHandler {
	add := func(o client.Object, q workqueue.TypedRateLimitingInterface[ctrl.Request]) {
		if imp, ok := o.(*v1alpha1.UserImport); ok {
			q.AddAfter(ctrl.Request{NamespacedName: client.ObjectKey{Namespace: imp.Namespace, Name: imp.Spec.DirectoryRef.Name}}, delay)
		}
	}
	return handler.Funcs{
		CreateFunc: func(_ context.Context, e event.CreateEvent, q workqueue.TypedRateLimitingInterface[ctrl.Request]) {
			add(e.Object, q)
		},
		UpdateFunc: func(_ context.Context, e event.UpdateEvent, q workqueue.TypedRateLimitingInterface[ctrl.Request]) {
			add(e.ObjectNew, q)
		},
		DeleteFunc: func(_ context.Context, e event.DeleteEvent, q workqueue.TypedRateLimitingInterface[ctrl.Request]) {
			add(e.Object, q)
		},
	}
}
