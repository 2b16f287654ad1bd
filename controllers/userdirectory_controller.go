package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/conditions"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/directory/open"
	"github.com/userimport/user-import-operator/internal/egress"
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
	// AllowedHosts restricts the hosts a check connects to; nil allows
	// every host.
	AllowedHosts *egress.Policy
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

func (r *UserDirectoryReconciler) now() time.Time {
	if r.Now != nil {
		return r.Now()
	}
	return time.Now()
}

// Reconcile implements reconcile.Reconciler.
func (r *UserDirectoryReconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	dir := &v1alpha1.UserDirectory{}
	if err := r.Client.Get(ctx, req.NamespacedName, dir); err != nil {
		if apierrors.IsNotFound(err) {
			metrics.QueueLength.DeleteLabelValues(req.Namespace, req.Name)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, err
	}
	orig := dir.DeepCopy()
	defer func() {
		if equality.Semantic.DeepEqual(orig.Status, dir.Status) {
			return
		}
		patch := client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})
		if err := r.Client.Status().Patch(ctx, dir, patch); err != nil {
			retErr = errors.Join(retErr, fmt.Errorf("patching status: %w", err))
			return
		}
		r.emitReadyChange(orig, dir)
	}()

	dir.Status.Type = open.Type(dir.Spec)
	if err := r.reconcileQueue(ctx, dir); err != nil {
		return ctrl.Result{}, err
	}
	return r.reconcileCheck(ctx, dir), nil
}

// reconcileQueue shows the import writing to the directory and the ones
// waiting, computed from the imports that name it.
func (r *UserDirectoryReconciler) reconcileQueue(ctx context.Context, dir *v1alpha1.UserDirectory) error {
	var list v1alpha1.UserImportList
	if err := r.Client.List(ctx, &list, client.InNamespace(dir.Namespace), client.MatchingFields{directoryIndex: dir.Name}); err != nil {
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
	ready := meta.FindStatusCondition(dir.Status.Conditions, v1alpha1.ConditionReady)
	interval := r.CheckInterval
	if ready == nil || ready.Status != metav1.ConditionTrue {
		interval = r.RetryInterval
	}
	if ready != nil && ready.Reason == directory.ReasonInvalidConfig && dir.Status.ObservedGeneration == dir.Generation {
		// Stalled on the spec: only an edit helps.
		return ctrl.Result{}
	}
	if dir.Status.ObservedGeneration == dir.Generation && dir.Status.LastCheckTime != nil {
		if wait := dir.Status.LastCheckTime.Add(interval).Sub(r.now()); wait > 0 {
			return ctrl.Result{RequeueAfter: wait}
		}
	}

	cctx, cancel := context.WithTimeout(ctx, r.CheckTimeout)
	defer cancel()
	caps, err := checkDirectory(cctx, dir, r.secretGetter(dir.Namespace), r.AllowedHosts)
	t := metav1.NewTime(r.now())
	dir.Status.LastCheckTime = &t
	dir.Status.ObservedGeneration = dir.Generation
	if err != nil {
		reason := directory.ReasonOf(err)
		if errors.Is(err, context.DeadlineExceeded) {
			reason = directory.ReasonUnreachable
		}
		if reason == directory.ReasonInvalidConfig {
			conditions.SetKStatus(&dir.Status.Conditions, dir.Generation, conditions.KindStalled, reason, err.Error())
			return ctrl.Result{}
		}
		conditions.SetKStatus(&dir.Status.Conditions, dir.Generation, conditions.KindFailing, reason, err.Error())
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
	conditions.SetKStatus(&dir.Status.Conditions, dir.Generation, conditions.KindReady, conditions.ReasonConnected,
		fmt.Sprintf("the %s directory answers and accepts the credentials", dir.Status.Type))
	return ctrl.Result{RequeueAfter: r.CheckInterval}
}

// checkDirectory opens the provider of dir and checks that it answers.
// The provider retries little: the controller checks again later anyway.
func checkDirectory(ctx context.Context, dir *v1alpha1.UserDirectory, secrets directory.SecretGetter, allowed *egress.Policy) (directory.Capabilities, error) {
	dsn := func() (string, error) {
		b, err := secrets(ctx, dir.Spec.SQL.DSN.Name, dir.Spec.SQL.DSN.Key)
		return string(b), err
	}
	if err := allowed.AllowDirectory(dir.Spec, dsn); err != nil {
		// Nothing is sent: the check says no more than the policy.
		return directory.Capabilities{}, &directory.Error{Reason: directory.ReasonHostNotAllowed, Err: err}
	}
	opts := open.Options(dir.Spec)
	opts.MaxRetries = 1
	opts.Concurrency = 1
	d, err := open.OpenWith(ctx, dir.Spec, opts, secrets)
	if err != nil {
		return directory.Capabilities{}, err
	}
	defer func() { _ = d.Close() }()
	return d.Check(ctx)
}

// secretGetter reads keys of Secrets of one namespace, uncached.
func (r *UserDirectoryReconciler) secretGetter(namespace string) directory.SecretGetter {
	return func(ctx context.Context, name, key string) ([]byte, error) {
		var s corev1.Secret
		if err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &s); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, &directory.Error{Reason: directory.ReasonSecretNotFound,
					Err: fmt.Errorf("secret %s not found in namespace %s", name, namespace)}
			}
			return nil, fmt.Errorf("reading secret %s: %w", name, err)
		}
		v, ok := s.Data[key]
		if !ok {
			return nil, &directory.Error{Reason: directory.ReasonSecretNotFound,
				Err: fmt.Errorf("secret %s has no key %s", name, key)}
		}
		return v, nil
	}
}

// emitReadyChange records an Event when Ready changes status or reason,
// not at every periodic check.
func (r *UserDirectoryReconciler) emitReadyChange(orig, dir *v1alpha1.UserDirectory) {
	before := meta.FindStatusCondition(orig.Status.Conditions, v1alpha1.ConditionReady)
	after := meta.FindStatusCondition(dir.Status.Conditions, v1alpha1.ConditionReady)
	if after == nil || (before != nil && before.Status == after.Status && before.Reason == after.Reason) {
		return
	}
	eventType := "Normal"
	if after.Status != metav1.ConditionTrue {
		eventType = "Warning"
	}
	r.Recorder.Eventf(dir, nil, eventType, after.Reason, "Check", "%s", after.Message)
}

// SetupWithManager registers the reconciler.
func (r *UserDirectoryReconciler) SetupWithManager(mgr ctrl.Manager) error {
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.UserDirectory{}, builder.WithPredicates(predicate.GenerationChangedPredicate{})).
		// The queue in status follows the phases of the imports.
		Watches(&v1alpha1.UserImport{}, handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []ctrl.Request {
			imp := o.(*v1alpha1.UserImport)
			return []ctrl.Request{{NamespacedName: client.ObjectKey{Namespace: imp.Namespace, Name: imp.Spec.DirectoryRef.Name}}}
		}), builder.WithPredicates(phaseChanged())).
		Named("userdirectory").
		Complete(r)
}
