// Package fromapi reads keys of Secrets and ConfigMaps through the
// Kubernetes API, as keyread.KeyReaders.
package fromapi

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/userimport/user-import-operator/internal/keyread"
)

// Secrets reads keys of the Secrets of namespace through r. Pass an
// uncached reader, so that the manager does not cache every Secret of the
// cluster.
func Secrets(r client.Reader, namespace string) keyread.KeyReader {
	return SecretsMatching(r, namespace, nil)
}

// SecretsMatching is Secrets that reads only Secrets whose labels match
// sel (all of them when sel is nil): an operator that sets
// --secret-label uses no Secret that was not labelled for it, whatever a
// UserDirectory or UserImport names.
func SecretsMatching(r client.Reader, namespace string, sel labels.Selector) keyread.KeyReader {
	return func(ctx context.Context, name, key string) ([]byte, error) {
		s, err := secret(ctx, r, namespace, name, sel)
		if err != nil {
			return nil, err
		}
		v, ok := s.Data[key]
		if !ok {
			return nil, keyread.NotFound("Secret %s has no key %s", name, key)
		}
		return v, nil
	}
}

// CheckSecret tells whether Secret name of namespace exists and matches
// sel (see SecretsMatching).
func CheckSecret(ctx context.Context, r client.Reader, namespace, name string, sel labels.Selector) error {
	_, err := secret(ctx, r, namespace, name, sel)
	return err
}

func secret(ctx context.Context, r client.Reader, namespace, name string, sel labels.Selector) (*corev1.Secret, error) {
	var s corev1.Secret
	if err := r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &s); err != nil {
		if apierrors.IsNotFound(err) {
			return nil, keyread.NotFound("Secret %s not found in namespace %s", name, namespace)
		}
		return nil, fmt.Errorf("reading Secret %s: %w", name, err)
	}
	if sel != nil && !sel.Matches(labels.Set(s.Labels)) {
		return nil, fmt.Errorf("Secret %s does not carry the label %s that the operator requires of the Secrets it uses", name, sel)
	}
	return &s, nil
}

// ConfigMaps reads keys of the ConfigMaps of namespace through r, from
// data or binaryData.
func ConfigMaps(r client.Reader, namespace string) keyread.KeyReader {
	return func(ctx context.Context, name, key string) ([]byte, error) {
		var cm corev1.ConfigMap
		if err := r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &cm); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, keyread.NotFound("ConfigMap %s not found in namespace %s", name, namespace)
			}
			return nil, fmt.Errorf("reading ConfigMap %s: %w", name, err)
		}
		if v, ok := cm.Data[key]; ok {
			return []byte(v), nil
		}
		if v, ok := cm.BinaryData[key]; ok {
			return v, nil
		}
		return nil, keyread.NotFound("ConfigMap %s has no key %s", name, key)
	}
}
