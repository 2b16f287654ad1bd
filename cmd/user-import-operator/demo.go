package main

import (
	"context"
	"errors"
	"flag"
	"os"
	"os/signal"
	"syscall"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"github.com/userimport/user-import-operator/internal/demo"
)

func runDemo(args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	workDir := fs.String("work-dir", "demo-work", "directory for the kubeconfig, the SQLite file and the sample files")
	rows := fs.Int("rows", 1000, "users in the generated HR export")
	exitAfter := fs.Bool("exit-after-import", false, "stop once the first import is final (for scripts and CI)")
	verbose := fs.Bool("verbose", false, "show the manager's logs")
	if err := fs.Parse(args); err != nil {
		return err
	}
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	if assets == "" {
		return errors.New("demo: KUBEBUILDER_ASSETS must name a directory with etcd and kube-apiserver; `make demo` sets it with hack/envtest-assets.sh")
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

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
