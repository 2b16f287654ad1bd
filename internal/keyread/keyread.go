// Package keyread reads keys of Secrets and ConfigMaps. Whoever reads a
// Secret takes a KeyReader and does not know where it reads from: the
// files of volumes mounted in a pod (MountedSecrets: Jobs, a one-off run
// from a laptop) or the API (package keyread/fromapi: the manager,
// in-process runs). The API readers are a package of their own so that
// the directories, which take a KeyReader, do not depend on the
// Kubernetes client.
package keyread

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
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

// NotFound is an error of class ErrNotFound with a message that names the
// object and key.
func NotFound(format string, args ...any) error {
	return &keyError{msg: fmt.Sprintf(format, args...), class: ErrNotFound}
}

// MountedSecrets reads Secrets mounted as volumes: key K of Secret S is
// the file dir/S/K.
func MountedSecrets(dir string) KeyReader { return mounted("Secret", dir) }

// MountedConfigMaps reads ConfigMaps mounted as volumes, as
// MountedSecrets reads Secrets.
func MountedConfigMaps(dir string) KeyReader { return mounted("ConfigMap", dir) }

func mounted(kind, dir string) KeyReader {
	return func(_ context.Context, name, key string) ([]byte, error) {
		// A name like ".." would read outside dir: only what Kubernetes
		// accepts as a Secret name and key is looked up.
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
			return nil, &keyError{msg: fmt.Sprintf("%s name %q: %s", kind, name, strings.Join(errs, "; ")), class: ErrInvalidName}
		}
		if errs := validation.IsConfigMapKey(key); len(errs) > 0 {
			return nil, &keyError{msg: fmt.Sprintf("%s %s key %q: %s", kind, name, key, strings.Join(errs, "; ")), class: ErrInvalidName}
		}
		b, err := os.ReadFile(filepath.Join(dir, name, key))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, NotFound("%s %s has no key %s (looked in %s)", kind, name, key, dir)
		}
		if err != nil {
			return nil, fmt.Errorf("%s %s key %s: %w", kind, name, key, err)
		}
		return b, nil
	}
}
