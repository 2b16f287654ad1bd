package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/kube/cluster"
	"github.com/userimport/user-import-operator/internal/safetext"
	"github.com/userimport/user-import-operator/internal/source"
)

// insecureSource keeps the condition InsecureSource in step with a spec
// that skips the verification of an SFTP server's host key.
func (run *importRun) insecureSource() {
	imp := run.imp
	if s := imp.Spec.Source.SFTP; s != nil && s.InsecureSkipHostKeyVerification {
		meta.SetStatusCondition(&imp.Status.Conditions, metav1.Condition{
			Type: v1alpha1.ConditionInsecureSource, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonHostKeyNotVerified,
			Message:            fmt.Sprintf("spec.source.sftp.insecureSkipHostKeyVerification: any machine answering for %s can read the file and the credentials; set knownHosts", s.Host),
			ObservedGeneration: imp.Generation,
		})
		return
	}
	meta.RemoveStatusCondition(&imp.Status.Conditions, v1alpha1.ConditionInsecureSource)
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
	cond := metav1.Condition{Type: v1alpha1.ConditionSourceArchived, ObservedGeneration: imp.Generation}
	switch {
	case err != nil:
		out.Result, out.Message = v1alpha1.AfterImportFailed, safetext.Of(err)
		cond.Status, cond.Reason = metav1.ConditionFalse, v1alpha1.ReasonArchiveFailed
		cond.Message = fmt.Sprintf("afterImport %s of %s failed, the import itself completed: %v", a.Action, st.Name, err)
		run.event(corev1.EventTypeWarning, v1alpha1.ReasonArchiveFailed, cond.Message)
	case a.Action == v1alpha1.AfterImportMove:
		out.Result = v1alpha1.AfterImportMoved
		cond.Status, cond.Reason, cond.Message = metav1.ConditionTrue, v1alpha1.ReasonMoved, fmt.Sprintf("%s moved to %s", st.Name, out.To)
		run.event(corev1.EventTypeNormal, v1alpha1.ReasonMoved, cond.Message)
	default:
		out.Result = v1alpha1.AfterImportDeleted
		cond.Status, cond.Reason, cond.Message = metav1.ConditionTrue, v1alpha1.ReasonDeleted, st.Name+" deleted"
		run.event(corev1.EventTypeNormal, v1alpha1.ReasonDeleted, cond.Message)
	}
	cond.Message = safetext.Clean(cond.Message)
	st.AfterImport = out
	meta.SetStatusCondition(&imp.Status.Conditions, cond)
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
			select {
			case <-ctx.Done():
				return "", ctx.Err()
			case <-time.After(time.Duration(attempt) * time.Second):
			}
		}
		var to string
		to, err = run.archiveOnce(ctx, a, obj)
		if source.ReasonOf(err) != v1alpha1.ReasonSourceUnreachable {
			return to, err
		}
	}
	return "", err
}

func (run *importRun) archiveOnce(ctx context.Context, a *v1alpha1.AfterImport, obj source.Object) (string, error) {
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	store, _, err := source.Connect(cctx, run.imp.Spec.Source, source.Options{Secrets: cluster.SecretsMatching(run.APIReader, run.imp.Namespace, run.SecretSelector), AmbientS3: run.AmbientS3, DialControl: run.AllowedHosts.Control})
	if err != nil {
		return "", err
	}
	defer store.Close()
	if a.Action == v1alpha1.AfterImportMove {
		return store.Move(cctx, obj, a.To)
	}
	return "", store.Delete(cctx, obj)
}
