// Package s3server starts versitygw, a real S3-compatible server that
// keeps objects as files, on 127.0.0.1 for tests of the S3 source, with
// one root user and bucket versioning available.
// hack/peers/install-s3.sh builds it.
package s3server

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/userimport/user-import-operator/internal/testpeer/peer"
)

// Version is the versitygw the project's script builds.
const Version = "v1.8.0"

// AccessKey and SecretKey are the root user's credentials.
const (
	AccessKey = "uio-test-access"
	SecretKey = "uio-test-secret-key-3"
)

// Server is a running versitygw.
type Server struct {
	// Endpoint is the server's URL.
	Endpoint string
	// Client talks to it as the root user, path-style.
	Client *s3.Client
	cmd    *exec.Cmd
}

// Binary is the path of the cached versitygw.
func Binary() string { return peer.Tool("versitygw-" + Version) }

// Start starts a server for the test and stops it when the test ends. It
// fails, never skips, when versitygw is not installed.
func Start(t testing.TB) *Server {
	t.Helper()
	s, err := StartIn(t.TempDir(), "127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	return s
}

// StartIn starts a server listening on host, keeping its objects in dir.
func StartIn(dir, host string) (*Server, error) {
	bin := Binary()
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("versitygw is not installed at %s: run hack/peers/install-s3.sh", bin)
	}
	data, meta, versions := filepath.Join(dir, "data"), filepath.Join(dir, "meta"), filepath.Join(dir, "versions")
	for _, d := range []string{data, meta, versions} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return nil, err
		}
	}
	port, err := peer.FreePort(host)
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort(host, strconv.Itoa(port))
	s := &Server{Endpoint: "http://" + addr}
	s.cmd = exec.Command(bin, "--access", AccessKey, "--secret", SecretKey, "--port", addr, "--quiet",
		"posix", "--sidecar", meta, "--versioning-dir", versions, data)
	s.cmd.Stdout, s.cmd.Stderr = os.Stderr, os.Stderr
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	s.Client = s3.New(s3.Options{
		Region: "us-east-1", BaseEndpoint: aws.String(s.Endpoint), UsePathStyle: true,
		Credentials:                credentials.NewStaticCredentialsProvider(AccessKey, SecretKey, ""),
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
		ResponseChecksumValidation: aws.ResponseChecksumValidationWhenRequired,
	})
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		resp, err := http.Get(s.Endpoint + "/")
		if err == nil {
			resp.Body.Close()
			return s, nil
		}
	}
	s.Stop()
	return nil, errors.New("versitygw did not start listening on " + addr)
}

// Bucket creates a bucket; versioned turns versioning on.
func (s *Server) Bucket(ctx context.Context, name string, versioned bool) error {
	if _, err := s.Client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &name}); err != nil {
		return err
	}
	if versioned {
		_, err := s.Client.PutBucketVersioning(ctx, &s3.PutBucketVersioningInput{Bucket: &name,
			VersioningConfiguration: &types.VersioningConfiguration{Status: types.BucketVersioningStatusEnabled}})
		return err
	}
	return nil
}

// Put writes an object and returns its version (empty when unversioned).
func (s *Server) Put(ctx context.Context, bucket, key string, body []byte) (string, error) {
	out, err := s.Client.PutObject(ctx, &s3.PutObjectInput{Bucket: &bucket, Key: &key, Body: bytes.NewReader(body)})
	if err != nil {
		return "", err
	}
	return aws.ToString(out.VersionId), nil
}

// Exists tells whether the bucket holds key.
func (s *Server) Exists(ctx context.Context, bucket, key string) bool {
	_, err := s.Client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &bucket, Key: &key})
	return err == nil
}

// Stop stops the server.
func (s *Server) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		s.cmd = nil
	}
}
