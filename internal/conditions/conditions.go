// Package conditions holds the condition types and reasons the controllers
// write, and the helper that keeps the kstatus conditions (Ready,
// Reconciling, Stalled) consistent with each other.
package conditions

import (
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/userimport/user-import-operator/api/v1alpha1"
)

// Condition types beyond the kstatus ones of v1alpha1.
const (
	// SafetyThreshold is True while a full import waits for a person to
	// approve the deprovisions it would make.
	SafetyThreshold = "SafetyThreshold"
	// SourceChanged is True while an import waits for a person to look
	// at a new preview: its source changed after the preview it was
	// approved on, so it was refused before writing.
	SourceChanged = "SourceChanged"
)

// Reasons of UserImport conditions.
const (
	ReasonDraft              = "Draft"
	ReasonPreviewPending     = "PreviewPending"
	ReasonCreatingPreview    = "CreatingPreview"
	ReasonPreviewReady       = "PreviewReady"
	ReasonQueued             = "Queued"
	ReasonImporting          = "Importing"
	ReasonSucceeded          = "Succeeded"
	ReasonCancelled          = "Cancelled"
	ReasonPreviewFailed      = "PreviewFailed"
	ReasonImportFailed       = "ImportFailed"
	ReasonDirectoryNotFound  = "DirectoryNotFound"
	ReasonDirectoryNotReady  = "DirectoryNotReady"
	ReasonApprovalRequired   = "ApprovalRequired"
	ReasonPreviewInvalidated = "PreviewInvalidated"
	ReasonJobError           = "JobError"
	// ReasonIdentityMismatch: the mapping's identity entry writes another
	// attribute than the one the directory identifies users by.
	ReasonIdentityMismatch = "IdentityMismatch"
)

// Reasons of UserDirectory conditions not named by the provider errors
// (directory.Reason*).
const (
	ReasonConnected = "Connected"
	ReasonChecking  = "Checking"
)

// Kind says which kstatus state an object is in.
type Kind int

const (
	// KindReady: the object reached the state its spec asks for.
	KindReady Kind = iota
	// KindProgressing: the controller is working, or waiting for something
	// that will come without a person (a queue, a Job, a directory).
	KindProgressing
	// KindStalled: nothing moves until a person changes something.
	KindStalled
	// KindFailing: the last attempt failed and will be retried
	// (Ready=False, neither Reconciling nor Stalled).
	KindFailing
)

// SetKStatus sets Ready, Reconciling and Stalled for kind. Reconciling and
// Stalled are present only while True (abnormal-true polarity, as kstatus
// expects).
func SetKStatus(conds *[]metav1.Condition, generation int64, kind Kind, reason, message string) {
	set := func(t string, s metav1.ConditionStatus) {
		meta.SetStatusCondition(conds, metav1.Condition{
			Type: t, Status: s, Reason: reason, Message: Bound(message), ObservedGeneration: generation,
		})
	}
	switch kind {
	case KindReady:
		set(v1alpha1.ConditionReady, metav1.ConditionTrue)
		meta.RemoveStatusCondition(conds, v1alpha1.ConditionReconciling)
		meta.RemoveStatusCondition(conds, v1alpha1.ConditionStalled)
	case KindProgressing:
		set(v1alpha1.ConditionReady, metav1.ConditionFalse)
		set(v1alpha1.ConditionReconciling, metav1.ConditionTrue)
		meta.RemoveStatusCondition(conds, v1alpha1.ConditionStalled)
	case KindStalled:
		set(v1alpha1.ConditionReady, metav1.ConditionFalse)
		set(v1alpha1.ConditionStalled, metav1.ConditionTrue)
		meta.RemoveStatusCondition(conds, v1alpha1.ConditionReconciling)
	case KindFailing:
		set(v1alpha1.ConditionReady, metav1.ConditionFalse)
		meta.RemoveStatusCondition(conds, v1alpha1.ConditionReconciling)
		meta.RemoveStatusCondition(conds, v1alpha1.ConditionStalled)
	}
}

// MaxMessage is the longest condition message written; the API allows
// 32768 bytes, people read far less.
const MaxMessage = 1024

// Bound cuts a message to MaxMessage bytes.
func Bound(msg string) string {
	if len(msg) <= MaxMessage {
		return msg
	}
	// Cutting may split a multi-byte character; drop the broken tail.
	return strings.ToValidUTF8(msg[:MaxMessage-3], "") + "..."
}
