package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ImportPhase is where an import is in its life.
// +kubebuilder:validation:Enum=Draft;PreviewPending;CreatingPreview;PreviewReady;ImportPending;Importing;Completed;Cancelled;Failed
type ImportPhase string

const (
	PhaseDraft           ImportPhase = "Draft"
	PhasePreviewPending  ImportPhase = "PreviewPending"
	PhaseCreatingPreview ImportPhase = "CreatingPreview"
	PhasePreviewReady    ImportPhase = "PreviewReady"
	PhaseImportPending   ImportPhase = "ImportPending"
	PhaseImporting       ImportPhase = "Importing"
	PhaseCompleted       ImportPhase = "Completed"
	PhaseCancelled       ImportPhase = "Cancelled"
	PhaseFailed          ImportPhase = "Failed"
)

// FileID is what identifies the file previewed: its fingerprint when it
// was read in place, else the sha256 of its content.
func (p *PreviewStatus) FileID() string {
	if p.Fingerprint != "" {
		return p.Fingerprint
	}
	return p.SHA256
}

// IsFinal tells whether nothing can move an import out of phase p.
func (p ImportPhase) IsFinal() bool {
	return p == PhaseCompleted || p == PhaseCancelled || p == PhaseFailed
}

// SourceStatus records facts about the file read, never its content.
type SourceStatus struct {
	// size of the file in bytes.
	// +optional
	Size int64 `json:"size,omitempty"`
	// sha256 of the file's content, hex-encoded, wherever it is known:
	// always for configMap, secret and http sources, which are copied;
	// for sftp, s3 and persistentVolumeClaim sources, which are read in
	// place, once a run has read the whole file from its first byte.
	// +optional
	SHA256 string `json:"sha256,omitempty"`
	// fingerprint identifies a file read in place (sftp, s3,
	// persistentVolumeClaim) without reading it: the sha256 of its
	// location, name, size, modification time, ETag and version. It
	// changes whenever the file does. It is not a hash of the content.
	// +optional
	Fingerprint string `json:"fingerprint,omitempty"`
	// etag the server gave the file, for http and s3 sources.
	// +optional
	ETag string `json:"etag,omitempty"`
	// name of the file read (its path or key), for sftp, s3 and
	// persistentVolumeClaim sources: with a pattern, the file chosen.
	// +optional
	Name string `json:"name,omitempty"`
	// modTime is the file's modification time, for sftp, s3 and
	// persistentVolumeClaim sources.
	// +optional
	ModTime *metav1.Time `json:"modTime,omitempty"`
	// versionID of the s3 object, when the bucket keeps versions.
	// +optional
	VersionID string `json:"versionID,omitempty"`
	// afterImport is what was done to the file after the import completed:
	// Moved, Deleted, or Failed with a message.
	// +optional
	AfterImport *AfterImportStatus `json:"afterImport,omitempty"`
	// rows is the number of data rows (header excluded).
	// +optional
	Rows int64 `json:"rows,omitempty"`
}

// AfterImportStatus is the outcome of spec.source.afterImport.
type AfterImportStatus struct {
	// result: Moved, Deleted or Failed.
	Result string `json:"result"`
	// to is where a moved file went.
	// +optional
	To string `json:"to,omitempty"`
	// message says why it failed.
	// +optional
	Message string `json:"message,omitempty"`
}

// The results of spec.source.afterImport.
const (
	AfterImportMoved   = "Moved"
	AfterImportDeleted = "Deleted"
	AfterImportFailed  = "Failed"
)

// ChangeCounts counts the changes of an import, or those a preview plans:
// the same figures in status.preview, status.progress and an
// ImportSchedule's lastImport.
type ChangeCounts struct {
	// created is the number of users created (or to create).
	// +optional
	Created int64 `json:"created,omitempty"`
	// updated is the number of users whose attributes changed.
	// +optional
	Updated int64 `json:"updated,omitempty"`
	// unchanged is the number of rows whose user already matched.
	// +optional
	Unchanged int64 `json:"unchanged,omitempty"`
	// deactivated is the number of users deactivated.
	// +optional
	Deactivated int64 `json:"deactivated,omitempty"`
	// deleted is the number of users deleted.
	// +optional
	Deleted int64 `json:"deleted,omitempty"`
	// failed is the number of rows (or users) that could not be processed.
	// +optional
	Failed int64 `json:"failed,omitempty"`
}

// GroupCounts count the group and manager changes of an import, or those
// a preview plans.
type GroupCounts struct {
	// groupsCreated is the number of groups created.
	// +optional
	GroupsCreated int64 `json:"groupsCreated,omitempty"`
	// membershipsAdded is the number of users added to groups.
	// +optional
	MembershipsAdded int64 `json:"membershipsAdded,omitempty"`
	// membershipsRemoved is the number of users removed from groups.
	// +optional
	MembershipsRemoved int64 `json:"membershipsRemoved,omitempty"`
	// managersSet is the number of users whose manager reference was set
	// or changed.
	// +optional
	ManagersSet int64 `json:"managersSet,omitempty"`
	// managersMissing is the number of rows naming a manager the directory
	// does not hold: a warning on the row's line, not an error.
	// +optional
	ManagersMissing int64 `json:"managersMissing,omitempty"`
}

// InvitationCounts count the invitations of an import, or those a preview
// plans.
type InvitationCounts struct {
	// newUsers is the number of invitations to users the import created
	// (or will create).
	// +optional
	NewUsers int64 `json:"newUsers,omitempty"`
	// pendingUsers is the number of invitations to pending users.
	// +optional
	PendingUsers int64 `json:"pendingUsers,omitempty"`
	// noAddress is the number of users owed an invitation that have no
	// address: they are not invited, and this is not an error.
	// +optional
	NoAddress int64 `json:"noAddress,omitempty"`
}

// InvitationStatus is what the invitations of an import came to.
type InvitationStatus struct {
	// sent is the number of invitations the mail relay accepted, over every
	// worker of the import.
	// +optional
	Sent int64 `json:"sent,omitempty"`
	// failed is the number of invitations not sent: refused for their
	// recipient (each is a row error in the report) or not tried because
	// the relay failed. Those users stay owed an invitation: the next
	// import with newUsers or pendingUsers invites them.
	// +optional
	Failed int64 `json:"failed,omitempty"`
	// noAddress is the number of users owed an invitation that have no
	// address: they are not invited, and this is not an error.
	// +optional
	NoAddress int64 `json:"noAddress,omitempty"`
	// reason and message say why invitations failed: the relay's reason
	// (MailUnreachable, MailAuthenticationFailed, MailTLSError) or
	// RecipientsRefused.
	// +optional
	Reason string `json:"reason,omitempty"`
	// message says, in words, what failed and how many invitations it
	// kept from being sent; never an address.
	// +optional
	Message string `json:"message,omitempty"`
}

// RecoveryCodeStatus records the recovery codes of an import. The codes
// themselves are only in the Secrets it names.
type RecoveryCodeStatus struct {
	// issued is the number of codes given to users the import has
	// written: counted with the users, not when the codes are planned
	// (the Secrets may hold the codes of a few batches ahead while the
	// import runs).
	// +optional
	Issued int64 `json:"issued,omitempty"`
	// expires is when the codes expire; unset when they do not.
	// +optional
	Expires *metav1.Time `json:"expires,omitempty"`
	// secrets names the Secrets, owned by the import, whose key codes.csv
	// lists identity,code,expires; a Secret holds at most a few thousand
	// codes, so a large import has several.
	// +listType=atomic
	// +optional
	Secrets []string `json:"secrets,omitempty"`
}

// SentReport records a report mail.
type SentReport struct {
	// phase the report is about.
	Phase ImportPhase `json:"phase"`
	// sentTime is when the relay accepted it; unset while it failed.
	// +optional
	SentTime *metav1.Time `json:"sentTime,omitempty"`
	// attempts counts the tries to send it.
	// +optional
	Attempts int32 `json:"attempts,omitempty"`
	// lastAttemptTime is when it was last tried.
	// +optional
	LastAttemptTime *metav1.Time `json:"lastAttemptTime,omitempty"`
	// message says why the last try failed.
	// +optional
	Message string `json:"message,omitempty"`
}

// PreviewStatus is the result of a preview.
type PreviewStatus struct {
	// generation of the spec the preview was computed for; an edit of the
	// spec makes the preview stale.
	// +optional
	Generation int64 `json:"generation,omitempty"`
	// counts of the planned changes.
	// +optional
	Counts ChangeCounts `json:"counts,omitempty"`
	// invitations the import would send.
	// +optional
	Invitations *InvitationCounts `json:"invitations,omitempty"`
	// groups counts the group and manager changes planned.
	// +optional
	Groups *GroupCounts `json:"groups,omitempty"`
	// recoveryCodes is the number of recovery codes the import would
	// give out; the preview generates none.
	// +optional
	RecoveryCodes int64 `json:"recoveryCodes,omitempty"`
	// managedUsers is the number of users in scope in the directory when
	// the preview was made.
	// +optional
	ManagedUsers int64 `json:"managedUsers,omitempty"`
	// sha256 of the content of the file previewed, hex-encoded, where it
	// is known (as status.source.sha256).
	// +optional
	SHA256 string `json:"sha256,omitempty"`
	// fingerprint of the file previewed, for a file read in place (as
	// status.source.fingerprint). The import that follows the preview
	// reads exactly the file this field, or else sha256, identifies: a
	// source that changed in between is refused (condition
	// SourceChanged) and previewed again.
	// +optional
	Fingerprint string `json:"fingerprint,omitempty"`
	// templates is the sha256 of the invitation templates the preview
	// rendered: an import whose templates changed since (an edit of their
	// ConfigMap) is previewed again before it sends anything.
	// +optional
	Templates string `json:"templates,omitempty"`
	// specDigest identifies the spec the preview was made for, spec.action
	// aside: changing only the action (Preview to Import) keeps the
	// preview, any other edit discards it.
	// +optional
	SpecDigest string `json:"specDigest,omitempty"`
	// completionTime is when the preview was made.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
}

// ProgressStatus is how far an import has come.
type ProgressStatus struct {
	// rowsTotal is the number of data rows in the file, once known.
	// +optional
	RowsTotal int64 `json:"rowsTotal,omitempty"`
	// rowsProcessed is the number of rows done, errors included.
	// +optional
	RowsProcessed int64 `json:"rowsProcessed,omitempty"`
	// percent is rowsProcessed in percent of rowsTotal (0 to 100).
	// +optional
	Percent int32 `json:"percent,omitempty"`
	// rowsPerSecond is the recent throughput.
	// +optional
	RowsPerSecond int64 `json:"rowsPerSecond,omitempty"`
	// The counts of what was written so far.
	ChangeCounts `json:",inline"`
	// groups counts the group and manager changes written so far.
	// +optional
	Groups *GroupCounts `json:"groups,omitempty"`

	// recoveryCodes is the number of recovery codes given to users the
	// import has written so far (the preview's plan is
	// status.preview.recoveryCodes).
	// +optional
	RecoveryCodes int64 `json:"recoveryCodes,omitempty"`
	// checkpoint is where a retried worker resumes.
	// +optional
	Checkpoint *Checkpoint `json:"checkpoint,omitempty"`
	// resumes counts the times the import resumed from a checkpoint.
	// +optional
	Resumes int32 `json:"resumes,omitempty"`
	// updateTime is when the worker last reported.
	// +optional
	UpdateTime *metav1.Time `json:"updateTime,omitempty"`
}

// Checkpoint is a position in the source file up to which every row has
// been written.
type Checkpoint struct {
	// line is the last line (1-based, physical lines of the file) done.
	Line int64 `json:"line"`
	// offset is the byte offset in the file where the next record starts.
	Offset int64 `json:"offset"`
	// sha256 identifies the file the checkpoint belongs to: the sha256 of
	// its content, or for a file read in place its fingerprint (as
	// status.source.fingerprint). A checkpoint is never used for another
	// file.
	SHA256 string `json:"sha256"`
	// step of the import the checkpoint belongs to: Apply (the file's
	// rows), Deprovision (the users in scope the file does not list),
	// Groups (memberships) or Managers (manager references).
	// +kubebuilder:validation:Enum=Apply;Deprovision;Groups;Managers
	// +optional
	Step string `json:"step,omitempty"`
	// duplicatesKnown is true when the import found, before writing, the
	// rows whose identity an earlier row has: a resume then reads the file
	// from offset on instead of from its start (files read in place).
	// +optional
	DuplicatesKnown bool `json:"duplicatesKnown,omitempty"`
	// duplicatesAfter are the byte offsets, after offset, of those rows.
	// +kubebuilder:validation:MaxItems=1000
	// +optional
	DuplicatesAfter []int64 `json:"duplicatesAfter,omitempty"`
	// knownGroups are, with createGroups false, the groups the directory
	// had when the import began: a resumed import accepts the same names,
	// also of a group it has emptied since (an SQL or groupOfNames group
	// goes with its last member).
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=10000
	// +optional
	KnownGroups []string `json:"knownGroups,omitempty"`
}

// Steps of an import, recorded in its checkpoints.
const (
	// StepApply writes the changes of the file's rows.
	StepApply = "Apply"
	// StepDeprovision deactivates or deletes the users in scope that a
	// full import's file does not list.
	StepDeprovision = "Deprovision"
	// StepGroups keeps the memberships of the groups in step, after the
	// users are written.
	StepGroups = "Groups"
	// StepManagers writes the manager references, after the groups.
	StepManagers = "Managers"
)

// UserImportStatus is the observed state of a UserImport.
type UserImportStatus struct {
	// observedGeneration is the generation of the spec last reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// phase is where the import is: Draft, PreviewPending, CreatingPreview,
	// PreviewReady, ImportPending, Importing, Completed, Cancelled or Failed.
	// Completed, Cancelled and Failed are final. A preview or import that
	// refuses its spec or file before writing anything (a mapping that
	// names a missing column, a file that does not parse, the error policy
	// exceeded) does not fail: the import waits in PreviewPending with
	// Stalled=True and the condition InputRejected, and the next edit of
	// the spec tries again. Failed is for imports whose writing began and
	// then failed, and for failures of the infrastructure after the Job's
	// retries.
	// +optional
	Phase ImportPhase `json:"phase,omitempty"`

	// rejectedSHA256 is the sha256 of the file the last refused run read
	// (condition InputRejected): a ConfigMap or Secret source whose content
	// changes since is tried again, as an edit of the spec is.
	// +optional
	RejectedSHA256 string `json:"rejectedSHA256,omitempty"`

	// rejectedSecrets identifies the versions of the Secrets the source
	// names when their credentials or host keys were refused: a change of
	// any of them (a rotated password, say) tries again, with no edit of
	// the spec.
	// +optional
	RejectedSecrets string `json:"rejectedSecrets,omitempty"`

	// conditions: Ready, Reconciling, Stalled (kstatus); SafetyThreshold
	// when a full import waits for approval; SourceChanged when its file
	// changed after the preview; InputRejected when its spec or file was
	// refused and it waits for an edit.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// source records facts about the file read.
	// +optional
	Source *SourceStatus `json:"source,omitempty"`

	// preview is the result of the last preview.
	// +optional
	Preview *PreviewStatus `json:"preview,omitempty"`

	// progress of the import.
	// +optional
	Progress *ProgressStatus `json:"progress,omitempty"`

	// queuePosition is the place of the import in its directory's queue
	// while ImportPending (1 runs next).
	// +optional
	QueuePosition int32 `json:"queuePosition,omitempty"`

	// jobName is the Job running the current preview or import.
	// +optional
	JobName string `json:"jobName,omitempty"`

	// startTime is when the import began Importing.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`

	// completionTime is when the import reached a final phase.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`

	// invitations sent and failed by the import.
	// +optional
	Invitations *InvitationStatus `json:"invitations,omitempty"`

	// recoveryCodes records the codes the import gave out.
	// +optional
	RecoveryCodes *RecoveryCodeStatus `json:"recoveryCodes,omitempty"`

	// reports lists the report mails, one per phase at most.
	// +listType=map
	// +listMapKey=phase
	// +optional
	Reports []SentReport `json:"reports,omitempty"`

	// reportSecretRef names the Secret, owned by this import, holding the
	// per-row report: planned changes of the preview and errors by line.
	// +optional
	ReportSecretRef *LocalObjectReference `json:"reportSecretRef,omitempty"`
}
