package integration_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uiov1 "github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/controllers"
	"github.com/userimport/user-import-operator/internal/testenv"
	"github.com/userimport/user-import-operator/internal/testpeer/peer"
	"github.com/userimport/user-import-operator/internal/testpeer/scimserver"
	"github.com/userimport/user-import-operator/internal/testpeer/sshd"
	"github.com/userimport/user-import-operator/internal/worker"
)

// These specs run the real worker in the manager (the in-process
// executor) against the SCIM test server: what a person sees when the
// mapping or the file is wrong, fixes it, and imports.
var _ = Describe("an import whose input is refused", Ordered, func() {
	BeforeAll(func() {
		stopManager()
		stopManager = startManager(controllers.Options{AllowedHosts: testenv.Loopback(), Executor: controllers.ExecutorInProcess, Run: worker.RunInProcess})
		DeferCleanup(func() {
			stopManager()
			stopManager = startManager(controllers.Options{AllowedHosts: testenv.Loopback(), Executor: controllers.ExecutorJob, Job: jobSettings})
		})
	})

	// csvOf is a file of n users whose addresses are unique to ns.
	csvOf := func(ns string, n int) string {
		var b strings.Builder
		b.WriteString("email,first_name\n")
		for i := range n {
			fmt.Fprintf(&b, "user%d@%s.example,First%d\n", i, ns, i)
		}
		return b.String()
	}
	configMap := func(ns, name, data string) *corev1.ConfigMap {
		return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Data: map[string]string{"export.csv": data}}
	}
	importOf := func(ns, name string, action uiov1.ImportAction, edit func(*uiov1.UserImportSpec)) *uiov1.UserImport {
		imp := &uiov1.UserImport{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
			Spec: uiov1.UserImportSpec{
				DirectoryRef: uiov1.LocalObjectReference{Name: "corp"},
				Source:       uiov1.ImportSource{ConfigMap: &uiov1.ConfigMapKeyRef{Name: "hr", Key: "export.csv"}},
				Mapping: []uiov1.AttributeMapping{
					{Attribute: "userName", Column: "email", Identity: true},
					{Attribute: "name.givenName", Column: "first_name"},
				},
				Action: action,
			},
		}
		if edit != nil {
			edit(&imp.Spec)
		}
		Expect(k8sClient.Create(ctx, imp)).To(Succeed())
		return imp
	}
	// expectRefused waits until the import is PreviewPending, Stalled
	// with reason, and returns it.
	expectRefused := func(imp *uiov1.UserImport, reason, says string) *uiov1.UserImport {
		GinkgoHelper()
		var got *uiov1.UserImport
		Eventually(func(g Gomega) {
			got = getImport(imp)
			g.Expect(got.Status.Phase).To(Equal(uiov1.PhasePreviewPending))
			rejected := condition(got, uiov1.ConditionInputRejected)
			g.Expect(rejected).NotTo(BeNil())
			g.Expect(rejected.ObservedGeneration).To(Equal(got.Generation))
			g.Expect(condition(got, uiov1.ConditionStalled)).NotTo(BeNil())
			ready := condition(got, uiov1.ConditionReady)
			g.Expect(ready.Reason).To(Equal(reason))
			g.Expect(ready.Message).To(ContainSubstring(says))
		}, 30*time.Second, 100*time.Millisecond).Should(Succeed())
		return got
	}

	// The SCIM server answers a create with a body that cannot be
	// decoded, made of the request: the run fails, and neither its
	// conditions nor its Events quote the row's values.
	It("keeps the values of a failed run out of its conditions and Events", func() {
		ns := newNamespace()
		const canary = "Canary-Events-Garbled-8841"
		p := scimserver.NewProxy(GinkgoTB(), scim)
		p.FaultNextBody(1<<20, func(m, _ string, body []byte) bool { return m == "POST" && strings.Contains(string(body), canary) }, scimserver.FaultGarbled)
		Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "corp-token", Namespace: ns},
			Data: map[string][]byte{"token": []byte(scimToken)}})).To(Succeed())
		Expect(k8sClient.Create(ctx, scimDirectory(ns, "corp", p.URL, "corp-token"))).To(Succeed())
		Expect(k8sClient.Create(ctx, configMap(ns, "hr", "email,first_name\nann@"+ns+".example,"+canary+"\n"))).To(Succeed())
		imp := importOf(ns, "leak", uiov1.ActionImport, nil)

		got := expectPhase(imp, uiov1.PhaseFailed)
		Eventually(func() []string { return eventsFor(ns, "leak", "") }, 5*time.Second).ShouldNot(BeEmpty())
		status, err := json.Marshal(got.Status)
		Expect(err).NotTo(HaveOccurred())
		Expect(string(status)).NotTo(ContainSubstring("Canary"))
		Expect(string(status)).To(ContainSubstring("invalid JSON"), "the condition says what went wrong")
		for _, note := range eventsFor(ns, "leak", "") {
			Expect(note).NotTo(ContainSubstring("Canary"))
		}
	})

	It("lets a person fix a wrong column and import on the same object", func() {
		ns := newNamespace()
		readyDirectory(ns, "corp")
		Expect(k8sClient.Create(ctx, configMap(ns, "hr", csvOf(ns, 5)))).To(Succeed())
		imp := importOf(ns, "typo", uiov1.ActionPreview, func(s *uiov1.UserImportSpec) { s.Mapping[1].Column = "first_nme" })

		got := expectRefused(imp, uiov1.ReasonInvalidMapping, "first_nme")
		Expect(got.Status.Preview).To(BeNil())
		Eventually(func() []string { return eventsFor(ns, "typo", uiov1.ReasonInvalidMapping) }, 5*time.Second).ShouldNot(BeEmpty())
		Consistently(func() uiov1.ImportPhase { return getImport(imp).Status.Phase }, 2*time.Second).Should(Equal(uiov1.PhasePreviewPending),
			"a refused spec is not tried again until it is edited")

		editSpec(imp, func(s *uiov1.UserImportSpec) { s.Mapping[1].Column = "first_name" })
		got = expectPhase(imp, uiov1.PhasePreviewReady)
		Expect(got.Status.Preview.Counts.Created).To(BeEquivalentTo(5))
		Expect(condition(got, uiov1.ConditionInputRejected)).To(BeNil())

		setAction(imp, uiov1.ActionImport)
		got = expectPhase(imp, uiov1.PhaseCompleted)
		Expect(got.Status.Progress.Created).To(BeEquivalentTo(5))
	})

	DescribeTable("each problem with the spec or the file leaves the import editable",
		func(data string, edit func(*uiov1.UserImportSpec), reason, says string) {
			ns := newNamespace()
			readyDirectory(ns, "corp")
			Expect(k8sClient.Create(ctx, configMap(ns, "hr", data))).To(Succeed())
			imp := importOf(ns, "bad", uiov1.ActionPreview, edit)
			got := expectRefused(imp, reason, says)
			if p := got.Status.Progress; p != nil {
				Expect(p.Checkpoint).To(BeNil(), "nothing was written")
				Expect(p.Created+p.Updated+p.Deactivated+p.Deleted).To(BeZero(), "nothing was written")
			}

			// Fixed, the import goes through on the same object.
			Expect(k8sClient.Update(ctx, configMap(ns, "hr", csvOf(ns, 3)))).To(Succeed())
			editSpec(imp, func(s *uiov1.UserImportSpec) {
				s.Mapping = []uiov1.AttributeMapping{
					{Attribute: "userName", Column: "email", Identity: true},
					{Attribute: "name.givenName", Column: "first_name"},
				}
				s.Format = uiov1.CSVFormat{}
				s.ErrorPolicy = uiov1.ErrorPolicy{}
				s.Action = uiov1.ActionImport
			})
			got = expectPhase(imp, uiov1.PhaseCompleted)
			Expect(got.Status.Progress.Created).To(BeEquivalentTo(3))
		},
		Entry("a column the file lacks", "email,first_name\na@x.example,A\n",
			func(s *uiov1.UserImportSpec) { s.Mapping[1].Column = "given" }, uiov1.ReasonInvalidMapping, `"given"`),
		Entry("a template that does not parse", "email,first_name\na@x.example,A\n",
			func(s *uiov1.UserImportSpec) {
				s.Mapping[1] = uiov1.AttributeMapping{Attribute: "name.givenName", Template: "{{.first_name"}
			},
			uiov1.ReasonInvalidMapping, "mapping[name.givenName]"),
		Entry("a file with no header", "", nil, uiov1.ReasonInvalidFile, "no header"),
		Entry("a format that does not fit the file (semicolons for commas)", "email,first_name\na@x.example,A\n",
			func(s *uiov1.UserImportSpec) { s.Format.Delimiter = ";" }, uiov1.ReasonInvalidMapping, "email"),
		Entry("the error policy exceeded in the preview", "email,first_name\nnot-an-address,A\nalso-not,B\nb@x.example,C\n",
			func(s *uiov1.UserImportSpec) {
				s.Mapping[0].Check = uiov1.CheckEmail
				s.ErrorPolicy.MaxErrors = ptr.To[int64](1)
			}, uiov1.ReasonErrorPolicyExceeded, "error policy"),
	)

	It("tries again when the refused file is fixed in its ConfigMap, with no edit of the spec", func() {
		ns := newNamespace()
		readyDirectory(ns, "corp")
		Expect(k8sClient.Create(ctx, configMap(ns, "hr", "mail,first_name\na@"+ns+".example,A\n"))).To(Succeed())
		imp := importOf(ns, "fixfile", uiov1.ActionImport, nil)
		got := expectRefused(imp, uiov1.ReasonInvalidMapping, `"email"`)
		Expect(got.Status.RejectedSHA256).To(HaveLen(64))

		Expect(k8sClient.Update(ctx, configMap(ns, "hr", csvOf(ns, 3)))).To(Succeed())
		// The controller looks at a refused import every 30 seconds; an
		// annotation wakes it sooner.
		setAnnotation(imp, "test.userimport.dev/wake", "1")
		got = expectPhase(imp, uiov1.PhaseCompleted)
		Expect(got.Status.Progress.Created).To(BeEquivalentTo(3))
		Expect(got.Status.RejectedSHA256).To(BeEmpty())
		Expect(condition(got, uiov1.ConditionInputRejected)).To(BeNil())
	})

	It("refuses a file that fails the error policy in the planning pass of a full import, before writing", func() {
		ns := newNamespace()
		readyDirectory(ns, "corp")
		Expect(k8sClient.Create(ctx, configMap(ns, "hr", "email,first_name\nnot-an-address,A\nalso-not,B\nc@"+ns+".example,C\n"))).To(Succeed())
		imp := importOf(ns, "full", uiov1.ActionImport, func(s *uiov1.UserImportSpec) {
			s.Mode = uiov1.ModeFull
			s.MissingUsers = uiov1.MissingDeactivate
			s.Mapping[0].Check = uiov1.CheckEmail
			s.ErrorPolicy.MaxErrors = ptr.To[int64](1)
		})
		got := expectRefused(imp, uiov1.ReasonErrorPolicyExceeded, "error policy")
		Expect(got.Status.Progress).To(BeNil(), "nothing was written")
	})

	It("waits for a ConfigMap and a directory applied after the import, and completes once they arrive", func() {
		ns := newNamespace()
		imp := importOf(ns, "early", uiov1.ActionImport, nil)
		Eventually(func(g Gomega) {
			ready := condition(getImport(imp), uiov1.ConditionReady)
			g.Expect(ready).NotTo(BeNil())
			g.Expect(ready.Reason).To(Equal(uiov1.ReasonDirectoryNotFound))
		}, 10*time.Second).Should(Succeed())

		readyDirectory(ns, "corp")
		Eventually(func(g Gomega) {
			got := getImport(imp)
			ready := condition(got, uiov1.ConditionReady)
			g.Expect(ready).NotTo(BeNil())
			g.Expect(ready.Reason).To(Equal(uiov1.ReasonSourceNotFound))
			g.Expect(ready.Message).To(ContainSubstring("ConfigMap hr"))
			g.Expect(condition(got, uiov1.ConditionReconciling)).NotTo(BeNil(), "waiting, not stalled")
			g.Expect(got.Status.Phase).NotTo(Equal(uiov1.PhaseFailed))
		}, 10*time.Second).Should(Succeed())

		Expect(k8sClient.Create(ctx, configMap(ns, "hr", csvOf(ns, 4)))).To(Succeed())
		got := expectPhase(imp, uiov1.PhaseCompleted)
		Expect(got.Status.Progress.Created).To(BeEquivalentTo(4))
	})

	It("waits for a key the ConfigMap does not have yet", func() {
		ns := newNamespace()
		readyDirectory(ns, "corp")
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "hr", Namespace: ns}, Data: map[string]string{"other.csv": "x\n"}}
		Expect(k8sClient.Create(ctx, cm)).To(Succeed())
		imp := importOf(ns, "nokey", uiov1.ActionImport, nil)
		Eventually(func(g Gomega) {
			ready := condition(getImport(imp), uiov1.ConditionReady)
			g.Expect(ready).NotTo(BeNil())
			g.Expect(ready.Reason).To(Equal(uiov1.ReasonSourceNotFound))
			g.Expect(ready.Message).To(ContainSubstring("has no key export.csv"))
		}, 10*time.Second).Should(Succeed())
		Expect(k8sClient.Get(ctx, client.ObjectKeyFromObject(cm), cm)).To(Succeed())
		cm.Data["export.csv"] = csvOf(ns, 2)
		Expect(k8sClient.Update(ctx, cm)).To(Succeed())
		expectPhase(imp, uiov1.PhaseCompleted)
	})

	It("waits for an SFTP export that is not there yet, and imports it once it arrives", func() {
		srv, stop, err := sshd.StartTemp()
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(stop)
		ns := newNamespace()
		readyDirectory(ns, "corp")
		secret(ns, "sftp", map[string]string{"username": sshd.User, "password": sshd.Password})
		secret(ns, "sftp-host", map[string]string{"known_hosts": srv.KnownHosts})
		sftpSource := func(spec *uiov1.UserImportSpec) {
			spec.Source = uiov1.ImportSource{SFTP: &uiov1.SFTPSource{FileSelector: uiov1.FileSelector{Pattern: "out/employees_*.csv"},
				Host: srv.Host, Port: int32(srv.Port), Credentials: uiov1.LocalObjectReference{Name: "sftp"},
				KnownHosts: &uiov1.SecretKeyRef{Name: "sftp-host", Key: "known_hosts"}}}
		}
		Expect(srv.WriteFile("out/readme.txt", []byte("not an export"), time.Now())).To(Succeed())
		imp := importOf(ns, "nightly", uiov1.ActionImport, sftpSource)
		Eventually(func(g Gomega) {
			got := getImport(imp)
			ready := condition(got, uiov1.ConditionReady)
			g.Expect(ready).NotTo(BeNil())
			g.Expect(ready.Reason).To(Equal(uiov1.ReasonSourceNotFound))
			g.Expect(ready.Message).To(ContainSubstring(`no file matches the pattern "out/employees_*.csv"`))
			g.Expect(condition(got, uiov1.ConditionReconciling)).NotTo(BeNil(), "waiting, not stalled")
		}, 30*time.Second, 100*time.Millisecond).Should(Succeed())

		Expect(srv.WriteFile("out/employees_20261129.csv", []byte(csvOf(ns, 3)), time.Now())).To(Succeed())
		got := expectPhase(imp, uiov1.PhaseCompleted)
		Expect(got.Status.Progress.Created).To(BeEquivalentTo(3))
		Expect(got.Status.Source.Name).To(Equal("out/employees_20261129.csv"))

		// Wrong credentials are refused before anything is written.
		secret(ns, "sftp-wrong", map[string]string{"username": sshd.User, "password": "not-it"})
		wrong := importOf(ns, "wrong-password", uiov1.ActionImport, func(spec *uiov1.UserImportSpec) {
			sftpSource(spec)
			spec.Source.SFTP.Credentials.Name = "sftp-wrong"
		})
		refused := expectRefused(wrong, uiov1.ReasonSourceAuthenticationFailed, "refused the credentials")
		Expect(refused.Status.RejectedSecrets).NotTo(BeEmpty())

		// The password is rotated in its Secret, as an operator does: the
		// import tries again with no edit of its spec.
		var s corev1.Secret
		Expect(k8sClient.Get(ctx, types.NamespacedName{Namespace: ns, Name: "sftp-wrong"}, &s)).To(Succeed())
		s.StringData = map[string]string{"password": sshd.Password}
		Expect(k8sClient.Update(ctx, &s)).To(Succeed())
		fixed := expectPhase(wrong, uiov1.PhaseCompleted)
		Expect(fixed.Generation).To(Equal(refused.Generation), "the spec was not edited")
		Expect(fixed.Status.RejectedSecrets).To(BeEmpty())
	})

	It("waits for an SFTP server that cannot be reached, rather than for an edit", func() {
		ns := newNamespace()
		readyDirectory(ns, "corp")
		secret(ns, "sftp", map[string]string{"username": sshd.User, "password": sshd.Password})
		port, err := peer.FreePort("127.0.0.1")
		Expect(err).NotTo(HaveOccurred())
		imp := importOf(ns, "down", uiov1.ActionImport, func(spec *uiov1.UserImportSpec) {
			spec.Source = uiov1.ImportSource{SFTP: &uiov1.SFTPSource{FileSelector: uiov1.FileSelector{Path: "hr.csv"},
				Host: "127.0.0.1", Port: int32(port), Credentials: uiov1.LocalObjectReference{Name: "sftp"}, InsecureSkipHostKeyVerification: true}}
		})
		Eventually(func(g Gomega) {
			got := getImport(imp)
			ready := condition(got, uiov1.ConditionReady)
			g.Expect(ready).NotTo(BeNil())
			g.Expect(ready.Reason).To(Equal(uiov1.ReasonSourceUnreachable))
			g.Expect(condition(got, uiov1.ConditionReconciling)).NotTo(BeNil(), "waiting, not stalled")
			g.Expect(condition(got, uiov1.ConditionInputRejected)).To(BeNil())
			g.Expect(got.Status.Phase).To(Equal(uiov1.PhaseImportPending))
		}, 30*time.Second, 100*time.Millisecond).Should(Succeed())
	})

	It("refuses a PersistentVolumeClaim source, which only a Job can mount", func() {
		ns := newNamespace()
		readyDirectory(ns, "corp")
		imp := importOf(ns, "claim", uiov1.ActionImport, func(spec *uiov1.UserImportSpec) {
			spec.Source = uiov1.ImportSource{PersistentVolumeClaim: &uiov1.PVCSource{ClaimName: "exports", FileSelector: uiov1.FileSelector{Path: "hr.csv"}}}
		})
		expectRefused(imp, uiov1.ReasonSourceNotSupported, "in-process executor cannot read exports")
	})
})
