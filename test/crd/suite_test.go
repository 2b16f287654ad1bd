// Package crd_test proves, against a real Kubernetes API server (envtest),
// what the API server itself enforces for user-import-operator: the CRDs
// install, the samples apply, invalid objects are rejected with messages
// that name the field, documentation and printer columns are served.
// No controller runs here.
package crd_test

import (
	"context"
	"testing"

	"github.com/userimport/user-import-operator/internal/testenv"
	"github.com/userimport/user-import-operator/internal/testpeer/repo"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/discovery"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uiov1 "github.com/userimport/user-import-operator/api/v1alpha1"
)

var (
	repoRoot        string
	env             *testenv.Env
	cfg             *rest.Config
	k8sClient       client.Client
	discoveryClient *discovery.DiscoveryClient
	scheme          = runtime.NewScheme()
	ctx             = context.Background()
)

func TestCRDs(t *testing.T) {
	RegisterFailHandler(Fail)
	RunSpecs(t, "CRD suite")
}

var _ = BeforeSuite(func() {
	var err error
	env, err = testenv.New("")
	Expect(err).NotTo(HaveOccurred())
	cfg = env.Config
	repoRoot, err = repo.Root()
	Expect(err).NotTo(HaveOccurred())

	// The CRDs themselves are read too.
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(apiextensionsv1.AddToScheme(scheme))
	utilruntime.Must(uiov1.AddToScheme(scheme))
	k8sClient, err = client.New(cfg, client.Options{Scheme: scheme})
	Expect(err).NotTo(HaveOccurred())
	discoveryClient, err = discovery.NewDiscoveryClientForConfig(cfg)
	Expect(err).NotTo(HaveOccurred())

	Expect(k8sClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testNamespace}})).To(Succeed())
})

var _ = AfterSuite(func() {
	if env != nil {
		Expect(env.Stop()).To(Succeed())
	}
})

// testNamespace holds the objects of the validation and printer-column
// specs; the samples get a namespace of their own.
const testNamespace = "crd-test"
