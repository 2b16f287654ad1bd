package source

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/failure"
	"github.com/userimport/user-import-operator/internal/keyread"
)

const csvData = "email,first_name\nada@example.com,Ada\n"

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

func secrets(m map[string]string) keyread.KeyReader {
	return func(_ context.Context, name, key string) ([]byte, error) {
		v, ok := m[name+"/"+key]
		if !ok {
			return nil, fmt.Errorf("%s/%s: %w", name, key, keyread.ErrNotFound)
		}
		return []byte(v), nil
	}
}

func TestFetchConfigMapAndSecret(t *testing.T) {
	dir := t.TempDir()
	get := func(_ context.Context, name, key string) ([]byte, error) {
		if name == "hr" && key == "users.csv" {
			return []byte(csvData), nil
		}
		return nil, errors.New("not found")
	}
	f, err := Fetch(context.Background(), v1alpha1.ImportSource{ConfigMap: &v1alpha1.ConfigMapKeyRef{Name: "hr", Key: "users.csv"}}, Options{Dir: dir, ConfigMaps: get})
	if err != nil {
		t.Fatal(err)
	}
	if f.Size != int64(len(csvData)) || f.SHA256 != sum(csvData) {
		t.Fatalf("got size %d sha %s", f.Size, f.SHA256)
	}
	if b, _ := os.ReadFile(f.Path); string(b) != csvData {
		t.Fatalf("local copy differs")
	}

	_, err = Fetch(context.Background(), v1alpha1.ImportSource{Secret: &v1alpha1.SecretKeyRef{Name: "hr", Key: "other"}}, Options{Dir: dir, Secrets: secrets(nil)})
	if err == nil || !strings.Contains(err.Error(), "source.secret hr key other") {
		t.Fatalf("missing Secret key: got %v", err)
	}

	mounted := filepath.Join(t.TempDir(), "data.csv")
	os.WriteFile(mounted, []byte(csvData), 0o600)
	f, err = Fetch(context.Background(), v1alpha1.ImportSource{Secret: &v1alpha1.SecretKeyRef{Name: "hr", Key: "k"}}, Options{Dir: dir, MountedFile: mounted})
	if err != nil || f.SHA256 != sum(csvData) {
		t.Fatalf("mounted source: %v", err)
	}
}

func TestFetchHTTPS(t *testing.T) {
	var failures atomic.Int32
	failures.Store(2)
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/flaky.csv":
			if failures.Add(-1) >= 0 {
				http.Error(w, "busy", http.StatusServiceUnavailable)
				return
			}
		case "/basic.csv":
			if u, p, ok := r.BasicAuth(); !ok || u != "hr" || p != "s3cret" {
				http.Error(w, "no", http.StatusUnauthorized)
				return
			}
		case "/bearer.csv":
			if r.Header.Get("Authorization") != "Bearer tok" {
				http.Error(w, "no", http.StatusForbidden)
				return
			}
		default:
			http.NotFound(w, r)
			return
		}
		w.Header().Set("ETag", `"v1"`)
		w.Write([]byte(csvData))
	}))
	defer srv.Close()
	caPEM := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}))
	sec := secrets(map[string]string{"ca/ca.crt": caPEM, "auth/username": "hr", "auth/password": "s3cret", "tok/token": "tok\n"})
	ca := &v1alpha1.SecretKeyRef{Name: "ca", Key: "ca.crt"}
	fetch := func(src *v1alpha1.HTTPSource) (*File, error) {
		return Fetch(context.Background(), v1alpha1.ImportSource{HTTP: src}, Options{Dir: t.TempDir(), Secrets: sec, Retries: 3})
	}

	f, err := fetch(&v1alpha1.HTTPSource{URL: srv.URL + "/basic.csv", CABundle: ca, BasicAuth: &v1alpha1.LocalObjectReference{Name: "auth"}})
	if err != nil {
		t.Fatal(err)
	}
	if f.ETag != `"v1"` || f.SHA256 != sum(csvData) {
		t.Fatalf("etag %q sha %s", f.ETag, f.SHA256)
	}
	if _, err := fetch(&v1alpha1.HTTPSource{URL: srv.URL + "/bearer.csv", CABundle: ca, BearerToken: &v1alpha1.SecretKeyRef{Name: "tok", Key: "token"}}); err != nil {
		t.Fatalf("bearer: %v", err)
	}
	if _, err := fetch(&v1alpha1.HTTPSource{URL: srv.URL + "/flaky.csv", CABundle: ca}); err != nil {
		t.Fatalf("two 503s then success: %v", err)
	}
	if _, err := fetch(&v1alpha1.HTTPSource{URL: srv.URL + "/basic.csv", CABundle: ca}); err == nil || !strings.Contains(err.Error(), "refused the credentials") {
		t.Fatalf("no credentials: %v", err)
	}
	if _, err := fetch(&v1alpha1.HTTPSource{URL: srv.URL + "/missing.csv", CABundle: ca}); err == nil || !strings.Contains(err.Error(), "no file at the URL") {
		t.Fatalf("404: %v", err)
	}
	if _, err := fetch(&v1alpha1.HTTPSource{URL: srv.URL + "/basic.csv"}); err == nil || !strings.Contains(err.Error(), "TLS") {
		t.Fatalf("unknown CA: %v", err)
	}
}

// An http source is bounded: by maxBytes, whether the server announces
// the length or not; by a stall of the body; and a gzip Content-Encoding
// is kept as sent, not inflated past the bound on the worker's disk.
func TestHTTPSourceIsBounded(t *testing.T) {
	gz := []byte("\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/sized.csv":
			w.Header().Set("Content-Length", "5000")
			w.Write([]byte(strings.Repeat("x", 5000)))
		case "/chunked.csv":
			for range 50 {
				w.Write([]byte(strings.Repeat("y", 100)))
				w.(http.Flusher).Flush()
			}
		case "/encoded.csv":
			if !strings.Contains(r.Header.Get("Accept-Encoding"), "gzip") {
				w.Header().Set("Content-Encoding", "gzip")
			}
			w.Write(gz)
		case "/stalls.csv":
			w.Write([]byte("email\n"))
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		}
	}))
	defer srv.Close()
	fetch := func(path string, max int64) (*File, error) {
		return Fetch(context.Background(), v1alpha1.ImportSource{HTTP: &v1alpha1.HTTPSource{URL: srv.URL + path, MaxBytes: max}}, Options{Dir: t.TempDir()})
	}
	for _, path := range []string{"/sized.csv", "/chunked.csv"} {
		if _, err := fetch(path, 1000); err == nil || !strings.Contains(err.Error(), "maxBytes") {
			t.Fatalf("%s over maxBytes: %v", path, err)
		}
		if f, err := fetch(path, 5000); err != nil || f.Size != 5000 {
			t.Fatalf("%s within maxBytes: %v", path, err)
		}
	}
	f, err := fetch("/encoded.csv", 0)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(f.Path); string(got) != string(gz) {
		t.Fatalf("the encoded body became %q", got)
	}
	stallTimeout = 300 * time.Millisecond
	defer func() { stallTimeout = 2 * time.Minute }()
	start := time.Now()
	if _, err := fetch("/stalls.csv", 0); err == nil || !strings.Contains(err.Error(), "no byte arrived") {
		t.Fatalf("a stalled body: %v", err)
	}
	if d := time.Since(start); d > 8*time.Second {
		t.Fatalf("the stalled download took %s", d)
	}
}

// An s3 source without credentials is reached with the process's own
// cloud identity only where the process allows it for that bucket: the
// manager serves every tenant, and its identity is none of theirs.
func TestS3WithoutCredentialsNeedsTheBucketAllowed(t *testing.T) {
	src := v1alpha1.ImportSource{S3: &v1alpha1.S3Source{Bucket: "payroll", Endpoint: "http://127.0.0.1:1", PathStyle: true,
		FileSelector: v1alpha1.FileSelector{Path: "hr.csv"}}}
	for name, ambient := range map[string]func(string) bool{"no list": nil, "another bucket": AmbientBuckets([]string{"hr-exports"})} {
		_, _, err := Connect(context.Background(), src, Options{AmbientS3: ambient})
		if failure.ReasonOf(err, "") != v1alpha1.ReasonSourceNotSupported || !strings.Contains(err.Error(), "spec.source.s3.credentials") {
			t.Errorf("%s: %v, want SourceNotSupported naming spec.source.s3.credentials", name, err)
		}
	}
	st, _, err := Connect(context.Background(), src, Options{AmbientS3: AmbientBuckets([]string{"payroll"})})
	if err != nil {
		t.Fatalf("an allowed bucket: %v", err)
	}
	st.Close()
}
