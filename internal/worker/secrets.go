package worker

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/userimport/user-import-operator/internal/directory"
)

// DirSecrets reads Secrets mounted as volumes: key K of Secret S is the
// file dir/S/K.
func DirSecrets(dir string) directory.SecretGetter {
	return func(_ context.Context, name, key string) ([]byte, error) {
		if name != filepath.Base(name) || key != filepath.Base(key) {
			return nil, directory.Errorf(directory.ReasonInvalidConfig, "Secret %q key %q: not a plain name", name, key)
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
