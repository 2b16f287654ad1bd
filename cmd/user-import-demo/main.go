// Command user-import-demo runs the operator on this machine without a
// cluster: a control plane (etcd and kube-apiserver), the manager with the
// in-process executor, and an SQLite directory; then it imports a
// generated HR export. It is its own binary so that the manager's image
// carries no control plane. `make demo` runs it.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strings"
	"syscall"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/userimport/user-import-operator/internal/demo"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("user-import-demo", flag.ContinueOnError)
	workDir := fs.String("work-dir", "demo-work", "directory for the kubeconfig, the SQLite file and the sample files")
	rows := fs.Int("rows", 1000, "users in the generated HR export")
	exitAfter := fs.Bool("exit-after-import", false, "stop once the first import is final (for scripts and CI)")
	verbose := fs.Bool("verbose", false, "show the manager's logs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	assets, err := controlPlaneAssets()
	if err != nil {
		return err
	}
	if *verbose {
		ctrl.SetLogger(zap.New(zap.UseDevMode(true)))
	} else {
		ctrl.SetLogger(zap.New(zap.WriteTo(discard{})))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return demo.Run(ctx, demo.Options{WorkDir: *workDir, Assets: assets, Rows: *rows, ExitAfterImport: *exitAfter, Out: os.Stdout})
}

// assetsScript finds or builds etcd and kube-apiserver, printing its
// progress to stderr and the directory to stdout.
const assetsScript = "hack/envtest-assets.sh"

// controlPlaneAssets is the directory holding etcd and kube-apiserver:
// $KUBEBUILDER_ASSETS, or what hack/envtest-assets.sh gives when the demo
// runs from a checkout of the repository.
func controlPlaneAssets() (string, error) {
	if dir := os.Getenv("KUBEBUILDER_ASSETS"); dir != "" {
		return dir, nil
	}
	if _, err := os.Stat(assetsScript); err != nil {
		return "", errors.New("demo: KUBEBUILDER_ASSETS must name a directory with etcd and kube-apiserver; " +
			"run the demo from a checkout of the repository (make demo), where " + assetsScript + " finds or builds them")
	}
	cmd := exec.Command("bash", assetsScript)
	cmd.Stderr = os.Stderr // download or build progress
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("demo: %s: %w", assetsScript, err)
	}
	return strings.TrimSpace(string(out)), nil
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
