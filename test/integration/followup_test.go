package integration_test

import (
	"fmt"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uiov1 "github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/controllers"
	"github.com/userimport/user-import-operator/internal/jobs"
	"github.com/userimport/user-import-operator/internal/runcontract"
	"github.com/userimport/user-import-operator/internal/testenv"
	"github.com/userimport/user-import-operator/internal/testpeer/blackhole"
	"github.com/userimport/user-import-operator/internal/testpeer/mailpit"
)

// blackHole accepts TCP connections and never answers: a relay or an
// SFTP server that hangs.
func blackHole() (host string, port int32) {
	GinkgoHelper()
	h, err := blackhole.Start()
	Expect(err).NotTo(HaveOccurred())
	DeferCleanup(h.Close)
	return h.Host, h.Port
}

var _ = Describe("what an import owes after its phase", Ordered, func() {
	BeforeAll(func() {
		// Timeouts of seconds: the spec waits for a hung check and a hung
		// report to end.
		stopManager()
		stopManager = startManager(controllers.Options{AllowedHosts: testenv.Loopback(), Executor: controllers.ExecutorJob, Job: jobSettings,
			CheckTimeout: 5 * time.Second, ReportTimeout: 5 * time.Second})
		DeferCleanup(func() {
			stopManager()
			stopManager = startOperator()
		})
	})

	It("mails the report on workers of its own: a relay that never answers delays no other import", func() {
		// Another team's import, ready to be started.
		other := newNamespace()
		readyDirectory(other, "corp")
		theirs := newImport(other, "hr", "corp", uiov1.ActionDraft)

		// This team's relay accepts connections and never answers.
		ns := newNamespace()
		hungMailDirectories("corp", ns)
		ours := completedWithReport(ns, "hr", "corp")
		// The report is on its way into the black hole (5 s a try).
		time.Sleep(time.Second)

		start := time.Now()
		setAction(theirs, uiov1.ActionImport)
		j := &batchv1.Job{}
		Eventually(func() error {
			cur := getImport(theirs)
			return k8sClient.Get(ctx, client.ObjectKey{Namespace: other, Name: jobs.JobName(cur, runcontract.StageImport)}, j)
		}, 5*time.Second, 50*time.Millisecond).Should(Succeed(), "the other import's run starts while the report hangs")
		GinkgoWriter.Printf("the other import's Job came %v after its action\n", time.Since(start))

		// The hung report ends as a failed try, recorded, and the import
		// stays Completed.
		Eventually(func(g Gomega) {
			got := getImport(ours)
			g.Expect(got.Status.Reports).To(HaveLen(1))
			g.Expect(got.Status.Reports[0].Attempts).To(BeNumerically(">=", 1))
			g.Expect(got.Status.Reports[0].SentTime).To(BeNil())
			g.Expect(got.Status.Reports[0].Message).NotTo(BeEmpty())
		}, 90*time.Second, 500*time.Millisecond).Should(Succeed())
		Expect(getImport(ours).Status.Phase).To(Equal(uiov1.PhaseCompleted))
	})

	It("mails another namespace's report at once while more relays than the controller has workers never answer", func() {
		relay, err := mailpit.StartIn(GinkgoT().TempDir())
		Expect(err).NotTo(HaveOccurred(), "hack/peers/install-mailpit.sh builds Mailpit")
		DeferCleanup(relay.Stop)
		theirs := newNamespace()
		mailDirectory(relay, theirs, "corp", mailpit.Password)

		// Three tenants, two reports each, into relays that never answer
		// (each try waits 5 s, and a report makes three).
		hung := []string{newNamespace(), newNamespace(), newNamespace()}
		hungMailDirectories("corp", hung...)
		for _, ns := range hung {
			completedWithReport(ns, "first", "corp")
			completedWithReport(ns, "second", "corp")
		}

		start := time.Now()
		completedWithReport(theirs, "hr", "corp")
		Eventually(func(g Gomega) {
			msgs, err := relay.Messages()
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(msgs).To(HaveLen(1))
		}, 8*time.Second, 100*time.Millisecond).Should(Succeed(), "the report waited for the relays that never answer")
		GinkgoWriter.Printf("the other namespace's report went out %v after its import completed\n", time.Since(start))

		// A namespace's reports go one at a time: its second waits for its
		// first, whose relay never answers.
		for _, ns := range hung {
			Expect(getImport(&uiov1.UserImport{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "second"}}).Status.Reports).To(BeEmpty())
		}
	})
})

// hungMailDirectories creates in each namespace a Ready directory whose
// relay accepts connections and never answers, and waits for their checks
// of the relay to give up.
func hungMailDirectories(name string, namespaces ...string) {
	GinkgoHelper()
	var dirs []*uiov1.UserDirectory
	for _, ns := range namespaces {
		dir := readyDirectory(ns, name)
		host, port := blackHole()
		Eventually(func() error {
			cur := &uiov1.UserDirectory{}
			if err := k8sClient.Get(ctx, client.ObjectKeyFromObject(dir), cur); err != nil {
				return err
			}
			cur.Spec.Mail = &uiov1.MailRelay{Host: host, Port: port, From: "hr@example.com"}
			return k8sClient.Update(ctx, cur)
		}).Should(Succeed())
		dirs = append(dirs, dir)
	}
	// The directory's own check of the relay gives up after its timeout;
	// the directory stays Ready.
	for _, dir := range dirs {
		Eventually(func(g Gomega) {
			cur := &uiov1.UserDirectory{}
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(dir), cur)).To(Succeed())
			g.Expect(cur.Status.ObservedGeneration).To(Equal(cur.Generation))
			g.Expect(meta.FindStatusCondition(cur.Status.Conditions, uiov1.ConditionMailReady)).NotTo(BeNil())
		}, 90*time.Second, 200*time.Millisecond).Should(Succeed())
	}
}

// completedWithReport runs an import that mails its report to the
// directory's relay once Completed.
func completedWithReport(ns, name, dir string) *uiov1.UserImport {
	GinkgoHelper()
	imp := newImport(ns, name, dir, uiov1.ActionDraft)
	editSpec(imp, func(s *uiov1.UserImportSpec) {
		s.Report = uiov1.ReportMail{Recipients: []string{"hr-team@example.com"}}
		s.Action = uiov1.ActionImport
	})
	finishJob(job(imp, runcontract.StageImport), true)
	expectPhase(imp, uiov1.PhaseCompleted)
	return imp
}

var _ = Describe("checks of UserDirectories", func() {
	It("go on for other directories while one directory's server never answers", func() {
		hung := newNamespace()
		host, port := blackHole()
		Expect(k8sClient.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "corp-token", Namespace: hung},
			Data:       map[string][]byte{"token": []byte(scimToken)},
		})).To(Succeed())
		Expect(k8sClient.Create(ctx, scimDirectory(hung, "corp", fmt.Sprintf("http://%s:%d/scim/v2", host, port), "corp-token"))).To(Succeed())
		// Its check is under way, and waits for its timeout.
		time.Sleep(time.Second)

		start := time.Now()
		readyDirectory(newNamespace(), "corp")
		Expect(time.Since(start)).To(BeNumerically("<", 10*time.Second), "another directory's check waited for the hung one")
	})
})
