//go:build e2e

package e2e

import (
	"fmt"
	"sort"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uiov1 "github.com/userimport/user-import-operator/api/v1alpha1"
)

var _ = Describe("An ImportSchedule", func() {
	It("creates an import every minute that completes, and keeps only the newest Completed one", func(ctx SpecContext) {
		pg := startPostgres()
		table := newTable(ctx, pg, "people_scheduled")
		sqlDirectory(ctx, "scheduled", table, "", uiov1.ExecutionSettings{})
		want := people(50000, 200)
		csvConfigMap(ctx, "scheduled", csvFile(want))

		const limit = 1
		sched := &uiov1.ImportSchedule{
			ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "every-minute"},
			Spec: uiov1.ImportScheduleSpec{
				Schedule:               "*/1 * * * *",
				SuccessfulHistoryLimit: ptr.To[int32](limit),
				Template: uiov1.UserImportTemplate{
					Spec: importSpec("scheduled", "scheduled", uiov1.ModeFull, uiov1.ActionImport),
				},
			},
		}
		Expect(k8s.Create(ctx, sched)).To(Succeed())
		start := time.Now()

		// Every child seen Completed, by name; the schedule's label finds
		// them.
		completed := map[string]time.Time{}
		Eventually(func(g Gomega) {
			var list uiov1.UserImportList
			g.Expect(k8s.List(ctx, &list, client.InNamespace(testNamespace),
				client.MatchingLabels{"userimport.dev/schedule": sched.Name})).To(Succeed())
			for _, imp := range list.Items {
				if imp.Status.Phase == uiov1.PhaseFailed || imp.Status.Phase == uiov1.PhaseCancelled {
					StopTrying(fmt.Sprintf("scheduled import %s ended %s: %s", imp.Name, imp.Status.Phase, describeConditions(imp.Status.Conditions))).Now()
				}
				if imp.Status.Phase == uiov1.PhaseCompleted {
					if _, ok := completed[imp.Name]; !ok {
						completed[imp.Name] = time.Now()
						fmt.Fprintf(GinkgoWriter, "%s: %s Completed\n", time.Since(start).Round(time.Second), imp.Name)
					}
					g.Expect(metav1.IsControlledBy(&imp, sched)).To(BeTrue(), "%s is owned by its schedule", imp.Name)
				}
			}
			// Two runs show the history trimmed to the limit of one.
			g.Expect(len(completed)).To(BeNumerically(">=", 2), "two runs completed")
		}).WithContext(ctx).WithTimeout(5 * time.Minute).WithPolling(2 * time.Second).Should(Succeed())
		report("schedule", "%d runs of */1 completed within %.0fs of the schedule's creation", len(completed), time.Since(start).Seconds())

		// The older Completed children are deleted down to the limit.
		Eventually(func(g Gomega) {
			var list uiov1.UserImportList
			g.Expect(k8s.List(ctx, &list, client.InNamespace(testNamespace),
				client.MatchingLabels{"userimport.dev/schedule": sched.Name})).To(Succeed())
			var kept []string
			for _, imp := range list.Items {
				if imp.Status.Phase == uiov1.PhaseCompleted {
					kept = append(kept, imp.Name)
				}
			}
			g.Expect(kept).To(HaveLen(limit), "Completed imports kept")
			// The one kept is the newest seen.
			var names []string
			for n := range completed {
				names = append(names, n)
			}
			sort.Slice(names, func(i, j int) bool { return completed[names[i]].Before(completed[names[j]]) })
			g.Expect(names[:len(names)-limit]).NotTo(ContainElement(kept[0]), "the oldest are deleted, not the newest")
		}).WithContext(ctx).WithTimeout(time.Minute).Should(Succeed())

		Expect(k8s.Get(ctx, client.ObjectKeyFromObject(sched), sched)).To(Succeed())
		Expect(sched.Status.LastSuccessfulTime).NotTo(BeNil())
		Expect(sched.Status.LastImport).NotTo(BeNil())
		table.expectUsers(ctx, want)

		// Stop it, so that it does not run on behind later specs.
		Expect(k8s.Delete(ctx, sched)).To(Succeed())
	}, SpecTimeout(8*time.Minute))
})
