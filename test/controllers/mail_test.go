package controllers_test

import (
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uiov1 "github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/testpeer/mailpit"
)

var _ = Describe("a UserDirectory's mail relay", func() {
	var relay *mailpit.Server
	BeforeEach(func() {
		var err error
		relay, err = mailpit.StartIn(GinkgoT().TempDir())
		Expect(err).NotTo(HaveOccurred(), "hack/peers/install-mailpit.sh builds Mailpit")
		DeferCleanup(relay.Stop)
	})

	// withMail creates a Ready SCIM directory whose spec.mail names the
	// relay, with its CA and the given password in Secrets.
	withMail := func(ns, name, password string) {
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
})
