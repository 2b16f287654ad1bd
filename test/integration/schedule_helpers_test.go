package integration_test

// The specs labelled schedulesAlone run the ImportSchedule controller
// alone, with a clock the specs set. No UserImport controller runs: the
// specs set the phases of the imports through the status subresource, as
// the worker would. Assertions read through a client without a cache:
// what the API server holds.

import (
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/userimport/user-import-operator/internal/testenv"

	clocktesting "k8s.io/utils/clock/testing"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	eventsv1 "k8s.io/api/events/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uiov1 "github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/controllers"
)

// scheduleClock is the clock of the ImportSchedule controller of specs
// labelled schedulesAlone: the specs set it.
var (
	scheduleClock = clocktesting.NewFakePassiveClock(time.Date(2025, 6, 1, 9, 0, 0, 0, time.UTC))
	tickCounter   atomic.Int64
)

// startScheduleManager runs a manager with only the ImportSchedule controller and
// returns a function that stops it and waits until it has.
func startScheduleManager() func() {
	mgr, err := ctrl.NewManager(cfg, testenv.ManagerOptions())
	Expect(err).NotTo(HaveOccurred())
	r := controllers.NewImportScheduleReconciler(mgr)
	r.Clock = scheduleClock
	r.HeadTimeout = 2 * time.Second
	r.AllowedHosts = testenv.Loopback()
	Expect(r.SetupWithManager(mgr)).To(Succeed())
	stop := testenv.RunManager(ctx, mgr)
	running = schedulesAlone
	return func() { Expect(stop()).To(Succeed()) }
}

// newScheduleNamespace creates a namespace of its own for a spec.
func newScheduleNamespace() string {
	return namespaceFor(fmt.Sprintf("sched-%d", nsCounter.Add(1)))
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	Expect(err).NotTo(HaveOccurred())
	return t
}

// newSchedule creates a schedule importing the ConfigMap hr-export into
// the directory hr-dir (neither needs to exist: no import runs here), and
// deletes it when the spec ends, so that it does not react to the clock
// of later specs.
func newSchedule(ns, name, expr string, edit func(*uiov1.ImportSchedule)) *uiov1.ImportSchedule {
	GinkgoHelper()
	s := &uiov1.ImportSchedule{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: uiov1.ImportScheduleSpec{
			Schedule: expr,
			Template: uiov1.UserImportTemplate{
				Metadata: uiov1.TemplateMetadata{Labels: map[string]string{"team": "hr"}},
				Spec: uiov1.UserImportSpec{
					DirectoryRef: uiov1.LocalObjectReference{Name: "hr-dir"},
					Source:       uiov1.ImportSource{ConfigMap: &uiov1.ConfigMapKeyRef{Name: "hr-export", Key: "export.csv"}},
					Mapping:      []uiov1.AttributeMapping{{Attribute: "userName", Column: "email", Identity: true}},
				},
			},
		},
	}
	if edit != nil {
		edit(s)
	}
	Expect(k8sClient.Create(ctx, s)).To(Succeed())
	DeferCleanup(func() {
		Expect(client.IgnoreNotFound(k8sClient.Delete(ctx, s))).To(Succeed())
	})
	return s
}

// getSchedule reads the schedule from the API server.
func getSchedule(s *uiov1.ImportSchedule) *uiov1.ImportSchedule {
	GinkgoHelper()
	out := &uiov1.ImportSchedule{}
	Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(s), out)).To(Succeed())
	return out
}

// waitNext waits until the controller has decided everything up to the
// clock: status.nextScheduleTime is want.
func waitNext(s *uiov1.ImportSchedule, want time.Time) *uiov1.ImportSchedule {
	GinkgoHelper()
	out := &uiov1.ImportSchedule{}
	Eventually(func(g Gomega) {
		g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(s), out)).To(Succeed())
		g.Expect(out.Status.NextScheduleTime).NotTo(BeNil(), "conditions %+v", out.Status.Conditions)
		g.Expect(out.Status.NextScheduleTime.Time).To(BeTemporally("==", want), "conditions %+v", out.Status.Conditions)
	}, 10*time.Second, 50*time.Millisecond).Should(Succeed())
	return out
}

// tick wakes the controller for s, as the timer of the next run would:
// the clock is not the machine's, so the controller's own requeue does
// not fire at the clock's times.
func tick(s *uiov1.ImportSchedule) {
	GinkgoHelper()
	patch := fmt.Sprintf(`{"metadata":{"annotations":{"test.userimport.dev/tick":"%d"}}}`, tickCounter.Add(1))
	Expect(k8sClient.Patch(ctx, &uiov1.ImportSchedule{ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: s.Namespace}},
		client.RawPatch(types.MergePatchType, []byte(patch)))).To(Succeed())
}

// advance sets the clock to t and wakes the controller for s.
func advance(s *uiov1.ImportSchedule, t time.Time) {
	GinkgoHelper()
	scheduleClock.SetTime(t)
	tick(s)
}

// children lists the imports of schedule s, oldest scheduled time first.
func children(s *uiov1.ImportSchedule) []uiov1.UserImport {
	GinkgoHelper()
	var list uiov1.UserImportList
	Expect(k8sClient.List(ctx, &list, client.InNamespace(s.Namespace),
		client.MatchingLabels{uiov1.ScheduleLabel: s.Name})).To(Succeed())
	items := list.Items
	for i := 1; i < len(items); i++ {
		for j := i; j > 0 && items[j].Annotations[uiov1.ScheduledAtAnnotation] < items[j-1].Annotations[uiov1.ScheduledAtAnnotation]; j-- {
			items[j], items[j-1] = items[j-1], items[j]
		}
	}
	return items
}

// childNames lists the names of the imports of s.
func childNames(s *uiov1.ImportSchedule) []string {
	GinkgoHelper()
	var names []string
	for _, imp := range children(s) {
		names = append(names, imp.Name)
	}
	return names
}

// expectChildren waits until s has exactly n imports and returns them.
func expectChildren(s *uiov1.ImportSchedule, n int) []uiov1.UserImport {
	GinkgoHelper()
	Eventually(func() []string { return childNames(s) }, 10*time.Second, 50*time.Millisecond).Should(HaveLen(n))
	return children(s)
}

// keepsChildren checks that s keeps exactly n imports for a while.
func keepsChildren(s *uiov1.ImportSchedule, n int) []uiov1.UserImport {
	GinkgoHelper()
	Consistently(func() []string { return childNames(s) }, 1500*time.Millisecond, 100*time.Millisecond).Should(HaveLen(n))
	return children(s)
}

// playPhase plays the UserImport controller: it writes phase (and, when
// final, a completion time of the clock) through the status subresource.
func playPhase(imp *uiov1.UserImport, phase uiov1.ImportPhase, edit ...func(*uiov1.UserImportStatus)) {
	GinkgoHelper()
	Eventually(func() error {
		cur := &uiov1.UserImport{}
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(imp), cur); err != nil {
			return err
		}
		patch := client.MergeFrom(cur.DeepCopy())
		cur.Status.Phase = phase
		if phase.IsFinal() {
			cur.Status.CompletionTime = &metav1.Time{Time: scheduleClock.Now()}
		}
		for _, e := range edit {
			e(&cur.Status)
		}
		return k8sClient.Status().Patch(ctx, cur, patch)
	}, 5*time.Second, 50*time.Millisecond).Should(Succeed())
}

// events returns the notes of the Events about s with reason.
func scheduleEvents(s *uiov1.ImportSchedule, reason string) []string {
	GinkgoHelper()
	var list eventsv1.EventList
	Expect(k8sClient.List(ctx, &list, client.InNamespace(s.Namespace))).To(Succeed())
	var notes []string
	for _, e := range list.Items {
		if e.Regarding.Name == s.Name && e.Regarding.Kind == "ImportSchedule" && e.Reason == reason {
			notes = append(notes, e.Note)
		}
	}
	return notes
}

// expectEvent waits for an Event about s with reason and a note
// containing text.
func expectEvent(s *uiov1.ImportSchedule, reason, text string) {
	GinkgoHelper()
	Eventually(func() []string { return scheduleEvents(s, reason) }, 10*time.Second, 100*time.Millisecond).
		Should(ContainElement(ContainSubstring(text)))
}

func readyReason(s *uiov1.ImportSchedule) string {
	c := meta.FindStatusCondition(s.Status.Conditions, uiov1.ConditionReady)
	if c == nil || c.Status != metav1.ConditionTrue {
		return ""
	}
	return c.Reason
}

func hasPrefixes(names []string, prefix string) bool {
	for _, n := range names {
		if !strings.HasPrefix(n, prefix) {
			return false
		}
	}
	return true
}
