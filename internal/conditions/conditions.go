// Package conditions keeps the kstatus conditions of an object (Ready,
// Reconciling, Stalled) consistent with each other. The condition types
// and reasons themselves are part of the API, in api/v1alpha1.
package conditions

import (
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/safetext"
)

// State says which kstatus state an object is in.
type State int

const (
	// Ready: the object reached the state its spec asks for.
	Ready State = iota
	// Progressing: the controller is working, or waiting for something
	// that will come without a person (a queue, a Job, a directory).
	Progressing
	// Stalled: nothing moves until a person changes something.
	Stalled
	// Failing: the last attempt failed and will be retried (Ready=False,
	// neither Reconciling nor Stalled).
	Failing
)

// Set sets Ready, Reconciling and Stalled for state. Reconciling and
// Stalled are present only while True (abnormal-true polarity, as kstatus
// expects).
func Set(conds *[]metav1.Condition, generation int64, state State, reason, message string) {
	set := func(t string, s metav1.ConditionStatus) {
		meta.SetStatusCondition(conds, metav1.Condition{
			Type: t, Status: s, Reason: reason, Message: safetext.Clean(message), ObservedGeneration: generation,
		})
	}
	switch state {
	case Ready:
		set(v1alpha1.ConditionReady, metav1.ConditionTrue)
		meta.RemoveStatusCondition(conds, v1alpha1.ConditionReconciling)
		meta.RemoveStatusCondition(conds, v1alpha1.ConditionStalled)
	case Progressing:
		set(v1alpha1.ConditionReady, metav1.ConditionFalse)
		set(v1alpha1.ConditionReconciling, metav1.ConditionTrue)
		meta.RemoveStatusCondition(conds, v1alpha1.ConditionStalled)
	case Stalled:
		set(v1alpha1.ConditionReady, metav1.ConditionFalse)
		set(v1alpha1.ConditionStalled, metav1.ConditionTrue)
		meta.RemoveStatusCondition(conds, v1alpha1.ConditionReconciling)
	case Failing:
		set(v1alpha1.ConditionReady, metav1.ConditionFalse)
		meta.RemoveStatusCondition(conds, v1alpha1.ConditionReconciling)
		meta.RemoveStatusCondition(conds, v1alpha1.ConditionStalled)
	}
}
