package integration_test

import (
	"context"
	"strings"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	uiov1 "github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/controllers"
	"github.com/userimport/user-import-operator/internal/failure"
	"github.com/userimport/user-import-operator/internal/jobs"
	"github.com/userimport/user-import-operator/internal/runcontract"
	"github.com/userimport/user-import-operator/internal/testenv"
)

// step is one move of a transition table entry: a person's edit, the end
// of a worker run, or an expected phase.
type step struct {
	action uiov1.ImportAction
	finish runcontract.Stage
	fail   bool
	reject bool
	edit   bool
	expect uiov1.ImportPhase
	// stalled, with expect: the import waits for a person with this reason.
	stalled string
}

func act(a uiov1.ImportAction) step         { return step{action: a} }
func finishOK(s runcontract.Stage) step     { return step{finish: s} }
func finishFailed(s runcontract.Stage) step { return step{finish: s, fail: true} }
func expect(p uiov1.ImportPhase) step       { return step{expect: p} }

// finishRejected ends the run of s as a worker that refused the mapping
// before writing anything.
func finishRejected(s runcontract.Stage) step { return step{finish: s, fail: true, reject: true} }

// editMapping changes the mapping, as a person fixing a typo would.
func editMapping() step { return step{edit: true} }

// expectStalled expects phase p with Stalled=True and reason.
func expectStalled(p uiov1.ImportPhase, reason string) step { return step{expect: p, stalled: reason} }
func path(steps ...step) []step                             { return steps }

var _ = Describe("UserImport phases", func() {
	DescribeTable("transitions",
		func(initial uiov1.ImportAction, steps []step) {
			ns := newNamespace()
			readyDirectory(ns, "corp")
			imp := newImport(ns, "hr", "corp", initial)
			for _, s := range steps {
				switch {
				case s.action != "":
					setAction(imp, s.action)
				case s.edit:
					editSpec(imp, func(spec *uiov1.UserImportSpec) { spec.Mapping[1].Column += "_fixed" })
				case s.finish == runcontract.StagePreview && !s.fail:
					j := job(imp, runcontract.StagePreview)
					workerPreview(imp, uiov1.ChangeCounts{Created: 3, Updated: 1}, 10)
					finishJob(j, true)
				case s.finish != "":
					j := job(imp, s.finish)
					switch {
					case s.reject:
						rej := failure.Stalledf(uiov1.ReasonInvalidMapping, `mapping[name.givenName]: the file has no column "first_nme"`)
						workerPod(j, runcontract.ExitRejected, runcontract.OutcomeOf(nil, "", rej).Encode())
					case s.fail:
						workerPod(j, 1, "mapping: line 7: column email: not an email address")
					}
					finishJob(j, !s.fail)
				default:
					got := expectPhase(imp, s.expect)
					ready := condition(got, uiov1.ConditionReady)
					Expect(ready).NotTo(BeNil())
					Expect(ready.ObservedGeneration).To(Equal(got.Generation))
					Expect(got.Status.ObservedGeneration).To(Equal(got.Generation))
					if s.stalled != "" {
						Expect(ready.Reason).To(Equal(s.stalled))
						Expect(ready.Message).To(ContainSubstring("edit the spec"))
						Expect(condition(got, uiov1.ConditionStalled)).NotTo(BeNil())
						rejected := condition(got, uiov1.ConditionInputRejected)
						Expect(rejected).NotTo(BeNil())
						Expect(rejected.ObservedGeneration).To(Equal(got.Generation))
						Expect(jobsOf(imp)).To(BeEmpty(), "nothing runs until the spec is edited")
					}
				}
			}
			final := getImport(imp)
			if final.Status.Phase.IsFinal() {
				Expect(final.Status.CompletionTime).NotTo(BeNil())
			}
			Eventually(func() []string { return eventsFor(ns, "hr", string(final.Status.Phase)) }, 5*time.Second).ShouldNot(BeEmpty(), "an Event for the last transition")
		},
		Entry("Draft → PreviewPending → CreatingPreview → PreviewReady → ImportPending → Importing → Completed", uiov1.ActionDraft, path(
			expect(uiov1.PhaseDraft), act(uiov1.ActionPreview), expect(uiov1.PhaseCreatingPreview),
			finishOK(runcontract.StagePreview), expect(uiov1.PhasePreviewReady),
			act(uiov1.ActionImport), expect(uiov1.PhaseImporting), finishOK(runcontract.StageImport), expect(uiov1.PhaseCompleted))),
		Entry("new → ImportPending → Importing → Completed (the preview skipped)", uiov1.ActionImport, path(
			expect(uiov1.PhaseImporting), finishOK(runcontract.StageImport), expect(uiov1.PhaseCompleted))),
		Entry("Draft → ImportPending (skip)", uiov1.ActionDraft, path(
			expect(uiov1.PhaseDraft), act(uiov1.ActionImport), expect(uiov1.PhaseImporting))),
		Entry("CreatingPreview → Failed", uiov1.ActionPreview, path(
			expect(uiov1.PhaseCreatingPreview), finishFailed(runcontract.StagePreview), expect(uiov1.PhaseFailed))),
		Entry("Importing → Failed", uiov1.ActionImport, path(
			expect(uiov1.PhaseImporting), finishFailed(runcontract.StageImport), expect(uiov1.PhaseFailed))),
		// A run that refuses the spec or the file before writing anything
		// leaves the import editable.
		Entry("CreatingPreview → refused → PreviewPending (Stalled) → edit → CreatingPreview → PreviewReady → Completed", uiov1.ActionPreview, path(
			expect(uiov1.PhaseCreatingPreview), finishRejected(runcontract.StagePreview),
			expectStalled(uiov1.PhasePreviewPending, uiov1.ReasonInvalidMapping),
			editMapping(), expect(uiov1.PhaseCreatingPreview), finishOK(runcontract.StagePreview), expect(uiov1.PhasePreviewReady),
			act(uiov1.ActionImport), expect(uiov1.PhaseImporting), finishOK(runcontract.StageImport), expect(uiov1.PhaseCompleted))),
		Entry("Importing → refused → PreviewPending (Stalled) → edit → Importing → Completed", uiov1.ActionImport, path(
			expect(uiov1.PhaseImporting), finishRejected(runcontract.StageImport),
			expectStalled(uiov1.PhasePreviewPending, uiov1.ReasonInvalidMapping),
			editMapping(), expect(uiov1.PhaseImporting), finishOK(runcontract.StageImport), expect(uiov1.PhaseCompleted))),
		Entry("Draft → Cancelled", uiov1.ActionDraft, path(
			expect(uiov1.PhaseDraft), act(uiov1.ActionCancel), expect(uiov1.PhaseCancelled))),
		Entry("new → Cancelled", uiov1.ActionCancel, path(expect(uiov1.PhaseCancelled))),
		Entry("CreatingPreview → Cancelled", uiov1.ActionPreview, path(
			expect(uiov1.PhaseCreatingPreview), act(uiov1.ActionCancel), expect(uiov1.PhaseCancelled))),
		Entry("CreatingPreview → Draft → Cancelled", uiov1.ActionPreview, path(
			expect(uiov1.PhaseCreatingPreview), act(uiov1.ActionDraft), expect(uiov1.PhaseDraft),
			act(uiov1.ActionCancel), expect(uiov1.PhaseCancelled))),
		// Every edit of the spec, spec.action included, makes a new
		// generation, and a preview belongs to one generation.
		Entry("PreviewReady → Draft → PreviewPending → CreatingPreview → PreviewReady → Cancelled", uiov1.ActionPreview, path(
			expect(uiov1.PhaseCreatingPreview), finishOK(runcontract.StagePreview), expect(uiov1.PhasePreviewReady),
			act(uiov1.ActionDraft), expect(uiov1.PhaseDraft), act(uiov1.ActionPreview), expect(uiov1.PhaseCreatingPreview),
			finishOK(runcontract.StagePreview), expect(uiov1.PhasePreviewReady),
			act(uiov1.ActionCancel), expect(uiov1.PhaseCancelled))),
	)

	It("keeps final phases final: the API server rejects a spec edit", func() {
		ns := newNamespace()
		readyDirectory(ns, "corp")
		imp := newImport(ns, "hr", "corp", uiov1.ActionCancel)
		expectPhase(imp, uiov1.PhaseCancelled)
		cur := getImport(imp)
		cur.Spec.Action = uiov1.ActionImport
		Expect(k8sClient.Update(ctx, cur)).NotTo(Succeed())
	})

	It("waits in ImportPending or PreviewPending for its directory to be Ready, saying why", func() {
		ns := newNamespace()
		imp := newImport(ns, "hr", "missing", uiov1.ActionImport)
		preview := newImport(ns, "hr-preview", "missing", uiov1.ActionPreview)
		for _, i := range []*uiov1.UserImport{imp, preview} {
			Eventually(func(g Gomega) {
				c := condition(getImport(i), uiov1.ConditionReady)
				g.Expect(c).NotTo(BeNil())
				g.Expect(c.Reason).To(Equal(uiov1.ReasonDirectoryNotFound))
			}, 10*time.Second).Should(Succeed())
			Expect(jobsOf(i)).To(BeEmpty())
		}
		Expect(getImport(imp).Status.Phase).To(Equal(uiov1.PhaseImportPending))
		Expect(getImport(preview).Status.Phase).To(Equal(uiov1.PhasePreviewPending))
		readyDirectory(ns, "missing")
		expectPhase(imp, uiov1.PhaseImporting)
		expectPhase(preview, uiov1.PhaseCreatingPreview)
	})

	It("invalidates the preview when the spec is edited in PreviewReady or Draft", func() {
		ns := newNamespace()
		readyDirectory(ns, "corp")
		imp := newImport(ns, "hr", "corp", uiov1.ActionPreview)
		expectPhase(imp, uiov1.PhaseCreatingPreview)
		first := job(imp, runcontract.StagePreview)
		workerPreview(imp, uiov1.ChangeCounts{Created: 5}, 10)
		finishJob(first, true)
		got := expectPhase(imp, uiov1.PhasePreviewReady)
		Expect(got.Status.Preview.Counts.Created).To(BeEquivalentTo(5))

		editSpec(imp, func(s *uiov1.UserImportSpec) { s.ErrorPolicy.MaxErrors = ptr.To[int64](3) })
		got = expectPhase(imp, uiov1.PhaseCreatingPreview)
		Expect(got.Status.Preview).To(BeNil(), "the stale preview is discarded")
		second := job(imp, runcontract.StagePreview)
		Expect(second.UID).NotTo(Equal(first.UID), "a new preview Job runs")
		Eventually(func() []string { return eventsFor(ns, "hr", uiov1.ReasonPreviewInvalidated) }, 5*time.Second).ShouldNot(BeEmpty())
		workerPreview(imp, uiov1.ChangeCounts{Created: 4}, 10)
		finishJob(second, true)
		got = expectPhase(imp, uiov1.PhasePreviewReady)
		Expect(got.Status.Preview.Generation).To(Equal(got.Generation))

		setAction(imp, uiov1.ActionDraft)
		expectPhase(imp, uiov1.PhaseDraft)
		editSpec(imp, func(s *uiov1.UserImportSpec) { s.ErrorPolicy.MaxErrors = ptr.To[int64](5) })
		Eventually(func() *uiov1.PreviewStatus { return getImport(imp).Status.Preview }, 10*time.Second).Should(BeNil())
		Expect(getImport(imp).Status.Phase).To(Equal(uiov1.PhaseDraft))
	})

	It("runs the imports of one directory one at a time, oldest first, and cancels queued and running ones", func() {
		ns := newNamespace()
		readyDirectory(ns, "corp")
		a := newImport(ns, "a-first", "corp", uiov1.ActionImport)
		expectPhase(a, uiov1.PhaseImporting)
		// Names sort against creation order: the creation time decides.
		time.Sleep(1100 * time.Millisecond)
		c := newImport(ns, "c-second", "corp", uiov1.ActionImport)
		time.Sleep(1100 * time.Millisecond)
		b := newImport(ns, "b-third", "corp", uiov1.ActionImport)
		Eventually(func(g Gomega) {
			g.Expect(getImport(c).Status.QueuePosition).To(BeEquivalentTo(1))
			g.Expect(getImport(b).Status.QueuePosition).To(BeEquivalentTo(2))
			dir := &uiov1.UserDirectory{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "corp"}, dir)).To(Succeed())
			g.Expect(dir.Status.ActiveImport).To(Equal("a-first"))
			g.Expect(dir.Status.Queue).To(Equal([]string{"c-second", "b-third"}))
			g.Expect(dir.Status.QueueLength).To(BeEquivalentTo(2))
		}, 10*time.Second).Should(Succeed())
		Expect(getImport(c).Status.Phase).To(Equal(uiov1.PhaseImportPending))
		Expect(jobsOf(c)).To(BeEmpty())

		finishJob(job(a, runcontract.StageImport), true)
		expectPhase(a, uiov1.PhaseCompleted)
		expectPhase(c, uiov1.PhaseImporting)
		Expect(getImport(b).Status.Phase).To(Equal(uiov1.PhaseImportPending))
		Eventually(func() int32 { return getImport(b).Status.QueuePosition }).Should(BeEquivalentTo(1))

		// Cancel while queued: nothing ran, nothing to delete.
		setAction(b, uiov1.ActionCancel)
		expectPhase(b, uiov1.PhaseCancelled)
		Expect(jobsOf(b)).To(BeEmpty())

		// Cancel while importing: the Job goes, the progress stays.
		workerPatch(c, func(s *uiov1.UserImportStatus) {
			s.Progress = &uiov1.ProgressStatus{RowsTotal: 1000, RowsProcessed: 400, Percent: 40, ChangeCounts: uiov1.ChangeCounts{Created: 400}}
		})
		cj := job(c, runcontract.StageImport)
		setAction(c, uiov1.ActionCancel)
		got := expectPhase(c, uiov1.PhaseCancelled)
		Expect(got.Status.Progress.RowsProcessed).To(BeEquivalentTo(400))
		Expect(condition(got, uiov1.ConditionReady).Message).To(ContainSubstring("400 of 1000 rows"))
		Eventually(func() []batchv1.Job { return jobsOf(c) }, 10*time.Second).Should(BeEmpty())
		_ = cj
	})

	It("stops at PreviewReady when a full import exceeds the safety threshold, and continues once approved", func() {
		ns := newNamespace()
		readyDirectory(ns, "corp")
		imp := newImport(ns, "full", "corp", uiov1.ActionDraft)
		editSpec(imp, func(s *uiov1.UserImportSpec) {
			s.Mode = uiov1.ModeFull
			s.MissingUsers = uiov1.MissingDeactivate
			s.Action = uiov1.ActionImport
		})
		expectPhase(imp, uiov1.PhaseImporting)
		j := job(imp, runcontract.StageImport)
		workerPreview(imp, uiov1.ChangeCounts{Deactivated: 230, Unchanged: 770}, 1000)
		workerPod(j, 0, runcontract.Outcome{Kind: runcontract.SafetyStopped, Stop: &runcontract.SafetyStop{Deprovisions: 230, ManagedUsers: 1000}}.Encode())
		finishJob(j, true)

		got := expectPhase(imp, uiov1.PhasePreviewReady)
		safety := condition(got, uiov1.ConditionSafetyThreshold)
		Expect(safety).NotTo(BeNil())
		Expect(safety.Status).To(Equal(metav1.ConditionTrue))
		Expect(safety.Message).To(Equal("a full import would deactivate 230 of 1000 managed users (23 %), over the threshold of 10 %; set spec.safety.approvedDeprovisions: 230 to approve"))
		Expect(condition(got, uiov1.ConditionStalled)).NotTo(BeNil())
		// Events are sent after the status is written, and arrive a moment later.
		Eventually(func() []string { return eventsFor(ns, "full", uiov1.ReasonApprovalRequired) }, 5*time.Second).ShouldNot(BeEmpty())
		// It stays there: no new Job runs without approval.
		Consistently(func() uiov1.ImportPhase { return getImport(imp).Status.Phase }, 2*time.Second).Should(Equal(uiov1.PhasePreviewReady))

		editSpec(imp, func(s *uiov1.UserImportSpec) { s.Safety.ApprovedDeprovisions = ptr.To[int32](230) })
		expectPhase(imp, uiov1.PhaseImporting)
		var next *batchv1.Job
		Eventually(func(g Gomega) {
			next = job(imp, runcontract.StageImport)
			g.Expect(next.UID).NotTo(Equal(j.UID))
		}, 10*time.Second).Should(Succeed())
		Expect(condition(getImport(imp), uiov1.ConditionSafetyThreshold)).To(BeNil())
		finishJob(next, true)
		expectPhase(imp, uiov1.PhaseCompleted)
	})

	It("keeps the preview when only the action changes to Import, and previews again when the worker finds the source changed", func() {
		ns := newNamespace()
		readyDirectory(ns, "corp")
		imp := newImport(ns, "pinned", "corp", uiov1.ActionPreview)
		expectPhase(imp, uiov1.PhaseCreatingPreview)
		pj := job(imp, runcontract.StagePreview)
		workerPinnedPreview(imp, uiov1.ChangeCounts{Created: 3}, strings.Repeat("a", 64))
		finishJob(pj, true)
		expectPhase(imp, uiov1.PhasePreviewReady)

		setAction(imp, uiov1.ActionImport)
		got := expectPhase(imp, uiov1.PhaseImporting)
		Expect(got.Status.Preview).NotTo(BeNil(), "the approval keeps the preview, so the import reads its file")
		Expect(got.Status.Preview.SHA256).To(Equal(strings.Repeat("a", 64)))

		// The ConfigMap changed meanwhile: the worker refuses before writing.
		ij := job(imp, runcontract.StageImport)
		refused := failure.ChangedSincePreview(failure.SincePreview, strings.Repeat("b", 64), strings.Repeat("a", 64))
		workerPod(ij, 1, runcontract.OutcomeOf(nil, "", refused).Encode()+"\n")
		finishJob(ij, false)
		got = expectPhase(imp, uiov1.PhaseCreatingPreview)
		Expect(got.Status.Preview).To(BeNil(), "the old preview is discarded")
		changed := condition(got, uiov1.ConditionSourceChanged)
		Expect(changed).NotTo(BeNil())
		Expect(changed.Status).To(Equal(metav1.ConditionTrue))
		Expect(changed.Message).To(ContainSubstring("nothing was written"))
		Eventually(func() []string { return eventsFor(ns, "pinned", uiov1.ReasonSourceChanged) }, 5*time.Second).ShouldNot(BeEmpty())

		// The new preview waits for a person, although the action is Import.
		var np *batchv1.Job
		Eventually(func(g Gomega) {
			np = job(imp, runcontract.StagePreview)
			g.Expect(np.UID).NotTo(Equal(pj.UID))
		}, 10*time.Second).Should(Succeed())
		workerPinnedPreview(imp, uiov1.ChangeCounts{Created: 4}, strings.Repeat("b", 64))
		finishJob(np, true)
		got = expectPhase(imp, uiov1.PhasePreviewReady)
		Expect(condition(got, uiov1.ConditionStalled)).NotTo(BeNil())
		Expect(condition(got, uiov1.ConditionReady).Reason).To(Equal(uiov1.ReasonSourceChanged))
		Consistently(func() uiov1.ImportPhase { return getImport(imp).Status.Phase }, 2*time.Second).Should(Equal(uiov1.PhasePreviewReady))

		// Preview, then Import again: the import runs on the new preview.
		setAction(imp, uiov1.ActionPreview)
		expectPhase(imp, uiov1.PhasePreviewReady)
		setAction(imp, uiov1.ActionImport)
		got = expectPhase(imp, uiov1.PhaseImporting)
		Expect(got.Status.Preview.SHA256).To(Equal(strings.Repeat("b", 64)))
		Expect(condition(got, uiov1.ConditionSourceChanged)).To(BeNil())
	})

	It("fails with the worker's termination message in the condition and an Event", func() {
		ns := newNamespace()
		readyDirectory(ns, "corp")
		imp := newImport(ns, "broken", "corp", uiov1.ActionImport)
		expectPhase(imp, uiov1.PhaseImporting)
		j := job(imp, runcontract.StageImport)
		// Status.failed > 0 alone is a retry in progress, not a failure.
		Eventually(func() error {
			cur := &batchv1.Job{}
			if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(j), cur); err != nil {
				return err
			}
			cur.Status.Failed = 1
			return k8sClient.Status().Update(ctx, cur)
		}).Should(Succeed())
		Consistently(func() uiov1.ImportPhase { return getImport(imp).Status.Phase }, 2*time.Second).Should(Equal(uiov1.PhaseImporting))

		msg := "directory: AuthenticationFailed: POST /Users: HTTP 401: the server refused the credentials"
		workerPod(j, 1, "some log line\n"+msg+"\n")
		finishJob(j, false)
		got := expectPhase(imp, uiov1.PhaseFailed)
		ready := condition(got, uiov1.ConditionReady)
		Expect(ready.Reason).To(Equal(uiov1.ReasonImportFailed))
		Expect(ready.Message).To(Equal(msg))
		Expect(condition(got, uiov1.ConditionStalled)).NotTo(BeNil())
		Eventually(func() []string { return eventsFor(ns, "broken", uiov1.ReasonImportFailed) }, 5*time.Second).Should(ContainElement(msg))
	})

	It("records Importing before it creates the import's Job, so that a stop in between never hides a writing Job from the queue", func() {
		stopManager()
		var mu sync.Mutex
		phaseAtCreate := map[string]uiov1.ImportPhase{}
		stopManager = startManager(controllers.Options{AllowedHosts: testenv.Loopback(), Executor: controllers.ExecutorJob, Job: jobSettings}, interceptor.Funcs{
			Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
				if j, ok := obj.(*batchv1.Job); ok && j.Labels[jobs.LabelComponent] == strings.ToLower(string(runcontract.StageImport)) {
					// What the API server holds when the Job is created.
					cur := &uiov1.UserImport{}
					Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: j.Namespace, Name: j.Labels[jobs.LabelInstance]}, cur)).To(Succeed())
					mu.Lock()
					phaseAtCreate[cur.Name] = cur.Status.Phase
					mu.Unlock()
				}
				return c.Create(ctx, obj, opts...)
			},
		})
		ns := newNamespace()
		readyDirectory(ns, "corp")
		a := newImport(ns, "first", "corp", uiov1.ActionImport)
		expectPhase(a, uiov1.PhaseImporting)
		job(a, runcontract.StageImport)
		b := newImport(ns, "second", "corp", uiov1.ActionImport)
		finishJob(job(a, runcontract.StageImport), true)
		expectPhase(a, uiov1.PhaseCompleted)
		expectPhase(b, uiov1.PhaseImporting)
		job(b, runcontract.StageImport)
		mu.Lock()
		defer mu.Unlock()
		Expect(phaseAtCreate).To(Equal(map[string]uiov1.ImportPhase{"first": uiov1.PhaseImporting, "second": uiov1.PhaseImporting}))
	})

	It("refuses a Job of its name that it does not own, in a condition and an Event", func() {
		ns := newNamespace()
		readyDirectory(ns, "corp")
		imp := newImport(ns, "squatted", "corp", uiov1.ActionDraft)
		expectPhase(imp, uiov1.PhaseDraft)
		cur := getImport(imp)
		foreign := &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: jobs.JobName(cur, runcontract.StageImport)},
			Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
				RestartPolicy: corev1.RestartPolicyNever,
				Containers:    []corev1.Container{{Name: "other", Image: "registry.example/other"}},
			}}},
		}
		Expect(k8sClient.Create(ctx, foreign)).To(Succeed())
		setAction(imp, uiov1.ActionImport)
		Eventually(func(g Gomega) {
			c := condition(getImport(imp), uiov1.ConditionReady)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Reason).To(Equal(uiov1.ReasonReconcileError))
			g.Expect(c.Message).To(ContainSubstring("exists but is not owned by this import"))
		}, 10*time.Second).Should(Succeed())
		Eventually(func() []string { return eventsFor(ns, "squatted", uiov1.ReasonReconcileError) }, 10*time.Second).ShouldNot(BeEmpty())
		got := &batchv1.Job{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(foreign), got)).To(Succeed())
		Expect(got.OwnerReferences).To(BeEmpty(), "the foreign Job is left alone")
	})

	It("adopts the running Job after a restart of the manager and never starts a second", func() {
		ns := newNamespace()
		readyDirectory(ns, "corp")
		imp := newImport(ns, "long", "corp", uiov1.ActionImport)
		expectPhase(imp, uiov1.PhaseImporting)
		j := job(imp, runcontract.StageImport)

		stopManager()
		// A crash between the creation of the Job and the status patch
		// leaves the import ImportPending with its Job running.
		workerPatch(imp, func(s *uiov1.UserImportStatus) { s.Phase = uiov1.PhaseImportPending })
		stopManager = startManager(controllers.Options{AllowedHosts: testenv.Loopback(), Executor: controllers.ExecutorJob, Job: jobSettings})

		expectPhase(imp, uiov1.PhaseImporting)
		Consistently(func() []batchv1.Job { return jobsOf(imp) }, 2*time.Second).Should(HaveLen(1))
		Expect(jobsOf(imp)[0].UID).To(Equal(j.UID))
		finishJob(j, true)
		expectPhase(imp, uiov1.PhaseCompleted)
		Expect(jobsOf(imp)).To(HaveLen(1))
	})

	It("makes the Secrets of an import's codes itself, and refuses to run with one it did not make", func() {
		ns := newNamespace()
		readyDirectory(ns, "corp")
		codes := func(s *uiov1.UserImportSpec) { s.RecoveryCodes = uiov1.RecoveryCodes{Generate: uiov1.CodesForNewUsers} }

		imp := newImport(ns, "coded", "corp", uiov1.ActionDraft)
		editSpec(imp, func(s *uiov1.UserImportSpec) { codes(s); s.Action = uiov1.ActionImport })
		expectPhase(imp, uiov1.PhaseImporting)
		cur := getImport(imp)
		key := &corev1.Secret{}
		Eventually(func() error {
			return k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: jobs.CodesKeySecretName(cur)}, key)
		}, 10*time.Second).Should(Succeed())
		Expect(metav1.IsControlledBy(key, cur)).To(BeTrue(), "the key Secret is the import's")
		Expect(key.Data[runcontract.CodesKeyData]).To(HaveLen(32))
		for _, r := range jobs.Role(cur).Rules {
			Expect(r.Verbs).NotTo(ContainElement("create"), "the worker creates nothing: %v", r)
		}

		// A key Secret planted under the name the import will use.
		planted := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "squat-codes-key"},
			Data: map[string][]byte{runcontract.CodesKeyData: []byte("0123456789abcdef0123456789abcdef")}}
		Expect(k8sClient.Create(ctx, planted)).To(Succeed())
		// Another directory: imports of one directory run one at a time.
		readyDirectory(ns, "corp2")
		squat := newImport(ns, "squat", "corp2", uiov1.ActionDraft)
		editSpec(squat, func(s *uiov1.UserImportSpec) { codes(s); s.Action = uiov1.ActionImport })
		Eventually(func(g Gomega) {
			c := condition(getImport(squat), uiov1.ConditionReady)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Reason).To(Equal(uiov1.ReasonSecretNotOwned))
			g.Expect(c.Message).To(ContainSubstring("Secret squat-codes-key exists and is not controlled by UserImport squat"))
		}, 10*time.Second).Should(Succeed())
		Expect(jobsOf(squat)).To(BeEmpty())
	})
})
