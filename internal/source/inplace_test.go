package source

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/failure"
	"github.com/userimport/user-import-operator/internal/testpeer/s3server"
	"github.com/userimport/user-import-operator/internal/testpeer/sshd"
	"github.com/userimport/user-import-operator/internal/testpeer/tcpproxy"
)

// csvRows makes a CSV file of n rows, each row different.
func csvRows(n int, tag string) []byte {
	var b bytes.Buffer
	b.WriteString("employee_id,email\n")
	for i := range n {
		fmt.Fprintf(&b, "%s%06d,user%d@example.com\n", tag, i, i)
	}
	return b.Bytes()
}

func readAll(t *testing.T, f *File) []byte {
	t.Helper()
	r, err := f.Open(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func wantReason(t *testing.T, err error, reason string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %s", reason)
	}
	if got := failure.ReasonOf(err, ""); got != reason {
		t.Fatalf("reason %q (%v), want %s", got, err, reason)
	}
}

func sftpSource(srv *sshd.Server, sel v1alpha1.FileSelector) v1alpha1.ImportSource {
	return v1alpha1.ImportSource{SFTP: &v1alpha1.SFTPSource{
		FileSelector: sel, Host: srv.Host, Port: int32(srv.Port),
		Credentials: v1alpha1.LocalObjectReference{Name: "sftp"},
		KnownHosts:  &v1alpha1.SecretKeyRef{Name: "sftp-host", Key: "known_hosts"},
	}}
}

func sftpSecrets(srv *sshd.Server, password string) map[string]string {
	return map[string]string{
		"sftp/username": sshd.User, "sftp/password": password,
		"sftp-host/known_hosts": srv.KnownHosts,
	}
}

func TestSFTPNewestFileByPasswordAndKey(t *testing.T) {
	ctx := context.Background()
	srv := sshd.Start(t)
	day := time.Date(2026, 11, 27, 22, 0, 0, 0, time.UTC)
	files := map[string]time.Time{
		"exports/employees_20261127.csv": day,
		"exports/employees_20261129.csv": day.Add(48 * time.Hour),
		"exports/employees_20261128.csv": day.Add(24 * time.Hour),
		// Newer, but not a match.
		"exports/managers_20261130.csv": day.Add(72 * time.Hour),
		"employees_20261201.csv":        day.Add(96 * time.Hour),
	}
	for name, mtime := range files {
		if err := srv.WriteFile(name, csvRows(3, filepath.Base(name)[10:18]), mtime); err != nil {
			t.Fatal(err)
		}
	}
	src := sftpSource(srv, v1alpha1.FileSelector{Pattern: "exports/employees_*.csv"})
	f, err := Fetch(ctx, src, Options{Secrets: secrets(sftpSecrets(srv, sshd.Password))})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Remove()
	if f.Name != "exports/employees_20261129.csv" || !f.InPlace() {
		t.Fatalf("picked %q, want the newest dated file", f.Name)
	}
	if got := readAll(t, f); !bytes.Equal(got, csvRows(3, "20261129")) {
		t.Fatalf("read %q", got)
	}
	if !f.ModTime.Equal(day.Add(48*time.Hour)) || f.Size != int64(len(csvRows(3, "20261129"))) {
		t.Fatalf("pinned size %d, time %v", f.Size, f.ModTime)
	}

	// Two files of the same second: the later name.
	if err := srv.WriteFile("exports/employees_20261130.csv", csvRows(3, "20261130"), day.Add(48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	key := secrets(map[string]string{"sftp/username": sshd.User, "sftp/privateKey": string(srv.PrivateKey), "sftp-host/known_hosts": srv.KnownHosts})
	g, err := Fetch(ctx, src, Options{Secrets: key})
	if err != nil {
		t.Fatal(err)
	}
	defer g.Remove()
	if g.Name != "exports/employees_20261130.csv" {
		t.Fatalf("of two files of the same time picked %q, want the later name", g.Name)
	}

	// A fixed path.
	h, err := Fetch(ctx, sftpSource(srv, v1alpha1.FileSelector{Path: "exports/employees_20261127.csv"}), Options{Secrets: key})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Remove()
	if got := readAll(t, h); !bytes.Equal(got, csvRows(3, "20261127")) {
		t.Fatalf("read %q", got)
	}
}

func TestSFTPRefusals(t *testing.T) {
	ctx := context.Background()
	srv := sshd.Start(t)
	if err := srv.WriteFile("hr.csv", csvRows(2, "a"), time.Now()); err != nil {
		t.Fatal(err)
	}
	fixed := sftpSource(srv, v1alpha1.FileSelector{Path: "hr.csv"})

	_, err := Fetch(ctx, fixed, Options{Secrets: secrets(sftpSecrets(srv, "not-the-password"))})
	wantReason(t, err, v1alpha1.ReasonSourceAuthenticationFailed)
	if strings.Contains(err.Error(), "not-the-password") {
		t.Fatal("the error quotes the password")
	}

	_, err = Fetch(ctx, sftpSource(srv, v1alpha1.FileSelector{Path: "missing.csv"}), Options{Secrets: secrets(sftpSecrets(srv, sshd.Password))})
	wantReason(t, err, v1alpha1.ReasonSourceNotFound)
	_, err = Fetch(ctx, sftpSource(srv, v1alpha1.FileSelector{Pattern: "employees_*.csv"}), Options{Secrets: secrets(sftpSecrets(srv, sshd.Password))})
	wantReason(t, err, v1alpha1.ReasonSourceNotFound)
	if !strings.Contains(err.Error(), `"employees_*.csv"`) {
		t.Fatalf("the error does not name the pattern: %v", err)
	}

	noKnownHosts := fixed.DeepCopy()
	noKnownHosts.SFTP.KnownHosts = nil
	if _, err = Fetch(ctx, *noKnownHosts, Options{Secrets: secrets(sftpSecrets(srv, sshd.Password))}); err == nil || !strings.Contains(err.Error(), "knownHosts is required") {
		t.Fatalf("no knownHosts: %v", err)
	}

	old := srv.KnownHosts
	if err := srv.ChangeHostKey(); err != nil {
		t.Fatal(err)
	}
	m := sftpSecrets(srv, sshd.Password)
	m["sftp-host/known_hosts"] = old
	_, err = Fetch(ctx, fixed, Options{Secrets: secrets(m)})
	wantReason(t, err, v1alpha1.ReasonHostKeyMismatch)

	// Skipping verification is explicit, and then works.
	insecure := noKnownHosts.DeepCopy()
	insecure.SFTP.InsecureSkipHostKeyVerification = true
	f, err := Fetch(ctx, *insecure, Options{Secrets: secrets(m)})
	if err != nil {
		t.Fatal(err)
	}
	f.Remove()

	srv.Stop()
	_, err = Fetch(ctx, fixed, Options{Secrets: secrets(sftpSecrets(srv, sshd.Password))})
	wantReason(t, err, v1alpha1.ReasonSourceUnreachable)
}

// status is what a worker records of a file, the pin of a later run.
func status(f *File) *v1alpha1.SourceStatus {
	st := &v1alpha1.SourceStatus{Size: f.Size, SHA256: f.SHA256, Fingerprint: f.Fingerprint, ETag: f.ETag, Name: f.Name, VersionID: f.VersionID}
	t := metav1.NewTime(f.ModTime)
	st.ModTime = &t
	return st
}

func TestSFTPResumeReadsFromTheOffsetAndRefusesAReplacedFile(t *testing.T) {
	ctx := context.Background()
	srv := sshd.Start(t)
	data := csvRows(20000, "r")
	if err := srv.WriteFile("in/hr.csv", data, time.Now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	src := sftpSource(srv, v1alpha1.FileSelector{Pattern: "in/*.csv"})
	opts := Options{Secrets: secrets(sftpSecrets(srv, sshd.Password))}
	first, err := Fetch(ctx, src, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Remove()

	// A newer file arrives; the resumed import still reads the pinned one,
	// from the checkpoint's offset.
	if err := srv.WriteFile("in/newer.csv", csvRows(5, "n"), time.Now()); err != nil {
		t.Fatal(err)
	}
	opts.Pin = status(first)
	again, err := Fetch(ctx, src, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer again.Remove()
	if again.Name != "in/hr.csv" || again.Fingerprint != first.Fingerprint {
		t.Fatalf("resumed on %q (%s), want the pinned in/hr.csv (%s)", again.Name, again.Fingerprint, first.Fingerprint)
	}
	off := int64(len(data) * 3 / 4)
	r, err := again.Open(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Seek(off, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	read, opens := again.BytesRead()
	if !bytes.Equal(rest, data[off:]) || read != int64(len(data))-off || read >= int64(len(data)) || opens != 1 {
		t.Fatalf("read %d bytes in %d opens from offset %d of %d, want the rest of the file only", read, opens, off, len(data))
	}
	// A read from an offset learns nothing of the content's sha256; a
	// read of the whole file does, and it is not the fingerprint.
	if sum := again.ContentSHA256(); sum != "" {
		t.Fatalf("sha256 %s known after reading from byte %d", sum, off)
	}
	if !bytes.Equal(readAll(t, first), data) {
		t.Fatal("the whole read differs from the file")
	}
	if want := sha256Hex(data); first.ContentSHA256() != want || first.Fingerprint == want || first.ID() != first.Fingerprint {
		t.Fatalf("after a whole read: sha256 %q, fingerprint %q; want sha256 %s and another fingerprint", first.ContentSHA256(), first.Fingerprint, want)
	}

	// The file is replaced between the checkpoint and the resume.
	if err := srv.WriteFile("in/hr.csv", csvRows(20000, "x"), time.Now()); err != nil {
		t.Fatal(err)
	}
	replaced, err := Fetch(ctx, src, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer replaced.Remove()
	if replaced.Fingerprint == first.Fingerprint {
		t.Fatal("a replaced file has the pinned fingerprint")
	}
	// A reader of the old file refuses to go on in the new one.
	r2, _ := again.Open(ctx)
	_, err = io.ReadAll(r2)
	if !errors.Is(err, failure.ErrChangedWhileRead) {
		t.Fatalf("reading a replaced file: %v, want failure.ErrChangedWhileRead", err)
	}
}

func TestSFTPMoveAndDelete(t *testing.T) {
	ctx := context.Background()
	srv := sshd.Start(t)
	for _, n := range []string{"out/a.csv", "out/b.csv", "out/c.csv"} {
		if err := srv.WriteFile(n, csvRows(2, n), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	st, err := OpenSFTP(ctx, sftpSource(srv, v1alpha1.FileSelector{}).SFTP, secrets(sftpSecrets(srv, sshd.Password)), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	a, _ := st.Stat(ctx, "out/a.csv")
	dest, err := st.Move(ctx, a, "archive/2026")
	if err != nil {
		t.Fatal(err)
	}
	if dest != "archive/2026/a.csv" {
		t.Fatalf("moved to %q", dest)
	}
	if _, err := os.Stat(srv.Path("out/a.csv")); !os.IsNotExist(err) {
		t.Fatal("the moved file is still in place")
	}
	if b, _ := os.ReadFile(srv.Path(dest)); !bytes.Equal(b, csvRows(2, "out/a.csv")) {
		t.Fatal("the archived file differs")
	}
	// A second attempt (the first one's outcome lost) finds it done.
	if again, err := st.Move(ctx, a, "archive/2026"); err != nil || again != dest {
		t.Fatalf("moving again: %q, %v", again, err)
	}

	b, _ := st.Stat(ctx, "out/b.csv")
	if err := st.Delete(ctx, b); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(srv.Path("out/b.csv")); !os.IsNotExist(err) {
		t.Fatal("the deleted file is still there")
	}
	if err := st.Delete(ctx, b); err != nil {
		t.Fatalf("deleting again: %v", err)
	}

	// A file replaced since the import read it is left alone.
	c, _ := st.Stat(ctx, "out/c.csv")
	if err := srv.WriteFile("out/c.csv", csvRows(3, "new"), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Move(ctx, c, "archive"); !errors.Is(err, failure.ErrChangedWhileRead) {
		t.Fatalf("moving a replaced file: %v", err)
	}
	if err := st.Delete(ctx, c); !errors.Is(err, failure.ErrChangedWhileRead) {
		t.Fatalf("deleting a replaced file: %v", err)
	}
	if b, _ := os.ReadFile(srv.Path("out/c.csv")); !bytes.Equal(b, csvRows(3, "new")) {
		t.Fatal("the replaced file was touched")
	}
}

func s3Source(srv *s3server.Server, bucket string, sel v1alpha1.FileSelector) v1alpha1.ImportSource {
	return v1alpha1.ImportSource{S3: &v1alpha1.S3Source{
		FileSelector: sel, Bucket: bucket, Endpoint: srv.Endpoint, PathStyle: true,
		Credentials: &v1alpha1.LocalObjectReference{Name: "s3"},
	}}
}

var s3Keys = map[string]string{"s3/accessKeyID": s3server.AccessKey, "s3/secretAccessKey": s3server.SecretKey}

// setModTime sets an object's modification time: versitygw keeps objects
// as files and serves their time.
func setModTime(t *testing.T, srv *s3server.Server, root, bucket, key string, at time.Time) {
	t.Helper()
	if err := os.Chtimes(filepath.Join(root, "data", bucket, key), at, at); err != nil {
		t.Fatal(err)
	}
}

func TestS3NewestByPrefixRangeAndIfMatch(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	srv, err := s3server.StartIn(root, "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	if err := srv.Bucket(ctx, "hr-exports", false); err != nil {
		t.Fatal(err)
	}
	day := time.Date(2026, 11, 27, 22, 0, 0, 0, time.UTC)
	for i, k := range []string{"exports/employees_20261128.csv", "exports/employees_20261127.csv", "exports/other.csv"} {
		if _, err := srv.Put(ctx, "hr-exports", k, csvRows(100, k[len(k)-12:len(k)-4])); err != nil {
			t.Fatal(err)
		}
		// The file with the older name is the newest here.
		setModTime(t, srv, root, "hr-exports", k, day.Add(time.Duration([]int{1, 2, 3}[i])*time.Hour))
	}
	src := s3Source(srv, "hr-exports", v1alpha1.FileSelector{Pattern: "exports/employees_*.csv"})
	f, err := Fetch(ctx, src, Options{Secrets: secrets(s3Keys)})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Remove()
	if f.Name != "exports/employees_20261127.csv" || f.ETag == "" {
		t.Fatalf("picked %q (ETag %q), want the one modified last", f.Name, f.ETag)
	}
	data := csvRows(100, "20261127")
	if got := readAll(t, f); !bytes.Equal(got, data) {
		t.Fatal("read another content")
	}

	// A resume reads from its offset with one range request.
	r, _ := f.Open(ctx)
	off := int64(len(data) - 100)
	r.Seek(off, io.SeekStart)
	rest, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	read, opens := f.BytesRead()
	if !bytes.Equal(rest, data[off:]) || read != 100 || opens != 1 {
		t.Fatalf("range read %d bytes in %d requests", read, opens)
	}

	// Overwritten in an unversioned bucket: If-Match refuses the new
	// content.
	if _, err := srv.Put(ctx, "hr-exports", f.Name, csvRows(100, "replaced")); err != nil {
		t.Fatal(err)
	}
	r, _ = f.Open(ctx)
	if _, err := io.ReadAll(r); !errors.Is(err, failure.ErrChangedWhileRead) {
		t.Fatalf("reading an overwritten object: %v, want failure.ErrChangedWhileRead", err)
	}
	again, err := Fetch(ctx, src, Options{Secrets: secrets(s3Keys), Pin: status(f)})
	if err != nil {
		t.Fatal(err)
	}
	again.Remove()
	if again.Fingerprint == f.Fingerprint {
		t.Fatal("an overwritten object has the pinned fingerprint")
	}
}

func TestS3VersionedBucketReadsThePinnedVersion(t *testing.T) {
	ctx := context.Background()
	srv := s3server.Start(t)
	if err := srv.Bucket(ctx, "versioned", true); err != nil {
		t.Fatal(err)
	}
	first := csvRows(50, "v1")
	v1, err := srv.Put(ctx, "versioned", "hr.csv", first)
	if err != nil {
		t.Fatal(err)
	}
	if v1 == "" {
		t.Fatal("the bucket gave no version")
	}
	src := s3Source(srv, "versioned", v1alpha1.FileSelector{Path: "hr.csv"})
	f, err := Fetch(ctx, src, Options{Secrets: secrets(s3Keys)})
	if err != nil {
		t.Fatal(err)
	}
	f.Remove()
	if f.VersionID != v1 {
		t.Fatalf("pinned version %q, want %q", f.VersionID, v1)
	}
	if _, err := srv.Put(ctx, "versioned", "hr.csv", csvRows(60, "v2")); err != nil {
		t.Fatal(err)
	}
	resumed, err := Fetch(ctx, src, Options{Secrets: secrets(s3Keys), Pin: status(f)})
	if err != nil {
		t.Fatal(err)
	}
	defer resumed.Remove()
	if resumed.Fingerprint != f.Fingerprint {
		t.Fatal("the pinned version got another fingerprint")
	}
	if got := readAll(t, resumed); !bytes.Equal(got, first) {
		t.Fatal("the resume read the new version, not the pinned one")
	}
}

func TestS3MoveDeleteAndRefusals(t *testing.T) {
	ctx := context.Background()
	srv := s3server.Start(t)
	if err := srv.Bucket(ctx, "hr-exports", false); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"in/a.csv", "in/b.csv"} {
		if _, err := srv.Put(ctx, "hr-exports", k, csvRows(2, k)); err != nil {
			t.Fatal(err)
		}
	}
	st, err := OpenS3(ctx, s3Source(srv, "hr-exports", v1alpha1.FileSelector{}).S3, secrets(s3Keys), nil)
	if err != nil {
		t.Fatal(err)
	}
	a, err := st.Stat(ctx, "in/a.csv")
	if err != nil {
		t.Fatal(err)
	}
	dest, err := st.Move(ctx, a, "archive/")
	if err != nil {
		t.Fatal(err)
	}
	if dest != "archive/a.csv" || srv.Exists(ctx, "hr-exports", "in/a.csv") || !srv.Exists(ctx, "hr-exports", dest) {
		t.Fatalf("moved to %q; source left: %v", dest, srv.Exists(ctx, "hr-exports", "in/a.csv"))
	}
	got, _ := srv.Client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("hr-exports"), Key: &dest})
	body, _ := io.ReadAll(got.Body)
	if !bytes.Equal(body, csvRows(2, "in/a.csv")) {
		t.Fatal("the archived object differs")
	}
	if again, err := st.Move(ctx, a, "archive/"); err != nil || again != dest {
		t.Fatalf("moving again: %q, %v", again, err)
	}
	b, _ := st.Stat(ctx, "in/b.csv")
	if err := st.Delete(ctx, b); err != nil || srv.Exists(ctx, "hr-exports", "in/b.csv") {
		t.Fatalf("delete: %v", err)
	}
	if err := st.Delete(ctx, b); err != nil {
		t.Fatalf("deleting again: %v", err)
	}

	wrong := secrets(map[string]string{"s3/accessKeyID": s3server.AccessKey, "s3/secretAccessKey": "wrong-secret"})
	_, err = Fetch(ctx, s3Source(srv, "hr-exports", v1alpha1.FileSelector{Path: "archive/a.csv"}), Options{Secrets: wrong})
	wantReason(t, err, v1alpha1.ReasonSourceAuthenticationFailed)
	if strings.Contains(err.Error(), "wrong-secret") {
		t.Fatal("the error quotes the secret key")
	}
	_, err = Fetch(ctx, s3Source(srv, "hr-exports", v1alpha1.FileSelector{Path: "in/none.csv"}), Options{Secrets: secrets(s3Keys)})
	wantReason(t, err, v1alpha1.ReasonSourceNotFound)
	_, err = Fetch(ctx, s3Source(srv, "hr-exports", v1alpha1.FileSelector{Pattern: "in/*.csv"}), Options{Secrets: secrets(s3Keys)})
	wantReason(t, err, v1alpha1.ReasonSourceNotFound)
	_, err = Fetch(ctx, s3Source(srv, "nobucket", v1alpha1.FileSelector{Path: "a.csv"}), Options{Secrets: secrets(s3Keys)})
	wantReason(t, err, v1alpha1.ReasonSourceNotFound)
	srv.Stop()
	_, err = Fetch(ctx, s3Source(srv, "hr-exports", v1alpha1.FileSelector{Path: "archive/a.csv"}), Options{Secrets: secrets(s3Keys)})
	wantReason(t, err, v1alpha1.ReasonSourceUnreachable)
}

func TestClaimSource(t *testing.T) {
	ctx := context.Background()
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "hr"), 0o755); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i, n := range []string{"hr/employees_1.csv", "hr/employees_2.csv"} {
		p := filepath.Join(root, n)
		at := now.Add(time.Duration(-i) * time.Hour)
		if err := os.WriteFile(p, csvRows(3, n), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, at, at); err != nil {
			t.Fatal(err)
		}
	}
	src := v1alpha1.ImportSource{PersistentVolumeClaim: &v1alpha1.PVCSource{ClaimName: "exports", FileSelector: v1alpha1.FileSelector{Pattern: "hr/employees_*.csv"}}}
	f, err := Fetch(ctx, src, Options{ClaimRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Remove()
	if f.Name != "hr/employees_1.csv" || !bytes.Equal(readAll(t, f), csvRows(3, "hr/employees_1.csv")) {
		t.Fatalf("picked %q", f.Name)
	}
	if want := sha256Hex(csvRows(3, "hr/employees_1.csv")); f.ContentSHA256() != want || f.Fingerprint == "" || f.Fingerprint == want {
		t.Fatalf("a claim file read whole: sha256 %q, fingerprint %q, want sha256 %s", f.ContentSHA256(), f.Fingerprint, want)
	}
	_, err = Fetch(ctx, src, Options{})
	wantReason(t, err, v1alpha1.ReasonSourceNotSupported)
	escape := v1alpha1.ImportSource{PersistentVolumeClaim: &v1alpha1.PVCSource{ClaimName: "exports", FileSelector: v1alpha1.FileSelector{Path: "../etc/passwd"}}}
	if _, err := Fetch(ctx, escape, Options{ClaimRoot: root}); err == nil || !strings.Contains(err.Error(), "leaves the claim") {
		t.Fatalf("a path out of the claim: %v", err)
	}

	// A symbolic link out of the claim (to the credentials mounted beside
	// it) is neither read nor listed; one within the claim is read.
	outside := filepath.Join(t.TempDir(), "dsn")
	if err := os.WriteFile(outside, []byte("postgres://admin:secret@db/hr"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "hr", "employees_9.csv")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("employees_2.csv", filepath.Join(root, "hr", "latest.csv")); err != nil {
		t.Fatal(err)
	}
	link := v1alpha1.ImportSource{PersistentVolumeClaim: &v1alpha1.PVCSource{ClaimName: "exports", FileSelector: v1alpha1.FileSelector{Path: "hr/employees_9.csv"}}}
	if g, err := Fetch(ctx, link, Options{ClaimRoot: root}); err == nil {
		b := readAll(t, g)
		t.Fatalf("a link out of the claim was read: %q", b)
	} else if !strings.Contains(err.Error(), "leaves the claim") {
		t.Fatalf("a link out of the claim: %v", err)
	}
	g, err := Fetch(ctx, src, Options{ClaimRoot: root})
	if err != nil || g.Name != "hr/employees_1.csv" {
		t.Fatalf("with a link out of the claim beside them, the pattern picked %v (%v)", g, err)
	}
	within := v1alpha1.ImportSource{PersistentVolumeClaim: &v1alpha1.PVCSource{ClaimName: "exports", FileSelector: v1alpha1.FileSelector{Path: "hr/latest.csv"}}}
	h, err := Fetch(ctx, within, Options{ClaimRoot: root})
	if err != nil || !bytes.Equal(readAll(t, h), csvRows(3, "hr/employees_2.csv")) {
		t.Fatalf("a link within the claim: %v", err)
	}
}

// A connection dropped in the middle of a read is opened again at the
// byte reached, with a range request: the content read is the file's.
func TestS3ReadGoesOnAfterADroppedConnection(t *testing.T) {
	ctx := context.Background()
	srv := s3server.Start(t)
	if err := srv.Bucket(ctx, "hr-exports", false); err != nil {
		t.Fatal(err)
	}
	// Larger than what the sockets of the proxy and the client can hold,
	// so that the drop cuts the transfer short.
	data := csvRows(1000000, "d")
	if _, err := srv.Put(ctx, "hr-exports", "hr.csv", data); err != nil {
		t.Fatal(err)
	}
	proxy := tcpproxy.Start(t, strings.TrimPrefix(srv.Endpoint, "http://"))
	src := s3Source(srv, "hr-exports", v1alpha1.FileSelector{Path: "hr.csv"})
	src.S3.Endpoint = "http://" + proxy.Addr
	f, err := Fetch(ctx, src, Options{Secrets: secrets(s3Keys)})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Remove()
	r, _ := f.Open(ctx)
	defer r.Close()
	var got bytes.Buffer
	if _, err := io.CopyN(&got, r, 1<<20); err != nil {
		t.Fatal(err)
	}
	proxy.Down()
	proxy.Up()
	if _, err := io.Copy(&got, r); err != nil {
		t.Fatalf("after the dropped connection: %v", err)
	}
	if !bytes.Equal(got.Bytes(), data) {
		t.Fatalf("read %d bytes, not the file's %d", got.Len(), len(data))
	}
	if _, opens := f.BytesRead(); opens < 2 {
		t.Fatalf("%d requests, want the first and a range request after the drop", opens)
	}
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// A server that accepts the connection and never speaks (a black hole)
// holds nobody: the handshake ends with the caller's context, and within
// handshakeTimeout without one.
func TestSFTPServerThatNeverAnswers(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		var held []net.Conn
		for {
			c, err := l.Accept()
			if err != nil {
				for _, c := range held {
					c.Close()
				}
				return
			}
			held = append(held, c)
		}
	}()
	src := v1alpha1.ImportSource{SFTP: &v1alpha1.SFTPSource{Host: "127.0.0.1", Port: int32(l.Addr().(*net.TCPAddr).Port),
		FileSelector: v1alpha1.FileSelector{Path: "hr.csv"}, Credentials: v1alpha1.LocalObjectReference{Name: "sftp"},
		InsecureSkipHostKeyVerification: true}}
	opts := Options{Secrets: secrets(map[string]string{"sftp/username": "hr", "sftp/password": "pw"})}

	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err = Fetch(ctx, src, opts)
	wantReason(t, err, v1alpha1.ReasonSourceUnreachable)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the fetch returned %s after its context ended", d)
	}

	saved := handshakeTimeout
	handshakeTimeout = 300 * time.Millisecond
	defer func() { handshakeTimeout = saved }()
	start = time.Now()
	_, err = Fetch(context.Background(), src, opts)
	wantReason(t, err, v1alpha1.ReasonSourceUnreachable)
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the fetch without a deadline returned after %s", d)
	}
}
