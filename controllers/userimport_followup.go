package controllers

import (
	"context"
	"errors"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	ctrlsource "sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/userimport/user-import-operator/api/v1alpha1"
)

// UserImportFollowUpReconciler does what an import owes once a phase is
// written and that talks to a server outside the cluster: the report mail
// (spec.report) and the move or delete of the source file
// (spec.source.afterImport). The work runs beside the controller's
// workers, at most one import per namespace at a time: a relay or an SFTP
// server that never answers costs its own tenant's follow-ups time, never
// another tenant's, nor the admission or the progress of any import, which
// the UserImport controller decides.
type UserImportFollowUpReconciler struct {
	*UserImportReconciler
	// Workers is the number of follow-ups under way at once, in all
	// namespaces (64 when unset).
	Workers int

	slots *namespaceSlots
	wake  chan event.GenericEvent

	mu sync.Mutex
	// ended holds the error of work that failed, until the reconcile it
	// wakes reads it.
	ended map[types.NamespacedName]error
}

// Reconcile starts the report or the archiving an import owes, when its
// namespace has none under way; the work wakes it again when it ends.
func (f *UserImportFollowUpReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	if err := f.takeEnded(req.NamespacedName); err != nil {
		// The workqueue backs off before the next try.
		return reconcile.Result{}, err
	}
	r := f.UserImportReconciler
	// The cache says whether anything is owed; the work reads afresh.
	var cached v1alpha1.UserImport
	if err := r.Client.Get(ctx, req.NamespacedName, &cached); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if phase, wait := reportDue(&cached, r.Clock.Now()); phase == "" && !archiveDue(&cached) {
		return reconcile.Result{RequeueAfter: wait}, nil
	}
	if !f.slots.acquire(req.NamespacedName) {
		// The follow-up under way in the namespace wakes it.
		return reconcile.Result{}, nil
	}
	// ctx is the controller's: the work ends with the manager, not with
	// this reconcile.
	go func() {
		if err := f.followUp(ctx, req.NamespacedName); err != nil {
			f.mu.Lock()
			f.ended[req.NamespacedName] = err
			f.mu.Unlock()
		}
		for _, k := range append(f.slots.release(req.NamespacedName), req.NamespacedName) {
			select {
			case f.wake <- event.GenericEvent{Object: &v1alpha1.UserImport{ObjectMeta: metav1.ObjectMeta{Namespace: k.Namespace, Name: k.Name}}}:
			case <-ctx.Done():
				return
			}
		}
	}()
	return reconcile.Result{}, nil
}

// takeEnded returns, and forgets, the error of the work on key that failed.
func (f *UserImportFollowUpReconciler) takeEnded(key types.NamespacedName) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	err := f.ended[key]
	delete(f.ended, key)
	return err
}

// followUp sends the report that is due, or archives the source of a
// completed import, on a fresh copy.
func (f *UserImportFollowUpReconciler) followUp(ctx context.Context, key types.NamespacedName) error {
	r := f.UserImportReconciler
	imp := &v1alpha1.UserImport{}
	if err := r.APIReader.Get(ctx, key, imp); err != nil {
		return client.IgnoreNotFound(err)
	}
	if !imp.DeletionTimestamp.IsZero() {
		return nil
	}
	if phase, _ := reportDue(imp, r.Clock.Now()); phase != "" {
		return r.sendReport(ctx, imp, phase)
	}
	if archiveDue(imp) {
		run := &importRun{UserImportReconciler: r, imp: imp, status: newStatusPatch(r.Client, r.Recorder, imp)}
		run.archiveSource(ctx)
		// A conflict is looked at again on the next copy: the end of
		// the work wakes the import.
		if err := run.status.finish(ctx, nil); err != nil && !errors.Is(err, errConflict) {
			return err
		}
	}
	return nil
}

// owes tells whether imp owes a report, now or after a backoff, or the
// archiving of its source.
func owes(imp *v1alpha1.UserImport, now time.Time) bool {
	phase, wait := reportDue(imp, now)
	return phase != "" || wait > 0 || archiveDue(imp)
}

// archiveDue tells whether imp completed with a file to move or delete
// that was not moved or deleted yet.
func archiveDue(imp *v1alpha1.UserImport) bool {
	a, st := imp.Spec.Source.AfterImport, imp.Status.Source
	return imp.Status.Phase == v1alpha1.PhaseCompleted && a != nil && a.Action != "" && a.Action != v1alpha1.AfterImportKeep &&
		st != nil && st.Name != "" && st.AfterImport == nil
}

// SetupWithManager registers the follow-up controller: it looks at an
// import when it is created (or listed at start) and when its phase
// changes; a report that waits for its backoff asks to be looked at
// again.
func (f *UserImportFollowUpReconciler) SetupWithManager(mgr ctrl.Manager) error {
	limit := f.Workers
	if limit <= 0 {
		limit = 64
	}
	f.slots, f.wake, f.ended = newNamespaceSlots(limit), make(chan event.GenericEvent, 1024), map[types.NamespacedName]error{}
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.UserImport{}, builder.WithPredicates(predicate.Funcs{
			// At a start, the thousands of finished imports that owe
			// nothing are not queued behind the few that do.
			CreateFunc: func(e event.CreateEvent) bool {
				imp, ok := e.Object.(*v1alpha1.UserImport)
				return ok && owes(imp, f.Clock.Now())
			},
			UpdateFunc: func(e event.UpdateEvent) bool {
				o, ok1 := e.ObjectOld.(*v1alpha1.UserImport)
				n, ok2 := e.ObjectNew.(*v1alpha1.UserImport)
				return ok1 && ok2 && (o.Status.Phase != n.Status.Phase || (o.Status.Preview == nil) != (n.Status.Preview == nil))
			},
			DeleteFunc: func(event.DeleteEvent) bool { return false },
		})).
		WatchesRawSource(ctrlsource.Channel(f.wake, &handler.EnqueueRequestForObject{})).
		// A reconcile only reads the cache and starts work.
		WithOptions(controller.Options{MaxConcurrentReconciles: 2}).
		Named("userimport-followup").
		Complete(f)
}
