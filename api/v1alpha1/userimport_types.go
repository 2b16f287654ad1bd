package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ImportAction says how far an import should go.
// +kubebuilder:validation:Enum=Draft;Preview;Import;Cancel
type ImportAction string

const (
	// ActionDraft holds the import: nothing runs and the spec may be edited.
	ActionDraft ImportAction = "Draft"
	// ActionPreview computes a preview and stops at PreviewReady.
	ActionPreview ImportAction = "Preview"
	// ActionImport runs the import to the end.
	ActionImport ImportAction = "Import"
	// ActionCancel stops the import; it ends Cancelled.
	ActionCancel ImportAction = "Cancel"
)

// ImportMode says whether a file holds every user or only some.
// +kubebuilder:validation:Enum=Full;Delta
type ImportMode string

const (
	// ModeFull: the file holds every user in scope; users missing from it
	// follow missingUsers.
	ModeFull ImportMode = "Full"
	// ModeDelta: the file holds only users to create or change; users
	// missing from it are left alone.
	ModeDelta ImportMode = "Delta"
)

// MissingUsersPolicy says what a full import does with users in scope that
// the file does not list.
// +kubebuilder:validation:Enum=Ignore;Deactivate;Delete
type MissingUsersPolicy string

const (
	// MissingIgnore leaves them alone.
	MissingIgnore MissingUsersPolicy = "Ignore"
	// MissingDeactivate deactivates them.
	MissingDeactivate MissingUsersPolicy = "Deactivate"
	// MissingDelete deletes them.
	MissingDelete MissingUsersPolicy = "Delete"
)

// UserImportSpec describes one import of one CSV file into one directory.
// +kubebuilder:validation:XValidation:rule="self.mapping.exists_one(m, has(m.identity) && m.identity)",message="spec.mapping must mark exactly one entry with identity: true (the directory's identity attribute)"
// +kubebuilder:validation:XValidation:rule="self.mode == 'Full' || self.missingUsers == 'Ignore'",message="spec.missingUsers may be Deactivate or Delete only with spec.mode Full"
// +kubebuilder:validation:XValidation:rule="self.mode == 'Delta' || !has(self.statusColumn)",message="spec.statusColumn is only allowed with spec.mode Delta"
// +kubebuilder:validation:XValidation:rule="self.mapping.filter(m, has(m.target) && m.target == 'Groups').size() <= 1",message="spec.mapping may have at most one entry with target Groups"
// +kubebuilder:validation:XValidation:rule="self.mapping.filter(m, has(m.target) && m.target == 'Manager').size() <= 1",message="spec.mapping may have at most one entry with target Manager"
type UserImportSpec struct {
	// directoryRef names the UserDirectory, in the same namespace, that the
	// import writes to.
	DirectoryRef LocalObjectReference `json:"directoryRef"`

	// source says where the CSV file is read from.
	Source ImportSource `json:"source"`

	// format describes the CSV file.
	// +kubebuilder:default={}
	// +optional
	Format CSVFormat `json:"format,omitempty"`

	// mapping turns the columns of a row into directory attributes. Exactly
	// one entry is marked identity: it maps to the directory's
	// identityAttribute.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=128
	// +listType=map
	// +listMapKey=attribute
	Mapping []AttributeMapping `json:"mapping"`

	// mode is Delta (the default: the file lists users to create or change)
	// or Full (the file lists every user in scope).
	// +kubebuilder:default=Delta
	// +optional
	Mode ImportMode `json:"mode,omitempty"`

	// missingUsers says what a Full import does with users in scope that are
	// not in the file: Ignore (the default), Deactivate or Delete.
	// +kubebuilder:default=Ignore
	// +optional
	MissingUsers MissingUsersPolicy `json:"missingUsers,omitempty"`

	// safety stops an import that would deprovision more users than
	// expected, until a person approves.
	// +kubebuilder:default={}
	// +optional
	Safety SafetySettings `json:"safety,omitempty"`

	// createGroups says what happens to a group that a mapping entry with
	// target Groups names and the directory lacks: true (the default)
	// creates it, marked as managed; false makes the row an error on its
	// line.
	// +kubebuilder:default=true
	// +optional
	CreateGroups *bool `json:"createGroups,omitempty"`

	// statusColumn lets a Delta import deactivate or delete the users of
	// individual rows.
	// +optional
	StatusColumn *StatusColumn `json:"statusColumn,omitempty"`

	// errorPolicy says how many bad rows an import tolerates before it
	// stops.
	// +kubebuilder:default={}
	// +optional
	ErrorPolicy ErrorPolicy `json:"errorPolicy,omitempty"`

	// invitations sends an invitation mail to the users this import
	// creates and to users that are still pending, through the mail relay
	// of the directory (its spec.mail).
	// +kubebuilder:default={}
	// +optional
	Invitations Invitations `json:"invitations,omitempty"`

	// recoveryCodes gives users a recovery code: a personal code with
	// which they sign in without e-mail, stored hashed in the directory
	// (its spec.recoveryCodes) and in plain text only in Secrets owned by
	// the import, and in the user's invitation.
	// +kubebuilder:default={}
	// +optional
	RecoveryCodes RecoveryCodes `json:"recoveryCodes,omitempty"`

	// report mails a summary of the import, with the outcome of every row
	// as a CSV attachment, to recipients when the import reaches the
	// phases named in on.
	// +kubebuilder:default={}
	// +optional
	Report ReportMail `json:"report,omitempty"`

	// action says how far the import goes: Draft (hold; edit freely),
	// Preview (stop at PreviewReady), Import (the default: run to the end)
	// or Cancel.
	// +kubebuilder:default=Import
	// +optional
	Action ImportAction `json:"action,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=uimp,categories=usersync
// +kubebuilder:printcolumn:name="Directory",type=string,JSONPath=`.spec.directoryRef.name`
// +kubebuilder:printcolumn:name="Mode",type=string,JSONPath=`.spec.mode`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Progress",type=string,JSONPath=`.status.progress.percent`
// +kubebuilder:printcolumn:name="Created",type=integer,JSONPath=`.status.progress.created`
// +kubebuilder:printcolumn:name="Updated",type=integer,JSONPath=`.status.progress.updated`
// +kubebuilder:printcolumn:name="Failed",type=integer,JSONPath=`.status.progress.failed`
// +kubebuilder:printcolumn:name="Invited",type=integer,JSONPath=`.status.invitations.sent`
// +kubebuilder:printcolumn:name="Not-Invited",type=integer,JSONPath=`.status.invitations.failed`,priority=1
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.status) || !has(oldSelf.status.phase) || !(oldSelf.status.phase in ['Completed', 'Cancelled', 'Failed']) || self.spec == oldSelf.spec",message="spec: the import is in a final phase (Completed, Cancelled or Failed); its spec cannot change",fieldPath=.spec
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.status) || !has(oldSelf.status.phase) || !(oldSelf.status.phase in ['Completed', 'Cancelled', 'Failed']) || (has(self.status) && has(self.status.phase) && self.status.phase == oldSelf.status.phase)",message="status.phase: an import in Completed, Cancelled or Failed is final and cannot move to another phase",fieldPath=.status.phase
// +kubebuilder:validation:XValidation:rule="!has(oldSelf.status) || !has(oldSelf.status.phase) || oldSelf.status.phase != 'Importing' || (self.spec.directoryRef == oldSelf.spec.directoryRef && self.spec.source == oldSelf.spec.source && self.spec.format == oldSelf.spec.format && self.spec.mapping == oldSelf.spec.mapping && self.spec.mode == oldSelf.spec.mode && self.spec.missingUsers == oldSelf.spec.missingUsers && self.spec.safety == oldSelf.spec.safety && self.spec.errorPolicy == oldSelf.spec.errorPolicy && self.spec.invitations == oldSelf.spec.invitations && self.spec.recoveryCodes == oldSelf.spec.recoveryCodes && self.spec.report == oldSelf.spec.report && has(self.spec.statusColumn) == has(oldSelf.spec.statusColumn) && (!has(self.spec.statusColumn) || self.spec.statusColumn == oldSelf.spec.statusColumn) && has(self.spec.createGroups) == has(oldSelf.spec.createGroups) && (!has(self.spec.createGroups) || self.spec.createGroups == oldSelf.spec.createGroups) && self.spec.action in ['Import', 'Cancel'])",message="spec: the import is Importing; only spec.action may change, to Cancel",fieldPath=.spec

// UserImport is one import of one CSV file into one UserDirectory. It moves
// Draft → PreviewPending → CreatingPreview → PreviewReady → ImportPending →
// Importing → Completed (or Cancelled, Failed); spec.action says how far.
type UserImport struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec describes the import.
	// +required
	Spec UserImportSpec `json:"spec"`

	// status is the state the controller and the worker observed.
	// +optional
	Status UserImportStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// UserImportList is a list of UserImports.
type UserImportList struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard list metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the UserImports.
	Items []UserImport `json:"items"`
}

func init() {
	SchemeBuilder.Register(&UserImport{}, &UserImportList{})
}
