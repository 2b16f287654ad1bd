//go:build e2e

package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	authenticationv1 "k8s.io/api/authentication/v1"
	batchv1 "k8s.io/api/batch/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	sigsyaml "sigs.k8s.io/yaml"

	uiov1 "github.com/userimport/user-import-operator/api/v1alpha1"
)

// managerPod returns the operator's pod once it is Ready.
func managerPod(ctx context.Context) *corev1.Pod {
	var ready *corev1.Pod
	Eventually(func(g Gomega) {
		pods, err := clientset.CoreV1().Pods(operatorNamespace).List(ctx, metav1.ListOptions{LabelSelector: managerSelector})
		g.Expect(err).NotTo(HaveOccurred())
		g.Expect(pods.Items).To(HaveLen(1), "one manager pod")
		p := &pods.Items[0]
		g.Expect(p.Spec.Containers[0].Image).To(HaveSuffix(image), "the pod runs the image under test")
		g.Expect(isReady(p)).To(BeTrue(), "pod %s is Ready (phase %s)", p.Name, p.Status.Phase)
		ready = p
	}).WithContext(ctx).WithTimeout(3 * time.Minute).Should(Succeed())
	return ready
}

func isReady(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.PodReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// get fetches http://podIP:port/path; the suite runs in the cluster's
// network namespace, where pods are on the local bridge.
func get(ctx context.Context, podIP string, port int, path string) (int, string, error) {
	return fetch(ctx, "http", podIP, port, path, "")
}

// fetch fetches scheme://podIP:port/path, with token as a bearer token
// when set. The manager's metrics certificate is self-signed.
func fetch(ctx context.Context, scheme, podIP string, port int, path, token string) (int, string, error) {
	url := scheme + "://" + net.JoinHostPort(podIP, fmt.Sprint(port)) + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, "", err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	resp, err := (&http.Client{Timeout: 10 * time.Second, Transport: tr}).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body), err
}

// scraperToken is the token of a ServiceAccount bound to the operator's
// metrics-reader ClusterRole, as a Prometheus would be.
func scraperToken(ctx context.Context) string {
	GinkgoHelper()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "metrics-scraper"}}
	if err := k8s.Create(ctx, sa); err != nil && !apierrors.IsAlreadyExists(err) {
		Expect(err).NotTo(HaveOccurred())
	}
	crb := &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "e2e-metrics-scraper"},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "user-import-operator-metrics-reader"},
		Subjects: []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: testNamespace, Name: sa.Name}}}
	if err := k8s.Create(ctx, crb); err != nil && !apierrors.IsAlreadyExists(err) {
		Expect(err).NotTo(HaveOccurred())
	}
	tr, err := clientset.CoreV1().ServiceAccounts(testNamespace).CreateToken(ctx, sa.Name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](600)}}, metav1.CreateOptions{})
	Expect(err).NotTo(HaveOccurred())
	return tr.Status.Token
}

// Serial: the suite runs in parallel processes, and a spec of another
// process deletes the operator's pod.
var _ = Describe("The operator as deployed (config/default, or the Helm chart)", Label("smoke"), Serial, func() {
	It("runs a Ready manager that holds the leader lease", func(ctx SpecContext) {
		pod := managerPod(ctx)
		// The lease shows that the manager reached the API server through
		// the kubernetes Service with its ServiceAccount and RBAC.
		Eventually(func(g Gomega) {
			var lease coordinationv1.Lease
			g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: operatorNamespace, Name: leaseName}, &lease)).To(Succeed())
			g.Expect(ptr.Deref(lease.Spec.HolderIdentity, "")).To(HavePrefix(pod.Name))
		}).WithContext(ctx).WithTimeout(2 * time.Minute).Should(Succeed())
	}, SpecTimeout(6*time.Minute))

	It("answers on its metrics and health endpoints", func(ctx SpecContext) {
		pod := managerPod(ctx)
		Expect(pod.Status.PodIP).NotTo(BeEmpty())
		for _, path := range []string{"/healthz", "/readyz"} {
			code, body, err := get(ctx, pod.Status.PodIP, 8081, path)
			Expect(err).NotTo(HaveOccurred(), path)
			Expect(code).To(Equal(http.StatusOK), "%s answered %q", path, body)
		}
		// Metrics are served over HTTPS to a token allowed to read them,
		// and to no one else.
		code, _, err := fetch(ctx, "https", pod.Status.PodIP, 8443, "/metrics", "")
		Expect(err).NotTo(HaveOccurred())
		Expect(code).To(Equal(http.StatusUnauthorized), "metrics without a token")
		token := scraperToken(ctx)
		// Reconcile counters appear once the controllers are registered,
		// a moment after the manager becomes Ready.
		Eventually(func(g Gomega) {
			code, body, err := fetch(ctx, "https", pod.Status.PodIP, 8443, "/metrics", token)
			g.Expect(err).NotTo(HaveOccurred())
			g.Expect(code).To(Equal(http.StatusOK))
			g.Expect(body).To(ContainSubstring(`controller_runtime_reconcile_total{controller="userimport"`))
		}).WithContext(ctx).WithTimeout(time.Minute).Should(Succeed())
	}, SpecTimeout(5*time.Minute))
})

var _ = Describe("The CRDs", Label("smoke"), func() {
	It("are served for every kind", func() {
		list, err := clientset.Discovery().ServerResourcesForGroupVersion(uiov1.GroupVersion.String())
		Expect(err).NotTo(HaveOccurred())
		var kinds []string
		for _, r := range list.APIResources {
			if !strings.Contains(r.Name, "/") {
				kinds = append(kinds, r.Kind)
			}
		}
		Expect(kinds).To(ConsistOf("UserImport", "UserDirectory", "ImportSchedule"))
	})

	It("accept the sample of each kind from config/samples, unknown fields refused", func(ctx SpecContext) {
		objs := samples()
		applied := map[string]bool{}
		// Strict validation: a field the schema does not know fails the
		// apply instead of being pruned without a word.
		strict := client.WithFieldValidation(k8s, metav1.FieldValidationStrict)
		for _, u := range objs {
			u.SetNamespace(testNamespace)
			Expect(strict.Apply(ctx, client.ApplyConfigurationFromUnstructured(u),
				client.FieldOwner("e2e"), client.ForceOwnership)).To(Succeed(), "server-side apply of %s %s", u.GetKind(), u.GetName())
			got := &unstructured.Unstructured{}
			got.SetGroupVersionKind(u.GroupVersionKind())
			Expect(k8s.Get(ctx, client.ObjectKeyFromObject(u), got)).To(Succeed())
			applied[u.GetKind()] = true
		}
		for _, kind := range []string{"UserImport", "UserDirectory", "ImportSchedule"} {
			Expect(applied).To(HaveKey(kind), "config/samples has a %s", kind)
		}

		// And one with a field the schema lacks is refused.
		bad := &unstructured.Unstructured{}
		bad.SetGroupVersionKind(uiov1.GroupVersion.WithKind("UserDirectory"))
		bad.SetNamespace(testNamespace)
		bad.SetName("not-in-schema")
		Expect(unstructured.SetNestedField(bad.Object, "x", "spec", "noSuchField")).To(Succeed())
		err := strict.Apply(ctx, client.ApplyConfigurationFromUnstructured(bad), client.FieldOwner("e2e"))
		Expect(err).To(MatchError(ContainSubstring("noSuchField")))
	}, SpecTimeout(2*time.Minute))
})

// samples reads every object of config/samples/kustomization.yaml.
func samples() []*unstructured.Unstructured {
	dir := filepath.Join(repoRoot, "config", "samples")
	raw, err := os.ReadFile(filepath.Join(dir, "kustomization.yaml"))
	Expect(err).NotTo(HaveOccurred())
	var k struct {
		Resources []string `json:"resources"`
	}
	Expect(sigsyaml.Unmarshal(raw, &k)).To(Succeed())
	Expect(k.Resources).NotTo(BeEmpty())
	var out []*unstructured.Unstructured
	for _, f := range k.Resources {
		data, err := os.ReadFile(filepath.Join(dir, f))
		Expect(err).NotTo(HaveOccurred())
		r := yaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
		for {
			doc, err := r.Read()
			if err == io.EOF {
				break
			}
			Expect(err).NotTo(HaveOccurred())
			u := &unstructured.Unstructured{}
			Expect(sigsyaml.Unmarshal(doc, &u.Object)).To(Succeed(), f)
			if len(u.Object) > 0 {
				out = append(out, u)
			}
		}
	}
	return out
}

var _ = Describe("A Job running the operator image", Label("smoke"), func() {
	It("completes, and its log reads back", func(ctx SpecContext) {
		want := mustEnv("E2E_OPERATOR_VERSION")
		job := &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{GenerateName: "version-", Namespace: testNamespace},
			Spec: batchv1.JobSpec{
				BackoffLimit: ptr.To[int32](0),
				Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
					RestartPolicy: corev1.RestartPolicyNever,
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   ptr.To(true),
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Containers: []corev1.Container{{
						Name:            "operator",
						Image:           image,
						ImagePullPolicy: corev1.PullNever, // imported, never pulled
						Args:            []string{"version"},
						SecurityContext: &corev1.SecurityContext{
							AllowPrivilegeEscalation: ptr.To(false),
							ReadOnlyRootFilesystem:   ptr.To(true),
							Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
						},
						// A writable /tmp, as the operator's own pods have:
						// the binary links envtest (for `demo`), whose
						// package init creates a directory there.
						VolumeMounts: []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}},
					}},
					Volumes: []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
				}},
			},
		}
		Expect(k8s.Create(ctx, job)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(job), job)).To(Succeed())
			for _, c := range job.Status.Conditions {
				if c.Type == batchv1.JobFailed && c.Status == corev1.ConditionTrue {
					StopTrying(fmt.Sprintf("Job %s failed: %s: %s", job.Name, c.Reason, c.Message)).Now()
				}
			}
			g.Expect(job.Status.Conditions).To(ContainElement(And(
				HaveField("Type", batchv1.JobComplete), HaveField("Status", corev1.ConditionTrue))))
		}).WithContext(ctx).WithTimeout(2 * time.Minute).Should(Succeed())

		pods, err := clientset.CoreV1().Pods(testNamespace).List(ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=" + job.Name})
		Expect(err).NotTo(HaveOccurred())
		Expect(pods.Items).To(HaveLen(1))
		// The log travels from containerd through the kubelet and the API
		// server.
		log, err := clientset.CoreV1().Pods(testNamespace).GetLogs(pods.Items[0].Name, &corev1.PodLogOptions{}).DoRaw(ctx)
		Expect(err).NotTo(HaveOccurred())
		Expect(strings.TrimSpace(string(log))).To(Equal(want))
	}, SpecTimeout(3*time.Minute))
})
