// Command fleet measures the manager at fleet scale: one operator serving
// many teams, some of whose servers never answer.
//
// It starts a control plane (envtest) and the operator's manager binary
// against it (in-process executor: the real worker writes into SQLite
// directories; with the flags the sizing guide gives 5,000 schedules,
// -manager-flags), then creates:
//
//   - 500 namespaces, each with a UserDirectory: 480 SQLite directories,
//     and 20 whose SCIM server, mail relay and SFTP server are black holes
//     (they accept TCP connections and never answer);
//   - 5,000 ImportSchedules: half cron (daily, not due during the run),
//     half on change with pollSeconds 60, 100 of those on one ConfigMap,
//     and in the black-holed namespaces on the black-holed SFTP server;
//   - 20,000 finished UserImports in history (those of the black-holed
//     namespaces owe a report mail to the black-holed relay).
//
// Once the first contents of the schedules on change have run and the
// manager's queues are empty, it measures
// a steady state (-steady, 10 minutes), then a burst of 1,000 new
// UserImports and 200 ConfigMap changes. It prints
//
//	BENCH fleet namespaces=… schedules=… imports=… directories=… hung=… manager_rss_mib=… manager_cpu_s_per_min=… api_rps=… admit_p50_s=… admit_p99_s=… change_p99_s=… errors=… seen_p50_s=… seen_p99_s=…
//
// manager_rss_mib is the manager's peak resident memory; api_rps its
// requests per second to the API server in the steady state (client-go's
// rest_client_requests_total); admit_* the time from a new UserImport's
// creation to its admission, the first phase the controller gives it
// (Importing, or ImportPending behind another import of its directory),
// at the Event the manager emits once it wrote it; seen_* the same as the
// bench's own watch saw it, which on 2 busy cores can fall behind;
// change_p99_s from a ConfigMap change to the import of a schedule on
// it; errors the reconcile errors (controller_runtime_reconcile_errors_total)
// from the steady state on.
package main

import (
	"bytes"
	"cmp"
	"context"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/hack/bench/benchio"
	"github.com/userimport/user-import-operator/internal/scheme"
	"github.com/userimport/user-import-operator/internal/testenv"
	"github.com/userimport/user-import-operator/internal/testpeer/blackhole"
)

var (
	namespaces = flag.Int("namespaces", 500, "namespaces, one UserDirectory each")
	hung       = flag.Int("hung", 20, "namespaces whose directory, mail and SFTP servers are black holes")
	schedules  = flag.Int("schedules", 5000, "ImportSchedules, half cron and half on change")
	shared     = flag.Int("shared", 100, "schedules on change on one ConfigMap")
	history    = flag.Int("imports", 20000, "finished UserImports in history")
	burst      = flag.Int("burst", 1000, "new UserImports in the burst")
	changes    = flag.Int("changes", 200, "ConfigMap changes in the burst")
	steady     = flag.Duration("steady", 10*time.Minute, "the steady state measured")
	profile    = flag.String("profile", "", "a file for the manager's CPU profile of the burst's first 30 s; the API server's goes to the file + .apiserver")
	// The flags the sizing guide (docs/operations.md) gives a manager of
	// 5,000 schedules.
	managerFlags = flag.String("manager-flags", "--kube-api-qps=300 --kube-api-burst=600 --import-workers=32", "flags of the manager, beside the bench's own")
)

const poll, debounce = 60, 30

func main() {
	flag.Parse()
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
}

func say(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s fleet: %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}

func run() error {
	ctx := context.Background()
	work, err := os.MkdirTemp("", "uio-fleet-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)

	env, err := testenv.New("")
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	cfg := *env.Config
	cfg.QPS, cfg.Burst = 2000, 4000
	c, err := client.New(&cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		return err
	}
	kubeconfig := filepath.Join(work, "kubeconfig")
	if err := env.WriteKubeconfig(kubeconfig); err != nil {
		return err
	}
	hole, err := blackhole.Start()
	if err != nil {
		return err
	}
	defer hole.Close()

	f := &fleet{c: c, work: work, hole: hole.Port, seen: map[string]time.Time{}, created: map[string]time.Time{}}
	start := time.Now()
	if err := f.create(ctx); err != nil {
		return err
	}
	say("created %d namespaces, %d schedules, %d finished imports in %s", *namespaces, f.schedules, f.history, time.Since(start).Round(time.Second))

	// The bench watches imports as a tenant's kubectl would.
	if err := f.watch(ctx, &cfg); err != nil {
		return err
	}

	mgr, err := startManager(ctx, work, kubeconfig, strings.Fields(*managerFlags))
	if err != nil {
		return err
	}
	defer mgr.stop()

	// The first contents of the schedules on change run (after their
	// debounce), and the history is reconciled once. The hundred on one
	// ConfigMap import into one directory, one at a time: their queue
	// drains during the steady state, as a fleet's queues do.
	want := f.onChangeHealthy - *shared
	say("waiting for the %d first-content imports of the schedules on change", want)
	if err := f.waitCompleted(ctx, want, 20*time.Minute); err != nil {
		return err
	}
	// Then every queue empties: the history, reconciled once after a
	// start, is not the steady state.
	if err := mgr.waitIdle(20 * time.Minute); err != nil {
		return err
	}
	say("settled after %s (manager RSS %d MiB)", time.Since(start).Round(time.Second), mgr.peakRSS()>>20)

	errs0, _ := mgr.metric("controller_runtime_reconcile_errors_total")
	req0, _ := mgr.metric("rest_client_requests_total")
	byMethod0 := mgr.byLabel("rest_client_requests_total", "method")
	served0 := served(ctx, &cfg)
	cpu0 := benchio.ProcessCPU(mgr.cmd.Process.Pid)
	t0 := time.Now()
	say("steady state for %s", *steady)
	time.Sleep(*steady)
	req1, _ := mgr.metric("rest_client_requests_total")
	cpu1 := benchio.ProcessCPU(mgr.cmd.Process.Pid)
	elapsed := time.Since(t0)
	apiRPS := (req1 - req0) / elapsed.Seconds()
	cpuPerMin := (cpu1 - cpu0).Seconds() / elapsed.Minutes()
	byMethod1 := mgr.byLabel("rest_client_requests_total", "method")
	var parts []string
	for m, v := range byMethod1 {
		parts = append(parts, fmt.Sprintf("%s %.1f/s", m, (v-byMethod0[m])/elapsed.Seconds()))
	}
	slices.Sort(parts)
	say("steady: %.1f requests/s (%s), %.2f CPU s/min", apiRPS, strings.Join(parts, ", "), cpuPerMin)
	say("steady, as the API server served them: %s", topRates(served0, served(ctx, &cfg), elapsed, 12))
	f.recentlyWritten(ctx, time.Minute)

	diag := diagnose(ctx, mgr, &cfg)
	admit, seen, change, err := f.burst(ctx, diag)
	if err != nil {
		return err
	}
	diag.end(ctx)
	errs1, _ := mgr.metric("controller_runtime_reconcile_errors_total")
	say("reconcile errors by controller: %v", mgr.byLabel("controller_runtime_reconcile_errors_total", "controller"))
	fmt.Printf("BENCH fleet namespaces=%d schedules=%d imports=%d directories=%d hung=%d manager_rss_mib=%d manager_cpu_s_per_min=%.2f api_rps=%.1f admit_p50_s=%.2f admit_p99_s=%.2f change_p99_s=%.1f errors=%.0f seen_p50_s=%.2f seen_p99_s=%.2f\n",
		*namespaces, f.schedules, f.history, *namespaces, *hung, mgr.peakRSS()>>20, cpuPerMin, apiRPS,
		quantile(admit, 0.5), quantile(admit, 0.99), quantile(change, 0.99), errs1-errs0, quantile(seen, 0.5), quantile(seen, 0.99))
	return nil
}

// fleet is what the bench made, and what it saw of the imports.
type fleet struct {
	c    client.Client
	work string
	hole int32

	schedules, history, onChangeHealthy int
	// cms are the ConfigMaps of the schedules on change, with the
	// schedules on each.
	cms []watchedCM

	mu sync.Mutex
	// seen is when each import (namespace/name) was first seen admitted:
	// given a phase past Draft and PreviewPending.
	seen map[string]time.Time
	// created is when each import was first seen at all.
	created   map[string]time.Time
	completed atomic.Int64
}

type watchedCM struct {
	namespace, name string
	schedules       []string
}

func nsName(i int) string { return fmt.Sprintf("fleet-%03d", i) }
func isHung(i int) bool   { return i >= *namespaces-*hung }

// watch follows every UserImport: when it appeared, when its first stage
// started, and how many of the schedules' imports completed.
func (f *fleet) watch(ctx context.Context, cfg *rest.Config) error {
	ca, err := cache.New(cfg, cache.Options{Scheme: scheme.New()})
	if err != nil {
		return err
	}
	inf, err := ca.GetInformer(ctx, &v1alpha1.UserImport{})
	if err != nil {
		return err
	}
	note := func(obj any) {
		imp, ok := obj.(*v1alpha1.UserImport)
		if !ok {
			return
		}
		if strings.HasPrefix(imp.Name, "done-") {
			return // history
		}
		key := imp.Namespace + "/" + imp.Name
		now := time.Now()
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.created[key]; !ok {
			f.created[key] = now
		}
		switch imp.Status.Phase {
		case "", v1alpha1.PhaseDraft, v1alpha1.PhasePreviewPending:
		default:
			if _, ok := f.seen[key]; !ok {
				f.seen[key] = now
			}
		}
		if imp.Status.Phase == v1alpha1.PhaseCompleted && imp.Labels[v1alpha1.ScheduleLabel] != "" {
			if _, ok := f.seen[key+"#done"]; !ok {
				f.seen[key+"#done"] = now
				f.completed.Add(1)
			}
		}
	}
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    note,
		UpdateFunc: func(_, obj any) { note(obj) },
	}); err != nil {
		return err
	}
	go func() { _ = ca.Start(ctx) }()
	if !ca.WaitForCacheSync(ctx) {
		return fmt.Errorf("the bench's watch of imports did not sync")
	}
	return nil
}

// waitCompleted waits until n imports of schedules completed.
func (f *fleet) waitCompleted(ctx context.Context, n int, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	last := time.Now()
	for {
		done := int(f.completed.Load())
		if done >= n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d imports of schedules completed within %s", done, n, limit)
		}
		if time.Since(last) > 30*time.Second {
			say("%d of %d imports of schedules completed", done, n)
			last = time.Now()
		}
		time.Sleep(time.Second)
	}
}

// burst creates the new imports and changes the ConfigMaps at once, and
// returns the admission delays, by the manager's Events (admittedAt) and
// as the bench's watch saw them, and the delays from a change to the
// import of each schedule on that ConfigMap.
func (f *fleet) burst(ctx context.Context, diag *diagnosis) (admit, seen, change []float64, err error) {
	healthy := *namespaces - *hung - 1
	names := make([]string, *burst)
	createdAt := make([]time.Time, *burst)
	// The changes: the shared ConfigMap and others, each watched.
	picked := []watchedCM{}
	for _, w := range f.cms {
		if w.name == "shared" {
			picked = append(picked, w)
		}
	}
	for _, w := range f.cms {
		if len(picked) >= *changes {
			break
		}
		if w.name != "shared" {
			picked = append(picked, w)
		}
	}
	changedAt := make([]time.Time, len(picked))
	var wg sync.WaitGroup
	wg.Add(2)
	var errA, errB error
	go func() {
		defer wg.Done()
		errA = parallel(*burst, func(k int) error {
			ns := nsName(1 + k%healthy)
			name := fmt.Sprintf("burst-%d", k)
			names[k] = ns + "/" + name
			createdAt[k] = time.Now()
			return f.c.Create(ctx, &v1alpha1.UserImport{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
				Spec: importSpec(v1alpha1.ImportSource{ConfigMap: &v1alpha1.ConfigMapKeyRef{Name: "export-0", Key: "users.csv"}})})
		})
	}()
	go func() {
		defer wg.Done()
		errB = parallel(len(picked), func(k int) error {
			w := picked[k]
			cm := &corev1.ConfigMap{}
			if err := f.c.Get(ctx, client.ObjectKey{Namespace: w.namespace, Name: w.name}, cm); err != nil {
				return err
			}
			cm.Data["users.csv"] += "changed@fleet.example\n"
			changedAt[k] = time.Now()
			return f.c.Update(ctx, cm)
		})
	}()
	wg.Wait()
	if errA != nil || errB != nil {
		return nil, nil, nil, fmt.Errorf("burst: %v %v", errA, errB)
	}
	say("burst sent: %d imports, %d ConfigMap changes", *burst, len(picked))

	limit := time.Now().Add(time.Duration(poll+debounce)*time.Second + 5*time.Minute)
	told := false
	for time.Now().Before(limit) {
		seen, change = f.delays(names, createdAt, picked, changedAt)
		if len(seen) == *burst && !told {
			told = true
			diag.admitted(ctx)
			say("admissions seen by the watch, by second (created/admitted): %s", timeline(names, createdAt, f.seenCopy()))
		}
		if len(seen) == *burst && len(change) == countSchedules(picked) {
			break
		}
		time.Sleep(time.Second)
	}
	seen, change = f.delays(names, createdAt, picked, changedAt)
	if len(seen) < *burst || len(change) < countSchedules(picked) {
		say("only %d of %d imports admitted, %d of %d changes imported", len(seen), *burst, len(change), countSchedules(picked))
		for _, w := range picked[:min(3, len(picked))] {
			var s v1alpha1.ImportSchedule
			if err := f.c.Get(ctx, client.ObjectKey{Namespace: w.namespace, Name: w.schedules[0]}, &s); err == nil {
				say("schedule %s/%s: last %+v pending %+v conditions %+v", s.Namespace, s.Name, s.Status.LastChange, s.Status.PendingChange, s.Status.Conditions)
			}
		}
		// What was not seen counts as the whole wait.
		for len(seen) < *burst {
			seen = append(seen, time.Since(createdAt[0]).Seconds())
		}
		for len(change) < countSchedules(picked) {
			change = append(change, time.Since(changedAt[0]).Seconds())
		}
	}
	written, err := f.admittedAt(ctx)
	if err != nil {
		return nil, nil, nil, err
	}
	say("admissions written by the manager, by second (created/admitted): %s", timeline(names, createdAt, written))
	seenAt, missing := f.seenCopy(), 0
	for k, n := range names {
		t, ok := written[n]
		if !ok {
			// The watch's time stands for it, or the whole wait.
			missing++
			if t, ok = seenAt[n]; !ok {
				t = time.Now()
			}
		}
		admit = append(admit, t.Sub(createdAt[k]).Seconds())
	}
	if missing > 0 {
		say("%d of %d imports have no Event of their admission; the watch's times stand for them", missing, *burst)
	}
	return admit, seen, change, nil
}

// admittedAt is when the manager wrote each new import's first phase
// past Draft and PreviewPending, by the Event it emits once that write
// succeeded (events.k8s.io/v1, whose times are in microseconds). It is
// the manager's side of an admission: a watch that falls behind in a
// burst (the bench's own, on 2 busy cores) sees admissions late, all at
// once when it catches up.
func (f *fleet) admittedAt(ctx context.Context) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	cont := ""
	for {
		var list eventsv1.EventList
		if err := f.c.List(ctx, &list, client.Limit(5000), client.Continue(cont)); err != nil {
			return nil, fmt.Errorf("listing Events: %w", err)
		}
		for _, e := range list.Items {
			if e.Regarding.Kind != "UserImport" || !strings.HasPrefix(e.Regarding.Name, "burst-") || !strings.HasPrefix(e.Note, "phase ") {
				continue
			}
			switch v1alpha1.ImportPhase(e.Reason) {
			case v1alpha1.PhaseDraft, v1alpha1.PhasePreviewPending:
				continue
			}
			key := e.Regarding.Namespace + "/" + e.Regarding.Name
			if t, ok := out[key]; !ok || e.EventTime.Before(&metav1.MicroTime{Time: t}) {
				out[key] = e.EventTime.Time
			}
		}
		if cont = list.Continue; cont == "" {
			return out, nil
		}
	}
}

// seenCopy is a copy of when the watch saw each import admitted.
func (f *fleet) seenCopy() map[string]time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.seen)
}

// timeline counts, by second from the first creation, the new imports
// created and those admitted at: "second:created/admitted".
func timeline(names []string, createdAt []time.Time, at map[string]time.Time) string {
	t0 := slices.MinFunc(createdAt, func(a, b time.Time) int { return a.Compare(b) })
	created, admitted := map[int]int{}, map[int]int{}
	last := 0
	for k, n := range names {
		created[int(createdAt[k].Sub(t0).Seconds())]++
		if t, ok := at[n]; ok {
			a := int(t.Sub(t0).Seconds())
			admitted[a]++
			last = max(last, a)
		}
	}
	var parts []string
	for s := 0; s <= last; s++ {
		if created[s] > 0 || admitted[s] > 0 {
			parts = append(parts, fmt.Sprintf("%d:%d/%d", s, created[s], admitted[s]))
		}
	}
	return strings.Join(parts, " ")
}

func countSchedules(ws []watchedCM) int {
	n := 0
	for _, w := range ws {
		n += len(w.schedules)
	}
	return n
}

func (f *fleet) delays(names []string, createdAt []time.Time, picked []watchedCM, changedAt []time.Time) (admit, change []float64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for k, n := range names {
		if t, ok := f.seen[n]; ok {
			admit = append(admit, t.Sub(createdAt[k]).Seconds())
		}
	}
	for k, w := range picked {
		for _, s := range w.schedules {
			// The import of the change: the first import of the schedule
			// that appeared after it.
			var first time.Time
			for key, t := range f.created {
				if strings.HasPrefix(key, w.namespace+"/"+s+"-change-") && t.After(changedAt[k]) && (first.IsZero() || t.Before(first)) {
					first = t
				}
			}
			if !first.IsZero() {
				change = append(change, first.Sub(changedAt[k]).Seconds())
			}
		}
	}
	return admit, change
}

func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[min(len(s)-1, int(q*float64(len(s))))]
}

// served is what the API server served so far (apiserver_request_total)
// by verb, resource and subresource: whose requests the steady state is
// made of. The bench's own watch is a single request.
func served(ctx context.Context, cfg *rest.Config) map[string]float64 {
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil
	}
	body, err := cs.CoreV1().RESTClient().Get().AbsPath("/metrics").DoRaw(ctx)
	if err != nil {
		say("reading the API server's metrics: %v", err)
		return nil
	}
	return byLabels(bytes.NewReader(body), "apiserver_request_total", "verb", "resource", "subresource")
}

// topRates is the n largest rates of after-before over elapsed.
func topRates(before, after map[string]float64, elapsed time.Duration, n int) string {
	type rate struct {
		what string
		v    float64
	}
	var rs []rate
	for k, v := range after {
		if d := (v - before[k]) / elapsed.Seconds(); d >= 0.05 {
			rs = append(rs, rate{strings.TrimSpace(k), d})
		}
	}
	slices.SortFunc(rs, func(a, b rate) int { return cmp.Compare(b.v, a.v) })
	var parts []string
	for _, r := range rs[:min(n, len(rs))] {
		parts = append(parts, fmt.Sprintf("%s %.1f/s", r.what, r.v))
	}
	return strings.Join(parts, ", ")
}

// recentlyWritten says which imports had their status written within the
// last while, by tenant (hung or not), phase and Ready reason: what the
// steady state's writes are made of.
func (f *fleet) recentlyWritten(ctx context.Context, within time.Duration) {
	var list v1alpha1.UserImportList
	if err := f.c.List(ctx, &list); err != nil {
		say("listing imports: %v", err)
		return
	}
	since := time.Now().Add(-within)
	groups := map[string]int{}
	for _, imp := range list.Items {
		for _, m := range imp.ManagedFields {
			if m.Subresource == "status" && m.Time != nil && m.Time.After(since) {
				tenant := "healthy"
				if strings.HasPrefix(imp.Name, "done-") {
					tenant = "history"
				}
				var i int
				if _, err := fmt.Sscanf(imp.Namespace, "fleet-%d", &i); err == nil && isHung(i) {
					tenant += "/hung"
				}
				reason := ""
				for _, c := range imp.Status.Conditions {
					if c.Type == v1alpha1.ConditionReady {
						reason = c.Reason
					}
				}
				groups[fmt.Sprintf("%s %s %s (%s)", tenant, imp.Status.Phase, reason, m.Manager)]++
			}
		}
	}
	var parts []string
	for g, n := range groups {
		parts = append(parts, fmt.Sprintf("%d %s", n, g))
	}
	slices.Sort(parts)
	say("imports whose status was written in the last %s: %s", within, strings.Join(parts, "; "))
}
