package controllers

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/conditions"
	"github.com/userimport/user-import-operator/internal/failure"
	"github.com/userimport/user-import-operator/internal/jobs"
	"github.com/userimport/user-import-operator/internal/keyread"
	"github.com/userimport/user-import-operator/internal/keyread/fromapi"
	"github.com/userimport/user-import-operator/internal/retry"
	"github.com/userimport/user-import-operator/internal/safetext"
	"github.com/userimport/user-import-operator/internal/source"
)

// insecureSource keeps the condition InsecureSource in step with a spec
// that skips the verification of an SFTP server's host key.
func (run *importRun) insecureSource() {
	imp := run.imp
	if s := imp.Spec.Source.SFTP; s != nil && s.InsecureSkipHostKeyVerification {
		conditions.MarkTrue(imp, v1alpha1.ConditionInsecureSource, v1alpha1.ReasonHostKeyNotVerified,
			"spec.source.sftp.insecureSkipHostKeyVerification: any machine answering for %s can read the file and the credentials; set knownHosts", s.Host)
		return
	}
	conditions.Remove(imp, v1alpha1.ConditionInsecureSource)
}

// archiveSource carries out spec.source.afterImport for a Completed
// import, once: its outcome goes to status.source.afterImport, which is
// never redone, and to the condition SourceArchived. A failure is
// reported there and leaves the import Completed. The file is the one the
// import pinned; one replaced since is left alone.
func (run *importRun) archiveSource(ctx context.Context) {
	imp := run.imp
	a, st := imp.Spec.Source.AfterImport, imp.Status.Source
	if a == nil || a.Action == v1alpha1.AfterImportKeep || a.Action == "" || st == nil || st.Name == "" || st.AfterImport != nil {
		return
	}
	out := &v1alpha1.AfterImportStatus{}
	err := run.AllowedHosts.AllowSource(imp.Spec.Source)
	if err == nil {
		out.To, err = run.moveOrDelete(ctx, a, st)
	}
	st.AfterImport = out
	switch {
	case err != nil:
		out.Result, out.Message = v1alpha1.AfterImportFailed, safetext.Of(err)
		msg := fmt.Sprintf("afterImport %s of %s failed, the import itself completed: %v", a.Action, st.Name, err)
		conditions.MarkFalse(imp, v1alpha1.ConditionSourceArchived, v1alpha1.ReasonArchiveFailed, "%s", msg)
		run.event(corev1.EventTypeWarning, v1alpha1.ReasonArchiveFailed, msg)
	case a.Action == v1alpha1.AfterImportMove:
		out.Result = v1alpha1.AfterImportMoved
		msg := fmt.Sprintf("%s moved to %s", st.Name, out.To)
		conditions.MarkTrue(imp, v1alpha1.ConditionSourceArchived, v1alpha1.ReasonMoved, "%s", msg)
		run.event(corev1.EventTypeNormal, v1alpha1.ReasonMoved, msg)
	default:
		out.Result = v1alpha1.AfterImportDeleted
		conditions.MarkTrue(imp, v1alpha1.ConditionSourceArchived, v1alpha1.ReasonDeleted, "%s deleted", st.Name)
		run.event(corev1.EventTypeNormal, v1alpha1.ReasonDeleted, st.Name+" deleted")
	}
}

// moveOrDelete does the action, trying again a few times while the
// server cannot be reached.
func (run *importRun) moveOrDelete(ctx context.Context, a *v1alpha1.AfterImport, st *v1alpha1.SourceStatus) (string, error) {
	obj := source.Object{Name: st.Name, Size: st.Size, ETag: st.ETag, VersionID: st.VersionID}
	if st.ModTime != nil {
		obj.ModTime = st.ModTime.Time
	}
	var err error
	for attempt := range 3 {
		if attempt > 0 {
			if err := retry.Sleep(ctx, retry.Backoff(attempt-1, time.Second, 4*time.Second)); err != nil {
				return "", err
			}
		}
		var to string
		to, err = run.archiveOnce(ctx, a, obj)
		if failure.ReasonOf(err, "") != v1alpha1.ReasonSourceUnreachable {
			return to, err
		}
	}
	return "", err
}

func (run *importRun) archiveOnce(ctx context.Context, a *v1alpha1.AfterImport, obj source.Object) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	store, _, err := source.Connect(cctx, run.imp.Spec.Source, source.Options{Secrets: fromapi.SecretsMatching(run.APIReader, run.imp.Namespace, run.SecretSelector), AmbientS3: run.AmbientS3, DialControl: run.AllowedHosts.Control})
	if err != nil {
		return "", err
	}
	defer store.Close()
	if a.Action == v1alpha1.AfterImportMove {
		return store.Move(cctx, obj, a.To)
	}
	return "", store.Delete(cctx, obj)
}

// sourceMissing returns a verdict to wait when the ConfigMap, Secret or key
// of the import's source does not exist (yet): with GitOps, objects arrive
// in no set order. It is asked again with a backoff that grows with the
// import's age, up to a minute.
func (run *importRun) sourceMissing(ctx context.Context) (*verdict, error) {
	_, what, ok, err := sourceKey(ctx, run.APIReader, run.SecretSelector, run.imp.Namespace, run.imp.Spec.Source)
	if !ok {
		return nil, nil
	}
	if errors.Is(err, keyread.ErrNotFound) {
		wait := run.sourceWait()
		return &verdict{state: conditions.Progressing, reason: v1alpha1.ReasonSourceNotFound,
			message: fmt.Sprintf("waiting for the source, %s: %v", what, err), requeueAfter: wait}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the source %s: %w", what, err)
	}
	return nil, nil
}

// sourceWait is how long an import waits before it looks for a missing
// source again: a tenth of its age, between a second and a minute.
func (run *importRun) sourceWait() time.Duration {
	wait := run.Clock.Since(run.imp.CreationTimestamp.Time) / 10
	return min(max(wait, time.Second), time.Minute)
}

// refusedFileReplaced tells whether the ConfigMap or Secret key of an
// import whose file was refused now holds another content: a person may
// fix the file rather than the spec.
func (run *importRun) refusedFileReplaced(ctx context.Context) (bool, error) {
	refused := run.imp.Status.RejectedSHA256
	if refused == "" {
		return false, nil
	}
	data, what, ok, err := sourceKey(ctx, run.APIReader, run.SecretSelector, run.imp.Namespace, run.imp.Spec.Source)
	if !ok || errors.Is(err, keyread.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading the source %s: %w", what, err)
	}
	return sha256Hex(data) != refused, nil
}

// refusedSecretsChanged tells whether a Secret the source names changed
// since the import was refused for its credentials or host key.
func (run *importRun) refusedSecretsChanged(ctx context.Context) (bool, error) {
	refused := run.imp.Status.RejectedSecrets
	if refused == "" {
		return false, nil
	}
	now, err := run.sourceSecretsDigest(ctx)
	return err == nil && now != refused, err
}

// sourceSecretsDigest identifies the versions of the Secrets the import's
// source names (a missing one counts too).
func (run *importRun) sourceSecretsDigest(ctx context.Context) (string, error) {
	h := sha256.New()
	for _, name := range jobs.SourceSecrets(run.imp.Spec.Source) {
		var s corev1.Secret
		err := run.APIReader.Get(ctx, types.NamespacedName{Namespace: run.imp.Namespace, Name: name}, &s)
		switch {
		case apierrors.IsNotFound(err):
			fmt.Fprintf(h, "%s absent\n", name)
		case err != nil:
			return "", fmt.Errorf("reading Secret %s: %w", name, err)
		default:
			fmt.Fprintf(h, "%s %s %s\n", name, s.UID, s.ResourceVersion)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
