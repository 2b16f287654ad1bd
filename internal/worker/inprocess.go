package worker

import (
	"context"
	"fmt"
	"os"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/directory/open"
	"github.com/userimport/user-import-operator/internal/jobs"
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
	secrets := ClientSecrets(cfg.Client, cfg.Namespace)
	// The name is derived, not read from status: the controller creates
	// the Secret before it starts the run, but its status patch naming
	// the Secret may land after the run has read the import.
	report := jobs.ReportSecretName(&imp)
	out, err := Run(ctx, Config{
		Stage:     cfg.Stage,
		Import:    &imp,
		Directory: cfg.Directory,
		Secrets:   secrets,
		Source:    source.Options{Dir: work, Secrets: secrets, ConfigMaps: ClientConfigMaps(cfg.Client, cfg.Namespace)},
		Open:      open.Open,
		Sink:      &APISink{Client: cfg.Client, Import: key, ReportSecret: report},
	})
	return jobs.Outcome{SafetyStop: out.SafetyStop}, err
}

// ClientSecrets reads keys of Secrets in one namespace through the API.
func ClientSecrets(c client.Client, namespace string) directory.SecretGetter {
	return func(ctx context.Context, name, key string) ([]byte, error) {
		var s corev1.Secret
		if err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &s); err != nil {
			return nil, directory.Errorf(directory.ReasonSecretNotFound, "Secret %s: %v", name, err)
		}
		v, ok := s.Data[key]
		if !ok {
			return nil, directory.Errorf(directory.ReasonSecretNotFound, "Secret %s has no key %s", name, key)
		}
		return v, nil
	}
}

// ClientConfigMaps reads keys of ConfigMaps in one namespace through the
// API, from data or binaryData.
func ClientConfigMaps(c client.Client, namespace string) source.KeyGetter {
	return func(ctx context.Context, name, key string) ([]byte, error) {
		var cm corev1.ConfigMap
		if err := c.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &cm); err != nil {
			return nil, err
		}
		if v, ok := cm.Data[key]; ok {
			return []byte(v), nil
		}
		if v, ok := cm.BinaryData[key]; ok {
			return v, nil
		}
		return nil, fmt.Errorf("ConfigMap %s has no key %s", name, key)
	}
}
