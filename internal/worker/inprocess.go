package worker

import (
	"context"
	"fmt"
	"os"

	"k8s.io/apimachinery/pkg/types"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory/open"
	"github.com/userimport/user-import-operator/internal/jobs"
	"github.com/userimport/user-import-operator/internal/kube"
	"github.com/userimport/user-import-operator/internal/source"
)

// RunInProcess is the worker of the in-process executor: the same run as
// in a Job, with Secrets and ConfigMaps read through the API instead of
// mounted volumes.
func RunInProcess(ctx context.Context, cfg jobs.RunConfig) (jobs.Outcome, error) {
	key := types.NamespacedName{Namespace: cfg.Namespace, Name: cfg.Import}
	var imp v1alpha1.UserImport
	if err := cfg.Client.Get(ctx, key, &imp); err != nil {
		return jobs.Outcome{}, fmt.Errorf("reading UserImport %s: %w", key, err)
	}
	work, err := os.MkdirTemp("", "userimport-")
	if err != nil {
		return jobs.Outcome{}, err
	}
	defer os.RemoveAll(work)
	secrets := kube.Secrets(cfg.Client, cfg.Namespace)
	// The name is derived, not read from status: the controller creates
	// the Secret before it starts the run, but its status patch naming
	// the Secret may land after the run has read the import.
	report := jobs.ReportSecretName(&imp)
	out, err := Run(ctx, Config{
		Stage:     cfg.Stage,
		Import:    &imp,
		Directory: cfg.Directory,
		Secrets:   secrets,
		Source:    source.Options{Dir: work, Secrets: secrets, ConfigMaps: kube.ConfigMaps(cfg.Client, cfg.Namespace)},
		Open:      open.Open,
		Sink:      &APISink{Client: cfg.Client, Import: key, ReportSecret: report},
	})
	return jobs.Outcome{SafetyStop: out.SafetyStop}, err
}
