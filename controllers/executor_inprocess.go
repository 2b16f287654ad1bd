package controllers

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/jobs"
)

// InProcessExecutor runs stages as goroutines of the manager, with the
// worker code injected as Run. It is for local runs and clusters where
// Jobs cannot run. Runs do not survive a restart of the manager: the
// controller then starts the stage again, and the worker resumes from the
// checkpoint in status.
type InProcessExecutor struct {
	// Run is the worker (worker.RunInProcess).
	Run jobs.RunFunc
	// Client is handed to Run; it must not cache.
	Client client.Client

	events chan event.GenericEvent

	mu   sync.Mutex
	runs map[runKey]*run
	base context.Context
	stop context.CancelFunc
}

type runKey struct {
	namespace, name string
	stage           jobs.Stage
}

type run struct {
	cancel  context.CancelFunc
	done    bool
	outcome jobs.Outcome
	err     error
}

var _ jobs.Executor = (*InProcessExecutor)(nil)

// NewInProcessExecutor returns an executor that calls fn.
func NewInProcessExecutor(fn jobs.RunFunc, c client.Client) *InProcessExecutor {
	base, stop := context.WithCancel(context.Background())
	return &InProcessExecutor{
		Run: fn, Client: c,
		events: make(chan event.GenericEvent, 1024),
		runs:   map[runKey]*run{}, base: base, stop: stop,
	}
}

// Events tells the controller that a run ended.
func (e *InProcessExecutor) Events() <-chan event.GenericEvent { return e.events }

// Shutdown cancels every run; the manager calls it when it stops.
func (e *InProcessExecutor) Shutdown() { e.stop() }

// Start runs stage of imp in a goroutine, unless a run of it exists.
func (e *InProcessExecutor) Start(_ context.Context, imp *v1alpha1.UserImport, dir *v1alpha1.UserDirectory, stage jobs.Stage) error {
	if e.Run == nil {
		return errors.New("the in-process executor has no worker in this build")
	}
	k := runKey{imp.Namespace, imp.Name, stage}
	e.mu.Lock()
	defer e.mu.Unlock()
	if _, ok := e.runs[k]; ok {
		return nil
	}
	ctx, cancel := context.WithCancel(e.base)
	r := &run{cancel: cancel}
	e.runs[k] = r
	cfg := jobs.RunConfig{Namespace: imp.Namespace, Import: imp.Name, Stage: stage, Directory: *dir.Spec.DeepCopy(), Client: e.Client}
	notify := &v1alpha1.UserImport{}
	notify.Namespace, notify.Name = imp.Namespace, imp.Name
	go func() {
		out, err := e.safeRun(ctx, cfg)
		e.mu.Lock()
		r.done, r.outcome, r.err = true, out, err
		e.mu.Unlock()
		cancel()
		select {
		case e.events <- event.GenericEvent{Object: notify}:
		default: // the controller also polls running imports
		}
	}()
	return nil
}

// safeRun turns a panic of the worker into a failure of the run; the
// panic value is not kept, since it might hold row values.
func (e *InProcessExecutor) safeRun(ctx context.Context, cfg jobs.RunConfig) (out jobs.Outcome, err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("the %s worker panicked", cfg.Stage)
		}
	}()
	return e.Run(ctx, cfg)
}

// Status reports the run of stage.
func (e *InProcessExecutor) Status(_ context.Context, imp *v1alpha1.UserImport, stage jobs.Stage) (jobs.StageStatus, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, ok := e.runs[runKey{imp.Namespace, imp.Name, stage}]
	switch {
	case !ok:
		return jobs.StageStatus{}, nil
	case !r.done:
		return jobs.StageStatus{Found: true, Running: true}, nil
	case r.err != nil:
		return jobs.StageStatus{Found: true, Failed: true, Message: r.err.Error()}, nil
	}
	return jobs.StageStatus{Found: true, Done: true, SafetyStop: r.outcome.SafetyStop}, nil
}

// Reset forgets the run of stage, stopping it if it still runs.
func (e *InProcessExecutor) Reset(_ context.Context, imp *v1alpha1.UserImport, stage jobs.Stage) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	k := runKey{imp.Namespace, imp.Name, stage}
	if r, ok := e.runs[k]; ok {
		r.cancel()
		delete(e.runs, k)
	}
	return nil
}

// Cancel stops and forgets the runs of both stages.
func (e *InProcessExecutor) Cancel(ctx context.Context, imp *v1alpha1.UserImport) error {
	for _, s := range []jobs.Stage{jobs.StagePreview, jobs.StageImport} {
		if err := e.Reset(ctx, imp, s); err != nil {
			return err
		}
	}
	return nil
}
