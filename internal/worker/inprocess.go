package worker

import (
	"context"
	"fmt"
	"os"
	"syscall"

	"github.com/userimport/user-import-operator/internal/keyread/fromapi"
	"github.com/userimport/user-import-operator/internal/runcontract"

	"github.com/userimport/user-import-operator/internal/executor"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/directory/open"
	"github.com/userimport/user-import-operator/internal/jobs"
	"github.com/userimport/user-import-operator/internal/keyread"
	"github.com/userimport/user-import-operator/internal/source"
)

// InCluster is the configuration of a run of a UserImport in the cluster,
// in a Job's pod or in the manager: the import is read through c, and its
// progress and report go to its status and report Secret.
func InCluster(ctx context.Context, c client.Client, key types.NamespacedName, stage Stage,
	dir v1alpha1.UserDirectorySpec, secrets keyread.KeyReader, src source.Options) (Config, error) {
	var imp v1alpha1.UserImport
	if err := c.Get(ctx, key, &imp); err != nil {
		return Config{}, fmt.Errorf("reading UserImport %s: %w", key, err)
	}
	// The name is derived, not read from status: the controller creates
	// the Secret before it starts the run, but its status patch naming
	// the Secret may land after the run has read the import.
	report := jobs.ReportSecretName(&imp)
	return Config{
		Stage:      stage,
		Import:     &imp,
		Directory:  dir,
		Secrets:    secrets,
		ConfigMaps: src.ConfigMaps,
		Source:     src,
		Open:       openWith(src.DialControl),
		Sink:       &APISink{Client: c, Import: key, ReportSecret: report},
		Codes:      &SecretVault{Client: c, Import: &imp},
	}, nil
}

// openWith opens directories with control checking their addresses.
func openWith(control func(network, address string, c syscall.RawConn) error) func(context.Context, v1alpha1.UserDirectorySpec, keyread.KeyReader) (directory.Directory, error) {
	return func(ctx context.Context, spec v1alpha1.UserDirectorySpec, secrets keyread.KeyReader) (directory.Directory, error) {
		opts := open.Options(spec)
		opts.DialControl = control
		return open.DirectoryWith(ctx, spec, opts, secrets)
	}
}

// RunInProcess is the worker of the in-process executor: the same run as
// in a Job, with Secrets and ConfigMaps read through the API instead of
// mounted volumes.
func RunInProcess(ctx context.Context, rc executor.RunConfig) runcontract.Outcome {
	out, err := runInProcess(ctx, rc)
	return runcontract.OutcomeOf(out.SafetyStop, out.Result.SHA256, err)
}

func runInProcess(ctx context.Context, rc executor.RunConfig) (Result, error) {
	work, err := os.MkdirTemp("", "userimport-")
	if err != nil {
		return Result{}, err
	}
	defer os.RemoveAll(work)
	secrets := fromapi.SecretsMatching(rc.Client, rc.Namespace, rc.SecretSelector)
	src := source.Options{Dir: work, Secrets: secrets, ConfigMaps: fromapi.ConfigMaps(rc.Client, rc.Namespace), AmbientS3: rc.AmbientS3, DialControl: rc.DialControl}
	key := types.NamespacedName{Namespace: rc.Namespace, Name: rc.Import}
	cfg, err := InCluster(ctx, rc.Client, key, rc.Stage, rc.Directory, secrets, src)
	if err != nil {
		return Result{}, err
	}
	return Run(ctx, cfg)
}
