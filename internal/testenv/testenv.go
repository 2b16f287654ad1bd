// Package testenv starts a real Kubernetes API server (envtest) with the
// project's CRDs installed, for tests of code that talks to the API.
package testenv

import (
	"os"
	"path/filepath"
	"testing"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/userimport/user-import-operator/internal/scheme"
)

// RepoRoot finds the repository: $UIO_REPO_ROOT, or the nearest parent
// directory holding go.mod.
func RepoRoot(t testing.TB) string {
	if r := os.Getenv("UIO_REPO_ROOT"); r != "" {
		return r
	}
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the working directory; set UIO_REPO_ROOT")
		}
		dir = parent
	}
}

// Start starts etcd and kube-apiserver with the CRDs of config/crd/bases
// and stops them when the test ends. It fails, never skips, when
// KUBEBUILDER_ASSETS is not set.
func Start(t testing.TB) (*rest.Config, client.Client) {
	t.Helper()
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		t.Fatal("KUBEBUILDER_ASSETS is not set: run `make test`, or export KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh)")
	}
	env := &envtest.Environment{
		CRDDirectoryPaths:     []string{filepath.Join(RepoRoot(t), "config", "crd", "bases")},
		ErrorIfCRDPathMissing: true,
	}
	cfg, err := env.Start()
	if err != nil {
		t.Fatalf("starting envtest: %v", err)
	}
	t.Cleanup(func() {
		if err := env.Stop(); err != nil {
			t.Logf("stopping envtest: %v", err)
		}
	})
	c, err := client.New(cfg, client.Options{Scheme: scheme.New()})
	if err != nil {
		t.Fatal(err)
	}
	return cfg, c
}
