// Package testenv starts a real Kubernetes API server (etcd and
// kube-apiserver, through controller-runtime's envtest) with the project's
// CRDs installed, and runs managers against it. Every test suite that needs
// an API server, and the local demo, start theirs here.
package testenv

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/userimport/user-import-operator/config/crd"
	"github.com/userimport/user-import-operator/internal/egress"
	"github.com/userimport/user-import-operator/internal/scheme"
)

// Env is a running control plane with the CRDs installed.
type Env struct {
	// Config reaches the API server as an administrator.
	Config *rest.Config
	// Client reads and writes without a cache: what the API server holds
	// now.
	Client client.Client
	env    *envtest.Environment
}

// New starts etcd and kube-apiserver from the binaries in assets
// ($KUBEBUILDER_ASSETS when empty) and installs the CRDs.
func New(assets string) (*Env, error) {
	if assets == "" {
		assets = os.Getenv("KUBEBUILDER_ASSETS")
	}
	if assets == "" {
		return nil, errors.New("KUBEBUILDER_ASSETS is not set: run `make test`, or export KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh)")
	}
	crds, err := crd.CRDs()
	if err != nil {
		return nil, err
	}
	env := &envtest.Environment{
		BinaryAssetsDirectory: assets,
		CRDs:                  crds,
		ErrorIfCRDPathMissing: true,
		Scheme:                scheme.New(),
		// The machines that run the tests are shared with parallel Go
		// builds; etcd and kube-apiserver may need more than the default
		// 20s to come up.
		ControlPlaneStartTimeout: 3 * time.Minute,
		ControlPlaneStopTimeout:  time.Minute,
		CRDInstallOptions:        envtest.CRDInstallOptions{MaxTime: time.Minute},
	}
	cfg, err := env.Start()
	if err != nil {
		// A control plane that started but refused the CRDs keeps running
		// unless stopped here.
		_ = env.Stop()
		return nil, fmt.Errorf("starting the control plane (etcd, kube-apiserver from %s): %w", assets, err)
	}
	c, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		_ = env.Stop()
		return nil, err
	}
	return &Env{Config: cfg, Client: c, env: env}, nil
}

// Stop stops the control plane; one this process did not start (see
// Shared) goes on running.
func (e *Env) Stop() error {
	if e.env == nil {
		return nil
	}
	return e.env.Stop()
}

// SharedKubeconfig is the variable that names the kubeconfig of a control
// plane run for every package of one `go test` (hack/test.sh sets it):
// Shared connects to it instead of starting one in each package.
const SharedKubeconfig = "UIO_TEST_KUBECONFIG"

// Connect is the Env of a control plane running elsewhere, reached with
// the administrator's kubeconfig at path. It waits up to 3 minutes for the
// file: the control plane starts while the tests compile.
func Connect(path string) (*Env, error) {
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(200 * time.Millisecond) {
		if _, err := os.Stat(path); err == nil {
			break
		} else if time.Now().After(deadline) {
			return nil, fmt.Errorf("$%s: the shared control plane wrote no kubeconfig in 3 minutes: %w", SharedKubeconfig, err)
		}
	}
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		return nil, fmt.Errorf("$%s: %w", SharedKubeconfig, err)
	}
	// As envtest's own configuration: a test client is not throttled.
	cfg.QPS, cfg.Burst = 1000, 2000
	c, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		return nil, err
	}
	return &Env{Config: cfg, Client: c}, nil
}

// WriteKubeconfig writes a kubeconfig of an administrator, for kubectl.
func (e *Env) WriteKubeconfig(path string) error {
	user, err := e.env.AddUser(envtest.User{Name: "admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return err
	}
	kc, err := user.KubeConfig()
	if err != nil {
		return err
	}
	return os.WriteFile(path, kc, 0o600)
}

// Start starts a control plane for one test and stops it when the test
// ends. It fails, never skips, when KUBEBUILDER_ASSETS is not set.
func Start(t testing.TB) (*rest.Config, client.Client) {
	t.Helper()
	e := StartEnv(t)
	return e.Config, e.Client
}

// StartEnv is Start that returns the Env.
func StartEnv(t testing.TB) *Env {
	t.Helper()
	e, err := New("")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.Stop(); err != nil {
			t.Logf("stopping the control plane: %v", err)
		}
	})
	return e
}

// shared is the control plane of Shared, started by its first caller.
var shared struct {
	sync.Mutex
	env *Env
	err error
}

// Shared is Start for a package whose tests can share one API server
// (each uses names of its own, and a manager watches the namespaces of its
// own test only): it starts one control plane on first use and returns it
// to every later caller, saving a start (several seconds) per test. With
// $UIO_TEST_KUBECONFIG set, it connects to that control plane instead,
// which the packages of one `go test` run share. The package's TestMain
// must call StopShared after m.Run.
func Shared(t testing.TB) (*rest.Config, client.Client) {
	t.Helper()
	e := SharedEnv(t)
	return e.Config, e.Client
}

// SharedEnv is Shared that returns the Env.
func SharedEnv(t testing.TB) *Env {
	t.Helper()
	shared.Lock()
	defer shared.Unlock()
	if shared.env == nil && shared.err == nil {
		if path := os.Getenv(SharedKubeconfig); path != "" {
			shared.env, shared.err = Connect(path)
		} else {
			shared.env, shared.err = New("")
		}
	}
	if shared.err != nil {
		t.Fatal(shared.err)
	}
	return shared.env
}

// RunShared runs the tests of a package that uses Shared, then stops its
// control plane: the package's TestMain.
func RunShared(m *testing.M) int {
	code := m.Run()
	if err := StopShared(); err != nil {
		fmt.Fprintln(os.Stderr, "stopping the control plane:", err)
	}
	return code
}

// StopShared stops the control plane of Shared, if one was started.
func StopShared() error {
	shared.Lock()
	defer shared.Unlock()
	if shared.env == nil {
		return nil
	}
	err := shared.env.Stop()
	shared.env = nil
	return err
}

// UserConfig is the configuration of the ServiceAccount name of
// namespace, which has no permissions but those RBAC gives it (a subject
// of kind ServiceAccount): for tests of what a user may not do. It works
// on any control plane, started here or not.
func (e *Env) UserConfig(ctx context.Context, namespace, name string) (*rest.Config, error) {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name}}
	if err := e.Client.Create(ctx, sa); err != nil && !apierrors.IsAlreadyExists(err) {
		return nil, err
	}
	tr := &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To[int64](3600)}}
	if err := e.Client.SubResource("token").Create(ctx, sa, tr); err != nil {
		return nil, fmt.Errorf("a token of ServiceAccount %s/%s: %w", namespace, name, err)
	}
	cfg := rest.AnonymousClientConfig(e.Config)
	cfg.BearerToken = tr.Status.Token
	return cfg, nil
}

// ManagerOptions are the options of a manager that runs beside tests or
// the demo: the operator's scheme, no metrics or probe listener, and
// controller names that may repeat (several managers run one after the
// other in one process).
func ManagerOptions() ctrl.Options {
	return ctrl.Options{
		Scheme:                 scheme.New(),
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Controller:             config.Controller{SkipNameValidation: ptr.To(true)},
	}
}

// RunManager starts mgr in a goroutine. The function it returns stops the
// manager, waits until it stopped and returns its error.
func RunManager(ctx context.Context, mgr ctrl.Manager) (stop func() error) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	return func() error {
		cancel()
		return <-done
	}
}

// Loopback is the egress policy of a manager whose tests run their
// directory, mail and source servers on 127.0.0.1: it allows every host
// name, and the loopback addresses that the manager otherwise refuses at
// connect time.
func Loopback() *egress.Policy {
	p, err := egress.Parse("*,127.0.0.0/8,::1")
	if err != nil {
		panic(err)
	}
	return p
}
