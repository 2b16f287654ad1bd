// Package executor runs the stages of imports: in batch/v1 Jobs built by
// the jobs package (the default), or as goroutines of the manager (the
// in-process executor, for local runs and clusters where Jobs cannot run).
package executor

import (
	"context"
	"syscall"

	"k8s.io/apimachinery/pkg/labels"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/runcontract"
)

// Executor runs the stages of imports: in Jobs (the default) or inside the
// manager process. Implementations are safe for concurrent use.
type Executor interface {
	// Start begins stage of imp against dir. A run of that stage that is
	// already going on is adopted: Start never starts a second one.
	Start(ctx context.Context, imp *v1alpha1.UserImport, dir *v1alpha1.UserDirectory, stage runcontract.Stage) error
	// Status reports the run of stage of imp.
	Status(ctx context.Context, imp *v1alpha1.UserImport, stage runcontract.Stage) (StageStatus, error)
	// Running tells, from what the executor keeps or caches and without
	// a request, whether a run of stage of imp is under way. A run that
	// ended, or one it cannot tell of, is not.
	Running(ctx context.Context, imp *v1alpha1.UserImport, stage runcontract.Stage) bool
	// Reset forgets a finished run of stage, so that Start can begin a new
	// one (a preview made again after an edit, an approved import).
	Reset(ctx context.Context, imp *v1alpha1.UserImport, stage runcontract.Stage) error
	// Cancel stops every run of imp; progress already reported stays.
	Cancel(ctx context.Context, imp *v1alpha1.UserImport) error
	// Prepare keeps what a running import of imp needs in step with its
	// status: the Secrets of its codes (PrepareCodes), and the worker's
	// access to them.
	Prepare(ctx context.Context, imp *v1alpha1.UserImport) error
}

// StageStatus is what an Executor knows about one run.
type StageStatus struct {
	// Found is false when no run of the stage exists.
	Found bool
	// Running is true until the run ended.
	Running bool
	// Outcome is how the run ended, once it did.
	Outcome runcontract.Outcome
}

// Ended tells whether the run of the stage ended.
func (s StageStatus) Ended() bool { return s.Found && !s.Running }

// RunConfig is what the in-process executor hands the worker.
type RunConfig struct {
	// Namespace and Import name the UserImport.
	Namespace string
	Import    string
	// Stage to run.
	Stage runcontract.Stage
	// Directory is the spec of the import's UserDirectory, as the Job
	// worker reads it from EnvDirectory.
	Directory v1alpha1.UserDirectorySpec
	// Client reads the import, its source and the Secrets of the
	// namespace, and patches the import's status and report Secret. It
	// does not cache.
	Client client.Client
	// AmbientS3 tells which buckets named without credentials may be
	// read with the manager's own cloud identity (source.Options).
	AmbientS3 func(bucket string) bool
	// DialControl checks the address of every connection of the run
	// (egress.Policy.Control): in process, the run has the manager's
	// network position.
	DialControl func(network, address string, c syscall.RawConn) error
	// SecretSelector, when set, is what the labels of a Secret the run
	// reads must match (--secret-label).
	SecretSelector labels.Selector
}

// RunFunc runs one stage in process (worker.RunInProcess) and tells how
// it ended, as a Job's worker tells it in its termination message.
type RunFunc func(ctx context.Context, cfg RunConfig) runcontract.Outcome
