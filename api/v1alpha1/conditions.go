package v1alpha1

import metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

// This file holds the vocabulary of the status of all three kinds: the
// condition types, the reasons of conditions and Events, and the labels and
// annotations the controllers write. A reason names a state a person can
// act on; the message beside it says what to do.

// Condition types shared by the kinds of this API. Ready, Reconciling and
// Stalled follow kstatus, so that `kubectl wait --for=condition=Ready`,
// Argo CD and Flux read the health of an object.
const (
	// ConditionReady is True when the object has reached the state its spec
	// asks for: a directory that answers, an import that completed, a
	// schedule that is running.
	ConditionReady = "Ready"
	// ConditionReconciling is True while the controller is still working
	// towards the state the spec asks for.
	ConditionReconciling = "Reconciling"
	// ConditionStalled is True when the controller cannot make progress
	// without a change by a person (a bad spec, a missing Secret).
	ConditionStalled = "Stalled"
)

// Condition types of UserImports beyond the kstatus ones.
const (
	// ConditionSafetyThreshold is True while a full import waits for a
	// person to approve the deprovisions it would make.
	ConditionSafetyThreshold = "SafetyThreshold"
	// ConditionSourceChanged is True while an import waits for a person to
	// look at a new preview: its source changed after the preview it was
	// approved on, so it was refused before writing.
	ConditionSourceChanged = "SourceChanged"
	// ConditionInputRejected is True while an import waits for an edit of
	// its spec: its preview or import refused the spec or the file before
	// writing anything. Its reason says what was wrong (InvalidMapping,
	// InvalidFile, ErrorPolicyExceeded), its observedGeneration which spec.
	ConditionInputRejected = "InputRejected"
	// ConditionInvitationsSent is set on an import with invitations once
	// they were sent: True when every invitation owed went out (users
	// without an address aside), False with the relay's reason
	// (MailUnreachable, MailAuthenticationFailed, ...) or
	// RecipientsRefused when some did not. The users are written either
	// way; those not invited stay owed an invitation.
	ConditionInvitationsSent = "InvitationsSent"
	// ConditionReportSent is False while a report mail could not be sent;
	// the controller tries again with backoff.
	ConditionReportSent = "ReportSent"
	// ConditionInsecureSource is True while spec.source.sftp skips the
	// verification of the server's host key.
	ConditionInsecureSource = "InsecureSource"
	// ConditionSourceArchived reports spec.source.afterImport once the
	// import completed: True when the file was moved or deleted, False
	// when that failed (the import itself stays Completed).
	ConditionSourceArchived = "SourceArchived"
)

// ReasonReconcileError: the last reconcile failed (the API server refused
// a write, a Job of the import's name belongs to someone else); it is
// retried with backoff. All three kinds use it the same way.
const ReasonReconcileError = "ReconcileError"

// Reasons of UserImport conditions and Events. A phase is also the reason
// of the Event that records a move into it.
const (
	ReasonDraft           = "Draft"
	ReasonCreatingPreview = "CreatingPreview"
	ReasonPreviewReady    = "PreviewReady"
	ReasonQueued          = "Queued"
	ReasonImporting       = "Importing"
	ReasonSucceeded       = "Succeeded"
	ReasonCancelled       = "Cancelled"
	ReasonPreviewFailed   = "PreviewFailed"
	ReasonImportFailed    = "ImportFailed"
	// ReasonDirectoryNotFound and ReasonDirectoryNotReady: the import
	// waits for its UserDirectory.
	ReasonDirectoryNotFound = "DirectoryNotFound"
	ReasonDirectoryNotReady = "DirectoryNotReady"
	// ReasonApprovalRequired: a full import stopped at the safety
	// threshold and waits for spec.safety.approvedDeprovisions.
	ReasonApprovalRequired = "ApprovalRequired"
	// ReasonSafetyThresholdCleared: the spec changed after a safety stop;
	// the import may run again (an Event).
	ReasonSafetyThresholdCleared = "SafetyThresholdCleared"
	// ReasonSourceChanged: the reason of ConditionSourceChanged and of
	// the Stalled state it causes.
	ReasonSourceChanged = "SourceChanged"
	// ReasonPreviewInvalidated: the spec changed, so the preview was
	// discarded (an Event).
	ReasonPreviewInvalidated = "PreviewInvalidated"
	// ReasonRestarted: the run of a stage was gone (a deleted Job, a
	// restarted manager) and was started again; it resumes from the
	// checkpoint (an Event).
	ReasonRestarted = "Restarted"
	// ReasonIdentityMismatch: the mapping's identity entry writes another
	// attribute than the one the directory identifies users by.
	ReasonIdentityMismatch = "IdentityMismatch"
	// ReasonInvalidMapping: the mapping does not fit the file or the
	// directory (a column the file lacks, a template that does not parse,
	// an attribute the directory does not have).
	ReasonInvalidMapping = "InvalidMapping"
	// ReasonInvalidFile: the file cannot be read as spec.format says (no
	// header, a bad encoding), or has no valid row.
	ReasonInvalidFile = "InvalidFile"
	// ReasonErrorPolicyExceeded: more rows failed than spec.errorPolicy
	// allows, before anything was written.
	ReasonErrorPolicyExceeded = "ErrorPolicyExceeded"
	// ReasonSourceNotFound: the ConfigMap, Secret or key of spec.source
	// does not exist (yet); the import waits for it.
	ReasonSourceNotFound = "SourceNotFound"
	// ReasonSourceAuthenticationFailed: the SFTP or S3 server refused the
	// credentials of spec.source.
	ReasonSourceAuthenticationFailed = "SourceAuthenticationFailed"
	// ReasonSourceUnreachable: the SFTP or S3 server of spec.source could
	// not be reached.
	ReasonSourceUnreachable = "SourceUnreachable"
	// ReasonHostKeyMismatch: the SFTP server presented a host key that
	// spec.source.sftp.knownHosts does not list.
	ReasonHostKeyMismatch = "HostKeyMismatch"
	// ReasonHostKeyNotVerified: spec.source.sftp skips the verification
	// of the server's host key.
	ReasonHostKeyNotVerified = "HostKeyNotVerified"
	// ReasonSecretNotOwned: a Secret the import keeps its recovery codes
	// in (its key Secret or a codes Secret) exists and is not controlled
	// by the import; nothing runs until it is removed.
	ReasonSecretNotOwned = "SecretNotOwned"
	// ReasonSourceNotSupported: the executor cannot read this kind of
	// source (the in-process executor and a persistentVolumeClaim).
	ReasonSourceNotSupported = "SourceNotSupported"
	// ReasonMoved, ReasonDeleted and ReasonArchiveFailed: the outcome of
	// spec.source.afterImport.
	ReasonMoved         = "Moved"
	ReasonDeleted       = "Deleted"
	ReasonArchiveFailed = "ArchiveFailed"
	// ReasonInvalidTemplate: an invitation template does not parse, or
	// does not render against the file's first valid row; the message
	// names the template and its line.
	ReasonInvalidTemplate = "InvalidTemplate"
	// ReasonRecoveryCodesNotConfigured: spec.recoveryCodes asks for codes
	// the directory cannot store as configured (its spec.recoveryCodes is
	// missing, names a scheme the directory type does not verify, or
	// cannot tell which users hold a code).
	ReasonRecoveryCodesNotConfigured = "RecoveryCodesNotConfigured"
	// ReasonInvitationsNotConfigured: spec.invitations asks for
	// invitations, but the directory has no spec.mail or no
	// spec.invitations.
	ReasonInvitationsNotConfigured = "InvitationsNotConfigured"
	// ReasonInvitationsSent: every invitation owed went out.
	ReasonInvitationsSent = "InvitationsSent"
	// ReasonRecipientsRefused: the relay refused some recipients for good.
	ReasonRecipientsRefused = "RecipientsRefused"
	// ReasonReportSent and ReasonReportFailed: reasons of ReportSent.
	ReasonReportSent   = "ReportSent"
	ReasonReportFailed = "ReportFailed"
)

// Reasons of UserDirectory conditions. All but ReasonConnected are also
// the reasons of the errors providers return, so that a failed check
// names its cause.
const (
	// ReasonConnected: the directory answers and accepts the credentials.
	ReasonConnected            = "Connected"
	ReasonAuthenticationFailed = "AuthenticationFailed"
	ReasonUnreachable          = "Unreachable"
	ReasonTLSError             = "TLSError"
	ReasonSecretNotFound       = "SecretNotFound"
	ReasonInvalidConfig        = "InvalidConfig"
	ReasonSchemaMismatch       = "SchemaMismatch"
	ReasonDirectoryError       = "DirectoryError"
	// ReasonHostNotAllowed: the manager's --allowed-hosts does not list
	// the directory's host, so it was not checked.
	ReasonHostNotAllowed = "HostNotAllowed"
)

// ConditionInsecureTransport is True on a UserDirectory or UserImport
// whose spec allows a connection in clear, or to a server that is not
// verified (an insecure: true field), with reason InsecureAllowed.
const (
	ConditionInsecureTransport = "InsecureTransport"
	ReasonInsecureAllowed      = "InsecureAllowed"
)

// ConditionMailReady is a UserDirectory's condition about its mail relay
// (spec.mail): True when the relay answers, offers what spec.mail asks
// for and accepts the credentials. Absent without spec.mail.
const ConditionMailReady = "MailReady"

// Reasons of the MailReady condition.
const (
	ReasonMailConnected            = "MailConnected"
	ReasonMailUnreachable          = "MailUnreachable"
	ReasonMailAuthenticationFailed = "MailAuthenticationFailed"
	ReasonMailTLSError             = "MailTLSError"
	ReasonMailInvalidConfig        = "MailInvalidConfig"
)

// Reasons of ImportSchedule conditions and Events.
const (
	ReasonScheduled       = "Scheduled"
	ReasonSuspended       = "Suspended"
	ReasonInvalidSchedule = "InvalidSchedule"
	ReasonNeverFires      = "NeverFires"
	ReasonRunStarted      = "RunStarted"
	ReasonRunNow          = "RunNow"
	ReasonRunSkipped      = "RunSkipped"
	ReasonMissedRuns      = "MissedRuns"
	// ReasonClockChange: a run stands for a time the clock skipped.
	ReasonClockChange = "ClockChange"
	ReasonReplacing   = "Replacing"
	// ReasonSourceCheckFailed: skipIfUnchanged could not tell whether the
	// source changed; the run went ahead.
	ReasonSourceCheckFailed = "SourceCheckFailed"
	ReasonHistoryDeleted    = "HistoryDeleted"
	// ReasonWaitingForSource: a schedule on change cannot read its source
	// (a ConfigMap not applied yet); it looks again.
	ReasonWaitingForSource = "WaitingForSource"
)

// Reasons of a Change of an ImportSchedule on change.
const (
	ChangeFirstContent             = "FirstContent"
	ChangeSourceChanged            = "SourceChanged"
	ChangeTemplateChanged          = "TemplateChanged"
	ChangeSourceAndTemplateChanged = "SourceAndTemplateChanged"
)

// Labels and annotations of ImportSchedules and the imports they create.
const (
	// ScheduleLabel names, on an import, the schedule that created it.
	ScheduleLabel = "userimport.dev/schedule"
	// ScheduledAtAnnotation holds, on an import, the time (RFC 3339, UTC)
	// its run was scheduled for; for a run-now import, when it was asked.
	ScheduledAtAnnotation = "userimport.dev/scheduled-at"
	// ScheduleChangeAnnotation holds, on an import a change started, that
	// change (JSON, as status.lastChange without importName): a schedule
	// whose status write was lost learns from it which change the import
	// ran.
	ScheduleChangeAnnotation = "userimport.dev/change"
	// RunNowAnnotation on a schedule starts a run now whenever its value
	// changes; any value will do, a timestamp is the custom.
	RunNowAnnotation = "userimport.dev/run-now"
)

// GetConditions returns the conditions of the status.
func (in *UserImport) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the conditions of the status.
func (in *UserImport) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }

// GetConditions returns the conditions of the status.
func (in *UserDirectory) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the conditions of the status.
func (in *UserDirectory) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }

// GetConditions returns the conditions of the status.
func (in *ImportSchedule) GetConditions() []metav1.Condition { return in.Status.Conditions }

// SetConditions replaces the conditions of the status.
func (in *ImportSchedule) SetConditions(c []metav1.Condition) { in.Status.Conditions = c }

// SetObservedGeneration records the generation the controller acted on.
func (in *UserImport) SetObservedGeneration(g int64) { in.Status.ObservedGeneration = g }

// SetObservedGeneration records the generation the controller acted on.
func (in *UserDirectory) SetObservedGeneration(g int64) { in.Status.ObservedGeneration = g }

// SetObservedGeneration records the generation the controller acted on.
func (in *ImportSchedule) SetObservedGeneration(g int64) { in.Status.ObservedGeneration = g }
