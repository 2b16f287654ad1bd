package controllers

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	kretry "k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/conditions"
	"github.com/userimport/user-import-operator/internal/failure"
	"github.com/userimport/user-import-operator/internal/jobs"
	"github.com/userimport/user-import-operator/internal/keyread/fromapi"
	"github.com/userimport/user-import-operator/internal/mail"
	"github.com/userimport/user-import-operator/internal/reportmail"
	"github.com/userimport/user-import-operator/internal/retry"
	"github.com/userimport/user-import-operator/internal/safetext"
)

// Report mails (spec.report) are sent by the controller, once the phase
// they tell of is written: a reconcile whose patch failed never mails
// about a phase the import did not reach. Each phase is mailed once; the
// record in status.reports is written at once after the relay accepted
// the mail.

// reportAttempts bounds the tries to send one report.
const reportAttempts = 8

// reportDue returns the phase whose report imp owes now, or, when one is
// owed later (a failed try waits for its backoff), how long until then.
func reportDue(imp *v1alpha1.UserImport, now time.Time) (v1alpha1.ImportPhase, time.Duration) {
	spec := imp.Spec.Report
	if len(spec.Recipients) == 0 {
		return "", 0
	}
	var wait time.Duration
	for _, phase := range spec.Phases() {
		if !reached(imp, phase) {
			continue
		}
		rec := reportRecord(imp, phase)
		if rec == nil {
			return phase, 0
		}
		if rec.SentTime != nil || rec.Attempts >= reportAttempts {
			continue
		}
		next := rec.LastAttemptTime.Add(reportBackoff(rec.Attempts))
		if !now.Before(next) {
			return phase, 0
		}
		if d := next.Sub(now); wait == 0 || d < wait {
			wait = d
		}
	}
	return "", wait
}

// reached tells whether imp has reached phase: a final phase it is in, or
// PreviewReady once a preview was made (the import may have moved on in
// the same reconcile).
func reached(imp *v1alpha1.UserImport, phase v1alpha1.ImportPhase) bool {
	if phase == v1alpha1.PhasePreviewReady {
		return imp.Status.Preview != nil && imp.Status.Phase != v1alpha1.PhaseCreatingPreview
	}
	return imp.Status.Phase == phase
}

// reportBackoff is the wait after the n-th failed try: 30 s, doubled each
// time, at most 30 minutes.
func reportBackoff(n int32) time.Duration {
	return retry.Exponential(int(n)-1, 30*time.Second, 30*time.Minute)
}

func reportRecord(imp *v1alpha1.UserImport, phase v1alpha1.ImportPhase) *v1alpha1.SentReport {
	for i := range imp.Status.Reports {
		if imp.Status.Reports[i].Phase == phase {
			return &imp.Status.Reports[i]
		}
	}
	return nil
}

// sendReport sends the report of phase and records the outcome.
func (r *UserImportReconciler) sendReport(ctx context.Context, imp *v1alpha1.UserImport, phase v1alpha1.ImportPhase) error {
	now := r.Clock.Now()
	sendErr := r.mailReport(ctx, imp, phase, now)
	var why string
	if sendErr != nil {
		// The condition's reason is ReportFailed: the message says the
		// relay's reason (MailAuthenticationFailed, …).
		why = failure.Titled(sendErr, safetext.Of(sendErr))
	}
	err := kretry.RetryOnConflict(kretry.DefaultRetry, func() error {
		var cur v1alpha1.UserImport
		if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(imp), &cur); err != nil {
			return err
		}
		base := cur.DeepCopy()
		rec := reportRecord(&cur, phase)
		if rec == nil {
			cur.Status.Reports = append(cur.Status.Reports, v1alpha1.SentReport{Phase: phase})
			rec = &cur.Status.Reports[len(cur.Status.Reports)-1]
		}
		t := metav1.NewTime(now)
		rec.Attempts++
		rec.LastAttemptTime = &t
		if sendErr == nil {
			rec.SentTime, rec.Message = &t, ""
			conditions.MarkTrue(&cur, v1alpha1.ConditionReportSent, v1alpha1.ReasonReportSent, "the report of %s went to %d recipients", phase, len(imp.Spec.Report.Recipients))
		} else {
			rec.Message = why
			conditions.MarkFalse(&cur, v1alpha1.ConditionReportSent, v1alpha1.ReasonReportFailed, "the report of %s was not sent (try %d of %d): %s", phase, rec.Attempts, reportAttempts, why)
		}
		return r.Client.Status().Patch(ctx, &cur, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
	})
	if err != nil {
		return fmt.Errorf("recording the report of %s: %w", phase, err)
	}
	// Counts and reasons only: the recipients' addresses are personal data.
	if sendErr != nil {
		r.Recorder.Eventf(imp, nil, corev1.EventTypeWarning, v1alpha1.ReasonReportFailed, "Report", "the report of %s was not sent: %s", phase, why)
	} else {
		r.Recorder.Eventf(imp, nil, corev1.EventTypeNormal, v1alpha1.ReasonReportSent, "Report", "the report of %s went to %d recipients", phase, len(imp.Spec.Report.Recipients))
	}
	return nil
}

// mailReport builds the report of phase from the report Secret and sends
// it through the directory's relay.
func (r *UserImportReconciler) mailReport(ctx context.Context, imp *v1alpha1.UserImport, phase v1alpha1.ImportPhase, now time.Time) error {
	var dir v1alpha1.UserDirectory
	if err := r.Client.Get(ctx, client.ObjectKey{Namespace: imp.Namespace, Name: imp.Spec.DirectoryRef.Name}, &dir); err != nil {
		return fmt.Errorf("reading UserDirectory %s: %w", imp.Spec.DirectoryRef.Name, err)
	}
	if dir.Spec.Mail == nil {
		return fmt.Errorf("UserDirectory %s has no spec.mail to send the report through", dir.Name)
	}
	var secret corev1.Secret
	err := r.APIReader.Get(ctx, client.ObjectKey{Namespace: imp.Namespace, Name: jobs.ReportSecretName(imp)}, &secret)
	if err != nil && !apierrors.IsNotFound(err) {
		return fmt.Errorf("reading the report Secret: %w", err)
	}
	if err := r.AllowedHosts.Allow(dir.Spec.Mail.Host); err != nil {
		return fmt.Errorf("UserDirectory %s spec.mail.host: %w", dir.Name, err)
	}
	msg := reportmail.Message(imp, phase, secret.Data, now)
	sender := mail.NewSender(dir.Spec.Mail, fromapi.SecretsMatching(r.APIReader, imp.Namespace, r.SecretSelector), r.ReportTimeout)
	sender.Retries, sender.Backoff = 2, time.Second
	sender.DialControl = r.AllowedHosts.Control
	defer sender.Close()
	return sender.Send(ctx, msg)
}
