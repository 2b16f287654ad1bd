// Package conditions keeps the kstatus conditions of an object (Ready,
// Reconciling, Stalled) consistent with each other. The condition types
// and reasons themselves are part of the API, in api/v1alpha1.
package conditions

import (
	"fmt"

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

// Object is an object of this API: its status holds conditions.
type Object interface {
	GetGeneration() int64
	GetConditions() []metav1.Condition
	SetConditions([]metav1.Condition)
}

// Set sets Ready, Reconciling and Stalled of obj for state. Reconciling
// and Stalled are present only while True (abnormal-true polarity, as
// kstatus expects).
func Set(obj Object, state State, reason, message string) {
	switch state {
	case Ready:
		MarkTrue(obj, v1alpha1.ConditionReady, reason, "%s", message)
		Remove(obj, v1alpha1.ConditionReconciling)
		Remove(obj, v1alpha1.ConditionStalled)
	case Progressing:
		MarkFalse(obj, v1alpha1.ConditionReady, reason, "%s", message)
		MarkTrue(obj, v1alpha1.ConditionReconciling, reason, "%s", message)
		Remove(obj, v1alpha1.ConditionStalled)
	case Stalled:
		MarkFalse(obj, v1alpha1.ConditionReady, reason, "%s", message)
		MarkTrue(obj, v1alpha1.ConditionStalled, reason, "%s", message)
		Remove(obj, v1alpha1.ConditionReconciling)
	case Failing:
		MarkFalse(obj, v1alpha1.ConditionReady, reason, "%s", message)
		Remove(obj, v1alpha1.ConditionReconciling)
		Remove(obj, v1alpha1.ConditionStalled)
	}
}

// MarkTrue sets condition t of obj True, observed at obj's generation,
// with reason and the message of format and args (control characters
// replaced, bounded: safetext.Clean).
func MarkTrue(obj Object, t, reason, format string, args ...any) {
	mark(obj, t, metav1.ConditionTrue, reason, fmt.Sprintf(format, args...))
}

// MarkFalse sets condition t of obj False, as MarkTrue does True.
func MarkFalse(obj Object, t, reason, format string, args ...any) {
	mark(obj, t, metav1.ConditionFalse, reason, fmt.Sprintf(format, args...))
}

// Remove removes condition t of obj.
func Remove(obj Object, t string) {
	conds := obj.GetConditions()
	meta.RemoveStatusCondition(&conds, t)
	obj.SetConditions(conds)
}

func mark(obj Object, t string, status metav1.ConditionStatus, reason, message string) {
	conds := obj.GetConditions()
	meta.SetStatusCondition(&conds, metav1.Condition{
		Type: t, Status: status, Reason: reason, Message: safetext.Clean(message), ObservedGeneration: obj.GetGeneration(),
	})
	obj.SetConditions(conds)
}
