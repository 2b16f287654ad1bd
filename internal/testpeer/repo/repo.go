// Package repo finds the checkout of the repository, where tests and test
// servers find the scripts and files they run.
package repo

import (
	"errors"
	"os"
	"path/filepath"
)

// Root returns the repository root: $UIO_REPO_ROOT, else the nearest
// directory above the working directory that holds go.mod.
func Root() (string, error) {
	if r := os.Getenv("UIO_REPO_ROOT"); r != "" {
		return r, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("repository root not found: set UIO_REPO_ROOT")
		}
		dir = parent
	}
}
