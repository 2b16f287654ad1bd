package controllers

import (
	"context"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/userimport/user-import-operator/api/v1alpha1"
)

// UserImportFollowUpReconciler does what an import owes once a phase is
// written and that talks to a server outside the cluster: the report mail
// (spec.report) and the move or delete of the source file
// (spec.source.afterImport). It has workers of its own: a relay or an
// SFTP server that never answers costs the import it serves time, never
// the admission or the progress of another import, which the UserImport
// controller decides.
type UserImportFollowUpReconciler struct {
	*UserImportReconciler
	// Workers is the number of imports followed up at once (4 when unset).
	Workers int
}

// Reconcile sends a report that is due, or archives the source of a
// completed import, one at a time; it comes back for the next.
func (f *UserImportFollowUpReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	r := f.UserImportReconciler
	// The cache says whether anything is owed; the work reads afresh.
	var cached v1alpha1.UserImport
	if err := r.Client.Get(ctx, req.NamespacedName, &cached); err != nil {
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	if phase, wait := reportDue(&cached, r.Clock.Now()); phase == "" && !archiveDue(&cached) {
		return reconcile.Result{RequeueAfter: wait}, nil
	}
	imp := &v1alpha1.UserImport{}
	if err := r.APIReader.Get(ctx, req.NamespacedName, imp); err != nil {
		if apierrors.IsNotFound(err) {
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, err
	}
	if !imp.DeletionTimestamp.IsZero() {
		return reconcile.Result{}, nil
	}
	if phase, _ := reportDue(imp, r.Clock.Now()); phase != "" {
		if err := r.sendReport(ctx, imp, phase); err != nil {
			return reconcile.Result{}, err
		}
		// The record changed the import: the next look reads it back.
		return reconcile.Result{RequeueAfter: 100 * time.Millisecond}, nil
	}
	if archiveDue(imp) {
		run := &importRun{UserImportReconciler: r, imp: imp, status: newStatusPatch(r.Client, r.Recorder, imp)}
		run.archiveSource(ctx)
		if err := run.status.finish(ctx, nil); err != nil {
			return finished(reconcile.Result{}, err)
		}
		return reconcile.Result{RequeueAfter: 100 * time.Millisecond}, nil
	}
	_, wait := reportDue(imp, r.Clock.Now())
	return reconcile.Result{RequeueAfter: wait}, nil
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
	workers := f.Workers
	if workers <= 0 {
		workers = 4
	}
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
		WithOptions(controller.Options{MaxConcurrentReconciles: workers}).
		Named("userimport-followup").
		Complete(f)
}
