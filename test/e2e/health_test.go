//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uiov1 "github.com/userimport/user-import-operator/api/v1alpha1"
)

// kstatusOf computes the status of a live object as Argo CD and Flux do,
// with the library both use.
func kstatusOf(ctx context.Context, kind, name string) (status.Status, string) {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(schema.GroupVersionKind{Group: uiov1.GroupVersion.Group, Version: uiov1.GroupVersion.Version, Kind: kind})
	Expect(k8s.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: name}, u)).To(Succeed())
	res, err := status.Compute(u)
	Expect(err).NotTo(HaveOccurred())
	return res.Status, res.Message
}

// expectKstatus waits until the kstatus of the object is want.
func expectKstatus(ctx context.Context, kind, name string, want status.Status) {
	Eventually(func(g Gomega) {
		got, msg := kstatusOf(ctx, kind, name)
		g.Expect(got).To(Equal(want), "%s %s: %s", kind, name, msg)
	}).WithContext(ctx).WithTimeout(3 * time.Minute).WithPolling(200 * time.Millisecond).Should(Succeed())
	_, msg := kstatusOf(ctx, kind, name)
	report("kstatus", "%s %s: %s (%s)", kind, name, want, msg)
}

var _ = Describe("Health as Argo CD and Flux compute it (kstatus)", Ordered, SpecPriority(90), func() {
	It("is InProgress while an import runs, Current once it completed or a directory is Ready, Failed for a failed import and a wrong password", func(ctx SpecContext) {
		pg := startPostgres()
		table := newTable(ctx, pg, "health")
		// 2 ms a row: the import of 3,000 rows runs for several seconds.
		table.slowAndCounted(ctx, 2*time.Millisecond)
		sqlDirectory(ctx, "health", table, "", uiov1.ExecutionSettings{})
		expectKstatus(ctx, "UserDirectory", "health", status.CurrentStatus)

		csvConfigMap(ctx, "health", csvFile(people(90000, 3000)))

		// A worker that may run a minute, on a table that takes 200 ms a
		// row, fails its Job at the deadline: the import is Failed. It
		// starts first, so that its minute passes while the rest runs.
		slow := newTable(ctx, pg, "health_deadline")
		slow.slowAndCounted(ctx, 200*time.Millisecond)
		sqlDirectory(ctx, "health-deadline", slow, "",
			uiov1.ExecutionSettings{ActiveDeadlineSeconds: ptr.To[int64](60), BackoffLimit: ptr.To[int32](0)})
		failed := newImport(ctx, "health-failed", importSpec("health-deadline", "health", uiov1.ModeFull, uiov1.ActionImport))

		imp := newImport(ctx, "health", importSpec("health", "health", uiov1.ModeFull, uiov1.ActionImport))
		// Seen InProgress while the import writes.
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(imp), imp)).To(Succeed())
			if imp.Status.Phase.IsFinal() {
				StopTrying(fmt.Sprintf("UserImport health ended %s before it was seen Importing", imp.Status.Phase)).Now()
			}
			g.Expect(imp.Status.Phase).To(Equal(uiov1.PhaseImporting))
			got, msg := kstatusOf(ctx, "UserImport", "health")
			g.Expect(got).To(Equal(status.InProgressStatus), msg)
		}).WithContext(ctx).WithTimeout(3 * time.Minute).WithPolling(100 * time.Millisecond).Should(Succeed())
		report("kstatus", "UserImport health: InProgress while Importing")
		waitPhase(ctx, imp, uiov1.PhaseCompleted, 5*time.Minute)
		expectKstatus(ctx, "UserImport", "health", status.CurrentStatus)

		// A password the database refuses.
		wrong, err := urlWithPassword(pg.DSN, "not-the-password")
		Expect(err).NotTo(HaveOccurred())
		sqlDirectory(ctx, "health-wrong", table, wrong, uiov1.ExecutionSettings{})
		expectKstatus(ctx, "UserDirectory", "health-wrong", status.FailedStatus)

		// The import that runs into its deadline, started first.
		waitPhase(ctx, failed, uiov1.PhaseFailed, 5*time.Minute)
		expectKstatus(ctx, "UserImport", "health-failed", status.FailedStatus)
	}, SpecTimeout(12*time.Minute))

	It("is the same for ImportSchedules: InProgress waiting for a source, Current when scheduled, Failed when it never fires", func(ctx SpecContext) {
		schedule := func(name string, spec uiov1.ImportScheduleSpec) {
			spec.Template = uiov1.UserImportTemplate{Spec: importSpec("health", "health", uiov1.ModeFull, uiov1.ActionImport)}
			Expect(k8s.Create(ctx, &uiov1.ImportSchedule{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: name}, Spec: spec})).To(Succeed())
		}
		schedule("health-nightly", uiov1.ImportScheduleSpec{Schedule: "0 3 * * *"})
		expectKstatus(ctx, "ImportSchedule", "health-nightly", status.CurrentStatus)

		// February 30th: a valid expression with no run.
		schedule("health-never", uiov1.ImportScheduleSpec{Schedule: "0 0 30 2 *"})
		expectKstatus(ctx, "ImportSchedule", "health-never", status.FailedStatus)

		// On change, before its ConfigMap exists.
		waiting := uiov1.ImportScheduleSpec{Triggers: &uiov1.ScheduleTriggers{OnChange: true}}
		spec := importSpec("health", "health-later", uiov1.ModeFull, uiov1.ActionImport)
		waiting.Template = uiov1.UserImportTemplate{Spec: spec}
		Expect(k8s.Create(ctx, &uiov1.ImportSchedule{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "health-waiting"}, Spec: waiting})).To(Succeed())
		expectKstatus(ctx, "ImportSchedule", "health-waiting", status.InProgressStatus)
	}, SpecTimeout(5*time.Minute))
})
