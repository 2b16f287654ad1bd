//go:build e2e

package e2e

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	uiov1 "github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/testpeer/repo"
)

var _ = Describe("An ImportSchedule", SpecPriority(80), func() {
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

var _ = Describe("An ImportSchedule on change, applied from a kustomization", SpecPriority(60), func() {
	It("imports the CSV of a configMapGenerator when it changes, and nothing when it does not", func(ctx SpecContext) {
		pg := startPostgres()
		table := newTable(ctx, pg, "people_gitops")
		sqlDirectory(ctx, "gitops", table, "", uiov1.ExecutionSettings{})

		// The overlay a team keeps in git: the sample's kustomize
		// configuration, this suite's directory and CSV columns.
		root, err := repo.Root()
		Expect(err).NotTo(HaveOccurred())
		dir := GinkgoT().TempDir()
		nameRefs, err := os.ReadFile(filepath.Join(root, "config", "samples", "gitops", "kustomizeconfig.yaml"))
		Expect(err).NotTo(HaveOccurred())
		Expect(os.WriteFile(filepath.Join(dir, "kustomizeconfig.yaml"), nameRefs, 0o644)).To(Succeed())
		spec := importSpec("gitops", "hr-export", uiov1.ModeDelta, uiov1.ActionImport)
		sched := &uiov1.ImportSchedule{
			TypeMeta:   metav1.TypeMeta{APIVersion: uiov1.GroupVersion.String(), Kind: "ImportSchedule"},
			ObjectMeta: metav1.ObjectMeta{Name: "from-git"},
			Spec: uiov1.ImportScheduleSpec{
				Triggers: &uiov1.ScheduleTriggers{OnChange: true, DebounceSeconds: ptr.To[int32](0), PollSeconds: ptr.To[int32](5)},
				Template: uiov1.UserImportTemplate{Spec: spec},
			},
		}
		manifest, err := yaml.Marshal(sched)
		Expect(err).NotTo(HaveOccurred())
		Expect(os.WriteFile(filepath.Join(dir, "importschedule.yaml"), manifest, 0o644)).To(Succeed())
		Expect(os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: `+testNamespace+`
resources:
- importschedule.yaml
configMapGenerator:
- name: hr-export
  files:
  - users.csv
configurations:
- kustomizeconfig.yaml
`), 0o644)).To(Succeed())
		apply := func(rows []person) {
			GinkgoHelper()
			Expect(os.WriteFile(filepath.Join(dir, "users.csv"), csvFile(rows), 0o644)).To(Succeed())
			out, err := kubectl(ctx, "apply", "-k", dir)
			Expect(err).NotTo(HaveOccurred())
			fmt.Fprint(GinkgoWriter, out)
		}
		key := client.ObjectKey{Namespace: testNamespace, Name: "from-git"}
		// completedRuns waits until the schedule started n runs on change
		// and the last one completed.
		completedRuns := func(n int64) {
			GinkgoHelper()
			Eventually(func(g Gomega) {
				var s uiov1.ImportSchedule
				g.Expect(k8s.Get(ctx, key, &s)).To(Succeed())
				g.Expect(s.Status.ChangeRuns).To(Equal(n), "runs on change; conditions %s", describeConditions(s.Status.Conditions))
				g.Expect(s.Status.LastImport).NotTo(BeNil())
				g.Expect(s.Status.LastImport.Name).To(Equal(s.Status.LastChange.ImportName))
				if p := s.Status.LastImport.Phase; p == uiov1.PhaseFailed || p == uiov1.PhaseCancelled {
					StopTrying(fmt.Sprintf("import %s ended %s", s.Status.LastImport.Name, p)).Now()
				}
				g.Expect(s.Status.LastImport.Phase).To(Equal(uiov1.PhaseCompleted))
			}).WithContext(ctx).WithTimeout(3 * time.Minute).WithPolling(2 * time.Second).Should(Succeed())
		}

		first := people(60000, 100)
		apply(first)
		completedRuns(1)
		table.expectUsers(ctx, first)

		// The CSV changes in git: 10 rows change, 50 are new.
		second := append(people(60000, 100), people(60100, 50)...)
		for i := range 10 {
			second[i] = append(person(nil), second[i]...)
			second[i][4] = "Moved-" + second[i][4]
		}
		apply(second)
		completedRuns(2)
		table.expectUsers(ctx, second)
		var s uiov1.ImportSchedule
		Expect(k8s.Get(ctx, key, &s)).To(Succeed())
		Expect(s.Status.LastChange.Reason).To(Equal(uiov1.ChangeSourceAndTemplateChanged), "the generator's new name changed the template")
		report("gitops", "a changed CSV re-applied with kubectl apply -k ran import %s", s.Status.LastChange.ImportName)

		// Re-applied unchanged: nothing runs.
		apply(second)
		Consistently(func(g Gomega) {
			g.Expect(k8s.Get(ctx, key, &s)).To(Succeed())
			g.Expect(s.Status.ChangeRuns).To(BeEquivalentTo(2))
			g.Expect(s.Status.PendingChange).To(BeNil())
		}).WithContext(ctx).WithTimeout(20 * time.Second).WithPolling(2 * time.Second).Should(Succeed())

		Expect(k8s.Delete(ctx, &s)).To(Succeed())
	}, SpecTimeout(8*time.Minute))
})
