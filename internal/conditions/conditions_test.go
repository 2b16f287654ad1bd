package conditions

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/safetext"
)

// Set keeps Ready, Reconciling and Stalled consistent, Reconciling and
// Stalled present only while True, each observed at the generation.
func TestSetKeepsTheKstatusConditionsConsistent(t *testing.T) {
	imp := &v1alpha1.UserImport{}
	imp.Generation = 3
	for _, c := range []struct {
		state                State
		ready                metav1.ConditionStatus
		reconciling, stalled bool
	}{
		{Progressing, metav1.ConditionFalse, true, false},
		{Stalled, metav1.ConditionFalse, false, true},
		{Failing, metav1.ConditionFalse, false, false},
		{Ready, metav1.ConditionTrue, false, false},
	} {
		Set(imp, c.state, "Why", "what happened")
		ready := meta.FindStatusCondition(imp.Status.Conditions, v1alpha1.ConditionReady)
		if ready == nil || ready.Status != c.ready || ready.ObservedGeneration != 3 || ready.Reason != "Why" {
			t.Errorf("state %d: Ready %+v", c.state, ready)
		}
		if got := meta.IsStatusConditionTrue(imp.Status.Conditions, v1alpha1.ConditionReconciling); got != c.reconciling {
			t.Errorf("state %d: Reconciling %v", c.state, got)
		}
		if got := meta.IsStatusConditionTrue(imp.Status.Conditions, v1alpha1.ConditionStalled); got != c.stalled {
			t.Errorf("state %d: Stalled %v", c.state, got)
		}
		if n := len(imp.Status.Conditions); n != 1+btoi(c.reconciling)+btoi(c.stalled) {
			t.Errorf("state %d: %d conditions: %+v", c.state, n, imp.Status.Conditions)
		}
	}
}

// A message is one line, bounded, whatever it is made of.
func TestMarkBoundsTheMessage(t *testing.T) {
	dir := &v1alpha1.UserDirectory{}
	dir.Generation = 7
	MarkFalse(dir, v1alpha1.ConditionMailReady, v1alpha1.ReasonMailUnreachable, "relay %s: %s", "smtp.example", "line one\nline two"+strings.Repeat("x", 2*safetext.MaxLen))
	c := meta.FindStatusCondition(dir.Status.Conditions, v1alpha1.ConditionMailReady)
	if c == nil || c.Status != metav1.ConditionFalse || c.ObservedGeneration != 7 || strings.Contains(c.Message, "\n") ||
		len(c.Message) > safetext.MaxLen || !strings.HasPrefix(c.Message, "relay smtp.example: line one line two") {
		t.Fatalf("condition %+v", c)
	}
	MarkTrue(dir, v1alpha1.ConditionMailReady, v1alpha1.ReasonMailConnected, "answers")
	if !meta.IsStatusConditionTrue(dir.Status.Conditions, v1alpha1.ConditionMailReady) {
		t.Fatalf("conditions %+v", dir.Status.Conditions)
	}
	Remove(dir, v1alpha1.ConditionMailReady)
	if len(dir.Status.Conditions) != 0 {
		t.Fatalf("conditions %+v", dir.Status.Conditions)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
