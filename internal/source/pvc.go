package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/userimport/user-import-operator/api/v1alpha1"
)

// dirStore is a folder of the local file system: the mount of a
// PersistentVolumeClaim in a worker Job. Names are relative to root and
// never leave it.
type dirStore struct {
	claim string
	root  string
}

// OpenDir reads files of the claim mounted at root.
func OpenDir(claim, root string) Store { return &dirStore{claim: claim, root: root} }

func (d *dirStore) Kind() string { return "persistentVolumeClaim/" + d.claim }

func (d *dirStore) abs(name string) (string, error) {
	clean := path.Clean(strings.TrimPrefix(name, "/"))
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("source.persistentVolumeClaim: path %s leaves the claim", name)
	}
	return filepath.Join(d.root, filepath.FromSlash(clean)), nil
}

func (d *dirStore) fileError(name string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return errorf(v1alpha1.ReasonSourceNotFound, "source.persistentVolumeClaim: %s has no file %s", d.claim, name)
	}
	return fmt.Errorf("source.persistentVolumeClaim: %s: %s: %w", d.claim, name, err)
}

func (d *dirStore) Stat(_ context.Context, name string) (Object, error) {
	p, err := d.abs(name)
	if err != nil {
		return Object{}, err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return Object{}, d.fileError(name, err)
	}
	if !fi.Mode().IsRegular() {
		return Object{}, errorf(v1alpha1.ReasonSourceNotFound, "source.persistentVolumeClaim: %s: %s is not a file", d.claim, name)
	}
	return Object{Name: path.Clean(name), Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

func (d *dirStore) List(_ context.Context, folder string) ([]Object, error) {
	p, err := d.abs(folder)
	if err != nil {
		return nil, err
	}
	entries, err := os.ReadDir(p)
	if err != nil {
		return nil, d.fileError(folder, err)
	}
	var objs []Object
	for _, e := range entries {
		fi, err := e.Info()
		if err != nil || !fi.Mode().IsRegular() {
			continue
		}
		objs = append(objs, Object{Name: path.Join(folder, e.Name()), Size: fi.Size(), ModTime: fi.ModTime()})
	}
	return objs, nil
}

func (d *dirStore) OpenAt(ctx context.Context, obj Object, off int64) (io.ReadCloser, error) {
	now, err := d.Stat(ctx, obj.Name)
	if err != nil {
		return nil, err
	}
	if now.Size != obj.Size || !now.ModTime.Equal(obj.ModTime) {
		return nil, fmt.Errorf("source.persistentVolumeClaim: %s: %w", obj.Name, ErrChanged)
	}
	p, _ := d.abs(obj.Name)
	f, err := os.Open(p)
	if err != nil {
		return nil, d.fileError(obj.Name, err)
	}
	if _, err := f.Seek(off, io.SeekStart); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

var errReadOnly = errors.New("source.persistentVolumeClaim: the claim is mounted read-only; afterImport must be Keep")

func (d *dirStore) Move(context.Context, Object, string) (string, error) { return "", errReadOnly }
func (d *dirStore) Delete(context.Context, Object) error                 { return errReadOnly }
func (d *dirStore) Close() error                                         { return nil }
