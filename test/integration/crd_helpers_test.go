package integration_test

import (
	"github.com/userimport/user-import-operator/internal/testpeer/repo"

	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"k8s.io/client-go/discovery"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uiov1 "github.com/userimport/user-import-operator/api/v1alpha1"
)

// The specs labelled apiServerAlone prove what the API server itself
// enforces: the CRDs install, the samples apply, invalid objects are
// rejected with messages that name the field, documentation and printer
// columns are served. No manager runs during them. apiClient reads the
// CRDs too.
var (
	repoRoot        string
	apiClient       client.Client
	discoveryClient *discovery.DiscoveryClient
)

// setUpAPIServerSpecs makes the clients of the apiServerAlone specs and
// their namespace.
func setUpAPIServerSpecs() {
	var err error
	repoRoot, err = repo.Root()
	Expect(err).NotTo(HaveOccurred())
	crdScheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(crdScheme))
	utilruntime.Must(apiextensionsv1.AddToScheme(crdScheme))
	utilruntime.Must(uiov1.AddToScheme(crdScheme))
	apiClient, err = client.New(cfg, client.Options{Scheme: crdScheme})
	Expect(err).NotTo(HaveOccurred())
	discoveryClient, err = discovery.NewDiscoveryClientForConfig(cfg)
	Expect(err).NotTo(HaveOccurred())
	Expect(apiClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: testNamespace}})).To(Succeed())
}

// testNamespace holds the objects of the validation and printer-column
// specs; the samples get a namespace of their own.
const testNamespace = "crd-test"
