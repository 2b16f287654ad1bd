package controllers

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/schedule"
)

// Default history limits, as in the API's defaults.
const (
	defaultSuccessfulHistoryLimit = 3
	defaultFailedHistoryLimit     = 1
)

// listChildren lists the imports this schedule controls, oldest
// scheduled time first.
func (run *scheduleRun) listChildren(ctx context.Context) error {
	var list v1alpha1.UserImportList
	if err := run.Client.List(ctx, &list, client.InNamespace(run.sched.Namespace),
		client.MatchingFields{scheduleOwnerIndex: run.sched.Name}); err != nil {
		return fmt.Errorf("listing imports: %w", err)
	}
	run.children = run.children[:0]
	for _, imp := range list.Items {
		// A schedule deleted and created again under the same name does
		// not inherit the imports of the old one.
		if run.owns(&imp) {
			run.children = append(run.children, imp)
		}
	}
	sort.SliceStable(run.children, func(i, j int) bool {
		ti, tj := scheduledAt(&run.children[i]), scheduledAt(&run.children[j])
		if !ti.Equal(tj) {
			return ti.Before(tj)
		}
		return run.children[i].Name < run.children[j].Name
	})
	return nil
}

func (run *scheduleRun) owns(imp *v1alpha1.UserImport) bool {
	ref := metav1.GetControllerOf(imp)
	return ref != nil && ref.UID == run.sched.UID
}

// scheduledAt is the time of the import's run: its annotation, else its
// creation.
func scheduledAt(imp *v1alpha1.UserImport) time.Time {
	if v, ok := imp.Annotations[v1alpha1.ScheduledAtAnnotation]; ok {
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			return t
		}
	}
	return imp.CreationTimestamp.Time
}

func phaseOf(imp *v1alpha1.UserImport) v1alpha1.ImportPhase {
	if imp.Status.Phase == "" {
		return "new"
	}
	return imp.Status.Phase
}

// active returns the children that are not final, oldest first.
func (run *scheduleRun) active() []v1alpha1.UserImport {
	var out []v1alpha1.UserImport
	for _, imp := range run.children {
		if !imp.Status.Phase.IsFinal() {
			out = append(out, imp)
		}
	}
	return out
}

// summarizeChildren writes the active imports, the last import and the
// last success into the status.
func (run *scheduleRun) summarizeChildren() {
	st := &run.sched.Status
	st.Active = nil
	for _, imp := range run.active() {
		st.Active = append(st.Active, imp.Name)
	}
	st.ActiveCount = int32(len(st.Active))
	if n := len(run.children); n > 0 {
		last := &run.children[n-1]
		summary := &v1alpha1.LastImportSummary{Name: last.Name, Phase: last.Status.Phase}
		if p := last.Status.Progress; p != nil {
			summary.Counts = p.ChangeCounts
		}
		st.LastImport = summary
	}
	for _, imp := range run.children {
		if imp.Status.Phase != v1alpha1.PhaseCompleted {
			continue
		}
		done := scheduledAt(&imp)
		if imp.Status.CompletionTime != nil {
			done = imp.Status.CompletionTime.Time
		}
		if st.LastSuccessfulTime == nil || done.After(st.LastSuccessfulTime.Time) {
			st.LastSuccessfulTime = &metav1.Time{Time: done}
		}
	}
}

// trimHistory deletes the oldest final imports beyond the history
// limits: successfulHistoryLimit for Completed ones, failedHistoryLimit
// for Failed and Cancelled ones.
func (run *scheduleRun) trimHistory(ctx context.Context) error {
	succeeded, failed := int32(defaultSuccessfulHistoryLimit), int32(defaultFailedHistoryLimit)
	if l := run.sched.Spec.SuccessfulHistoryLimit; l != nil {
		succeeded = *l
	}
	if l := run.sched.Spec.FailedHistoryLimit; l != nil {
		failed = *l
	}
	var done, bad []*v1alpha1.UserImport
	for i := range run.children {
		switch imp := &run.children[i]; imp.Status.Phase {
		case v1alpha1.PhaseCompleted:
			done = append(done, imp)
		case v1alpha1.PhaseFailed, v1alpha1.PhaseCancelled:
			bad = append(bad, imp)
		}
	}
	var deleted []string
	for _, group := range []struct {
		imports []*v1alpha1.UserImport
		keep    int
	}{{done, int(succeeded)}, {bad, int(failed)}} {
		// children are oldest first: the ones before the last keep go.
		for i := 0; i < len(group.imports)-group.keep; i++ {
			imp := group.imports[i]
			if err := run.Client.Delete(ctx, imp, client.PropagationPolicy(metav1.DeletePropagationBackground),
				client.Preconditions{UID: &imp.UID}); client.IgnoreNotFound(err) != nil && !apierrors.IsConflict(err) {
				return fmt.Errorf("deleting UserImport %s of the history: %w", imp.Name, err)
			}
			deleted = append(deleted, imp.Name)
		}
	}
	if len(deleted) > 0 {
		run.children = slices.DeleteFunc(run.children, func(imp v1alpha1.UserImport) bool {
			return slices.Contains(deleted, imp.Name)
		})
		run.record(corev1.EventTypeNormal, v1alpha1.ReasonHistoryDeleted, "Delete", nil, "deleted %d imports beyond the history limits: %v", len(deleted), deleted)
	}
	return nil
}

// getChild returns the import called name as reader has it, or nil when
// there is none.
func (run *scheduleRun) getChild(ctx context.Context, reader client.Reader, name string) (*v1alpha1.UserImport, error) {
	imp := &v1alpha1.UserImport{}
	err := reader.Get(ctx, types.NamespacedName{Namespace: run.sched.Namespace, Name: name}, imp)
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("getting UserImport %s: %w", name, err)
	}
	return imp, nil
}

// buildChild returns the import of a run scheduled (or asked for) at t,
// from the template as it is now: an edit of the template changes only
// the runs that start after it.
func buildChild(sched *v1alpha1.ImportSchedule, name string, t time.Time, change *v1alpha1.Change) *v1alpha1.UserImport {
	tmpl := sched.Spec.Template
	labels := maps.Clone(tmpl.Metadata.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[v1alpha1.ScheduleLabel] = schedule.LabelValue(sched.Name)
	annotations := maps.Clone(tmpl.Metadata.Annotations)
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[v1alpha1.ScheduledAtAnnotation] = t.UTC().Format(time.RFC3339)
	if change != nil {
		c := *change
		c.ImportName = ""
		b, _ := json.Marshal(c)
		annotations[v1alpha1.ScheduleChangeAnnotation] = string(b)
	}
	return &v1alpha1.UserImport{
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Namespace:   sched.Namespace,
			Labels:      labels,
			Annotations: annotations,
		},
		Spec: *tmpl.Spec.DeepCopy(),
	}
}

// createChild creates the import called name for the run at t and
// records an Event with reason and note ("created UserImport <name>
// <note>"). An import of that name that exists already (created by a
// reconcile of a stale copy) is left as it is.
func (run *scheduleRun) createChild(ctx context.Context, name string, t time.Time, change *v1alpha1.Change, reason, note string) error {
	imp := buildChild(run.sched, name, t, change)
	if err := controllerutil.SetControllerReference(run.sched, imp, run.Client.Scheme()); err != nil {
		return err
	}
	err := run.Client.Create(ctx, imp)
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("creating UserImport %s: %w", name, err)
	}
	run.children = append(run.children, *imp)
	run.record(corev1.EventTypeNormal, reason, "Create", imp, "created UserImport %s %s", imp.Name, note)
	return nil
}

// cancel asks the UserImport controller to cancel an import, for
// concurrencyPolicy Replace: spec.action Cancel is the one change the API
// allows even while Importing.
func (run *scheduleRun) cancel(ctx context.Context, imp *v1alpha1.UserImport) error {
	if imp.Spec.Action == v1alpha1.ActionCancel {
		return nil
	}
	patch := client.MergeFrom(imp.DeepCopy())
	imp.Spec.Action = v1alpha1.ActionCancel
	err := run.Client.Patch(ctx, imp, patch)
	switch {
	case apierrors.IsNotFound(err):
		return nil
	case apierrors.IsInvalid(err):
		// It reached a final phase in the meantime: nothing to cancel.
		return nil
	case err != nil:
		return fmt.Errorf("cancelling UserImport %s: %w", imp.Name, err)
	}
	run.record(corev1.EventTypeNormal, v1alpha1.ReasonReplacing, "Cancel", imp,
		"concurrencyPolicy Replace: cancelling UserImport %s (%s) to start the next run", imp.Name, phaseOf(imp))
	return nil
}
