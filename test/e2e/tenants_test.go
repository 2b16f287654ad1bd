//go:build e2e

package e2e

import (
	"context"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uiov1 "github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/scheme"
	"github.com/userimport/user-import-operator/internal/testpeer/scimserver"
)

// tenantOf is a namespace of its own and a person who may edit in it
// (the built-in edit ClusterRole, which the operator's editor roles
// aggregate into), acting through an impersonating client.
type tenantOf struct {
	ns string
	c  client.Client
}

func newTenant(ctx context.Context, user string) tenantOf {
	GinkgoHelper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-" + user + "-"}}
	Expect(k8s.Create(ctx, ns)).To(Succeed())
	DeferCleanup(func(ctx context.Context) { _ = k8s.Delete(ctx, ns) })
	Expect(k8s.Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: user + "-edits"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "edit"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.UserKind, APIGroup: rbacv1.GroupName, Name: user}},
	})).To(Succeed())
	cfg := rest.CopyConfig(restConfig)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	c, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	Expect(err).NotTo(HaveOccurred())
	return tenantOf{ns: ns.Name, c: c}
}

// expectNotReadySaying waits for the Ready condition of a directory to be False
// with a message that contains want.
func expectNotReadySaying(ctx context.Context, dir *uiov1.UserDirectory, want string) {
	GinkgoHelper()
	Eventually(func(g Gomega) {
		var got uiov1.UserDirectory
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(dir), &got)).To(Succeed())
		c := apimeta.FindStatusCondition(got.Status.Conditions, uiov1.ConditionReady)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(c.Message).To(ContainSubstring(want))
	}).WithContext(ctx).WithTimeout(2 * time.Minute).Should(Succeed())
}

// Two tenants of one operator, each allowed to edit its own namespace:
// nothing tenant A writes makes the operator read B's Secrets, reach the
// cloud metadata service, use a code key A chose, or hand A B's codes.
var _ = Describe("Two tenants on one operator", func() {
	It("gives a tenant no way to reach another's Secrets, the metadata service or a planted code key", func(ctx SpecContext) {
		a, b := newTenant(ctx, "alice"), newTenant(ctx, "bob")

		// B's database credentials and B's codes, which A may not read.
		for _, name := range []string{"hr-dsn", "hr-import-codes-0"} {
			Expect(b.c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: b.ns, Name: name},
				StringData: map[string]string{"dsn": "postgres://hr:bobs-password@db.b.example/hr?sslmode=verify-full", "codes.csv": "identity,code,expires\n"}})).To(Succeed())
			err := a.c.Get(ctx, client.ObjectKey{Namespace: b.ns, Name: name}, &corev1.Secret{})
			Expect(apierrors.IsForbidden(err)).To(BeTrue(), "alice reads %s/%s: %v", b.ns, name, err)
		}

		By("naming B's Secret in a directory of A's: the operator looks in A's namespace only")
		byName := &uiov1.UserDirectory{ObjectMeta: metav1.ObjectMeta{Namespace: a.ns, Name: "borrowed"}, Spec: uiov1.UserDirectorySpec{
			IdentityAttribute: "uid",
			SQL:               &uiov1.SQLDirectory{Driver: uiov1.SQLDriverPostgres, DSN: uiov1.SecretKeyRef{Name: "hr-dsn", Key: "dsn"}, Table: "users"},
		}}
		Expect(a.c.Create(ctx, byName)).To(Succeed())
		expectNotReadySaying(ctx, byName, "Secret hr-dsn not found in namespace "+a.ns)

		By("pointing a directory at the cloud metadata service: refused at connect time")
		Expect(a.c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: a.ns, Name: "token"},
			StringData: map[string]string{"token": "alices-token"}})).To(Succeed())
		metadata := &uiov1.UserDirectory{ObjectMeta: metav1.ObjectMeta{Namespace: a.ns, Name: "metadata"}, Spec: uiov1.UserDirectorySpec{
			IdentityAttribute: "userName",
			SCIM: &uiov1.SCIMDirectory{URL: "http://169.254.169.254/latest/meta-data", Insecure: true,
				Auth: uiov1.SCIMAuth{BearerToken: &uiov1.SecretKeyRef{Name: "token", Key: "token"}}},
		}}
		Expect(a.c.Create(ctx, metadata)).To(Succeed())
		expectNotReadySaying(ctx, metadata, "link-local")

		By("planting a code key under the name A's import will use: the import stalls and runs nothing")
		const token = "e2e-tenant-token"
		srv, err := scimserver.StartProcess(scimserver.Options{Token: token, Host: podsAddress(), Stderr: GinkgoWriter})
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(srv.Stop)
		Expect(a.c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: a.ns, Name: "scim-token"},
			StringData: map[string]string{"token": token}})).To(Succeed())
		dir := &uiov1.UserDirectory{ObjectMeta: metav1.ObjectMeta{Namespace: a.ns, Name: "scim"}, Spec: uiov1.UserDirectorySpec{
			IdentityAttribute: "userName",
			SCIM: &uiov1.SCIMDirectory{URL: srv.URL, Insecure: strings.HasPrefix(srv.URL, "http://"),
				Auth: uiov1.SCIMAuth{BearerToken: &uiov1.SecretKeyRef{Name: "scim-token", Key: "token"}}},
		}}
		Expect(a.c.Create(ctx, dir)).To(Succeed())
		Expect(a.c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: a.ns, Name: "hr-import-codes-key"},
			StringData: map[string]string{"key": "0123456789abcdef0123456789abcdef"}})).To(Succeed())
		Expect(a.c.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: a.ns, Name: "hr"},
			Data: map[string]string{"users.csv": "email,first_name\nann@a.example,Ann\n"}})).To(Succeed())
		imp := &uiov1.UserImport{ObjectMeta: metav1.ObjectMeta{Namespace: a.ns, Name: "hr-import"}, Spec: uiov1.UserImportSpec{
			DirectoryRef: uiov1.LocalObjectReference{Name: "scim"},
			Source:       uiov1.ImportSource{ConfigMap: &uiov1.ConfigMapKeyRef{Name: "hr", Key: "users.csv"}},
			Mode:         uiov1.ModeDelta, Action: uiov1.ActionImport,
			Mapping: []uiov1.AttributeMapping{
				{Attribute: "userName", Column: "email", Identity: true},
				{Attribute: "name.givenName", Column: "first_name"},
			},
			RecoveryCodes: uiov1.RecoveryCodes{Generate: uiov1.CodesForNewUsers},
		}}
		Expect(a.c.Create(ctx, imp)).To(Succeed())
		Eventually(func(g Gomega) {
			var got uiov1.UserImport
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(imp), &got)).To(Succeed())
			c := apimeta.FindStatusCondition(got.Status.Conditions, uiov1.ConditionReady)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Reason).To(Equal(uiov1.ReasonSecretNotOwned), "%s: %s", c.Reason, c.Message)
		}).WithContext(ctx).WithTimeout(3 * time.Minute).Should(Succeed())
		var jobs batchv1.JobList
		Expect(k8s.List(ctx, &jobs, client.InNamespace(a.ns))).To(Succeed())
		for _, j := range jobs.Items {
			Expect(j.Name).NotTo(ContainSubstring("-import-"), "an import Job ran with a planted key")
		}

		By("A's codes are A's: the operator made none in B's namespace")
		var bSecrets corev1.SecretList
		Expect(k8s.List(ctx, &bSecrets, client.InNamespace(b.ns))).To(Succeed())
		for _, s := range bSecrets.Items {
			Expect(s.Name).To(BeElementOf("hr-dsn", "hr-import-codes-0"), "a Secret in B's namespace that B did not make")
		}
	}, SpecTimeout(8*time.Minute))
})
