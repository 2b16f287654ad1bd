//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"

	apimeta "k8s.io/apimachinery/pkg/api/meta"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authorizationv1 "k8s.io/api/authorization/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uiov1 "github.com/userimport/user-import-operator/api/v1alpha1"
	sqldir "github.com/userimport/user-import-operator/internal/directory/sql"
	"github.com/userimport/user-import-operator/internal/testpeer/mailpit"
	"github.com/userimport/user-import-operator/internal/testpeer/postgres"
)

// report prints a figure the issue asks for, in the verbose output and
// in the suite's report.
func report(name, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	fmt.Fprintf(GinkgoWriter, "FIGURE %s: %s\n", name, msg)
	AddReportEntry(name, msg)
}

// The imports of a PostgreSQL directory through real worker Jobs. The
// specs share one database server (each has its own table and
// directory); they run in order so that the last one can read the logs
// and Events of all the others.
// The longest containers and specs start first (SpecPriority), so that
// the suite's three processes end together rather than one waiting on a
// long spec that began last.
var _ = Describe("Imports into a PostgreSQL directory", Ordered, ContinueOnFailure, SpecPriority(100), func() {
	var pg *postgres.Server
	// imports are the imports the specs made that reached a final phase.
	var imports []*uiov1.UserImport

	BeforeAll(func() {
		pg = startPostgres()
	})

	It("imports 10,000 rows from a ConfigMap in full mode through a Job", Label("chart"), func(ctx SpecContext) {
		const n = 10000
		want := people(0, n)
		data := csvFile(want)
		Expect(len(data)).To(BeNumerically("<", 1000*1000), "the file fits in a ConfigMap (at most 1 MiB)")
		report("10k file size", "%d bytes", len(data))

		table := newTable(ctx, pg, "people_full")
		sqlDirectory(ctx, "full", table, "", uiov1.ExecutionSettings{})
		csvConfigMap(ctx, "full-10k", data)

		start := time.Now()
		imp := newImport(ctx, "full-10k", importSpec("full", "full-10k", uiov1.ModeFull, uiov1.ActionImport))
		waitPhase(ctx, imp, uiov1.PhaseCompleted, 10*time.Minute)
		elapsed := time.Since(start)
		imports = append(imports, imp)
		report("10k-row import", "%.1fs from create to Completed (status: start %s, completion %s)",
			elapsed.Seconds(), imp.Status.StartTime.Format(time.RFC3339), imp.Status.CompletionTime.Format(time.RFC3339))

		table.expectUsers(ctx, want)

		p := imp.Status.Progress
		Expect(p).NotTo(BeNil())
		Expect(p.Created).To(BeEquivalentTo(n))
		Expect(p.Failed).To(BeZero())
		Expect(p.Percent).To(BeEquivalentTo(100))
		Expect(imp.Status.Source).NotTo(BeNil())
		Expect(imp.Status.Source.Rows).To(BeEquivalentTo(n))

		jobs := importJobs(ctx, imp.Name)
		Expect(jobs).To(HaveLen(1), "one Job ran the import")
		Expect(jobs[0].Name).To(Equal(imp.Status.JobName))
		Expect(jobs[0].Status.Conditions).To(ContainElement(And(
			HaveField("Type", batchv1.JobComplete), HaveField("Status", corev1.ConditionTrue))))

		rows := kubectlTable(ctx, "userimports", "-n", testNamespace, imp.Name)
		Expect(rows).To(HaveLen(1))
		Expect(rows[0]).To(And(
			HaveKeyWithValue("PHASE", "Completed"),
			HaveKeyWithValue("PROGRESS", "100"),
			HaveKeyWithValue("CREATED", fmt.Sprint(n)),
			HaveKeyWithValue("DIRECTORY", "full"),
			HaveKeyWithValue("MODE", "Full"),
		), "kubectl get userimports shows the counts")

		out, err := kubectl(ctx, "wait", "-n", testNamespace, "--for=condition=Ready", "userimport/"+imp.Name, "--timeout=60s")
		Expect(err).NotTo(HaveOccurred())
		Expect(out).To(ContainSubstring("condition met"))
	}, SpecTimeout(12*time.Minute))

	It("imports what its preview said", func(ctx SpecContext) {
		table := newTable(ctx, pg, "people_preview")
		file := people(0, 1000)
		// Before the import: rows 0-299 exist, 50 of them with another
		// department; 10 managed users are not in the file (Deactivate);
		// 5 unmanaged users are not in the file either (left alone).
		existing := people(0, 300)
		for i := 0; i < 50; i++ {
			existing[i] = append(person{}, existing[i]...)
			existing[i][4] = "Old Department"
		}
		table.insertUsers(ctx, existing, true)
		gone := people(5000, 10)
		table.insertUsers(ctx, gone, true)
		unmanaged := people(6000, 5)
		table.insertUsers(ctx, unmanaged, false)

		sqlDirectory(ctx, "preview", table, "", uiov1.ExecutionSettings{})
		csvConfigMap(ctx, "preview", csvFile(file))
		spec := importSpec("preview", "preview", uiov1.ModeFull, uiov1.ActionPreview)
		spec.MissingUsers = uiov1.MissingDeactivate
		imp := newImport(ctx, "preview-then-import", spec)
		waitPhase(ctx, imp, uiov1.PhasePreviewReady, 5*time.Minute)

		Expect(imp.Status.Preview).NotTo(BeNil())
		Expect(imp.Status.Preview.Generation).To(Equal(imp.Generation))
		want := uiov1.ChangeCounts{Created: 700, Updated: 50, Unchanged: 250, Deactivated: 10}
		Expect(imp.Status.Preview.Counts).To(Equal(want), "preview counts")
		Expect(imp.Status.Preview.ManagedUsers).To(BeEquivalentTo(310))
		// A preview writes nothing.
		Expect(table.users(ctx)).To(HaveLen(315))

		importAfterPreview(ctx, imp)
		imports = append(imports, imp)

		p := imp.Status.Progress
		Expect(p).NotTo(BeNil())
		Expect(p.ChangeCounts).To(Equal(want), "the import did what the preview said")

		got := table.users(ctx)
		Expect(got).To(HaveLen(1015))
		for _, r := range file {
			Expect(got[r.id()].Active).To(BeTrue())
			Expect(equalRows(got[r.id()].Row, r)).To(BeTrue(), "row %s matches the file", r.id())
		}
		for _, r := range gone {
			Expect(got[r.id()].Active).To(BeFalse(), "managed user %s missing from the file is deactivated", r.id())
		}
		for _, r := range unmanaged {
			Expect(got[r.id()].Active).To(BeTrue(), "unmanaged user %s is left alone", r.id())
		}
	}, SpecTimeout(12*time.Minute))

	It("resumes from the checkpoint when the worker pod is deleted mid-import", func(ctx SpecContext) {
		const n = 5000
		want := people(10000, n)
		table := newTable(ctx, pg, "people_resume")
		table.slowAndCounted(ctx, 4*time.Millisecond)
		// One connection: the rows go in one after another, about 20 s.
		sqlDirectory(ctx, "resume", table, "", uiov1.ExecutionSettings{Concurrency: 1, BatchSize: 100})
		csvConfigMap(ctx, "resume", csvFile(want))

		start := time.Now()
		imp := newImport(ctx, "resume", importSpec("resume", "resume", uiov1.ModeFull, uiov1.ActionImport))
		// Wait for a checkpoint well before the end.
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(imp), imp)).To(Succeed())
			if imp.Status.Phase.IsFinal() {
				StopTrying(fmt.Sprintf("the import ended %s before it could be interrupted", imp.Status.Phase)).Now()
			}
			g.Expect(imp.Status.Phase).To(Equal(uiov1.PhaseImporting))
			g.Expect(imp.Status.Progress).NotTo(BeNil())
			g.Expect(imp.Status.Progress.Checkpoint).NotTo(BeNil())
			g.Expect(imp.Status.Progress.Checkpoint.Line).To(BeNumerically(">", 1000))
		}).WithContext(ctx).WithTimeout(5 * time.Minute).WithPolling(250 * time.Millisecond).Should(Succeed())
		cp := *imp.Status.Progress.Checkpoint
		Expect(cp.Line).To(BeNumerically("<", n*3/4), "the checkpoint is early enough to show a resume")
		before, _ := table.inserts(ctx)

		pods := jobPods(ctx, imp.Status.JobName)
		Expect(pods).To(HaveLen(1))
		keepLogs(ctx, &pods[0])
		killed := time.Now()
		Expect(k8s.Delete(ctx, &pods[0])).To(Succeed())
		fmt.Fprintf(GinkgoWriter, "deleted worker pod %s at checkpoint line %d (%d rows inserted)\n", pods[0].Name, cp.Line, before)

		var resumedAt time.Duration
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(imp), imp)).To(Succeed())
			g.Expect(imp.Status.Progress.Resumes).To(BeNumerically(">=", 1))
		}).WithContext(ctx).WithTimeout(5 * time.Minute).Should(Succeed())
		resumedAt = time.Since(killed)
		waitPhase(ctx, imp, uiov1.PhaseCompleted, 5*time.Minute)
		imports = append(imports, imp)
		report("resume", "the next pod resumed %.1fs after the worker pod was deleted; Completed %.1fs after the deletion, %.1fs after create (%d rows, 4 ms each)",
			resumedAt.Seconds(), time.Since(killed).Seconds(), time.Since(start).Seconds(), n)

		p := imp.Status.Progress
		Expect(p.Resumes).To(BeNumerically(">=", 1))
		Expect(len(jobPods(ctx, imp.Status.JobName))).To(BeNumerically(">=", 1))
		// The next pod went on from the checkpoint: the rows before it
		// keep their counts as created, and only the rows written after
		// the checkpoint and before the deletion (one batch at most)
		// are found again, unchanged. A start from line 1 would find
		// every row before the checkpoint unchanged.
		Expect(p.Created+p.Unchanged).To(BeEquivalentTo(n), "every row counted once")
		Expect(p.Unchanged).To(BeNumerically("<=", 100), "rows replayed after the checkpoint (checkpoint at line %d)", cp.Line)
		total, distinct := table.inserts(ctx)
		Expect(distinct).To(BeEquivalentTo(n))
		Expect(total).To(BeEquivalentTo(n), "no user was created twice")
		table.expectUsers(ctx, want)
	}, SpecTimeout(12*time.Minute))

	It("completes once, with one Job, when the operator pod is deleted mid-import", func(ctx SpecContext) {
		const n = 4000
		want := people(20000, n)
		table := newTable(ctx, pg, "people_restart")
		table.slowAndCounted(ctx, 4*time.Millisecond)
		sqlDirectory(ctx, "restart", table, "", uiov1.ExecutionSettings{Concurrency: 1, BatchSize: 100})
		csvConfigMap(ctx, "restart", csvFile(want))

		imp := newImport(ctx, "operator-restart", importSpec("restart", "restart", uiov1.ModeFull, uiov1.ActionImport))
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(imp), imp)).To(Succeed())
			g.Expect(imp.Status.Phase).To(Equal(uiov1.PhaseImporting))
			g.Expect(imp.Status.JobName).NotTo(BeEmpty())
			g.Expect(imp.Status.Progress).NotTo(BeNil())
			g.Expect(imp.Status.Progress.RowsProcessed).To(BeNumerically(">", 0))
		}).WithContext(ctx).WithTimeout(5 * time.Minute).WithPolling(250 * time.Millisecond).Should(Succeed())
		jobs := importJobs(ctx, imp.Name)
		Expect(jobs).To(HaveLen(1))
		jobUID := jobs[0].UID

		old := managerPod(ctx)
		keepLogs(ctx, old)
		Expect(k8s.Delete(ctx, old)).To(Succeed())
		fmt.Fprintf(GinkgoWriter, "deleted operator pod %s while import %s was at %d rows\n", old.Name, imp.Name, imp.Status.Progress.RowsProcessed)
		Eventually(func(g Gomega) {
			var pods corev1.PodList
			g.Expect(k8s.List(ctx, &pods, client.InNamespace(operatorNamespace), client.MatchingLabels{"control-plane": "controller-manager"})).To(Succeed())
			var ready []string
			for _, p := range pods.Items {
				if p.Name != old.Name && p.DeletionTimestamp == nil && isReady(&p) {
					ready = append(ready, p.Name)
				}
			}
			g.Expect(ready).To(HaveLen(1), "a new manager pod is Ready")
		}).WithContext(ctx).WithTimeout(3 * time.Minute).Should(Succeed())

		waitPhase(ctx, imp, uiov1.PhaseCompleted, 8*time.Minute)
		imports = append(imports, imp)
		jobs = importJobs(ctx, imp.Name)
		Expect(jobs).To(HaveLen(1), "still one Job")
		Expect(jobs[0].UID).To(Equal(jobUID), "the new manager adopted the running Job")
		Expect(jobPods(ctx, jobs[0].Name)).To(HaveLen(1), "the worker ran once")
		Expect(imp.Status.Progress.Resumes).To(BeZero())
		Expect(imp.Status.Progress.Created).To(BeEquivalentTo(n), "the worker ran once, through the whole file")
		total, _ := table.inserts(ctx)
		Expect(total).To(BeEquivalentTo(n))
		table.expectUsers(ctx, want)

		// One Event per transition: the import started once and
		// completed once.
		Eventually(func(g Gomega) {
			g.Expect(transitions(ctx, imp.Name)).To(And(
				HaveKeyWithValue("Importing", 1), HaveKeyWithValue("Completed", 1)))
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())
	}, SpecTimeout(15*time.Minute))

	It("runs two delta imports to one directory one after the other, in creation order", func(ctx SpecContext) {
		table := newTable(ctx, pg, "people_queue")
		table.slowAndCounted(ctx, 4*time.Millisecond)
		sqlDirectory(ctx, "queue", table, "", uiov1.ExecutionSettings{Concurrency: 1, BatchSize: 100})

		// The first file sets rows 0-1999; the second changes the
		// department of rows 0-399. Only this order ends with the second
		// file's departments.
		first := people(30000, 2000)
		second := people(30000, 400)
		for i := range second {
			second[i] = append(person{}, second[i]...)
			second[i][4] = "Department " + fmt.Sprint(i%7)
		}
		csvConfigMap(ctx, "queue-first", csvFile(first))
		csvConfigMap(ctx, "queue-second", csvFile(second))

		// Names in the opposite order to creation: the queue must follow
		// creation time, not the name.
		a := newImport(ctx, "delta-z-first", importSpec("queue", "queue-first", uiov1.ModeDelta, uiov1.ActionImport))
		time.Sleep(1100 * time.Millisecond) // creation timestamps have second precision
		b := newImport(ctx, "delta-a-second", importSpec("queue", "queue-second", uiov1.ModeDelta, uiov1.ActionImport))

		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(a), a)).To(Succeed())
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(b), b)).To(Succeed())
			g.Expect(a.Status.Phase).To(Equal(uiov1.PhaseImporting))
			g.Expect(b.Status.Phase).To(Equal(uiov1.PhaseImportPending))
			g.Expect(b.Status.QueuePosition).To(BeEquivalentTo(1))
			var dir uiov1.UserDirectory
			g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: "queue"}, &dir)).To(Succeed())
			g.Expect(dir.Status.ActiveImport).To(Equal(a.Name))
			g.Expect(dir.Status.Queue).To(Equal([]string{b.Name}))
		}).WithContext(ctx).WithTimeout(5 * time.Minute).WithPolling(250 * time.Millisecond).Should(Succeed())

		waitPhase(ctx, a, uiov1.PhaseCompleted, 5*time.Minute)
		waitPhase(ctx, b, uiov1.PhaseCompleted, 5*time.Minute)
		imports = append(imports, a, b)
		Expect(b.Status.StartTime).NotTo(BeNil())
		Expect(a.Status.CompletionTime).NotTo(BeNil())
		Expect(b.Status.StartTime.Time).NotTo(BeTemporally("<", a.Status.CompletionTime.Time), "the second started after the first completed")
		Expect(b.Status.Progress.Updated).To(BeEquivalentTo(400))

		want := append([]person{}, second...)
		want = append(want, first[400:]...)
		table.expectUsers(ctx, want)
	}, SpecTimeout(12*time.Minute))

	It("refuses a wrong column in its Job at once, nothing written, and imports on the same object once the mapping is fixed", func(ctx SpecContext) {
		table := newTable(ctx, pg, "people_refused")
		sqlDirectory(ctx, "refused", table, "", uiov1.ExecutionSettings{})
		want := people(40000, 300)
		csvConfigMap(ctx, "refused-file", csvFile(want))
		spec := importSpec("refused", "refused-file", uiov1.ModeDelta, uiov1.ActionImport)
		spec.Mapping[2].Column = "first_nme"
		imp := newImport(ctx, "refused", spec)

		start := time.Now()
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(imp), imp)).To(Succeed())
			if imp.Status.Phase.IsFinal() {
				StopTrying(fmt.Sprintf("the import ended %s: %s", imp.Status.Phase, describeConditions(imp.Status.Conditions))).Now()
			}
			g.Expect(imp.Status.Phase).To(Equal(uiov1.PhasePreviewPending))
			c := apimeta.FindStatusCondition(imp.Status.Conditions, uiov1.ConditionInputRejected)
			g.Expect(c).NotTo(BeNil(), "conditions %s", describeConditions(imp.Status.Conditions))
			g.Expect(c.Reason).To(Equal(uiov1.ReasonInvalidMapping))
			g.Expect(c.Message).To(ContainSubstring("first_nme"))
			g.Expect(apimeta.IsStatusConditionTrue(imp.Status.Conditions, uiov1.ConditionStalled)).To(BeTrue())
		}).WithContext(ctx).WithTimeout(3 * time.Minute).WithPolling(time.Second).Should(Succeed())
		// The Job failed on the worker's exit status at once, without the
		// retries of its backoff limit (10 s, 20 s, 40 s between pods).
		report("refused", "a wrong column refused in %.0fs from create", time.Since(start).Seconds())
		Expect(time.Since(start)).To(BeNumerically("<", 60*time.Second), "refused without the Job's retries")
		Expect(table.users(ctx)).To(BeEmpty(), "nothing was written")

		Eventually(func() error {
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(imp), imp); err != nil {
				return err
			}
			imp.Spec.Mapping[2].Column = "first_name"
			return k8s.Update(ctx, imp)
		}).WithContext(ctx).Should(Succeed())
		waitPhase(ctx, imp, uiov1.PhaseCompleted, 5*time.Minute)
		imports = append(imports, imp)
		table.expectUsers(ctx, want)
	}, SpecTimeout(10*time.Minute))

	It("sends invitations from its Job pod, and the report mail once, through a relay the pods reach", func(ctx SpecContext) {
		relay, err := mailpit.StartAt(GinkgoT().TempDir(), podsAddress())
		Expect(err).NotTo(HaveOccurred(), "hack/peers/install-mailpit.sh builds Mailpit")
		DeferCleanup(relay.Stop)

		const n = 200
		rows := people(50000, n)
		table := newTable(ctx, pg, "people_invited")
		table.exec(ctx, "ALTER TABLE people_invited ADD COLUMN invited text")
		dir := sqlDirectory(ctx, "invites", table, "", uiov1.ExecutionSettings{})
		Expect(k8s.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "relay"},
			Data:       map[string][]byte{"password": []byte(mailpit.Password), "ca.crt": relay.CAPEM},
		})).To(Succeed())
		Eventually(func() error {
			if err := k8s.Get(ctx, client.ObjectKeyFromObject(dir), dir); err != nil {
				return err
			}
			dir.Spec.Mail = &uiov1.MailRelay{
				Host: relay.Host, Port: int32(relay.SMTPPort),
				CABundle:     &uiov1.SecretKeyRef{Name: "relay", Key: "ca.crt"},
				AuthUsername: mailpit.User, AuthPassword: &uiov1.SecretKeyRef{Name: "relay", Key: "password"},
				From: "HR onboarding <onboarding@example.com>", RateLimit: 50,
			}
			dir.Spec.Invitations = &uiov1.DirectoryInvitations{InvitedAttribute: "invited"}
			return k8s.Update(ctx, dir)
		}).WithContext(ctx).Should(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(dir), dir)).To(Succeed())
			c := apimeta.FindStatusCondition(dir.Status.Conditions, uiov1.ConditionMailReady)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue), "MailReady: %s: %s", c.Reason, c.Message)
		}).WithContext(ctx).WithTimeout(time.Minute).Should(Succeed())

		csvConfigMap(ctx, "invites", csvFile(rows))
		spec := importSpec("invites", "invites", uiov1.ModeDelta, uiov1.ActionImport)
		spec.Invitations = uiov1.Invitations{NewUsers: true, AddressAttribute: "email", Organization: "Example Corp", SignInURL: "https://intranet.example.com"}
		spec.Report = uiov1.ReportMail{Recipients: []string{"hr-team@example.com"}}
		imp := newImport(ctx, "invites", spec)
		waitPhase(ctx, imp, uiov1.PhaseCompleted, 5*time.Minute)
		imports = append(imports, imp)
		Expect(imp.Status.Invitations).NotTo(BeNil())
		Expect(imp.Status.Invitations.Sent).To(BeEquivalentTo(n))
		c := apimeta.FindStatusCondition(imp.Status.Conditions, uiov1.ConditionInvitationsSent)
		Expect(c).NotTo(BeNil())
		Expect(c.Status).To(Equal(metav1.ConditionTrue), c.Message)

		want := map[string]int{"hr-team@example.com": 1}
		for _, r := range rows {
			want[strings.ToLower(strings.TrimSpace(r[1]))] = 1
		}
		got := func() map[string]int {
			msgs, err := relay.Messages()
			Expect(err).NotTo(HaveOccurred())
			out := map[string]int{}
			for _, m := range msgs {
				for _, to := range m.To {
					out[to.Address]++
				}
			}
			return out
		}
		Eventually(got).WithContext(ctx).WithTimeout(time.Minute).Should(Equal(want), "one invitation per user and one report")
		Consistently(got).WithContext(ctx).WithTimeout(5*time.Second).Should(Equal(want), "nothing is sent twice")
		report("invitations", "%d invitations from the Job pod and 1 report mail from the manager", n)
	}, SpecTimeout(8*time.Minute))

	It("reports a wrong password on the directory and on an import against it", func(ctx SpecContext) {
		table := newTable(ctx, pg, "people_badauth")
		u, err := urlWithPassword(pg.DSN, "not-the-password")
		Expect(err).NotTo(HaveOccurred())
		dir := sqlDirectory(ctx, "badauth", table, u, uiov1.ExecutionSettings{})
		expectNotReady(ctx, dir, "AuthenticationFailed")
		expectImportWaits(ctx, dir.Name, nil, "AuthenticationFailed")
		Expect(table.users(ctx)).To(BeEmpty())
	}, SpecTimeout(5*time.Minute))

	It("gives the worker's ServiceAccount no access to Secrets or other imports", func(ctx SpecContext) {
		Expect(len(imports)).To(BeNumerically(">=", 2), "earlier specs ran imports")
		own, other := imports[0], imports[1]
		sa := workerServiceAccount(ctx, own)
		user := "system:serviceaccount:" + testNamespace + ":" + sa
		groups := []string{"system:serviceaccounts", "system:serviceaccounts:" + testNamespace, "system:authenticated"}
		can := func(attrs authorizationv1.ResourceAttributes) bool {
			attrs.Namespace = testNamespace
			sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
				User: user, Groups: groups, ResourceAttributes: &attrs,
			}}
			Expect(k8s.Create(ctx, sar)).To(Succeed())
			return sar.Status.Allowed
		}
		group := uiov1.GroupVersion.Group
		// What it needs: its own import and status.
		Expect(can(authorizationv1.ResourceAttributes{Group: group, Resource: "userimports", Verb: "get", Name: own.Name})).To(BeTrue(), "get its own UserImport")
		Expect(can(authorizationv1.ResourceAttributes{Group: group, Resource: "userimports", Subresource: "status", Verb: "patch", Name: own.Name})).To(BeTrue(), "patch its own status")
		// Nothing else.
		denied := []authorizationv1.ResourceAttributes{
			{Resource: "secrets", Verb: "get", Name: "full-dsn"},
			{Resource: "secrets", Verb: "list"},
			{Resource: "secrets", Verb: "watch"},
			{Resource: "secrets", Verb: "get", Name: ptr.Deref(reportSecret(own), "")},
			{Group: group, Resource: "userimports", Verb: "get", Name: other.Name},
			{Group: group, Resource: "userimports", Verb: "list"},
			{Group: group, Resource: "userimports", Subresource: "status", Verb: "patch", Name: other.Name},
			{Group: group, Resource: "userimports", Verb: "update", Name: own.Name},
			{Group: group, Resource: "userdirectories", Verb: "get", Name: "full"},
			{Resource: "configmaps", Verb: "get", Name: "full-10k"},
			{Resource: "pods", Verb: "create"},
		}
		for _, a := range denied {
			Expect(can(a)).To(BeFalse(), "%s %s/%s %s", a.Verb, a.Resource, a.Subresource, a.Name)
		}
	}, SpecTimeout(2*time.Minute))

	It("keeps groups and managers from the file, as its preview said", func(ctx SpecContext) {
		const n = 2000
		table := newTable(ctx, pg, "people_groups")
		table.exec(ctx, `ALTER TABLE people_groups ADD COLUMN manager TEXT`)
		groups := &uiov1.SQLGroups{Table: "people_groups_members"}
		Expect(sqldir.CreateTable(ctx, uiov1.SQLDriverPostgres, pg.DSN, sqldir.TableSpec{
			Table: table.name, IdentityColumn: "employee_id", Groups: groups})).To(Succeed())
		dir := sqlDirectory(ctx, "groups", table, "", uiov1.ExecutionSettings{})
		Eventually(func() error {
			Expect(k8s.Get(ctx, client.ObjectKeyFromObject(dir), dir)).To(Succeed())
			dir.Spec.SQL.Groups = groups
			return k8s.Update(ctx, dir)
		}).WithContext(ctx).WithTimeout(30 * time.Second).Should(Succeed())

		// Each employee's manager is the first of their ten; the first
		// has none. The manager column holds identities, and is recorded
		// with the other values for the scan of the logs.
		rows := people(20000, n)
		var b strings.Builder
		b.WriteString(strings.Join(csvColumns, ",") + ",manager\n")
		var extra []person
		for i, r := range rows {
			mgr := ""
			if i%10 != 0 {
				mgr = rows[i-i%10].id()
			}
			b.WriteString(strings.Join(r, ",") + "," + mgr + "\n")
			extra = append(extra, person{"dept-" + r[4]})
		}
		csvFile(append(rows, extra...)) // records the values, group names included
		csvConfigMap(ctx, "groups", []byte(b.String()))

		spec := importSpec("groups", "groups", uiov1.ModeFull, uiov1.ActionPreview)
		spec.Mapping = append(spec.Mapping,
			uiov1.AttributeMapping{Attribute: "groups", Template: "dept-{{.department}}", Target: uiov1.TargetGroups},
			uiov1.AttributeMapping{Attribute: "manager", Column: "manager", Target: uiov1.TargetManager})
		imp := newImport(ctx, "groups-and-managers", spec)
		waitPhase(ctx, imp, uiov1.PhasePreviewReady, 5*time.Minute)
		Expect(imp.Status.Preview.Groups).NotTo(BeNil())
		planned := *imp.Status.Preview.Groups
		Expect(planned.MembershipsAdded).To(BeEquivalentTo(n))
		Expect(planned.ManagersSet).To(BeEquivalentTo(n - n/10))
		Expect(planned.GroupsCreated).To(BeNumerically(">", 1))

		importAfterPreview(ctx, imp)
		imports = append(imports, imp)
		Expect(imp.Status.Progress.Groups).NotTo(BeNil())
		Expect(*imp.Status.Progress.Groups).To(Equal(planned), "the import did what the preview said")
		report("groups and managers", "%+v", planned)

		conn := table.conn(ctx)
		var members, distinct, managed int
		Expect(conn.QueryRow(ctx, `SELECT count(*), count(DISTINCT group_name) FROM people_groups_members WHERE managed_by = 'user-import-operator'`).Scan(&members, &distinct)).To(Succeed())
		Expect(members).To(Equal(n))
		Expect(distinct).To(BeEquivalentTo(planned.GroupsCreated))
		Expect(conn.QueryRow(ctx, `SELECT count(*) FROM people_groups u JOIN people_groups m ON u.manager = m.employee_id`).Scan(&managed)).To(Succeed())
		Expect(managed).To(Equal(n-n/10), "every manager refers to a user of the table")
	}, SpecTimeout(12*time.Minute))

	It("writes no CSV value to the operator's or the workers' logs, or to Events", func(ctx SpecContext) {
		Expect(imports).NotTo(BeEmpty(), "earlier specs ran imports")
		var logs []string
		pods, err := clientset.CoreV1().Pods(operatorNamespace).List(ctx, metav1.ListOptions{LabelSelector: managerSelector})
		Expect(err).NotTo(HaveOccurred())
		workers, err := clientset.CoreV1().Pods(testNamespace).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/managed-by=user-import-operator"})
		Expect(err).NotTo(HaveOccurred())
		Expect(workers.Items).NotTo(BeEmpty(), "worker pods are kept after their Jobs finish")
		all := append(pods.Items, workers.Items...)
		for _, p := range all {
			b, err := clientset.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
			Expect(err).NotTo(HaveOccurred(), "logs of %s", p.Name)
			logs = append(logs, string(b))
		}
		operatorLog := strings.Join(logs[:len(pods.Items)], "\n")
		Expect(operatorLog).To(ContainSubstring("UserImport"), "the operator logs its work (so the scan below reads something)")
		// And those of the pods that earlier specs deleted.
		logs = append(logs, deletedPodLogs...)

		var texts []string
		texts = append(texts, logs...)
		for _, ns := range []string{testNamespace, operatorNamespace} {
			var events corev1.EventList
			Expect(k8s.List(ctx, &events, client.InNamespace(ns))).To(Succeed())
			for _, e := range events.Items {
				texts = append(texts, e.Reason+" "+e.Message)
			}
			if ns == testNamespace {
				Expect(events.Items).NotTo(BeEmpty())
			}
		}
		// Statuses too: they are as public as Events.
		var list uiov1.UserImportList
		Expect(k8s.List(ctx, &list, client.InNamespace(testNamespace))).To(Succeed())
		for _, imp := range list.Items {
			texts = append(texts, describeConditions(imp.Status.Conditions))
		}

		// The scan finds a value where there is one.
		probe := people(0, 1)[0]
		Expect(leakedValues([]string{"level=info msg=\"row " + probe[1] + "\""})).To(Equal(1))
		Expect(leakedValues([]string{"line 2: " + probe[0] + ","})).To(Equal(1))

		leaks := leakedValues(texts)
		Expect(leaks).To(BeZero(), "CSV values found in logs, Events or status (values not shown: they are personal data)")
		report("log scan", "%d pod logs and %d logs of deleted pods (%d bytes) and the Events of 2 namespaces scanned for %d CSV values", len(all), len(deletedPodLogs), totalLen(logs), len(rowValues.set))
	}, SpecTimeout(3*time.Minute))
})

// deletedPodLogs are the logs of the pods the specs deleted, read just
// before, for the log scan.
var deletedPodLogs []string

// keepLogs saves the logs of pod p, which the spec is about to delete.
func keepLogs(ctx context.Context, p *corev1.Pod) {
	deletedPodLogs = append(deletedPodLogs, podLog(ctx, p))
}

// transitions counts the phase Events of import name by reason.
func transitions(ctx context.Context, name string) map[string]int {
	var events corev1.EventList
	Expect(k8s.List(ctx, &events, client.InNamespace(testNamespace))).To(Succeed())
	out := map[string]int{}
	for _, e := range events.Items {
		if e.InvolvedObject.Kind != "UserImport" || e.InvolvedObject.Name != name {
			continue
		}
		n := 1
		if e.Series != nil && e.Series.Count > 1 {
			n = int(e.Series.Count)
		} else if e.Count > 1 {
			n = int(e.Count)
		}
		out[e.Reason] += n
	}
	return out
}

func totalLen(ss []string) int {
	n := 0
	for _, s := range ss {
		n += len(s)
	}
	return n
}

// tokens splits text into the runs that could be a CSV value of this
// suite: e-mail addresses, employee IDs and words (names, departments).
var tokens = regexp.MustCompile(`[\p{L}\p{N}._%+'@-]+`)

// leakedValues counts the distinctive CSV values found in texts: e-mail
// addresses, employee IDs, and names and departments of more than one
// word or with letters outside ASCII (a plain "Sales" or "Anna" could be
// an ordinary word of a log line).
func leakedValues(texts []string) int {
	rowValues.Lock()
	defer rowValues.Unlock()
	single := map[string]bool{}
	var multi []string
	for v := range rowValues.set {
		if v == "" {
			continue
		}
		switch {
		case strings.Contains(v, " "):
			multi = append(multi, v)
		case strings.Contains(v, "@"), regexp.MustCompile(`^E\d{7}$`).MatchString(v), strings.IndexFunc(v, func(r rune) bool { return r > 127 }) >= 0:
			single[v] = true
		}
	}
	found := 0
	for _, t := range texts {
		for _, tok := range tokens.FindAllString(t, -1) {
			if single[strings.Trim(tok, ".,'-")] {
				found++
			}
		}
		for _, v := range multi {
			if strings.Contains(t, v) {
				found++
			}
		}
	}
	return found
}

// reportSecret names the report Secret of imp.
func reportSecret(imp *uiov1.UserImport) *string {
	if imp.Status.ReportSecretRef == nil {
		return ptr.To(imp.Name + "-report")
	}
	return ptr.To(imp.Status.ReportSecretRef.Name)
}

// urlWithPassword replaces the password of a PostgreSQL URL.
func urlWithPassword(dsn, password string) (string, error) {
	u, err := url.Parse(dsn)
	if err != nil {
		return "", err
	}
	u.User = url.UserPassword(u.User.Username(), password)
	return u.String(), nil
}
