package source

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/failure"
)

// dirStore is a folder of the local file system: the mount of a
// PersistentVolumeClaim in a worker Job. Names are relative to its root
// and never leave it: every access goes through an os.Root, so neither
// ".." nor a symbolic link reaches a file outside the claim (such as the
// directory's credentials mounted beside it).
type dirStore struct {
	claim string
	root  *os.Root
	err   error
}

// OpenDir reads files of the claim mounted at root.
func OpenDir(claim, root string) Store {
	r, err := os.OpenRoot(root)
	if err != nil {
		err = fmt.Errorf("source.persistentVolumeClaim: %s is not mounted: %w", claim, err)
	}
	return &dirStore{claim: claim, root: r, err: err}
}

func (d *dirStore) Kind() string { return "persistentVolumeClaim/" + d.claim }

// rel is name relative to the root.
func (d *dirStore) rel(name string) (string, error) {
	if d.err != nil {
		return "", d.err
	}
	clean := path.Clean(strings.TrimPrefix(name, "/"))
	if clean == ".." || strings.HasPrefix(clean, "../") {
		return "", fmt.Errorf("source.persistentVolumeClaim: path %s leaves the claim", name)
	}
	return clean, nil
}

func (d *dirStore) fileError(name string, err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return failure.Errorf(v1alpha1.ReasonSourceNotFound, "source.persistentVolumeClaim: %s has no file %s", d.claim, name)
	}
	if strings.Contains(err.Error(), "path escapes from parent") {
		return fmt.Errorf("source.persistentVolumeClaim: %s: %s leaves the claim (a symbolic link out of it)", d.claim, name)
	}
	return fmt.Errorf("source.persistentVolumeClaim: %s: %s: %w", d.claim, name, err)
}

func (d *dirStore) Stat(_ context.Context, name string) (Object, error) {
	p, err := d.rel(name)
	if err != nil {
		return Object{}, err
	}
	fi, err := d.root.Stat(p)
	if err != nil {
		return Object{}, d.fileError(name, err)
	}
	if !fi.Mode().IsRegular() {
		return Object{}, failure.Errorf(v1alpha1.ReasonSourceNotFound, "source.persistentVolumeClaim: %s: %s is not a file", d.claim, name)
	}
	return Object{Name: path.Clean(name), Size: fi.Size(), ModTime: fi.ModTime()}, nil
}

func (d *dirStore) List(_ context.Context, folder string) ([]Object, error) {
	p, err := d.rel(folder)
	if err != nil {
		return nil, err
	}
	entries, err := fs.ReadDir(d.root.FS(), p)
	if err != nil {
		return nil, d.fileError(folder, err)
	}
	var objs []Object
	for _, e := range entries {
		// Stat through the root: a link that leaves the claim is not
		// listed.
		fi, err := d.root.Stat(path.Join(p, e.Name()))
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
		return nil, fmt.Errorf("source.persistentVolumeClaim: %s: %w", obj.Name, failure.ErrChangedWhileRead)
	}
	p, _ := d.rel(obj.Name)
	f, err := d.root.Open(p)
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
func (d *dirStore) Close() error {
	if d.root == nil {
		return nil
	}
	return d.root.Close()
}
