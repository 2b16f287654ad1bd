package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"path"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/failure"
	"github.com/userimport/user-import-operator/internal/retry"
)

// Files on SFTP servers, in S3 buckets and on PersistentVolumeClaims are
// read in place, never copied: they may be larger than the pod's disk.
// The engine reads such a file through a Reader, which reopens it at the
// offset it seeks to (an SFTP seek, an S3 range request), so that a pass
// over the file holds one bounded buffer and a resumed import continues
// at its checkpoint's offset.

// Object is a file of a Store as it was when the import found it. Its
// fields pin it: a later read of another content is refused.
type Object struct {
	// Name is the file's path (SFTP, PVC) or key (S3).
	Name      string
	Size      int64
	ModTime   time.Time
	ETag      string
	VersionID string
}

// Store holds files read in place.
type Store interface {
	// Kind names the store in messages and fingerprints ("sftp", "s3",
	// "persistentVolumeClaim") with where it is.
	Kind() string
	// Stat returns the file name as it is now.
	Stat(ctx context.Context, name string) (Object, error)
	// List returns the files of folder (a key prefix for S3).
	List(ctx context.Context, folder string) ([]Object, error)
	// OpenAt reads obj from byte off on. It fails with
	// failure.ErrChangedWhileRead when the store no longer holds that
	// content.
	OpenAt(ctx context.Context, obj Object, off int64) (io.ReadCloser, error)
	// Move renames obj into the folder (or prefix) to, keeping its base
	// name, and returns its new name. Delete removes it. Both fail with
	// failure.ErrChangedWhileRead when the file was replaced since the
	// import read it.
	Move(ctx context.Context, obj Object, to string) (string, error)
	Delete(ctx context.Context, obj Object) error
	Close() error
}

// Find picks the file sel names: its path, or the newest file matching
// its pattern (by modification time, then by name: of two dated names
// written in the same second, the later date).
func Find(ctx context.Context, st Store, sel v1alpha1.FileSelector) (Object, error) {
	if sel.Path != "" {
		return st.Stat(ctx, sel.Path)
	}
	if sel.Pattern == "" {
		return Object{}, errors.New("spec.source: neither path nor pattern is set")
	}
	if _, err := path.Match(sel.Pattern, ""); err != nil {
		return Object{}, fmt.Errorf("spec.source.pattern %q: %w", sel.Pattern, err)
	}
	folder := patternFolder(st, sel.Pattern)
	objs, err := st.List(ctx, folder)
	if err != nil {
		return Object{}, err
	}
	var best *Object
	for i := range objs {
		o := &objs[i]
		if ok, _ := path.Match(sel.Pattern, o.Name); !ok {
			continue
		}
		if best == nil || o.ModTime.After(best.ModTime) || (o.ModTime.Equal(best.ModTime) && o.Name > best.Name) {
			best = o
		}
	}
	if best == nil {
		return Object{}, failure.Errorf(v1alpha1.ReasonSourceNotFound, "%s: no file matches the pattern %q", st.Kind(), sel.Pattern)
	}
	// A listing may leave out what a single file's metadata has (an S3
	// object's version): the file is pinned as Stat describes it.
	return st.Stat(ctx, best.Name)
}

// patternFolder is what to list for a pattern: its folder, or for S3 the
// key prefix before the first wildcard.
func patternFolder(st Store, pattern string) string {
	if _, ok := st.(*s3Store); ok {
		if i := strings.IndexAny(pattern, `*?[\`); i >= 0 {
			return pattern[:i]
		}
		return pattern
	}
	return path.Dir(pattern)
}

// Fingerprint identifies obj of st in the place of a content hash: the
// sha256 of where it is, its name, size, modification time, ETag and
// version. Any change of the file changes one of them. The time counts in
// whole seconds, as SFTP, HTTP dates and the status keep it.
func Fingerprint(st Store, obj Object) string {
	parts := []string{st.Kind(), obj.Name, strconv.FormatInt(obj.Size, 10),
		strconv.FormatInt(obj.ModTime.Unix(), 10), obj.ETag, obj.VersionID}
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return hex.EncodeToString(sum[:])
}

// Reader reads an Object sequentially and seeks by reopening it at the
// new offset. Read errors after the first byte (a dropped connection) are
// retried by reopening at the offset reached, up to Retries times in a
// row.
type Reader struct {
	ctx     context.Context
	store   Store
	obj     Object
	pos     int64
	rc      io.ReadCloser
	retries int
	// BytesRead counts the bytes read from the store, re-reads included.
	BytesRead int64
	// Opens counts the requests that opened the file (an S3 GET, an SFTP
	// open), so a resume can be seen to start at its offset.
	Opens int
	// sum, when set, is fed the bytes that continue what it has hashed.
	sum *contentSum
}

// contentSum hashes a file read in place in order, from its first byte:
// bytes read at another offset (a resume, a seek) are not hashed, so the
// sum is known only after some read covered the whole file.
//
// Readers of one file may run at once (a pass over the file while
// another reads ahead): the bytes they add at the offset reached are the
// same file's, whichever adds them.
type contentSum struct {
	mu   sync.Mutex
	h    hash.Hash
	done int64
	size int64
}

func (c *contentSum) add(at int64, p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	// A chunk that covers the frontier continues the sum, whatever
	// offset it started at: readers of different buffer sizes (or one
	// that stopped early) never meet the frontier exactly.
	if end := at + int64(len(p)); at <= c.done && c.done < end && c.done < c.size {
		c.h.Write(p[c.done-at:])
		c.done = end
	}
}

func (c *contentSum) hex() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.done != c.size {
		return ""
	}
	return hex.EncodeToString(c.h.Sum(nil))
}

// NewReader reads obj of st.
func NewReader(ctx context.Context, st Store, obj Object) *Reader {
	return &Reader{ctx: ctx, store: st, obj: obj, retries: 3}
}

func (r *Reader) Read(p []byte) (int, error) {
	if r.pos >= r.obj.Size {
		return 0, io.EOF
	}
	for attempt := 0; ; attempt++ {
		if r.rc == nil {
			rc, err := r.store.OpenAt(r.ctx, r.obj, r.pos)
			if err != nil {
				return 0, err
			}
			r.rc = rc
			r.Opens++
		}
		n, err := r.rc.Read(p)
		if r.sum != nil {
			r.sum.add(r.pos, p[:n])
		}
		r.pos += int64(n)
		r.BytesRead += int64(n)
		switch {
		case err == nil || (err == io.EOF && r.pos >= r.obj.Size):
			if err == io.EOF && n > 0 {
				err = nil
			}
			return n, err
		case err == io.EOF:
			r.close()
			return n, fmt.Errorf("%s %s: the file ended at byte %d of %d: %w", r.store.Kind(), r.obj.Name, r.pos, r.obj.Size, failure.ErrChangedWhileRead)
		case n > 0:
			// Hand over what arrived; the next Read reopens.
			r.close()
			return n, nil
		case attempt >= r.retries || r.ctx.Err() != nil || errors.Is(err, failure.ErrChangedWhileRead):
			r.close()
			return 0, err
		}
		r.close()
		if serr := retry.Sleep(r.ctx, retry.Backoff(attempt, 100*time.Millisecond, 2*time.Second)); serr != nil {
			return 0, err
		}
	}
}

// Seek moves to an offset; the next Read opens the file there.
func (r *Reader) Seek(offset int64, whence int) (int64, error) {
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = r.pos + offset
	case io.SeekEnd:
		abs = r.obj.Size + offset
	default:
		return 0, errors.New("source: bad whence")
	}
	if abs < 0 {
		return 0, errors.New("source: negative position")
	}
	if abs != r.pos {
		r.close()
		r.pos = abs
	}
	return abs, nil
}

func (r *Reader) close() {
	if r.rc != nil {
		r.rc.Close()
		r.rc = nil
	}
}

// Close ends the read in progress.
func (r *Reader) Close() error {
	r.close()
	return nil
}
