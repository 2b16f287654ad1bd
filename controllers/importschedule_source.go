package controllers

import (
	"context"
	"fmt"
	"time"

	"github.com/userimport/user-import-operator/internal/keyread/fromapi"

	"k8s.io/apimachinery/pkg/api/equality"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/keyread"
	"github.com/userimport/user-import-operator/internal/source"
)

// sourceUnchanged tells whether the template's source file is the one the
// last Completed import of this schedule read, with a reason to show. An
// error means it could not tell; the caller then runs the import.
func (run *scheduleRun) sourceUnchanged(ctx context.Context) (bool, string, error) {
	last := run.lastCompleted()
	if last == nil || last.Status.Source == nil {
		return false, "", nil
	}
	tmpl := run.sched.Spec.Template.Spec
	// The same file imported with another mapping, mode or directory is
	// another import: only an unchanged template may skip.
	was := last.Spec.DeepCopy()
	was.Action = tmpl.Action
	if !equality.Semantic.DeepEqual(*was, tmpl) {
		return false, "", nil
	}
	rec := last.Status.Source
	src := tmpl.Source
	switch {
	case src.ConfigMap != nil || src.Secret != nil:
		data, _, _, err := sourceKey(ctx, run.APIReader, run.SecretSelector, run.sched.Namespace, src)
		if err != nil {
			return false, "", err
		}
		if sha256Hex(data) != rec.SHA256 || int64(len(data)) != rec.Size {
			return false, "", nil
		}
		return true, fmt.Sprintf("the source has the same sha256 and size (%d bytes) as the one UserImport %s completed",
			len(data), last.Name), nil
	case src.HTTP != nil:
		if err := run.AllowedHosts.AllowURL(src.HTTP.URL); err != nil {
			return false, "", fmt.Errorf("skipIfUnchanged: not asking the source: %w", err)
		}
		hctx, cancel := context.WithTimeout(ctx, run.headTimeout())
		defer cancel()
		info, err := source.Head(hctx, src.HTTP, source.Options{HTTPClient: run.HTTPClient, Secrets: run.secrets(), DialControl: run.AllowedHosts.Control})
		if err != nil {
			return false, "", err
		}
		// Without an ETag the size alone proves nothing: a changed date
		// keeps the size of a file.
		if info.ETag == "" || info.ETag != rec.ETag {
			return false, "", nil
		}
		if info.Size >= 0 && rec.Size > 0 && info.Size != rec.Size {
			return false, "", nil
		}
		return true, fmt.Sprintf("the server gives the same ETag %s for the source as when UserImport %s completed",
			info.ETag, last.Name), nil
	case src.SFTP != nil || src.S3 != nil:
		fp, name, err := inPlaceFile(ctx, run.AllowedHosts, run.AmbientS3, run.secrets(), src)
		if err != nil {
			return false, "", err
		}
		// Statuses written before status.source.fingerprint existed kept
		// the fingerprint in sha256.
		if fp != rec.Fingerprint && (rec.Fingerprint != "" || fp != rec.SHA256) {
			return false, "", nil
		}
		return true, fmt.Sprintf("the newest file is %s, with the same size, modification time and ETag as when UserImport %s completed", name, last.Name), nil
	}
	return false, "", nil
}

// lastCompleted returns the child that completed last, or nil.
func (run *scheduleRun) lastCompleted() *v1alpha1.UserImport {
	var last *v1alpha1.UserImport
	var lastAt time.Time
	for i := range run.children {
		imp := &run.children[i]
		if imp.Status.Phase != v1alpha1.PhaseCompleted {
			continue
		}
		at := scheduledAt(imp)
		if imp.Status.CompletionTime != nil {
			at = imp.Status.CompletionTime.Time
		}
		if last == nil || !at.Before(lastAt) {
			last, lastAt = imp, at
		}
	}
	return last
}

// secrets reads keys of the Secrets of the schedule's namespace.
func (run *scheduleRun) secrets() keyread.KeyReader { return run.secretsOf(run.sched.Namespace) }

// secretsOf reads keys of the Secrets of namespace.
func (r *ImportScheduleReconciler) secretsOf(namespace string) keyread.KeyReader {
	return fromapi.SecretsMatching(r.APIReader, namespace, r.SecretSelector)
}

// headTimeout bounds a HEAD request to an HTTP source.
func (r *ImportScheduleReconciler) headTimeout() time.Duration {
	if r.HeadTimeout > 0 {
		return r.HeadTimeout
	}
	return 10 * time.Second
}
