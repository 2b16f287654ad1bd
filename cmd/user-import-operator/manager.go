package main

import (
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/filters"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/userimport/user-import-operator/controllers"
	"github.com/userimport/user-import-operator/internal/egress"
	"github.com/userimport/user-import-operator/internal/executor"
	"github.com/userimport/user-import-operator/internal/jobs"
	"github.com/userimport/user-import-operator/internal/scheme"
	"github.com/userimport/user-import-operator/internal/worker"
)

func runManager(args []string) error {
	fs := flag.NewFlagSet("manager", flag.ContinueOnError)
	metricsAddr := fs.String("metrics-bind-address", ":8443", "address the metrics endpoint binds to; 0 disables it")
	probeAddr := fs.String("health-probe-bind-address", ":8081", "address the health and readiness probes bind to")
	pprofAddr := fs.String("pprof-bind-address", "", "address Go's profiles (/debug/pprof/) are served on, in clear and to anyone who reaches it; empty: not served")
	leaderElect := fs.Bool("leader-elect", false, "elect a leader so that only one manager of several replicas reconciles")
	leaderNamespace := fs.String("leader-election-namespace", "", "namespace of the leader election lease (default: the pod's namespace)")
	secureMetrics := fs.Bool("metrics-secure", true, "serve metrics over HTTPS to callers whose token may get the /metrics URL (TokenReview and SubjectAccessReview); false serves them in clear to anyone")
	executorKind := fs.String("executor", controllers.ExecutorJob, "where previews and imports run: job (a batch/v1 Job per stage) or inprocess (inside this process)")
	workerImage := fs.String("worker-image", os.Getenv("OPERATOR_IMAGE"), "image of the worker Jobs: the operator's own (default $OPERATOR_IMAGE)")
	pullPolicy := fs.String("worker-image-pull-policy", string(corev1.PullIfNotPresent), "pull policy of the worker image")
	jobTTL := fs.Int("job-ttl-seconds", 3600, "seconds a finished worker Job is kept; negative keeps it until its import is deleted")
	checkInterval := fs.Duration("directory-check-interval", 5*time.Minute, "time between checks of a Ready UserDirectory")
	retryInterval := fs.Duration("directory-retry-interval", 30*time.Second, "time between checks of a UserDirectory that is not Ready")
	pollInterval := fs.Duration("import-poll-interval", 15*time.Second, "how often running imports are looked at between events")
	allowedHosts := fs.String("allowed-hosts", "", "comma-separated host names, *.domain wildcards (* for every name) and CIDRs that the manager's own connections (UserDirectory checks, schedule checks, afterImport, report mail, in-process runs) may reach; empty allows every name. Loopback, link-local and metadata addresses are refused at connect time unless a CIDR lists them")
	workerResources := fs.String("worker-resources", "", `the workers' resources where a UserDirectory names none, as JSON: {"requests":{"cpu":"100m","memory":"128Mi"},"limits":{"memory":"512Mi"}}`)
	watchNamespaces := fs.String("watch-namespaces", "", "comma-separated namespaces whose objects the manager reconciles; empty: every namespace")
	singleTenant := fs.Bool("single-tenant", false, "the cluster has one tenant: allows --executor=inprocess while watching more than one namespace")
	inProcessRuns := fs.Int("inprocess-max-runs", executor.DefaultInProcessRuns, "runs of the in-process executor at a time; the others wait")
	secretLabel := fs.String("secret-label", "", "a label selector (userimport.dev/usable=true) that every Secret a UserDirectory or UserImport names must match for the operator to use it; empty: any Secret of the object's namespace")
	directoryWorkers := fs.Int("directory-workers", 4, "UserDirectories checked at once: a check waits for the directory and the mail relay, up to 30 s each, and a server that hangs holds up only its own")
	importWorkers := fs.Int("import-workers", 4, "UserImports reconciled at once; the imports of one directory are reconciled one at a time, so that its queue order stays exact")
	scheduleWorkers := fs.Int("schedule-workers", 4, "ImportSchedules reconciled at once; a schedule's reconcile never waits for a file server (sources are read in the background, once per poll interval for all the schedules on one source)")
	apiQPS := fs.Float64("kube-api-qps", 50, "requests per second the manager may send to the API server, sustained; each distinct Secret source of the schedules on change costs one request per poll interval (ConfigMaps are watched)")
	apiBurst := fs.Int("kube-api-burst", 100, "requests the manager may send to the API server in a burst above --kube-api-qps")
	followUpWorkers := fs.Int("follow-up-workers", 64, "imports whose report mail or afterImport move or delete is under way at once, at most one per namespace; these talk to servers outside the cluster, beside the reconciles, so that a server that never answers holds up only its own namespace's")
	ambientBuckets := fs.String("s3-ambient-buckets", "", "comma-separated S3 buckets that the manager (schedule checks, afterImport, in-process runs) may reach with its own cloud identity when a source names no credentials; empty: none")
	opts := zap.Options{}
	opts.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	allowed, err := egress.Parse(*allowedHosts)
	if err != nil {
		return fmt.Errorf("--allowed-hosts: %w", err)
	}
	var secretSelector labels.Selector
	if *secretLabel != "" {
		if secretSelector, err = labels.Parse(*secretLabel); err != nil {
			return fmt.Errorf("--secret-label: %w", err)
		}
	}
	var resources *corev1.ResourceRequirements
	if *workerResources != "" {
		resources = &corev1.ResourceRequirements{}
		if err := json.Unmarshal([]byte(*workerResources), resources); err != nil {
			return fmt.Errorf("--worker-resources: %w", err)
		}
	}
	// Nothing reads the field managers of a cached object: 20,000
	// imports hold tens of MiB of them.
	cacheOpts := cache.Options{DefaultTransform: cache.TransformStripManagedFields()}
	if *watchNamespaces != "" {
		cacheOpts.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range splitList(*watchNamespaces) {
			cacheOpts.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	if *executorKind == controllers.ExecutorInProcess && len(cacheOpts.DefaultNamespaces) != 1 && !*singleTenant {
		// In process, every tenant's run has the manager's network
		// position, credentials and memory.
		return fmt.Errorf("--executor=inprocess runs every tenant's imports inside the manager: watch one namespace (--watch-namespaces) or say the cluster has one tenant (--single-tenant)")
	}
	ctrl.SetLogger(zap.New(zap.UseFlagOptions(&opts)))
	log := ctrl.Log.WithName("setup")

	restConfig := ctrl.GetConfigOrDie()
	restConfig.QPS, restConfig.Burst = float32(*apiQPS), *apiBurst
	mgr, err := ctrl.NewManager(restConfig, ctrl.Options{
		Scheme: scheme.New(),
		Metrics: metricsserver.Options{
			BindAddress:    *metricsAddr,
			SecureServing:  *secureMetrics,
			FilterProvider: metricsFilter(*secureMetrics),
			// HTTP/2 is off: it exposes the metrics server to the HTTP/2
			// Stream Cancellation and Rapid Reset CVEs.
			TLSOpts: []func(*tls.Config){func(c *tls.Config) { c.NextProtos = []string{"http/1.1"} }},
		},
		Cache:                   cacheOpts,
		HealthProbeBindAddress:  *probeAddr,
		PprofBindAddress:        *pprofAddr,
		LeaderElection:          *leaderElect,
		LeaderElectionID:        "user-import-operator.userimport.dev",
		LeaderElectionNamespace: *leaderNamespace,
	})
	if err != nil {
		return fmt.Errorf("creating the manager: %w", err)
	}
	settings := jobs.Settings{Image: *workerImage, PullPolicy: corev1.PullPolicy(*pullPolicy), Resources: resources}
	if *jobTTL >= 0 {
		ttl := int32(*jobTTL)
		settings.TTLSecondsAfterFinished = &ttl
	}
	if *executorKind == controllers.ExecutorJob && *workerImage == "" {
		return fmt.Errorf("--worker-image (or OPERATOR_IMAGE) is required with --executor=job")
	}
	if err := controllers.Setup(mgr, controllers.Options{
		Executor:               *executorKind,
		Job:                    settings,
		Run:                    worker.RunInProcess,
		DirectoryCheckInterval: *checkInterval,
		DirectoryRetryInterval: *retryInterval,
		PollInterval:           *pollInterval,
		AllowedHosts:           allowed,
		InProcessRuns:          *inProcessRuns,
		AmbientS3Buckets:       splitList(*ambientBuckets),
		SecretSelector:         secretSelector,
		FollowUpWorkers:        *followUpWorkers,
		DirectoryWorkers:       *directoryWorkers,
		ScheduleWorkers:        *scheduleWorkers,
		ImportWorkers:          *importWorkers,
	}); err != nil {
		return fmt.Errorf("setting up the controllers: %w", err)
	}
	if err := mgr.AddHealthzCheck("healthz", healthz.Ping); err != nil {
		return err
	}
	if err := mgr.AddReadyzCheck("readyz", healthz.Ping); err != nil {
		return err
	}
	log.Info("starting manager", "version", version)
	return mgr.Start(ctrl.SetupSignalHandler())
}

// splitList splits a comma-separated flag value, dropping empty entries.
func splitList(v string) []string {
	var out []string
	for _, e := range strings.Split(v, ",") {
		if e = strings.TrimSpace(e); e != "" {
			out = append(out, e)
		}
	}
	return out
}

// metricsFilter authenticates and authorizes metrics callers when they are
// served securely: a caller's token must be allowed to get /metrics (the
// metrics-reader ClusterRole).
func metricsFilter(secure bool) func(*rest.Config, *http.Client) (metricsserver.Filter, error) {
	if !secure {
		return nil
	}
	return filters.WithAuthenticationAndAuthorization
}
