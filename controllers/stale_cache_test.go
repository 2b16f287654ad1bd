package controllers

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrl "sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/executor"
	"github.com/userimport/user-import-operator/internal/jobs"
	"github.com/userimport/user-import-operator/internal/metrics"
	"github.com/userimport/user-import-operator/internal/runcontract"
	"github.com/userimport/user-import-operator/internal/testenv"
)

func TestMain(m *testing.M) { os.Exit(testenv.RunShared(m)) }

// laggingCache stands in for a manager's cache that has not yet seen
// what was written to the imports since: it shows each UserImport as
// behind gives it, and none named in unseen (created since). Lists
// filter by the directory and schedule indexes as the cache's do, which
// the API server cannot.
type laggingCache struct {
	client.Client
	behind func(*v1alpha1.UserImport)
	unseen []string
}

// staleCache has seen no status write of any import: it shows every
// UserImport as new.
func staleCache(c client.Client) laggingCache {
	return laggingCache{Client: c, behind: func(imp *v1alpha1.UserImport) { imp.Status = v1alpha1.UserImportStatus{} }}
}

// frozenCache shows the imports named in frozen as they were there, and
// the others as they are.
func frozenCache(c client.Client, frozen ...*v1alpha1.UserImport) laggingCache {
	return laggingCache{Client: c, behind: func(imp *v1alpha1.UserImport) {
		for _, f := range frozen {
			if f.Name == imp.Name {
				f.DeepCopyInto(imp)
			}
		}
	}}
}

// blindCache shows the imports as they are, but none named in unseen.
func blindCache(c client.Client, unseen ...string) laggingCache {
	return laggingCache{Client: c, behind: func(*v1alpha1.UserImport) {}, unseen: unseen}
}

func (c laggingCache) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	if _, ok := obj.(*v1alpha1.UserImport); ok && slices.Contains(c.unseen, key.Name) {
		return apierrors.NewNotFound(v1alpha1.GroupVersion.WithResource("userimports").GroupResource(), key.Name)
	}
	if err := c.Client.Get(ctx, key, obj, opts...); err != nil {
		return err
	}
	if imp, ok := obj.(*v1alpha1.UserImport); ok {
		c.behind(imp)
	}
	return nil
}

func (c laggingCache) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	lo := (&client.ListOptions{}).ApplyOptions(opts)
	if err := c.Client.List(ctx, list, client.InNamespace(lo.Namespace)); err != nil {
		return err
	}
	imps, ok := list.(*v1alpha1.UserImportList)
	if !ok {
		return nil
	}
	indexed := func(*v1alpha1.UserImport) bool { return true }
	if lo.FieldSelector != nil {
		if want, ok := lo.FieldSelector.RequiresExactMatch(directoryIndex); ok {
			indexed = func(i *v1alpha1.UserImport) bool { return i.Spec.DirectoryRef.Name == want }
		}
		if want, ok := lo.FieldSelector.RequiresExactMatch(scheduleOwnerIndex); ok {
			indexed = func(i *v1alpha1.UserImport) bool {
				ref := metav1.GetControllerOf(i)
				return ref != nil && ref.Kind == "ImportSchedule" && ref.Name == want
			}
		}
	}
	kept := imps.Items[:0]
	for _, i := range imps.Items {
		c.behind(&i)
		if indexed(&i) && !slices.Contains(c.unseen, i.Name) {
			kept = append(kept, i)
		}
	}
	imps.Items = kept
	return nil
}

// finishedRun stands in for an executor that holds the finished run of
// every import; it records what the reconciler asks of it.
type finishedRun struct {
	executor.Executor
	calls []string
}

func (e *finishedRun) Status(context.Context, *v1alpha1.UserImport, runcontract.Stage) (executor.StageStatus, error) {
	return executor.StageStatus{Found: true}, nil
}
func (e *finishedRun) Running(context.Context, *v1alpha1.UserImport, runcontract.Stage) bool {
	return false
}
func (e *finishedRun) Reset(context.Context, *v1alpha1.UserImport, runcontract.Stage) error {
	e.calls = append(e.calls, "Reset")
	return nil
}
func (e *finishedRun) Start(context.Context, *v1alpha1.UserImport, *v1alpha1.UserDirectory, runcontract.Stage) error {
	e.calls = append(e.calls, "Start")
	return nil
}
func (e *finishedRun) Cancel(context.Context, *v1alpha1.UserImport) error {
	e.calls = append(e.calls, "Cancel")
	return nil
}

// readyTenant makes a namespace with a source ConfigMap and a Ready
// directory.
func readyTenant(t *testing.T, c client.Client) (*corev1.Namespace, *corev1.ConfigMap, *v1alpha1.UserDirectory) {
	t.Helper()
	ctx := context.Background()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "stale-cache-"}}
	if err := c.Create(ctx, ns); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Delete(context.Background(), ns) })
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "hr", Namespace: ns.Name}, Data: map[string]string{"users.csv": "email\na@example.com\n"}}
	dir := &v1alpha1.UserDirectory{ObjectMeta: metav1.ObjectMeta{Name: "corp", Namespace: ns.Name}, Spec: v1alpha1.UserDirectorySpec{
		SCIM: &v1alpha1.SCIMDirectory{URL: "https://idp.example.com/scim/v2"}, IdentityAttribute: "userName"}}
	for _, o := range []client.Object{cm, dir} {
		if err := c.Create(ctx, o); err != nil {
			t.Fatal(err)
		}
	}
	dir.Status.ObservedGeneration = dir.Generation
	meta.SetStatusCondition(&dir.Status.Conditions, metav1.Condition{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: "Ready", Message: "ready"})
	if err := c.Status().Update(ctx, dir); err != nil {
		t.Fatal(err)
	}

	return ns, cm, dir
}

// tenantImport is an import of readyTenant's file into its directory.
func tenantImport(meta metav1.ObjectMeta, action v1alpha1.ImportAction, cm *corev1.ConfigMap, dir *v1alpha1.UserDirectory) *v1alpha1.UserImport {
	return &v1alpha1.UserImport{ObjectMeta: meta, Spec: v1alpha1.UserImportSpec{
		Action:       action,
		DirectoryRef: v1alpha1.LocalObjectReference{Name: dir.Name},
		Source:       v1alpha1.ImportSource{ConfigMap: &v1alpha1.ConfigMapKeyRef{Name: cm.Name, Key: "users.csv"}},
		Mapping:      []v1alpha1.AttributeMapping{{Attribute: "userName", Column: "email", Identity: true}},
	}}
}

// A new import is admitted on the cache's copy, without a read. A copy
// that is behind the API server must never remove or start a run: an
// import whose finished run the cache has not yet seen is decided on a
// fresh copy, and its run stays.
func TestStaleNewImportLeavesFinishedRunAlone(t *testing.T) {
	_, c := testenv.Shared(t)
	ctx := context.Background()
	ns, cm, dir := readyTenant(t, c)

	for _, tc := range []struct {
		action v1alpha1.ImportAction
		done   v1alpha1.ImportPhase
	}{
		{v1alpha1.ActionImport, v1alpha1.PhaseCompleted},
		{v1alpha1.ActionPreview, v1alpha1.PhasePreviewReady},
	} {
		t.Run(string(tc.action), func(t *testing.T) {
			imp := tenantImport(metav1.ObjectMeta{GenerateName: "imp-", Namespace: ns.Name}, tc.action, cm, dir)
			if err := c.Create(ctx, imp); err != nil {
				t.Fatal(err)
			}
			// The run ended: the API server has the import's last phase.
			imp.Status.Phase = tc.done
			imp.Status.ObservedGeneration = imp.Generation
			if tc.action == v1alpha1.ActionPreview {
				imp.Status.Preview = &v1alpha1.PreviewStatus{Generation: imp.Generation}
			}
			if err := c.Status().Update(ctx, imp); err != nil {
				t.Fatal(err)
			}
			exec := &finishedRun{}
			r := &UserImportReconciler{Client: staleCache(c), APIReader: c, Recorder: events.NewFakeRecorder(100),
				Executor: exec, Metrics: metrics.NewTracker(), Clock: clock.RealClock{}}
			if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(imp)}); err != nil {
				t.Fatal(err)
			}
			if len(exec.calls) > 0 {
				t.Fatalf("a reconcile on a stale copy asked the executor to %s", strings.Join(exec.calls, ", "))
			}
			var got v1alpha1.UserImport
			if err := c.Get(ctx, client.ObjectKeyFromObject(imp), &got); err != nil {
				t.Fatal(err)
			}
			if got.Status.Phase != tc.done {
				t.Fatalf("phase %s, want %s", got.Status.Phase, tc.done)
			}
		})
	}
}

// listCounter counts the lists read from the API server.
type listCounter struct {
	client.Reader
	lists int
}

func (r *listCounter) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	r.lists++
	return r.Reader.List(ctx, list, opts...)
}

// noRun stands in for an executor that holds no run.
type noRun struct{ executor.Executor }

func (e *noRun) Status(context.Context, *v1alpha1.UserImport, runcontract.Stage) (executor.StageStatus, error) {
	return executor.StageStatus{}, nil
}
func (e *noRun) Running(context.Context, *v1alpha1.UserImport, runcontract.Stage) bool { return false }

// The queue of a directory is decided on the cache's copies once the
// cache shows the last phase the manager wrote there. A cache that has
// not yet seen an import start must not start a second one: the queue is
// then read afresh.
func TestQueueOnAStaleCacheStartsOneImport(t *testing.T) {
	_, c := testenv.Shared(t)
	ctx := context.Background()
	ns, cm, dir := readyTenant(t, c)
	imports := map[string]*v1alpha1.UserImport{}
	for _, name := range []string{"a", "b"} {
		imp := tenantImport(metav1.ObjectMeta{Name: name, Namespace: ns.Name}, v1alpha1.ActionImport, cm, dir)
		if err := c.Create(ctx, imp); err != nil {
			t.Fatal(err)
		}
		imports[name] = imp
	}
	api := &listCounter{Reader: c}
	r := &UserImportReconciler{Client: frozenCache(c), APIReader: api, Recorder: events.NewFakeRecorder(100),
		Executor: &noRun{}, Metrics: metrics.NewTracker(), Clock: clock.RealClock{}}
	reconcile := func(name string) v1alpha1.ImportPhase {
		t.Helper()
		if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(imports[name])}); err != nil {
			t.Fatal(err)
		}
		var got v1alpha1.UserImport
		if err := c.Get(ctx, client.ObjectKeyFromObject(imports[name]), &got); err != nil {
			t.Fatal(err)
		}
		return got.Status.Phase
	}

	if p := reconcile("a"); p != v1alpha1.PhaseImporting {
		t.Fatalf("a: phase %s, want Importing", p)
	}
	// The cache has not seen a start: it shows a as created.
	r.Client = frozenCache(c, imports["a"])
	api.lists = 0
	if p := reconcile("b"); p != v1alpha1.PhaseImportPending {
		t.Fatalf("b, beside a cache that missed a's start: phase %s, want ImportPending", p)
	}
	if api.lists != 1 {
		t.Fatalf("b read the queue afresh %d times, want once", api.lists)
	}

	// a ends; the cache has seen every phase written, and b starts on
	// its word.
	var a v1alpha1.UserImport
	if err := c.Get(ctx, client.ObjectKeyFromObject(imports["a"]), &a); err != nil {
		t.Fatal(err)
	}
	a.Status.Phase = v1alpha1.PhaseCompleted
	if err := c.Status().Update(ctx, &a); err != nil {
		t.Fatal(err)
	}
	r.Client = frozenCache(c)
	api.lists = 0
	if p := reconcile("b"); p != v1alpha1.PhaseImporting {
		t.Fatalf("b, once a completed: phase %s, want Importing", p)
	}
	if api.lists != 0 {
		t.Fatalf("b read the queue afresh %d times beside a cache that shows every phase written, want none", api.lists)
	}
}

// runningRun stands in for an executor whose run of every import is
// under way.
type runningRun struct{ executor.Executor }

func (e runningRun) Status(context.Context, *v1alpha1.UserImport, runcontract.Stage) (executor.StageStatus, error) {
	return executor.StageStatus{Found: true, Running: true}, nil
}
func (e runningRun) Running(context.Context, *v1alpha1.UserImport, runcontract.Stage) bool {
	return true
}
func (e runningRun) Prepare(context.Context, *v1alpha1.UserImport) error { return nil }

// A run whose start was not written (the status write of the reconcile
// that started it conflicted) is adopted with its report Secret named:
// no later reconcile starts it again.
func TestAdoptedRunNamesItsReport(t *testing.T) {
	_, c := testenv.Shared(t)
	ctx := context.Background()
	ns, cm, dir := readyTenant(t, c)
	imp := tenantImport(metav1.ObjectMeta{Name: "hr", Namespace: ns.Name}, v1alpha1.ActionImport, cm, dir)
	if err := c.Create(ctx, imp); err != nil {
		t.Fatal(err)
	}
	imp.Status.Phase = v1alpha1.PhaseImporting
	if err := c.Status().Update(ctx, imp); err != nil {
		t.Fatal(err)
	}
	r := &UserImportReconciler{Client: c, APIReader: c, Recorder: events.NewFakeRecorder(100),
		Executor: runningRun{}, Metrics: metrics.NewTracker(), Clock: clock.RealClock{}}
	if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(imp)}); err != nil {
		t.Fatal(err)
	}
	var got v1alpha1.UserImport
	if err := c.Get(ctx, client.ObjectKeyFromObject(imp), &got); err != nil {
		t.Fatal(err)
	}
	if got.Status.ReportSecretRef == nil || got.Status.ReportSecretRef.Name != jobs.ReportSecretName(&got) {
		t.Fatalf("report Secret %+v, want %s", got.Status.ReportSecretRef, jobs.ReportSecretName(&got))
	}
}
