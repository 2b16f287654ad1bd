package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"k8s.io/apimachinery/pkg/labels"

	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/egress"
	"github.com/userimport/user-import-operator/internal/keyread"
	"github.com/userimport/user-import-operator/internal/keyread/fromapi"
	"github.com/userimport/user-import-operator/internal/source"
)

// sourceKey reads the ConfigMap or Secret key of src in namespace through
// r (pass an uncached reader); what names it for messages. ok is false
// for an HTTP source, which only the worker downloads.
func sourceKey(ctx context.Context, r client.Reader, sel labels.Selector, namespace string, src v1alpha1.ImportSource) (data []byte, what string, ok bool, err error) {
	switch {
	case src.ConfigMap != nil:
		what = fmt.Sprintf("ConfigMap %s (key %s)", src.ConfigMap.Name, src.ConfigMap.Key)
		data, err = fromapi.ConfigMaps(r, namespace)(ctx, src.ConfigMap.Name, src.ConfigMap.Key)
	case src.Secret != nil:
		what = fmt.Sprintf("Secret %s (key %s)", src.Secret.Name, src.Secret.Key)
		data, err = fromapi.SecretsMatching(r, namespace, sel)(ctx, src.Secret.Name, src.Secret.Key)
	default:
		return nil, "", false, nil
	}
	return data, what, true, err
}

// inPlace tells whether src is read in place by the worker (sftp, s3,
// persistentVolumeClaim) rather than copied.
func inPlace(src v1alpha1.ImportSource) bool {
	return src.SFTP != nil || src.S3 != nil || src.PersistentVolumeClaim != nil
}

// inPlaceFile finds, as a worker would now, the file of an sftp or s3
// source, and returns its fingerprint (the sha256 a worker records) and
// name. A claim is mounted only in worker Jobs: the manager cannot look.
func inPlaceFile(ctx context.Context, allowed *egress.Policy, ambientS3 func(string) bool, secrets keyread.KeyReader, src v1alpha1.ImportSource) (fingerprint, name string, err error) {
	if src.PersistentVolumeClaim != nil {
		return "", "", errors.New("the manager cannot read a persistentVolumeClaim source; only the worker Job mounts it")
	}
	if err := allowed.AllowSource(src); err != nil {
		return "", "", fmt.Errorf("not asking the source: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	store, sel, err := source.Connect(ctx, src, source.Options{Secrets: secrets, AmbientS3: ambientS3, DialControl: allowed.Control})
	if err != nil {
		return "", "", err
	}
	defer store.Close()
	obj, err := source.Find(ctx, store, sel)
	if err != nil {
		return "", "", err
	}
	return source.Fingerprint(store, obj), obj.Name, nil
}

// sha256Hex is the sha256 of data as the worker records a file's.
func sha256Hex(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}
