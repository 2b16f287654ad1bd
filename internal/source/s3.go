package source

// The S3 client is AWS's own SDK (aws-sdk-go-v2) rather than minio-go:
// when no credentials Secret is named, its default chain gives the pod
// the credentials platform teams already grant workloads on AWS — web
// identity (IRSA), EKS Pod Identity, the instance role — with the same
// precedence as every other AWS tool; and it speaks If-Match, ranges and
// versions as AWS defines them. S3-compatible servers are reached with an
// endpoint and path-style addressing.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	awscredentials "github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/credentials"
	"github.com/userimport/user-import-operator/internal/failure"
	"github.com/userimport/user-import-operator/internal/keyread"
)

type s3Store struct {
	bucket string
	where  string
	client *s3.Client
}

// OpenS3 makes a client for the bucket of src.
func OpenS3(ctx context.Context, src *v1alpha1.S3Source, secrets keyread.KeyReader, control func(network, address string, c syscall.RawConn) error) (Store, error) {
	region := src.Region
	if region == "" {
		region = "us-east-1"
	}
	opts := []func(*config.LoadOptions) error{config.WithRegion(region)}
	if src.Credentials != nil {
		if secrets == nil {
			return nil, errors.New("source.s3: no way to read Secrets")
		}
		read := func(key string, required bool) (string, error) {
			b, err := secrets(ctx, src.Credentials.Name, key)
			if err != nil {
				if !required && errors.Is(err, keyread.ErrNotFound) {
					return "", nil
				}
				return "", fmt.Errorf("source.s3.credentials: Secret %s key %s: %w", src.Credentials.Name, key, err)
			}
			return strings.TrimSpace(string(b)), nil
		}
		id, err := read("accessKeyID", true)
		if err != nil {
			return nil, err
		}
		secret, err := read("secretAccessKey", true)
		if err != nil {
			return nil, err
		}
		token, err := read("sessionToken", false)
		if err != nil {
			return nil, err
		}
		opts = append(opts, config.WithCredentialsProvider(awscredentials.NewStaticCredentialsProvider(id, secret, token)))
	}
	var pool *x509.CertPool
	if src.CABundle != nil {
		var err error
		if pool, err = credentials.CertPool(ctx, secrets, "source.s3.caBundle", *src.CABundle); err != nil {
			return nil, err
		}
	}
	// A buildable client, so that AWS_CA_BUNDLE still applies on top.
	hc := awshttp.NewBuildableClient().WithDialerOptions(func(d *net.Dialer) { d.Control = control }).WithTransportOptions(func(tr *http.Transport) {
		tr.ResponseHeaderTimeout = time.Minute
		if pool != nil {
			tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
		}
	})
	opts = append(opts, config.WithHTTPClient(hc))
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("source.s3: %w", err)
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		if src.Endpoint != "" {
			o.BaseEndpoint = aws.String(src.Endpoint)
		}
		o.UsePathStyle = src.PathStyle
		// Checksums are asked only where S3 requires them: S3-compatible
		// servers do not all know the newer headers.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	where := "s3://" + src.Bucket
	if src.Endpoint != "" {
		where = src.Endpoint + "/" + src.Bucket
	}
	return &s3Store{bucket: src.Bucket, where: where, client: client}, nil
}

func (s *s3Store) Kind() string { return s.where }

// s3Error classifies an S3 failure. The SDK's messages name the bucket and
// key, never the content.
func (s *s3Store) s3Error(name string, err error) error {
	var api smithy.APIError
	if errors.As(err, &api) {
		switch api.ErrorCode() {
		case "NoSuchKey", "NotFound", "NoSuchVersion":
			return failure.Errorf(v1alpha1.ReasonSourceNotFound, "source.s3: %s has no object %s", s.where, name)
		case "NoSuchBucket":
			return failure.Errorf(v1alpha1.ReasonSourceNotFound, "source.s3: no bucket %s", s.where)
		case "InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "Forbidden", "ExpiredToken", "InvalidToken":
			return failure.Errorf(v1alpha1.ReasonSourceAuthenticationFailed, "source.s3: %s refused the credentials (%s)", s.where, api.ErrorCode())
		case "PreconditionFailed":
			return fmt.Errorf("source.s3: %s: %w", name, failure.ErrChangedWhileRead)
		}
		return fmt.Errorf("source.s3: %s: %s: %s", s.where, name, api.ErrorCode())
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	return failure.Errorf(v1alpha1.ReasonSourceUnreachable, "source.s3: %s: %v", s.where, err)
}

func (s *s3Store) Stat(ctx context.Context, name string) (Object, error) {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &name})
	if err != nil {
		return Object{}, s.s3Error(name, err)
	}
	return Object{Name: name, Size: aws.ToInt64(out.ContentLength), ModTime: aws.ToTime(out.LastModified),
		ETag: aws.ToString(out.ETag), VersionID: aws.ToString(out.VersionId)}, nil
}

func (s *s3Store) List(ctx context.Context, prefix string) ([]Object, error) {
	var objs []Object
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, s.s3Error(prefix, err)
		}
		for _, o := range page.Contents {
			key := aws.ToString(o.Key)
			if strings.HasSuffix(key, "/") {
				continue // a folder marker
			}
			objs = append(objs, Object{Name: key, Size: aws.ToInt64(o.Size), ModTime: aws.ToTime(o.LastModified), ETag: aws.ToString(o.ETag)})
		}
	}
	return objs, nil
}

// OpenAt reads the pinned version when the bucket keeps versions (an
// overwritten key still serves it), otherwise the key on condition that
// its ETag is unchanged.
func (s *s3Store) OpenAt(ctx context.Context, obj Object, off int64) (io.ReadCloser, error) {
	in := &s3.GetObjectInput{Bucket: &s.bucket, Key: &obj.Name}
	if obj.VersionID != "" {
		in.VersionId = &obj.VersionID
	} else if obj.ETag != "" {
		in.IfMatch = &obj.ETag
	}
	if off > 0 {
		in.Range = aws.String(fmt.Sprintf("bytes=%d-", off))
	}
	out, err := s.client.GetObject(ctx, in)
	if err != nil {
		return nil, s.s3Error(obj.Name, err)
	}
	if obj.ETag != "" && aws.ToString(out.ETag) != "" && aws.ToString(out.ETag) != obj.ETag {
		out.Body.Close()
		return nil, fmt.Errorf("source.s3: %s: %w", obj.Name, failure.ErrChangedWhileRead)
	}
	return out.Body, nil
}

// current checks that the key still holds the pinned object.
func (s *s3Store) current(ctx context.Context, obj Object) error {
	now, err := s.Stat(ctx, obj.Name)
	if err != nil {
		return err
	}
	if now.ETag != obj.ETag || (obj.VersionID != "" && now.VersionID != obj.VersionID) {
		return fmt.Errorf("source.s3: %s: %w", obj.Name, failure.ErrChangedWhileRead)
	}
	return nil
}

func (s *s3Store) Move(ctx context.Context, obj Object, to string) (string, error) {
	dest := strings.TrimSuffix(to, "/") + "/" + path.Base(obj.Name)
	if err := s.current(ctx, obj); err != nil {
		if failure.ReasonOf(err, "") == v1alpha1.ReasonSourceNotFound {
			if _, derr := s.Stat(ctx, dest); derr == nil {
				return dest, nil // moved by an earlier attempt
			}
		}
		return "", err
	}
	src := s.bucket + "/" + obj.Name
	if obj.VersionID != "" {
		src += "?versionId=" + obj.VersionID
	}
	if _, err := s.client.CopyObject(ctx, &s3.CopyObjectInput{Bucket: &s.bucket, Key: &dest, CopySource: aws.String(src),
		CopySourceIfMatch: aws.String(obj.ETag)}); err != nil {
		return "", s.s3Error(obj.Name, err)
	}
	if err := s.delete(ctx, obj); err != nil {
		return "", err
	}
	return dest, nil
}

func (s *s3Store) Delete(ctx context.Context, obj Object) error {
	if err := s.current(ctx, obj); err != nil {
		if failure.ReasonOf(err, "") == v1alpha1.ReasonSourceNotFound {
			return nil // deleted by an earlier attempt
		}
		return err
	}
	return s.delete(ctx, obj)
}

// delete removes the key, as a person deleting it would: in a versioned
// bucket that leaves a delete marker and keeps the versions.
func (s *s3Store) delete(ctx context.Context, obj Object) error {
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &obj.Name}); err != nil {
		return s.s3Error(obj.Name, err)
	}
	return nil
}

func (s *s3Store) Close() error { return nil }
