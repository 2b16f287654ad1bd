package worker

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/userimport/user-import-operator/internal/directory"
)

// DirSecrets reads Secrets mounted as volumes: key K of Secret S is the
// file dir/S/K.
func DirSecrets(dir string) directory.SecretGetter {
	return func(_ context.Context, name, key string) ([]byte, error) {
		// A name like ".." would read outside dir: only what Kubernetes
		// accepts as a Secret name and key is looked up.
		if errs := validation.IsDNS1123Subdomain(name); len(errs) > 0 {
			return nil, directory.Errorf(directory.ReasonInvalidConfig, "Secret name %q: %s", name, strings.Join(errs, "; "))
		}
		if errs := validation.IsConfigMapKey(key); len(errs) > 0 {
			return nil, directory.Errorf(directory.ReasonInvalidConfig, "Secret %s key %q: %s", name, key, strings.Join(errs, "; "))
		}
		b, err := os.ReadFile(filepath.Join(dir, name, key))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, directory.Errorf(directory.ReasonSecretNotFound, "Secret %s has no key %s (looked in %s)", name, key, dir)
		}
		if err != nil {
			return nil, fmt.Errorf("Secret %s key %s: %w", name, key, err)
		}
		return b, nil
	}
}
