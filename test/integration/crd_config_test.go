package integration_test

import (
	"path/filepath"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// The install manifests of config/ (what `make build-installer` renders)
// are checked against the API server with dry-run creates: RBAC that
// names a missing field or a Deployment that breaks the restricted Pod
// Security Standard fails here, not in a user's cluster.
var _ = Describe("The install manifests in config/", Label(labelAPIServerAlone), Ordered, func() {
	// "system" is the namespace the manifests name before kustomize's
	// namespace transformer renames it.
	const ns = "system"

	configFiles := func() []string {
		var files []string
		for _, pattern := range []string{"rbac/*.yaml", "manager/*.yaml", "default/*.yaml"} {
			m, err := filepath.Glob(filepath.Join(repoRoot, "config", pattern))
			Expect(err).NotTo(HaveOccurred())
			for _, f := range m {
				if filepath.Base(f) != "kustomization.yaml" {
					files = append(files, f)
				}
			}
		}
		return files
	}

	managerDeployment := func() *appsv1.Deployment {
		GinkgoHelper()
		for _, u := range readObjects(filepath.Join(repoRoot, "config", "manager", "manager.yaml")) {
			if u.GetKind() == "Deployment" {
				d := &appsv1.Deployment{}
				Expect(runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, d)).To(Succeed())
				return d
			}
		}
		Fail("config/manager/manager.yaml holds no Deployment")
		return nil
	}

	BeforeAll(func() {
		// The Namespace of manager.yaml, created for real so that the
		// namespaced objects can be dry-run into it; it carries the Pod
		// Security label the manifest gives it.
		for _, u := range readObjects(filepath.Join(repoRoot, "config", "manager", "manager.yaml")) {
			if u.GetKind() == "Namespace" {
				Expect(u.GetName()).To(Equal(ns))
				Expect(apiClient.Create(ctx, u)).To(Succeed())
				return
			}
		}
		Fail("config/manager/manager.yaml holds no Namespace")
	})

	It("are accepted by the API server", func() {
		n := 0
		for _, f := range configFiles() {
			for _, u := range readObjects(f) {
				if u.GetKind() == "Namespace" {
					continue // created above
				}
				Expect(apiClient.Create(ctx, u.DeepCopy(), client.DryRunAll)).
					To(Succeed(), "%s: %s %s", filepath.Base(f), u.GetKind(), u.GetName())
				n++
			}
		}
		// ServiceAccount, ClusterRole and binding, leader election Role and
		// binding, six editor/viewer roles, Deployment, metrics Service.
		Expect(n).To(BeNumerically(">=", 13))
	})

	It("bind the manager's ClusterRole and leader-election Role to its ServiceAccount", func() {
		var sa string
		subjects := map[string][]string{} // role name -> service accounts
		for _, f := range configFiles() {
			for _, u := range readObjects(f) {
				switch u.GetKind() {
				case "ServiceAccount":
					sa = u.GetName()
				case "ClusterRoleBinding", "RoleBinding":
					role, _, _ := unstructured.NestedString(u.Object, "roleRef", "name")
					subs, _, _ := unstructured.NestedSlice(u.Object, "subjects")
					for _, s := range subs {
						subjects[role] = append(subjects[role], s.(map[string]any)["name"].(string))
					}
				}
			}
		}
		Expect(sa).To(Equal(managerDeployment().Spec.Template.Spec.ServiceAccountName))
		Expect(subjects).To(HaveKeyWithValue("manager-role", []string{sa}))
		Expect(subjects).To(HaveKeyWithValue("leader-election-role", []string{sa}))
	})

	It("run the manager as a pod that passes the restricted Pod Security Standard", func() {
		d := managerDeployment()
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "manager", Namespace: ns, Labels: d.Spec.Template.Labels},
			Spec:       d.Spec.Template.Spec,
		}
		Expect(apiClient.Create(ctx, pod, client.DryRunAll)).To(Succeed())

		// The same pod without its security context is refused, so the
		// namespace really enforces the restricted profile.
		bad := pod.DeepCopy()
		bad.Spec.SecurityContext = nil
		bad.Spec.Containers[0].SecurityContext = nil
		err := apiClient.Create(ctx, bad, client.DryRunAll)
		Expect(err).To(HaveOccurred())
		Expect(err.Error()).To(ContainSubstring(`violates PodSecurity "restricted:latest"`))
	})

	It("probe the ports and paths the manager serves", func() {
		c := managerDeployment().Spec.Template.Spec.Containers[0]
		Expect(c.Args).To(HaveExactElements("manager", "--leader-elect",
			"--health-probe-bind-address=:8081", "--metrics-bind-address=:8443"))
		Expect(c.LivenessProbe.HTTPGet.Path).To(Equal("/healthz"))
		Expect(c.LivenessProbe.HTTPGet.Port).To(Equal(intstr.FromInt32(8081)))
		Expect(c.ReadinessProbe.HTTPGet.Path).To(Equal("/readyz"))
		Expect(c.ReadinessProbe.HTTPGet.Port).To(Equal(intstr.FromInt32(8081)))
		env := map[string]bool{}
		for _, e := range c.Env {
			env[e.Name] = true
		}
		Expect(env).To(HaveKey("POD_NAMESPACE"))
		Expect(env).To(HaveKey("OPERATOR_IMAGE"))
		Expect(*c.SecurityContext.ReadOnlyRootFilesystem).To(BeTrue())
		Expect(c.SecurityContext.Capabilities.Drop).To(ConsistOf(corev1.Capability("ALL")))
		Expect(strings.HasPrefix(c.Image, "controller")).To(BeTrue(), "the image is set by kustomize's images transformer")
	})
})
