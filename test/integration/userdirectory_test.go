package integration_test

import (
	"context"
	"fmt"
	"net"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authzv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uiov1 "github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/controllers"
	"github.com/userimport/user-import-operator/internal/executor"
	"github.com/userimport/user-import-operator/internal/jobs"
	"github.com/userimport/user-import-operator/internal/runcontract"
	"github.com/userimport/user-import-operator/internal/testenv"
)

func readyCondition(ns, name string) func(Gomega) *metav1.Condition {
	return func(g Gomega) *metav1.Condition {
		dir := &uiov1.UserDirectory{}
		g.Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: name}, dir)).To(Succeed())
		c := meta.FindStatusCondition(dir.Status.Conditions, uiov1.ConditionReady)
		g.Expect(c).NotTo(BeNil())
		return c
	}
}

// closedPort is a loopback port nothing listens on.
func closedPort() int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	Expect(err).NotTo(HaveOccurred())
	port := l.Addr().(*net.TCPAddr).Port
	Expect(l.Close()).To(Succeed())
	return port
}

var _ = Describe("UserDirectory", func() {
	It("is Ready with the capabilities of a SCIM server that accepts the token", func() {
		ns := newNamespace()
		dir := readyDirectory(ns, "corp")
		Expect(dir.Status.Type).To(Equal("SCIM"))
		Expect(dir.Status.Capabilities).NotTo(BeNil())
		Expect(dir.Status.Capabilities.Bulk).To(BeTrue())
		Expect(dir.Status.LastCheckTime).NotTo(BeNil())
		Expect(dir.Status.ObservedGeneration).To(Equal(dir.Generation))
	})

	It("says SecretNotFound for a missing Secret, and becomes Ready once it exists", func() {
		ns := newNamespace()
		Expect(k8sClient.Create(ctx, scimDirectory(ns, "corp", scim.URL, "later"))).To(Succeed())
		Eventually(func(g Gomega) {
			c := readyCondition(ns, "corp")(g)
			g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(c.Reason).To(Equal(uiov1.ReasonSecretNotFound))
			g.Expect(c.Message).To(ContainSubstring("later"))
		}, 10*time.Second).Should(Succeed())
		Eventually(func() []string { return eventsFor(ns, "corp", uiov1.ReasonSecretNotFound) }, 5*time.Second).ShouldNot(BeEmpty())

		Expect(k8sClient.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "later", Namespace: ns},
			Data:       map[string][]byte{"token": []byte(scimToken)},
		})).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(readyCondition(ns, "corp")(g).Status).To(Equal(metav1.ConditionTrue))
		}, 10*time.Second).Should(Succeed())
	})

	It("says AuthenticationFailed for a wrong token and Unreachable for a closed port", func() {
		ns := newNamespace()
		Expect(k8sClient.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: "wrong", Namespace: ns},
			Data:       map[string][]byte{"token": []byte("not-the-token")},
		})).To(Succeed())
		Expect(k8sClient.Create(ctx, scimDirectory(ns, "badauth", scim.URL, "wrong"))).To(Succeed())
		down := scimDirectory(ns, "down", fmt.Sprintf("http://127.0.0.1:%d/scim/v2", closedPort()), "wrong")
		Expect(k8sClient.Create(ctx, down)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(readyCondition(ns, "badauth")(g).Reason).To(Equal(uiov1.ReasonAuthenticationFailed))
			c := readyCondition(ns, "down")(g)
			g.Expect(c.Reason).To(Equal(uiov1.ReasonUnreachable))
			g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
		}, 20*time.Second).Should(Succeed())
		// A directory allowed in clear says so.
		got := &uiov1.UserDirectory{}
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(down), got)).To(Succeed())
		c := meta.FindStatusCondition(got.Status.Conditions, uiov1.ConditionInsecureTransport)
		Expect(c).NotTo(BeNil())
		Expect(c.Status).To(Equal(metav1.ConditionTrue))
		Expect(c.Message).To(ContainSubstring("spec.scim.insecure"))

		// An import against it waits and says why.
		imp := newImport(ns, "hr", "badauth", uiov1.ActionImport)
		Eventually(func(g Gomega) {
			c := condition(getImport(imp), uiov1.ConditionReady)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Message).To(ContainSubstring(uiov1.ReasonAuthenticationFailed))
		}, 10*time.Second).Should(Succeed())
		Expect(jobsOf(imp)).To(BeEmpty())

		// The token is rotated in its Secret, as an operator does: the
		// directory is checked again and becomes Ready, with no edit.
		var s corev1.Secret
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "wrong"}, &s)).To(Succeed())
		generation := func() int64 {
			var d uiov1.UserDirectory
			Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: "badauth"}, &d)).To(Succeed())
			return d.Generation
		}
		before := generation()
		s.Data["token"] = []byte(scimToken)
		Expect(k8sClient.Update(ctx, &s)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(readyCondition(ns, "badauth")(g).Status).To(Equal(metav1.ConditionTrue))
		}, 10*time.Second).Should(Succeed())
		Expect(generation()).To(Equal(before), "the spec was not edited")
	})
})

var _ = Describe("the worker's ServiceAccount", func() {
	It("may read its own import, patch its status and its report Secret, and nothing else", func() {
		ns := newNamespace()
		readyDirectory(ns, "corp")
		imp := newImport(ns, "mine", "corp", uiov1.ActionImport)
		newImport(ns, "other", "corp", uiov1.ActionDraft)
		expectPhase(imp, uiov1.PhaseImporting)
		job(imp, runcontract.StageImport)
		// The report Secret is made with the Job.
		Eventually(func() *uiov1.LocalObjectReference { return getImport(imp).Status.ReportSecretRef }, 10*time.Second).ShouldNot(BeNil())
		cur := getImport(imp)
		sa := jobs.ServiceAccountName(cur)
		report := &corev1.Secret{}
		Expect(k8sClient.Get(ctx, client.ObjectKey{Namespace: ns, Name: cur.Status.ReportSecretRef.Name}, report)).To(Succeed())
		Expect(report.Data).To(BeEmpty())
		Expect(metav1.IsControlledBy(report, cur)).To(BeTrue())

		allowed := func(verb, group, resource, sub, name string) bool {
			sar := &authzv1.SubjectAccessReview{Spec: authzv1.SubjectAccessReviewSpec{
				User:   "system:serviceaccount:" + ns + ":" + sa,
				Groups: []string{"system:serviceaccounts", "system:serviceaccounts:" + ns, "system:authenticated"},
				ResourceAttributes: &authzv1.ResourceAttributes{
					Namespace: ns, Verb: verb, Group: group, Resource: resource, Subresource: sub, Name: name,
				},
			}}
			Expect(k8sClient.Create(context.Background(), sar)).To(Succeed())
			return sar.Status.Allowed
		}
		g := uiov1.GroupVersion.Group
		Eventually(func() bool { return allowed("get", g, "userimports", "", "mine") }, 10*time.Second).Should(BeTrue())
		Expect(allowed("patch", g, "userimports", "status", "mine")).To(BeTrue())
		Expect(allowed("patch", "", "secrets", "", report.Name)).To(BeTrue())

		Expect(allowed("get", g, "userimports", "", "other")).To(BeFalse())
		Expect(allowed("list", g, "userimports", "", "")).To(BeFalse())
		Expect(allowed("patch", g, "userimports", "status", "other")).To(BeFalse())
		Expect(allowed("update", g, "userimports", "", "mine")).To(BeFalse(), "the worker cannot change the spec")
		Expect(allowed("update", g, "userimports", "status", "mine")).To(BeFalse(), "the worker patches its status, it never replaces it")
		Expect(allowed("get", "", "secrets", "", report.Name)).To(BeFalse())
		Expect(allowed("get", "", "secrets", "", "corp-token")).To(BeFalse())
		Expect(allowed("list", "", "secrets", "", "")).To(BeFalse())
		Expect(allowed("get", g, "userdirectories", "", "corp")).To(BeFalse())
	})
})

var _ = Describe("the in-process executor", func() {
	It("runs the worker function in the manager and moves the import to Completed", func() {
		stopManager()
		defer func() {
			stopManager()
			stopManager = startManager(controllers.Options{AllowedHosts: testenv.Loopback(), Executor: controllers.ExecutorJob, Job: jobSettings})
		}()
		calls := make(chan executor.RunConfig, 64)
		run := func(rctx context.Context, c executor.RunConfig) runcontract.Outcome {
			select {
			case calls <- c:
			default:
			}
			imp := &uiov1.UserImport{}
			if err := c.Client.Get(rctx, client.ObjectKey{Namespace: c.Namespace, Name: c.Import}, imp); err != nil {
				return runcontract.OutcomeOf(nil, "", err)
			}
			orig := imp.DeepCopy()
			imp.Status.Progress = &uiov1.ProgressStatus{RowsTotal: 3, RowsProcessed: 3, Percent: 100, ChangeCounts: uiov1.ChangeCounts{Created: 2, Updated: 1}}
			return runcontract.OutcomeOf(nil, "", c.Client.Status().Patch(rctx, imp, client.MergeFrom(orig)))
		}
		// The poll is the safety net for an end of run the reconciler
		// missed; short here, so that a loaded machine still passes.
		stopManager = startManager(controllers.Options{AllowedHosts: testenv.Loopback(), Executor: controllers.ExecutorInProcess, Run: run, PollInterval: time.Second})

		ns := newNamespace()
		readyDirectory(ns, "corp")
		imp := newImport(ns, "local", "corp", uiov1.ActionImport)
		got := expectPhase(imp, uiov1.PhaseCompleted)
		Expect(got.Status.Progress.Created).To(BeEquivalentTo(2))
		Expect(condition(got, uiov1.ConditionReady).Message).To(ContainSubstring("created 2, updated 1"))
		// Imports of other specs may run in this manager too.
		var c executor.RunConfig
		for c = range calls {
			if c.Namespace == ns && c.Import == "local" {
				break
			}
		}
		Expect(c.Stage).To(Equal(runcontract.StageImport))
		Expect(c.Directory.SCIM.URL).To(Equal(scim.URL))
		Expect(jobsOf(imp)).To(BeEmpty(), "no Job in process mode")
	})
})

var _ = Describe("a manager with --secret-label", func() {
	It("uses no Secret without the label: a directory check and an import's Job wait for it", func() {
		stopManager()
		defer func() {
			stopManager()
			stopManager = startManager(controllers.Options{AllowedHosts: testenv.Loopback(), Executor: controllers.ExecutorJob, Job: jobSettings})
		}()
		sel, err := labels.Parse("userimport.dev/usable=true")
		Expect(err).NotTo(HaveOccurred())
		stopManager = startManager(controllers.Options{AllowedHosts: testenv.Loopback(), Executor: controllers.ExecutorJob, Job: jobSettings, SecretSelector: sel, DirectoryRetryInterval: 2 * time.Second})

		ns := newNamespace()
		token := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "corp-token", Namespace: ns}, Data: map[string][]byte{"token": []byte(scimToken)}}
		Expect(k8sClient.Create(ctx, token)).To(Succeed())
		dir := scimDirectory(ns, "corp", scim.URL, "corp-token")
		Expect(k8sClient.Create(ctx, dir)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(dir), dir)).To(Succeed())
			c := meta.FindStatusCondition(dir.Status.Conditions, uiov1.ConditionReady)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(c.Message).To(ContainSubstring("does not carry the label userimport.dev/usable=true"))
		}, 20*time.Second, 100*time.Millisecond).Should(Succeed())

		token.Labels = map[string]string{"userimport.dev/usable": "true"}
		Expect(k8sClient.Update(ctx, token)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(dir), dir)).To(Succeed())
			g.Expect(meta.IsStatusConditionTrue(dir.Status.Conditions, uiov1.ConditionReady)).To(BeTrue(), "conditions %+v", dir.Status.Conditions)
		}, 60*time.Second, 100*time.Millisecond).Should(Succeed())
	})
})
