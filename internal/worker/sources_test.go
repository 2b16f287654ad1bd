package worker

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory/open"
	"github.com/userimport/user-import-operator/internal/failure"
	"github.com/userimport/user-import-operator/internal/keyread"
	"github.com/userimport/user-import-operator/internal/runcontract"
	"github.com/userimport/user-import-operator/internal/source"
	"github.com/userimport/user-import-operator/internal/testenv"
	"github.com/userimport/user-import-operator/internal/testpeer/s3server"
	"github.com/userimport/user-import-operator/internal/testpeer/sshd"
)

// remote is a server holding export files, and the source spec that
// reads them.
type remote struct {
	put     func(t *testing.T, name string, data []byte, mtime time.Time)
	source  func(sel v1alpha1.FileSelector) v1alpha1.ImportSource
	secrets map[string]string
}

func sftpRemote(t *testing.T) remote {
	srv := sshd.Start(t)
	return remote{
		put: func(t *testing.T, name string, data []byte, mtime time.Time) {
			if err := srv.WriteFile(name, data, mtime); err != nil {
				t.Fatal(err)
			}
		},
		source: func(sel v1alpha1.FileSelector) v1alpha1.ImportSource {
			return v1alpha1.ImportSource{SFTP: &v1alpha1.SFTPSource{FileSelector: sel, Host: srv.Host, Port: int32(srv.Port),
				Credentials: v1alpha1.LocalObjectReference{Name: "sftp"},
				KnownHosts:  &v1alpha1.SecretKeyRef{Name: "sftp-host", Key: "known_hosts"}}}
		},
		secrets: map[string]string{"sftp/username": sshd.User, "sftp/privateKey": string(srv.PrivateKey), "sftp-host/known_hosts": srv.KnownHosts},
	}
}

func s3Remote(t *testing.T) remote {
	root := t.TempDir()
	srv, err := s3server.StartIn(root, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	if err := srv.Bucket(context.Background(), "hr-exports", false); err != nil {
		t.Fatal(err)
	}
	return remote{
		put: func(t *testing.T, name string, data []byte, mtime time.Time) {
			if _, err := srv.Put(context.Background(), "hr-exports", name, data); err != nil {
				t.Fatal(err)
			}
			// versitygw keeps objects as files and serves their time.
			if err := os.Chtimes(filepath.Join(root, "data", "hr-exports", name), mtime, mtime); err != nil {
				t.Fatal(err)
			}
		},
		source: func(sel v1alpha1.FileSelector) v1alpha1.ImportSource {
			return v1alpha1.ImportSource{S3: &v1alpha1.S3Source{FileSelector: sel, Bucket: "hr-exports", Endpoint: srv.Endpoint, PathStyle: true,
				Credentials: &v1alpha1.LocalObjectReference{Name: "s3"}, Insecure: true}}
		},
		secrets: map[string]string{"s3/accessKeyID": s3server.AccessKey, "s3/secretAccessKey": s3server.SecretKey},
	}
}

// withKeys adds Secret keys to a reader.
func withKeys(base keyread.KeyReader, m map[string]string) keyread.KeyReader {
	return func(ctx context.Context, name, key string) ([]byte, error) {
		if v, ok := m[name+"/"+key]; ok {
			return []byte(v), nil
		}
		if strings.HasPrefix(name, "sftp") || name == "s3" {
			return nil, fmt.Errorf("Secret %s key %s: %w", name, key, keyread.ErrNotFound)
		}
		return base(ctx, name, key)
	}
}

// importFrom returns a function that runs the import of f, its source on
// rem, to the end or until ctx is done.
func importFrom(t *testing.T, f *fixture, rem remote) func(context.Context, Sink) (Result, error) {
	return stageFrom(t, f, rem, runcontract.StageImport)
}

// stageFrom runs one stage of f's import from rem.
func stageFrom(t *testing.T, f *fixture, rem remote, stage Stage) func(context.Context, Sink) (Result, error) {
	secrets := withKeys(f.secrets, rem.secrets)
	return func(ctx context.Context, sink Sink) (Result, error) {
		return Run(ctx, Config{Stage: stage, Import: f.get(t), Directory: f.dirSpec, Secrets: secrets,
			Source: source.Options{Dir: t.TempDir(), Secrets: secrets}, Open: open.Directory, Sink: sink, ProgressInterval: time.Millisecond})
	}
}

// stopAt cancels the run once a checkpoint passes a row.
type stopAt struct {
	Sink
	rows   int64
	cancel func()
}

func (s stopAt) Progress(ctx context.Context, p Progress) error {
	if p.ResumePoint != nil && p.ResumePoint.Counts.Rows >= s.rows {
		s.cancel()
	}
	return s.Sink.Progress(ctx, p)
}

// An import from SFTP or S3 reads the newest export, is pinned to it,
// and resumes at its checkpoint's offset: the resumed run reads the rest
// of the file, not all of it, and ends with every user.
func TestImportInPlaceResumesAtItsCheckpoint(t *testing.T) {
	// A server and names of its own: it runs beside the other long tests.
	t.Parallel()
	_, c := testenv.Shared(t)
	for _, kind := range []string{"sftp", "s3"} {
		t.Run(kind, func(t *testing.T) {
			ctx := context.Background()
			rem := map[string]func(*testing.T) remote{"sftp": sftpRemote, "s3": s3Remote}[kind](t)
			f := newFixture(t, c, "inplace-"+kind)
			writeCSV(t, f.csvPath, 20000)
			data, err := os.ReadFile(f.csvPath)
			if err != nil {
				t.Fatal(err)
			}
			day := time.Now().Add(-72 * time.Hour).Truncate(time.Second)
			rem.put(t, "exports/employees_20261127.csv", data[:len(data)/2], day)
			rem.put(t, "exports/employees_20261128.csv", data, day.Add(24*time.Hour))
			imp := f.get(t)
			imp.Spec.Source = rem.source(v1alpha1.FileSelector{Pattern: "exports/employees_*.csv"})
			imp.Spec.Mode = v1alpha1.ModeDelta
			if err := c.Update(ctx, imp); err != nil {
				t.Fatal(err)
			}
			run := importFrom(t, f, rem)

			stop, cancel := context.WithCancel(ctx)
			first, err := run(stop, stopAt{Sink: f.sink(), rows: 8000, cancel: cancel})
			cancel()
			if err == nil {
				t.Fatal("the first run was not interrupted")
			}
			st := f.get(t).Status
			if st.Source == nil || st.Source.Name != "exports/employees_20261128.csv" || st.Source.ModTime == nil || st.Source.Size != int64(len(data)) {
				t.Fatalf("status.source %+v, want the newest export pinned", st.Source)
			}
			cp := st.Progress.Checkpoint
			if cp == nil || !cp.DuplicatesKnown || cp.Offset <= 0 {
				t.Fatalf("checkpoint %+v", cp)
			}
			// The first run read the file once to find duplicates, then up
			// to the point it was stopped.
			if first.SourceBytesRead < int64(len(data)) {
				t.Fatalf("the first run read %d bytes of %d", first.SourceBytesRead, len(data))
			}

			// A newer export arrives before the resume: the import stays on
			// its file.
			rem.put(t, "exports/employees_20261129.csv", data[:100], day.Add(48*time.Hour))
			out, err := run(ctx, f.sink())
			if err != nil {
				t.Fatal(err)
			}
			rest := int64(len(data)) - cp.Offset
			if !out.Resumed || out.SourceBytesRead >= int64(len(data)) || out.SourceBytesRead > rest+2*64<<10+1 {
				t.Fatalf("the resume read %d bytes in %d requests; the file has %d, %d after the checkpoint", out.SourceBytesRead, out.SourceOpens, len(data), rest)
			}
			t.Logf("%s: resumed at byte %d of %d, read %d bytes in %d requests", kind, cp.Offset, len(data), out.SourceBytesRead, out.SourceOpens)
			if n := f.countUsers(t); n != 20000 {
				t.Fatalf("%d users, want 20000", n)
			}
			if got := f.get(t); got.Status.Source.Name != "exports/employees_20261128.csv" {
				t.Fatalf("the resume moved to %s", got.Status.Source.Name)
			}
		})
	}
}

// status.source.sha256 of a file read in place is the sha256 of its
// content, learnt by the read; its identity is the fingerprint, which
// pins the import to the file its preview read.
func TestInPlaceFileHasItsContentSHA256AndAFingerprint(t *testing.T) {
	_, c := testenv.Shared(t)
	ctx := context.Background()
	rem := s3Remote(t)
	f := newFixture(t, c, "inplace-sha")
	writeCSV(t, f.csvPath, 300)
	data, _ := os.ReadFile(f.csvPath)
	rem.put(t, "hr.csv", data, time.Now().Add(-time.Hour).Truncate(time.Second))
	imp := f.get(t)
	imp.Spec.Source = rem.source(v1alpha1.FileSelector{Path: "hr.csv"})
	if err := c.Update(ctx, imp); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	want := hex.EncodeToString(sum[:])
	if _, err := stageFrom(t, f, rem, runcontract.StagePreview)(ctx, f.sink()); err != nil {
		t.Fatal(err)
	}
	st := f.get(t).Status
	if st.Source.SHA256 != want || st.Source.Fingerprint == "" || st.Source.Fingerprint == want {
		t.Fatalf("after the preview: source sha256 %q, fingerprint %q; want sha256 %s and a fingerprint", st.Source.SHA256, st.Source.Fingerprint, want)
	}
	if p := st.Preview; p == nil || p.SHA256 != want || p.Fingerprint != st.Source.Fingerprint {
		t.Fatalf("preview %+v, want sha256 %s and fingerprint %s", p, want, st.Source.Fingerprint)
	}
	if _, err := importFrom(t, f, rem)(ctx, f.sink()); err != nil {
		t.Fatal(err)
	}
	if st := f.get(t).Status; st.Source.SHA256 != want || f.countUsers(t) != 300 {
		t.Fatalf("after the import: sha256 %q, %d users", st.Source.SHA256, f.countUsers(t))
	}

	// Another file of the same size under the same name is not the file
	// the preview and the checkpoint belong to: a run is refused.
	changed := append([]byte{}, data...)
	copy(changed[len(changed)-20:], strings.Repeat("y", 19))
	rem.put(t, "hr.csv", changed, time.Now().Truncate(time.Second))
	_, err := importFrom(t, f, rem)(ctx, f.sink())
	if failure.ChangedOf(err) == nil {
		t.Fatalf("importing another file than the preview's: %v, want SourceChanged", err)
	}
}

// A file replaced between a checkpoint and the resume is refused: an
// import never mixes two files.
func TestResumeRefusesAReplacedFile(t *testing.T) {
	_, c := testenv.Shared(t)
	ctx := context.Background()
	rem := sftpRemote(t)
	f := newFixture(t, c, "inplace-replaced")
	writeCSV(t, f.csvPath, 20000)
	data, _ := os.ReadFile(f.csvPath)
	at := time.Now().Add(-time.Hour).Truncate(time.Second)
	rem.put(t, "hr.csv", data, at)
	imp := f.get(t)
	imp.Spec.Source = rem.source(v1alpha1.FileSelector{Path: "hr.csv"})
	imp.Spec.Mode = v1alpha1.ModeDelta
	if err := c.Update(ctx, imp); err != nil {
		t.Fatal(err)
	}
	run := importFrom(t, f, rem)
	stop, cancel := context.WithCancel(ctx)
	if _, err := run(stop, stopAt{Sink: f.sink(), rows: 5000, cancel: cancel}); err == nil {
		t.Fatal("not interrupted")
	}
	cancel()
	before := f.countUsers(t)
	replaced := append([]byte{}, data...)
	copy(replaced[len(replaced)-40:], strings.Repeat("x", 39))
	rem.put(t, "hr.csv", replaced, at.Add(time.Minute))
	_, err := run(ctx, f.sink())
	if !errors.Is(err, failure.ErrChangedSinceCheckpoint) {
		t.Fatalf("resuming on a replaced file: %v, want ErrChangedSinceCheckpoint", err)
	}
	if n := f.countUsers(t); n != before {
		t.Fatalf("the refused resume wrote: %d users, %d before", n, before)
	}
}
