//go:build e2e

// Package e2e holds the end-to-end suite: it runs against a real
// single-node cluster (hack/cluster/up.sh) into which the operator was
// deployed with config/default. `make test-e2e` does all of that; the
// suite itself runs inside the cluster's network namespace, where pod IPs
// are reachable.
package e2e

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/userimport/user-import-operator/internal/scheme"
)

const (
	// operatorNamespace and the names below come from config/default
	// (namespace and namePrefix) and config/manager.
	operatorNamespace = "user-import-operator-system"
	managerSelector   = "control-plane=controller-manager"
	leaseName         = "user-import-operator.userimport.dev"
)

var (
	restConfig *rest.Config
	k8s        client.Client
	clientset  *kubernetes.Clientset
	// testNamespace is made for this run and deleted after it.
	testNamespace string
	// image is the operator image the cluster runs (E2E_IMAGE).
	image string
	// repoRoot holds config/samples.
	repoRoot string
)

func TestE2E(t *testing.T) {
	RegisterFailHandler(Fail)
	SetDefaultEventuallyPollingInterval(time.Second)
	RunSpecs(t, "e2e")
}

// mustEnv returns an environment variable that `make test-e2e` sets.
func mustEnv(name string) string {
	v := os.Getenv(name)
	if v == "" {
		Fail(name + " is not set: run the suite with `make test-e2e`, which brings up the cluster and deploys the operator")
	}
	return v
}

var _ = BeforeSuite(func(ctx context.Context) {
	image = mustEnv("E2E_IMAGE")
	repoRoot = os.Getenv("UIO_REPO_ROOT")
	if repoRoot == "" {
		repoRoot = filepath.Join("..", "..")
	}
	var err error
	restConfig, err = clientcmd.BuildConfigFromFlags("", mustEnv("KUBECONFIG"))
	Expect(err).NotTo(HaveOccurred())
	restConfig.Timeout = 30 * time.Second
	k8s, err = client.New(restConfig, client.Options{Scheme: scheme.New()})
	Expect(err).NotTo(HaveOccurred())
	clientset, err = kubernetes.NewForConfig(restConfig)
	Expect(err).NotTo(HaveOccurred())

	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: "e2e-"}}
	Expect(k8s.Create(ctx, ns)).To(Succeed())
	testNamespace = ns.Name
	DeferCleanup(func(ctx context.Context) {
		Expect(client.IgnoreNotFound(k8s.Delete(ctx, ns))).To(Succeed())
	})
	// Pods cannot be created before the namespace's ServiceAccount exists.
	Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKey{Namespace: testNamespace, Name: "default"}, &corev1.ServiceAccount{})).To(Succeed())
	}).WithContext(ctx).WithTimeout(time.Minute).Should(Succeed())
}, NodeTimeout(2*time.Minute))
