// Package kube reads keys of Secrets and ConfigMaps: through the API (the
// manager, in-process runs) or from the files of volumes mounted in a pod
// (Jobs, a one-off run from a laptop). Whoever reads a Secret takes a
// KeyReader and does not know which.
package kube

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// KeyReader reads one key of a Secret or ConfigMap of one namespace.
type KeyReader func(ctx context.Context, name, key string) ([]byte, error)

var (
	// ErrNotFound: the object, or its key, does not exist.
	ErrNotFound = errors.New("not found")
	// ErrInvalidName: a name or key that Kubernetes would not accept.
	ErrInvalidName = errors.New("invalid name")
)

// keyError is a failure to read a key with a message that names the
// object and key, and a class (ErrNotFound, ErrInvalidName) for errors.Is.
type keyError struct {
	msg   string
	class error
}

func (e *keyError) Error() string        { return e.msg }
func (e *keyError) Is(target error) bool { return target == e.class }

func notFound(format string, args ...any) error {
	return &keyError{msg: fmt.Sprintf(format, args...), class: ErrNotFound}
}

// Secrets reads keys of the Secrets of namespace through r. Pass an
// uncached reader, so that the manager does not cache every Secret of the
// cluster.
func Secrets(r client.Reader, namespace string) KeyReader {
	return func(ctx context.Context, name, key string) ([]byte, error) {
		var s corev1.Secret
		if err := r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &s); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, notFound("Secret %s not found in namespace %s", name, namespace)
			}
			return nil, fmt.Errorf("reading Secret %s: %w", name, err)
		}
		v, ok := s.Data[key]
		if !ok {
			return nil, notFound("Secret %s has no key %s", name, key)
		}
		return v, nil
	}
}

// ConfigMaps reads keys of the ConfigMaps of namespace through r, from
// data or binaryData.
func ConfigMaps(r client.Reader, namespace string) KeyReader {
	return func(ctx context.Context, name, key string) ([]byte, error) {
		var cm corev1.ConfigMap
		if err := r.Get(ctx, client.ObjectKey{Namespace: namespace, Name: name}, &cm); err != nil {
			if apierrors.IsNotFound(err) {
				return nil, notFound("ConfigMap %s not found in namespace %s", name, namespace)
			}
			return nil, fmt.Errorf("reading ConfigMap %s: %w", name, err)
		}
		if v, ok := cm.Data[key]; ok {
			return []byte(v), nil
		}
		if v, ok := cm.BinaryData[key]; ok {
			return v, nil
		}
		return nil, notFound("ConfigMap %s has no key %s", name, key)
	}
}

// MountedSecrets reads Secrets mounted as volumes: key K of Secret S is
// the file dir/S/K.
func MountedSecrets(dir string) KeyReader {
	return func(_ context.Context, name, key string) ([]byte, error) {
		// A name like ".." would read outside dir: only what Kubernetes
		// accepts as a Secret name and key is looked up.
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
			return nil, &keyError{msg: fmt.Sprintf("Secret name %q: %s", name, strings.Join(errs, "; ")), class: ErrInvalidName}
		}
		if errs := validation.IsConfigMapKey(key); len(errs) > 0 {
			return nil, &keyError{msg: fmt.Sprintf("Secret %s key %q: %s", name, key, strings.Join(errs, "; ")), class: ErrInvalidName}
		}
		b, err := os.ReadFile(filepath.Join(dir, name, key))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, notFound("Secret %s has no key %s (looked in %s)", name, key, dir)
		}
		if err != nil {
			return nil, fmt.Errorf("Secret %s key %s: %w", name, key, err)
		}
		return b, nil
	}
}
