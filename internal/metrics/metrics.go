// Package metrics holds the operator's Prometheus metrics, registered with
// controller-runtime's registry so that the manager's /metrics serves them.
package metrics

import (
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/userimport/user-import-operator/api/v1alpha1"
)

var (
	// Imports counts the UserImports by phase.
	Imports = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "userimport_imports",
		Help: "Number of UserImports by phase.",
	}, []string{"phase"})

	// RowsProcessed counts the rows imports processed, by outcome (created,
	// updated, unchanged, deactivated, deleted, failed). It is fed from the
	// progress the workers report in status.
	RowsProcessed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "userimport_rows_processed_total",
		Help: "Rows processed by imports, by outcome.",
	}, []string{"outcome"})

	// ImportDuration observes the time from Importing to a final phase.
	ImportDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "userimport_import_duration_seconds",
		Help:    "Duration of imports from the start of Importing to Completed or Failed.",
		Buckets: prometheus.ExponentialBuckets(1, 2, 16), // 1 s … 9 h
	}, []string{"result"})

	// QueueLength is the number of imports waiting for a directory.
	QueueLength = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "userimport_queue_length",
		Help: "Number of UserImports waiting (ImportPending) to write to a UserDirectory.",
	}, []string{"namespace", "directory"})

	// DirectoryReady is 1 for a UserDirectory whose last check succeeded.
	DirectoryReady = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "userimport_directory_ready",
		Help: "1 when the UserDirectory is Ready (its last check succeeded), 0 when not.",
	}, []string{"namespace", "directory"})

	// ScheduleMissedRuns counts the runs ImportSchedules missed (the
	// operator was down, or the schedule suspended, past a run).
	ScheduleMissedRuns = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "userimport_schedule_missed_runs_total",
		Help: "Runs of ImportSchedules that were missed.",
	}, []string{"namespace", "schedule"})

	// ImportsFailed counts the imports that ended Failed.
	ImportsFailed = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "userimport_imports_failed_total",
		Help: "UserImports that ended Failed.",
	}, []string{"namespace"})

	// AwaitingApproval is the number of imports stopped at the safety
	// threshold that wait for a person's approval.
	AwaitingApproval = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "userimport_imports_awaiting_approval",
		Help: "UserImports stopped at the safety threshold, waiting for approval.",
	}, []string{"namespace"})
)

func init() {
	ctrlmetrics.Registry.MustRegister(Imports, RowsProcessed, ImportDuration, QueueLength,
		DirectoryReady, ScheduleMissedRuns, ImportsFailed, AwaitingApproval)
}

// Tracker turns the phases and progress of imports, as reconcilers see
// them, into the gauges and counters above. It is safe for concurrent use.
type Tracker struct {
	mu       sync.Mutex
	phases   map[string]v1alpha1.ImportPhase
	progress map[string]v1alpha1.ProgressStatus
	// waiting holds the imports awaiting approval, by key.
	waiting map[string]bool
}

// NewTracker returns an empty Tracker.
func NewTracker() *Tracker {
	return &Tracker{phases: map[string]v1alpha1.ImportPhase{}, progress: map[string]v1alpha1.ProgressStatus{}, waiting: map[string]bool{}}
}

// Observe records the phase and progress of the import key
// ("namespace/name"), and whether it awaits approval. The first
// observation of an import is a baseline: rows it processed, or a failure
// it had, before this process saw it are not counted again after a
// restart.
func (t *Tracker) Observe(key string, phase v1alpha1.ImportPhase, progress *v1alpha1.ProgressStatus, awaitingApproval bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ns, _, _ := strings.Cut(key, "/")
	// Present from the first import of a namespace on, so that rules
	// over them have a series to read.
	ImportsFailed.WithLabelValues(ns).Add(0)
	if old, ok := t.phases[key]; !ok || old != phase {
		if ok && old != "" {
			Imports.WithLabelValues(string(old)).Dec()
		}
		if phase != "" {
			Imports.WithLabelValues(string(phase)).Inc()
		}
		if ok && phase == v1alpha1.PhaseFailed {
			ImportsFailed.WithLabelValues(ns).Inc()
		}
		t.phases[key] = phase
	}
	if awaitingApproval {
		t.waiting[key] = true
	} else {
		delete(t.waiting, key)
	}
	t.setWaiting(ns)
	var now v1alpha1.ProgressStatus
	if progress != nil {
		now = *progress
	}
	last, seen := t.progress[key]
	t.progress[key] = now
	if !seen {
		return
	}
	add := func(outcome string, before, after int64) {
		if after > before {
			RowsProcessed.WithLabelValues(outcome).Add(float64(after - before))
		}
	}
	add("created", last.Created, now.Created)
	add("updated", last.Updated, now.Updated)
	add("unchanged", last.Unchanged, now.Unchanged)
	add("deactivated", last.Deactivated, now.Deactivated)
	add("deleted", last.Deleted, now.Deleted)
	add("failed", last.Failed, now.Failed)
}

// Forget drops a deleted import.
func (t *Tracker) Forget(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if old, ok := t.phases[key]; ok && old != "" {
		Imports.WithLabelValues(string(old)).Dec()
	}
	delete(t.phases, key)
	delete(t.progress, key)
	delete(t.waiting, key)
	ns, _, _ := strings.Cut(key, "/")
	t.setWaiting(ns)
}

// setWaiting sets the awaiting-approval gauge of namespace ns.
func (t *Tracker) setWaiting(ns string) {
	n := 0
	for k := range t.waiting {
		if strings.HasPrefix(k, ns+"/") {
			n++
		}
	}
	AwaitingApproval.WithLabelValues(ns).Set(float64(n))
}
