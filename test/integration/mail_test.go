package integration_test

import (
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uiov1 "github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/engine"
	"github.com/userimport/user-import-operator/internal/jobs"
	"github.com/userimport/user-import-operator/internal/runcontract"
	"github.com/userimport/user-import-operator/internal/testpeer/mailpit"
	"github.com/userimport/user-import-operator/internal/worker"
)

// mailDirectory creates a Ready SCIM directory whose spec.mail names the
// relay, with its CA and the given password in Secrets.
func mailDirectory(relay *mailpit.Server, ns, name, password string) {
	GinkgoHelper()
	Expect(k8sClient.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name + "-mail", Namespace: ns},
		Data:       map[string][]byte{"password": []byte(password), "ca.crt": relay.CAPEM},
	})).To(Succeed())
	dir := readyDirectory(ns, name)
	Eventually(func() error {
		cur := &uiov1.UserDirectory{}
		if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(dir), cur); err != nil {
			return err
		}
		cur.Spec.Mail = &uiov1.MailRelay{
			Host: relay.Host, Port: int32(relay.SMTPPort),
			CABundle:     &uiov1.SecretKeyRef{Name: name + "-mail", Key: "ca.crt"},
			AuthUsername: mailpit.User, AuthPassword: &uiov1.SecretKeyRef{Name: name + "-mail", Key: "password"},
			From: "HR onboarding <onboarding@example.com>",
		}
		return k8sClient.Update(ctx, cur)
	}).Should(Succeed())
}

var _ = Describe("a UserDirectory's mail relay", func() {
	var relay *mailpit.Server
	BeforeEach(func() {
		var err error
		relay, err = mailpit.StartIn(GinkgoT().TempDir())
		Expect(err).NotTo(HaveOccurred(), "hack/peers/install-mailpit.sh builds Mailpit")
		DeferCleanup(relay.Stop)
	})

	withMail := func(ns, name, password string) {
		GinkgoHelper()
		mailDirectory(relay, ns, name, password)
	}
	mailReady := func(ns, name string) func(Gomega) *metav1.Condition {
		return func(g Gomega) *metav1.Condition {
			dir := &uiov1.UserDirectory{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, dir)).To(Succeed())
			g.Expect(dir.Status.ObservedGeneration).To(Equal(dir.Generation))
			c := meta.FindStatusCondition(dir.Status.Conditions, uiov1.ConditionMailReady)
			g.Expect(c).NotTo(BeNil())
			return c
		}
	}

	It("says MailConnected when the relay takes STARTTLS and the credentials, and sends nothing", func() {
		ns := newNamespace()
		withMail(ns, "corp", mailpit.Password)
		Eventually(func(g Gomega) {
			c := mailReady(ns, "corp")(g)
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue), c.Message)
			g.Expect(c.Reason).To(Equal(uiov1.ReasonMailConnected))
		}, 15*time.Second).Should(Succeed())
		msgs, err := relay.Messages()
		Expect(err).NotTo(HaveOccurred())
		Expect(msgs).To(BeEmpty(), "a check sends no mail")
	})

	It("says MailAuthenticationFailed in its own condition, and the directory stays Ready", func() {
		ns := newNamespace()
		withMail(ns, "corp", "not-the-password")
		Eventually(func(g Gomega) {
			c := mailReady(ns, "corp")(g)
			g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(c.Reason).To(Equal(uiov1.ReasonMailAuthenticationFailed))
			g.Expect(c.Message).To(ContainSubstring(mailpit.User))
			g.Expect(c.Message).NotTo(ContainSubstring("not-the-password"))
		}, 15*time.Second).Should(Succeed())
		Expect(readyCondition(ns, "corp")(Default).Status).To(Equal(metav1.ConditionTrue))
		Eventually(func() []string { return eventsFor(ns, "corp", uiov1.ReasonMailAuthenticationFailed) }, 5*time.Second).ShouldNot(BeEmpty())
	})

	// The worker's report Secret, as ReportData writes it: an identity
	// that a spreadsheet would take for a formula, and an error by line.
	reportSecret := func(imp *uiov1.UserImport) {
		GinkgoHelper()
		res := engine.Result{
			Counts:  engine.Counts{Rows: 3, ChangeCounts: uiov1.ChangeCounts{Created: 2, Failed: 1}},
			Samples: []engine.Sample{{Line: 2, Op: directory.OpCreate, Identity: "=HYPERLINK(\"http://x\")"}, {Line: 4, Op: directory.OpCreate, Identity: "ann@example.com"}},
		}
		errs := []engine.RowError{{Line: 3, Identity: "bob@example.com", Msg: "mail: not a valid address"}}
		cur := getImport(imp)
		Eventually(func() error {
			s := &corev1.Secret{}
			if err := k8sClient.Get(ctx, client.ObjectKey{Namespace: cur.Namespace, Name: jobs.ReportSecretName(cur)}, s); err != nil {
				return err
			}
			s.Data = worker.ReportData(worker.RunReport{Result: res, Errors: errs})
			return k8sClient.Update(ctx, s)
		}, 10*time.Second).Should(Succeed())
	}

	It("mails the report of a completed import once to its recipients, with the outcome attached and formula cells escaped", func() {
		ns := newNamespace()
		withMail(ns, "corp", mailpit.Password)
		imp := newImport(ns, "hr", "corp", uiov1.ActionDraft)
		editSpec(imp, func(s *uiov1.UserImportSpec) {
			s.Report = uiov1.ReportMail{Recipients: []string{"hr-team@example.com", "it-team@example.com"}}
			s.Action = uiov1.ActionImport
		})
		j := job(imp, runcontract.StageImport)
		reportSecret(imp)
		workerPatch(imp, func(s *uiov1.UserImportStatus) {
			s.Source = &uiov1.SourceStatus{Size: 321, SHA256: strings.Repeat("ab", 32), Rows: 3}
			s.Progress = &uiov1.ProgressStatus{RowsProcessed: 3, RowsTotal: 3, Percent: 100, ChangeCounts: uiov1.ChangeCounts{Created: 2, Failed: 1}}
		})
		finishJob(j, true)
		expectPhase(imp, uiov1.PhaseCompleted)

		var msgs []mailpit.Message
		Eventually(func(g Gomega) {
			var err error
			msgs, err = relay.Messages()
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(msgs).To(HaveLen(1))
		}, 15*time.Second).Should(Succeed())
		d, err := relay.Detail(msgs[0].ID)
		Expect(err).NotTo(HaveOccurred())
		Expect(d.Subject).To(ContainSubstring("User import " + ns + "/hr: Completed"))
		Expect([]string{d.To[0].Address, d.To[1].Address}).To(ConsistOf("hr-team@example.com", "it-team@example.com"))
		Expect(d.Text).To(ContainSubstring("created 2, updated 0, unchanged 0, deactivated 0, deleted 0, failed 1"))
		Expect(d.Text).To(ContainSubstring("321 bytes, sha256 " + strings.Repeat("ab", 32)))
		Expect(d.Text).To(ContainSubstring("line 3: mail: not a valid address"))
		Expect(d.Attachments).To(HaveLen(1))
		csv, err := relay.Part(msgs[0].ID, d.Attachments[0].PartID)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(csv)).To(Equal("line,identity,action,error\n2,\"'=HYPERLINK(\"\"http://x\"\")\",create,\n3,bob@example.com,error,mail: not a valid address\n4,ann@example.com,create,\n"))

		Eventually(func(g Gomega) {
			got := getImport(imp)
			g.Expect(got.Status.Reports).To(HaveLen(1))
			g.Expect(got.Status.Reports[0].Phase).To(Equal(uiov1.PhaseCompleted))
			g.Expect(got.Status.Reports[0].SentTime).NotTo(BeNil())
			g.Expect(condition(got, uiov1.ConditionReportSent).Status).To(Equal(metav1.ConditionTrue))
		}, 5*time.Second).Should(Succeed())
		Eventually(func() []string { return eventsFor(ns, "hr", uiov1.ReasonReportSent) }, 5*time.Second).Should(ConsistOf(ContainSubstring("2 recipients")))
		// Sent once: later reconciles find it recorded.
		setAnnotation(imp, "poke", "1")
		Consistently(func() int { m, _ := relay.Messages(); return len(m) }, 3*time.Second, 200*time.Millisecond).Should(Equal(1))
		for _, reason := range []string{uiov1.ReasonReportSent, string(uiov1.PhaseCompleted)} {
			for _, note := range eventsFor(ns, "hr", reason) {
				Expect(note).NotTo(ContainSubstring("@example.com"))
			}
		}
	})

	It("records a report the relay refused, and says so without an address", func() {
		ns := newNamespace()
		withMail(ns, "corp", "not-the-password")
		imp := newImport(ns, "hr", "corp", uiov1.ActionDraft)
		editSpec(imp, func(s *uiov1.UserImportSpec) {
			s.Report = uiov1.ReportMail{Recipients: []string{"hr-team@example.com"}, On: []uiov1.ImportPhase{uiov1.PhasePreviewReady}}
			s.Action = uiov1.ActionPreview
		})
		j := job(imp, runcontract.StagePreview)
		workerPreview(imp, uiov1.ChangeCounts{Created: 2}, 0)
		finishJob(j, true)
		expectPhase(imp, uiov1.PhasePreviewReady)
		Eventually(func(g Gomega) {
			got := getImport(imp)
			c := condition(got, uiov1.ConditionReportSent)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(c.Message).To(ContainSubstring("MailAuthenticationFailed"))
			g.Expect(got.Status.Reports).To(HaveLen(1))
			g.Expect(got.Status.Reports[0].SentTime).To(BeNil())
		}, 15*time.Second).Should(Succeed())
		var notes []string
		Eventually(func() []string {
			notes = eventsFor(ns, "hr", uiov1.ReasonReportFailed)
			return notes
		}, 5*time.Second).ShouldNot(BeEmpty())
		for _, n := range notes {
			Expect(n).NotTo(ContainSubstring("@example.com"))
		}
		msgs, err := relay.Messages()
		Expect(err).NotTo(HaveOccurred())
		Expect(msgs).To(BeEmpty())
	})
})
