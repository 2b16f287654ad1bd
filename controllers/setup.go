package controllers

import (
	"context"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"github.com/userimport/user-import-operator/internal/executor"

	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/manager"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/egress"
	"github.com/userimport/user-import-operator/internal/jobs"
	"github.com/userimport/user-import-operator/internal/metrics"
	"github.com/userimport/user-import-operator/internal/source"
)

// Executor kinds of Options.Executor.
const (
	ExecutorJob       = "job"
	ExecutorInProcess = "inprocess"
)

// Options configure the controllers.
type Options struct {
	// Executor is ExecutorJob (the default) or ExecutorInProcess.
	Executor string
	// Job settings of the Job executor.
	Job jobs.Settings
	// Run is the worker of the in-process executor (worker.RunInProcess);
	// required with it.
	Run executor.RunFunc
	// DirectoryCheckInterval is the time between checks of a Ready
	// directory (default 5 minutes).
	DirectoryCheckInterval time.Duration
	// DirectoryRetryInterval is the time between checks of a directory
	// that is not Ready (default 30 seconds).
	DirectoryRetryInterval time.Duration
	// PollInterval is how often running imports are looked at between
	// events (default 15 seconds).
	PollInterval time.Duration
	// AllowedHosts restricts the hosts the manager's own checks connect
	// to (directory checks, skipIfUnchanged); nil allows every host.
	AllowedHosts *egress.Policy
	// InProcessRuns bounds the runs of the in-process executor at a time
	// (default executor.DefaultInProcessRuns).
	InProcessRuns int
	// AmbientS3Buckets are the S3 buckets that the manager may reach with
	// its own cloud identity when a source names no credentials: its
	// schedule checks, afterImport and in-process runs. No other bucket
	// is reached without credentials.
	AmbientS3Buckets []string
	// SecretSelector, when set, is what the labels of a Secret that a
	// UserDirectory or UserImport names must match for the operator to
	// use it: its checks, its runs and the Secrets it mounts into Jobs.
	SecretSelector labels.Selector
	// DirectoryWorkers is the number of UserDirectories checked at once
	// (4 when unset).
	DirectoryWorkers int
	// FollowUpWorkers is the number of imports whose report mail or
	// afterImport archiving is under way at once, at most one per
	// namespace (64 when unset).
	FollowUpWorkers int
	// ScheduleWorkers is the number of ImportSchedules reconciled at once
	// (default 4).
	ScheduleWorkers int
	// ImportWorkers is the number of UserImports reconciled at once, one
	// at a time per directory (default 4).
	ImportWorkers int
	// CheckTimeout bounds one check of a directory, and one of its mail
	// relay (default 30 seconds).
	CheckTimeout time.Duration
	// ReportTimeout bounds one exchange with the relay that sends an
	// import's report (default 15 seconds).
	ReportTimeout time.Duration
}

// Setup registers the field indexes and the UserDirectory, UserImport and
// ImportSchedule reconcilers with mgr.
func Setup(mgr ctrl.Manager, o Options) error {
	if o.DirectoryCheckInterval <= 0 {
		o.DirectoryCheckInterval = 5 * time.Minute
	}
	if o.DirectoryRetryInterval <= 0 {
		o.DirectoryRetryInterval = 30 * time.Second
	}
	if o.DirectoryWorkers <= 0 {
		o.DirectoryWorkers = 4
	}
	if o.PollInterval <= 0 {
		o.PollInterval = 15 * time.Second
	}
	if o.CheckTimeout <= 0 {
		o.CheckTimeout = 30 * time.Second
	}
	if o.ReportTimeout <= 0 {
		o.ReportTimeout = 15 * time.Second
	}
	if err := mgr.GetFieldIndexer().IndexField(context.Background(), &v1alpha1.UserImport{}, directoryIndex,
		func(o client.Object) []string { return []string{o.(*v1alpha1.UserImport).Spec.DirectoryRef.Name} }); err != nil {
		return fmt.Errorf("indexing imports by directory: %w", err)
	}

	var exec executor.Executor
	var runEnded <-chan event.GenericEvent
	switch o.Executor {
	case "", ExecutorJob:
		exec = &executor.Job{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Settings: o.Job, SecretSelector: o.SecretSelector}
	case ExecutorInProcess:
		if o.Run == nil {
			return fmt.Errorf("the in-process executor needs Options.Run")
		}
		direct, err := client.New(mgr.GetConfig(), client.Options{Scheme: mgr.GetScheme(), Mapper: mgr.GetRESTMapper()})
		if err != nil {
			return err
		}
		ip := executor.NewInProcess(o.Run, direct, o.InProcessRuns)
		ip.AmbientS3 = source.AmbientBuckets(o.AmbientS3Buckets)
		ip.DialControl = o.AllowedHosts.Control
		ip.SecretSelector = o.SecretSelector
		if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
			<-ctx.Done()
			ip.Shutdown()
			return nil
		})); err != nil {
			return err
		}
		exec, runEnded = ip, ip.Events()
	default:
		return fmt.Errorf("unknown executor %q: use %s or %s", o.Executor, ExecutorJob, ExecutorInProcess)
	}

	if err := (&UserDirectoryReconciler{
		Client:         mgr.GetClient(),
		APIReader:      mgr.GetAPIReader(),
		Recorder:       mgr.GetEventRecorder("userdirectory-controller"),
		CheckInterval:  o.DirectoryCheckInterval,
		RetryInterval:  o.DirectoryRetryInterval,
		CheckTimeout:   o.CheckTimeout,
		Workers:        o.DirectoryWorkers,
		AllowedHosts:   o.AllowedHosts,
		SecretSelector: o.SecretSelector,
		Clock:          clock.RealClock{},
	}).SetupWithManager(mgr); err != nil {
		return err
	}
	imports := &UserImportReconciler{
		Client:         mgr.GetClient(),
		APIReader:      mgr.GetAPIReader(),
		Recorder:       mgr.GetEventRecorder("userimport-controller"),
		Executor:       exec,
		Metrics:        metrics.NewTracker(),
		PollInterval:   o.PollInterval,
		ReportTimeout:  o.ReportTimeout,
		Clock:          clock.RealClock{},
		AllowedHosts:   o.AllowedHosts,
		AmbientS3:      source.AmbientBuckets(o.AmbientS3Buckets),
		SecretSelector: o.SecretSelector,
		Workers:        o.ImportWorkers,
	}
	if err := imports.SetupWithManager(mgr, runEnded); err != nil {
		return err
	}
	if err := (&UserImportFollowUpReconciler{UserImportReconciler: imports, Workers: o.FollowUpWorkers}).SetupWithManager(mgr); err != nil {
		return err
	}
	sched := NewImportScheduleReconciler(mgr)
	sched.AllowedHosts = o.AllowedHosts
	sched.AmbientS3 = source.AmbientBuckets(o.AmbientS3Buckets)
	sched.SecretSelector = o.SecretSelector
	sched.MaxConcurrentReconciles = o.ScheduleWorkers
	if err := sched.SetupWithManager(mgr); err != nil {
		return fmt.Errorf("setting up the ImportSchedule controller: %w", err)
	}
	return nil
}
