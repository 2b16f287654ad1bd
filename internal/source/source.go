// Package source opens the CSV file of a UserImport. The engine needs a
// seekable file (it reads it once to plan and once to write, and resumes
// at a byte offset), and a fingerprint to refuse resuming on another file.
// ConfigMap, Secret and HTTP sources are copied into a local file first,
// streaming, with their sha256 computed on the way. SFTP, S3 and
// PersistentVolumeClaim sources are read in place (inplace.go): a file of
// any size, never whole in memory or on disk.
package source

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/credentials"
	"github.com/userimport/user-import-operator/internal/egress"
	"github.com/userimport/user-import-operator/internal/failure"
	"github.com/userimport/user-import-operator/internal/keyread"
	"github.com/userimport/user-import-operator/internal/retry"
)

// File is the file of a source: a local copy, or a file read in place.
type File struct {
	// Path of the local copy; empty for a file read in place.
	Path string
	// Size in bytes.
	Size int64
	// SHA256, hex-encoded, of the content. A file read in place has it
	// once a read has covered the whole file from its first byte (see
	// ContentSHA256); until then it is empty.
	SHA256 string
	// Fingerprint identifies a file read in place without reading it (see
	// the function Fingerprint); empty for a local copy.
	Fingerprint string
	// ETag the server gave, for http and s3 sources.
	ETag string
	// Name, ModTime and VersionID of a file read in place.
	Name      string
	ModTime   time.Time
	VersionID string

	store Store
	obj   Object
	// reader is the last one Open returned, for its counters.
	reader *Reader
	// sum hashes the content of a file read in place as reads cover it.
	sum *contentSum
}

// ID is what pins the file for a preview, a checkpoint or a refusal: the
// content's sha256 for a local copy, the fingerprint for a file read in
// place, whose content is not known before it is read.
func (f *File) ID() string {
	if f.InPlace() {
		return f.Fingerprint
	}
	return f.SHA256
}

// ContentSHA256 is the sha256 of the content, or "" for a file read in
// place that no read has yet covered from its first byte to its last.
func (f *File) ContentSHA256() string {
	if f.sum != nil && f.SHA256 == "" {
		f.SHA256 = f.sum.hex()
	}
	return f.SHA256
}

// InPlace tells whether the file is read in place rather than copied.
func (f *File) InPlace() bool { return f.store != nil }

// Open opens the file from its start.
func (f *File) Open(ctx context.Context) (io.ReadSeekCloser, error) {
	if f.store != nil {
		if f.sum == nil {
			f.sum = &contentSum{h: sha256.New(), size: f.obj.Size}
		}
		f.reader = NewReader(ctx, f.store, f.obj)
		f.reader.sum = f.sum
		return f.reader, nil
	}
	return os.Open(f.Path)
}

// BytesRead is the number of bytes read from a file read in place by its
// last Open, and the number of times it was opened there.
func (f *File) BytesRead() (bytes int64, opens int) {
	if f.reader == nil {
		return 0, 0
	}
	return f.reader.BytesRead, f.reader.Opens
}

// Options say where a source can be found and where to put the copy.
type Options struct {
	// Dir receives the local copy (an emptyDir in a Job).
	Dir string
	// MountedFile, when set, is a file holding the ConfigMap or Secret
	// source (a Job mounts it); otherwise ConfigMaps and Secrets read it.
	MountedFile string
	// ConfigMaps and Secrets read keys through the API (in-process runs).
	ConfigMaps keyread.KeyReader
	Secrets    keyread.KeyReader
	// AmbientS3 tells whether an s3 source without credentials may use
	// the process's own cloud identity (its environment, web identity or
	// instance role) for its bucket. nil allows none: the manager serves
	// every tenant, and its identity is not theirs. A worker Job's pod
	// runs in the import's namespace, so its identity is the tenant's own.
	AmbientS3 func(bucket string) bool
	// DialControl, when set, checks every connection's address after its
	// name was resolved (egress.Policy.Control).
	DialControl func(network, address string, c syscall.RawConn) error
	// HTTPClient overrides the client of http sources (tests); its TLS
	// settings then win over caBundle.
	HTTPClient *http.Client
	// Retries of a failed download (default 3).
	Retries int
	// ClaimRoot is where a Job mounted the PersistentVolumeClaim of the
	// source; empty where no claim can be mounted (in-process runs).
	ClaimRoot string
	// Pin, when set, is the file an earlier run of the import found: a
	// file read in place is that one, not the newest matching now (a
	// resume, or an import after its preview).
	Pin *v1alpha1.SourceStatus
}

// Fetch copies the source into opts.Dir.
func Fetch(ctx context.Context, src v1alpha1.ImportSource, opts Options) (*File, error) {
	switch {
	case src.ConfigMap != nil:
		return fetchKey(ctx, "source.configMap", src.ConfigMap.Name, src.ConfigMap.Key, opts.ConfigMaps, opts)
	case src.Secret != nil:
		return fetchKey(ctx, "source.secret", src.Secret.Name, src.Secret.Key, opts.Secrets, opts)
	case src.HTTP != nil:
		return fetchHTTP(ctx, src.HTTP, opts)
	case src.SFTP != nil || src.S3 != nil || src.PersistentVolumeClaim != nil:
		return openInPlace(ctx, src, opts)
	}
	return nil, errors.New("spec.source: no source set")
}

// Connect opens the store of an sftp, s3 or persistentVolumeClaim source.
func Connect(ctx context.Context, src v1alpha1.ImportSource, opts Options) (Store, v1alpha1.FileSelector, error) {
	switch {
	case src.SFTP != nil:
		st, err := OpenSFTP(ctx, src.SFTP, opts.Secrets, opts.DialControl)
		return st, src.SFTP.FileSelector, err
	case src.S3 != nil:
		if src.S3.Credentials == nil && (opts.AmbientS3 == nil || !opts.AmbientS3(src.S3.Bucket)) {
			return nil, src.S3.FileSelector, failure.Errorf(v1alpha1.ReasonSourceNotSupported,
				"source.s3: bucket %s names no credentials, and the operator does not lend its own cloud identity to it: set spec.source.s3.credentials, or run the import in a worker Job, whose pod has the namespace's identity (the manager's --s3-ambient-buckets lists the exceptions)", src.S3.Bucket)
		}
		st, err := OpenS3(ctx, src.S3, opts.Secrets, opts.DialControl)
		return st, src.S3.FileSelector, err
	case src.PersistentVolumeClaim != nil:
		if opts.ClaimRoot == "" {
			return nil, src.PersistentVolumeClaim.FileSelector, failure.Errorf(v1alpha1.ReasonSourceNotSupported,
				"source.persistentVolumeClaim: only a worker Job mounts a claim; the in-process executor cannot read %s", src.PersistentVolumeClaim.ClaimName)
		}
		return OpenDir(src.PersistentVolumeClaim.ClaimName, opts.ClaimRoot), src.PersistentVolumeClaim.FileSelector, nil
	}
	return nil, v1alpha1.FileSelector{}, errors.New("spec.source: not an sftp, s3 or persistentVolumeClaim source")
}

// openInPlace finds the file of a source read in place: the pinned one,
// or the one its selector picks now.
func openInPlace(ctx context.Context, src v1alpha1.ImportSource, opts Options) (*File, error) {
	st, sel, err := Connect(ctx, src, opts)
	if err != nil {
		return nil, err
	}
	var obj Object
	if pin := opts.Pin; pin != nil && pin.Name != "" {
		obj, err = st.Stat(ctx, pin.Name)
		if err == nil && pin.VersionID != "" {
			// A versioned bucket still serves the pinned version after the
			// key was overwritten.
			obj = Object{Name: pin.Name, Size: pin.Size, ETag: pin.ETag, VersionID: pin.VersionID, ModTime: obj.ModTime}
			if pin.ModTime != nil {
				obj.ModTime = pin.ModTime.Time
			}
		}
	} else {
		obj, err = Find(ctx, st, sel)
	}
	if err != nil {
		st.Close()
		return nil, err
	}
	return &File{Size: obj.Size, Fingerprint: Fingerprint(st, obj), ETag: obj.ETag, Name: obj.Name, ModTime: obj.ModTime,
		VersionID: obj.VersionID, store: st, obj: obj}, nil
}

// fetchKey copies the key of a ConfigMap or Secret source: the mounted
// file when there is one (a Job), otherwise what read gives.
func fetchKey(ctx context.Context, field, name, key string, read keyread.KeyReader, opts Options) (*File, error) {
	if opts.MountedFile != "" {
		return copyFile(opts.MountedFile, opts.Dir)
	}
	if read == nil {
		return nil, fmt.Errorf("%s: no way to read it", field)
	}
	data, err := read(ctx, name, key)
	if err != nil {
		return nil, fmt.Errorf("%s %s key %s: %w", field, name, key, err)
	}
	return write(bytes.NewReader(data), opts.Dir, "")
}

func copyFile(path, dir string) (*File, error) {
	in, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("reading the mounted source: %w", err)
	}
	defer in.Close()
	return write(in, dir, "")
}

// write streams r into a new file in dir, hashing as it goes.
func write(r io.Reader, dir, etag string) (*File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	out, err := os.CreateTemp(dir, "source-*.csv")
	if err != nil {
		return nil, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(out, h), r)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(out.Name())
		return nil, err
	}
	return &File{Path: out.Name(), Size: n, SHA256: hex.EncodeToString(h.Sum(nil)), ETag: etag}, nil
}

func fetchHTTP(ctx context.Context, src *v1alpha1.HTTPSource, opts Options) (*File, error) {
	client, err := httpClient(ctx, src, opts)
	if err != nil {
		return nil, err
	}
	retries := opts.Retries
	if retries <= 0 {
		retries = 3
	}
	var last error
	for attempt := 0; attempt <= retries; attempt++ {
		if attempt > 0 {
			if err := retry.Sleep(ctx, retry.Backoff(attempt-1, time.Second, 4*time.Second)); err != nil {
				return nil, err
			}
		}
		f, again, err := download(ctx, client, src, opts)
		if err == nil {
			return f, nil
		}
		last = err
		if !again {
			break
		}
	}
	return nil, last
}

func download(ctx context.Context, client *http.Client, src *v1alpha1.HTTPSource, opts Options) (*File, bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src.URL, nil)
	if err != nil {
		return nil, false, fmt.Errorf("source.http.url: %w", err)
	}
	if err := authorize(ctx, req, src, opts.Secrets); err != nil {
		return nil, false, err
	}
	resp, err := client.Do(req)
	if err != nil {
		var certErr *tls.CertificateVerificationError
		if errors.As(err, &certErr) {
			return nil, false, fmt.Errorf("source.http: TLS: %w", err)
		}
		if errors.Is(err, egress.ErrRedirectRefused) {
			return nil, false, fmt.Errorf("source.http: %w", egress.Redact(err))
		}
		return nil, true, fmt.Errorf("source.http: %w", egress.Redact(err))
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		return nil, false, fmt.Errorf("source.http: the server refused the credentials (%s)", resp.Status)
	case resp.StatusCode == http.StatusNotFound:
		return nil, false, fmt.Errorf("source.http: no file at the URL (%s)", resp.Status)
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return nil, true, fmt.Errorf("source.http: %s", resp.Status)
	default:
		return nil, false, fmt.Errorf("source.http: %s", resp.Status)
	}
	limit := src.MaxBytes
	if limit <= 0 {
		limit = v1alpha1.DefaultHTTPMaxBytes
	}
	if resp.ContentLength > limit {
		return nil, false, fmt.Errorf("source.http: the file has %d bytes, more than spec.source.http.maxBytes (%d)", resp.ContentLength, limit)
	}
	body := &stallReader{r: resp.Body, cancel: cancel, stall: stallTimeout}
	f, err := write(io.LimitReader(body, limit+1), opts.Dir, resp.Header.Get("ETag"))
	if err == nil && f.Size > limit {
		os.Remove(f.Path)
		return nil, false, fmt.Errorf("source.http: the file has more than spec.source.http.maxBytes (%d bytes)", limit)
	}
	if err != nil {
		if body.stalled.Load() {
			err = fmt.Errorf("no byte arrived for %s", stallTimeout)
		}
		return nil, true, fmt.Errorf("source.http: download interrupted: %w", egress.Redact(err))
	}
	if resp.ContentLength >= 0 && f.Size != resp.ContentLength {
		os.Remove(f.Path)
		return nil, true, fmt.Errorf("source.http: got %d bytes, the server announced %d", f.Size, resp.ContentLength)
	}
	return f, false, nil
}

func authorize(ctx context.Context, req *http.Request, src *v1alpha1.HTTPSource, secrets keyread.KeyReader) error {
	switch {
	case src.BasicAuth != nil:
		user, err := secretKey(ctx, secrets, src.BasicAuth.Name, "username")
		if err != nil {
			return err
		}
		pass, err := secretKey(ctx, secrets, src.BasicAuth.Name, "password")
		if err != nil {
			return err
		}
		req.SetBasicAuth(user, pass)
	case src.BearerToken != nil:
		tok, err := secretKey(ctx, secrets, src.BearerToken.Name, src.BearerToken.Key)
		if err != nil {
			return err
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	return nil
}

func secretKey(ctx context.Context, secrets keyread.KeyReader, name, key string) (string, error) {
	if secrets == nil {
		return "", fmt.Errorf("source.http: Secret %s: no way to read Secrets", name)
	}
	b, err := secrets(ctx, name, key)
	if err != nil {
		return "", fmt.Errorf("source.http: Secret %s key %s: %w", name, key, err)
	}
	return strings.TrimSpace(string(b)), nil
}

func httpClient(ctx context.Context, src *v1alpha1.HTTPSource, opts Options) (*http.Client, error) {
	if opts.HTTPClient != nil {
		return opts.HTTPClient, nil
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	if src.CABundle != nil {
		pool, err := credentials.CertPool(ctx, opts.Secrets, "source.http.caBundle", *src.CABundle)
		if err != nil {
			return nil, err
		}
		tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	}
	// No overall timeout: a large file takes its time. The headers must
	// come within a minute, and the body must not stall (stallReader);
	// the Job's deadline bounds the rest.
	tr.ResponseHeaderTimeout = time.Minute
	if opts.DialControl != nil {
		tr.DialContext = (&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second, Control: opts.DialControl}).DialContext
	}
	// The file is what the server sends: a Content-Encoding is not undone,
	// so maxBytes bounds what reaches the disk.
	tr.DisableCompression = true
	return &http.Client{Transport: tr, CheckRedirect: egress.SameOrigin}, nil
}

// Remove deletes the local copy, or closes the connection to the store of
// a file read in place.
func (f *File) Remove() error {
	if f.store != nil {
		return f.store.Close()
	}
	return os.Remove(filepath.Clean(f.Path))
}

// stallTimeout is how long a download may go without a byte.
var stallTimeout = 2 * time.Minute

// stallReader cancels a download when no byte arrives for stall.
type stallReader struct {
	r       io.Reader
	cancel  context.CancelFunc
	stall   time.Duration
	timer   *time.Timer
	stalled atomic.Bool
}

func (s *stallReader) Read(p []byte) (int, error) {
	if s.timer == nil {
		s.timer = time.AfterFunc(s.stall, func() { s.stalled.Store(true); s.cancel() })
	} else {
		s.timer.Reset(s.stall)
	}
	n, err := s.r.Read(p)
	if err != nil {
		s.timer.Stop()
	}
	return n, err
}

// AmbientBuckets allows the ambient cloud identity for the buckets listed.
func AmbientBuckets(buckets []string) func(string) bool {
	return func(b string) bool { return slices.Contains(buckets, b) }
}

// AnyBucket allows the ambient cloud identity for every bucket: the
// process is a worker Job's, in the import's own namespace.
func AnyBucket(string) bool { return true }
