package executor

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"

	"k8s.io/apimachinery/pkg/labels"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/runcontract"
)

// InProcess runs stages as goroutines of the manager, with the
// worker code injected as Run. It is for local runs and clusters where
// Jobs cannot run. Runs do not survive a restart of the manager: the
// controller then starts the stage again, and the worker resumes from the
// checkpoint in status.
type InProcess struct {
	// Run is the worker (worker.RunInProcess).
	Run RunFunc
	// Client is handed to Run; it must not cache.
	Client client.Client
	// AmbientS3 and DialControl are handed to Run (RunConfig).
	AmbientS3   func(bucket string) bool
	DialControl func(network, address string, c syscall.RawConn) error
	// SecretSelector is handed to Run (RunConfig).
	SecretSelector labels.Selector

	// slots bounds the runs at a time: the others wait for one.
	slots chan struct{}

	events chan event.GenericEvent

	mu   sync.Mutex
	runs map[runKey]*run
	base context.Context
	stop context.CancelFunc
}

type runKey struct {
	namespace, name string
	stage           runcontract.Stage
}

type run struct {
	cancel context.CancelFunc
	done   bool
	out    runcontract.Outcome
}

var _ Executor = (*InProcess)(nil)

// NewInProcess returns an executor that calls fn.
func NewInProcess(fn RunFunc, c client.Client, maxRuns int) *InProcess {
	base, stop := context.WithCancel(context.Background())
	if maxRuns < 1 {
		maxRuns = DefaultInProcessRuns
	}
	return &InProcess{
		Run: fn, Client: c, slots: make(chan struct{}, maxRuns),
		events: make(chan event.GenericEvent, 1024),
		runs:   map[runKey]*run{}, base: base, stop: stop,
	}
}

// Events tells the controller that a run ended.
func (e *InProcess) Events() <-chan event.GenericEvent { return e.events }

// Shutdown cancels every run; the manager calls it when it stops.
func (e *InProcess) Shutdown() { e.stop() }

// Start runs stage of imp in a goroutine, unless a run of it exists.
func (e *InProcess) Start(_ context.Context, imp *v1alpha1.UserImport, dir *v1alpha1.UserDirectory, stage runcontract.Stage) error {
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
	cfg := RunConfig{Namespace: imp.Namespace, Import: imp.Name, Stage: stage, Directory: *dir.Spec.DeepCopy(), Client: e.Client, AmbientS3: e.AmbientS3, DialControl: e.DialControl, SecretSelector: e.SecretSelector}
	notify := &v1alpha1.UserImport{}
	notify.Namespace, notify.Name = imp.Namespace, imp.Name
	go func() {
		out := e.slotRun(ctx, cfg)
		e.mu.Lock()
		r.done, r.out = true, out
		e.mu.Unlock()
		cancel()
		select {
		case e.events <- event.GenericEvent{Object: notify}:
		default: // the controller also polls running imports
		}
	}()
	return nil
}

// slotRun runs cfg once a slot is free: the runs of every tenant share
// the manager's memory and CPU.
func (e *InProcess) slotRun(ctx context.Context, cfg RunConfig) runcontract.Outcome {
	select {
	case e.slots <- struct{}{}:
	case <-ctx.Done():
		return runcontract.OutcomeOf(nil, "", ctx.Err())
	}
	defer func() { <-e.slots }()
	return e.safeRun(ctx, cfg)
}

// DefaultInProcessRuns bounds the in-process runs at a time by default.
const DefaultInProcessRuns = 2

// safeRun turns a panic of the worker into a failure of the run; the
// panic value is not kept, since it might hold row values.
func (e *InProcess) safeRun(ctx context.Context, cfg RunConfig) (out runcontract.Outcome) {
	defer func() {
		if p := recover(); p != nil {
			out = runcontract.Outcome{Kind: runcontract.Failed, Message: fmt.Sprintf("the %s worker panicked", cfg.Stage)}
		}
	}()
	return e.Run(ctx, cfg)
}

// Prepare makes the Secrets of imp's codes the worker may need next.
func (e *InProcess) Prepare(ctx context.Context, imp *v1alpha1.UserImport) error {
	if !imp.Spec.RecoveryCodes.Enabled() {
		return nil
	}
	return PrepareCodes(ctx, e.Client, e.Client, imp)
}

// Status reports the run of stage.
func (e *InProcess) Status(_ context.Context, imp *v1alpha1.UserImport, stage runcontract.Stage) (StageStatus, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, ok := e.runs[runKey{imp.Namespace, imp.Name, stage}]
	switch {
	case !ok:
		return StageStatus{}, nil
	case !r.done:
		return StageStatus{Found: true, Running: true}, nil
	}
	return StageStatus{Found: true, Outcome: r.out}, nil
}

// Running tells whether the run of stage is under way.
func (e *InProcess) Running(_ context.Context, imp *v1alpha1.UserImport, stage runcontract.Stage) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	r, ok := e.runs[runKey{imp.Namespace, imp.Name, stage}]
	return ok && !r.done
}

// Reset forgets the run of stage, stopping it if it still runs.
func (e *InProcess) Reset(_ context.Context, imp *v1alpha1.UserImport, stage runcontract.Stage) error {
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
func (e *InProcess) Cancel(ctx context.Context, imp *v1alpha1.UserImport) error {
	for _, s := range []runcontract.Stage{runcontract.StagePreview, runcontract.StageImport} {
		if err := e.Reset(ctx, imp, s); err != nil {
			return err
		}
	}
	return nil
}
