package controllers

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/conditions"
	"github.com/userimport/user-import-operator/internal/safetext"
)

// errConflict says that the object changed since the reconcile read it
// (the worker wrote its status, or the controller's own last write was not
// yet in the cache): nothing was written, and the reconcile runs again on
// a fresh copy. It is the expected outcome of optimistic concurrency, not
// a failure.
var errConflict = errors.New("the object changed since it was read")

// finished is the result of a reconcile whose status write ended with
// err: a conflict runs it again shortly, without counting as an error.
func finished(result ctrl.Result, err error) (ctrl.Result, error) {
	if errors.Is(err, errConflict) {
		return ctrl.Result{RequeueAfter: 100 * time.Millisecond}, nil
	}
	if err != nil {
		return ctrl.Result{}, err
	}
	return result, nil
}

// verdict is the outcome of one step of a reconcile: the kstatus state
// and reason, a message, and when to look again.
type verdict struct {
	state   conditions.State
	reason  string
	message string
	// requeueAfter asks to look again after a while (a wait); 0: not by
	// the clock.
	requeueAfter time.Duration
	// next asks to run the import's state machine again: the phase
	// changed and the new phase may move on at once.
	next bool
}

// statusObject is an object of this API: its status has conditions and
// the generation it was reconciled at.
type statusObject interface {
	client.Object
	conditions.Object
	SetObservedGeneration(int64)
}

// statusPatch is the skeleton every reconcile follows: remember the object
// as read, change its status in memory, and at the end write what changed
// in one patch, then emit the Events that go with it. An Event is emitted
// only once the status it tells of is written: a reconcile whose patch
// fails runs again, and must not tell the same story twice.
type statusPatch struct {
	client   client.Client
	recorder events.EventRecorder
	obj      statusObject
	orig     statusObject
	events   []pendingEvent
}

type pendingEvent struct {
	eventType, reason, action, note string
	related                         runtime.Object
}

func newStatusPatch(c client.Client, rec events.EventRecorder, obj statusObject) *statusPatch {
	return &statusPatch{client: c, recorder: rec, obj: obj, orig: obj.DeepCopyObject().(statusObject)}
}

// event queues an Event about obj, emitted once the status is written.
func (p *statusPatch) event(eventType, reason, action string, related runtime.Object, note string) {
	p.events = append(p.events, pendingEvent{eventType, reason, action, safetext.Clean(note), related})
}

// finish ends a reconcile. A reconcile error becomes the Ready condition
// (reason ReconcileError, retried with backoff) and a Warning Event; then
// what changed of the status is written as a merge patch guarded by the
// resourceVersion read, so that a status someone else changed in between
// (the worker, our own last write not yet in the cache) makes the patch
// fail and the reconcile run again on a fresh copy instead of deciding
// twice. It returns retErr joined with a failure to write.
func (p *statusPatch) finish(ctx context.Context, retErr error) error {
	if retErr == nil {
		// The one place the generation acted on is recorded.
		p.obj.SetObservedGeneration(p.obj.GetGeneration())
	} else {
		conditions.Set(p.obj, conditions.Failing, v1alpha1.ReasonReconcileError, safetext.Of(retErr))
		p.event(corev1.EventTypeWarning, v1alpha1.ReasonReconcileError, "Reconcile", nil, safetext.Of(retErr))
	}
	if !equality.Semantic.DeepEqual(p.orig, p.obj) {
		patch := client.MergeFromWithOptions(p.orig, client.MergeFromWithOptimisticLock{})
		if err := p.client.Status().Patch(ctx, p.obj, patch); err != nil {
			if retErr == nil && apierrors.IsConflict(err) {
				return errConflict
			}
			return safetext.Wrap(errors.Join(retErr, fmt.Errorf("patching status: %w", err)))
		}
	}
	for _, e := range p.events {
		p.recorder.Eventf(p.obj, e.related, e.eventType, e.reason, e.action, "%s", e.note)
	}
	p.events = nil
	return safetext.Wrap(retErr)
}
