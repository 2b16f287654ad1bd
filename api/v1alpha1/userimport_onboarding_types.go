package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// SafetySettings bound the deactivations and deletions of a full import.
type SafetySettings struct {
	// maxDeprovision is the most users a full import may deactivate or
	// delete without approval.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MaxDeprovision *int32 `json:"maxDeprovision,omitempty"`

	// maxDeprovisionPercent is the most users, in percent of the managed
	// users in the directory, a full import may deactivate or delete
	// without approval. Defaults to 10.
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	MaxDeprovisionPercent *int32 `json:"maxDeprovisionPercent,omitempty"`

	// approvedDeprovisions approves an import that exceeds the thresholds:
	// it may deactivate or delete up to this many users. Set it after
	// reading the count in the SafetyThreshold condition.
	// +kubebuilder:validation:Minimum=0
	// +optional
	ApprovedDeprovisions *int32 `json:"approvedDeprovisions,omitempty"`

	// approvedRecoveryCodes approves an import with recoveryCodes.generate
	// All, which replaces the code of every user of the file: it must
	// equal the number of codes its preview counted
	// (status.preview.recoveryCodes), or the import stops before writing.
	// +kubebuilder:validation:Minimum=0
	// +optional
	ApprovedRecoveryCodes *int64 `json:"approvedRecoveryCodes,omitempty"`

	// maxMembershipRemovals is the most group memberships an import may
	// remove without approval.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MaxMembershipRemovals *int32 `json:"maxMembershipRemovals,omitempty"`

	// maxMembershipRemovalPercent is the most group memberships, in
	// percent of the memberships of the managed groups, an import may
	// remove without approval. Defaults to 10.
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	MaxMembershipRemovalPercent *int32 `json:"maxMembershipRemovalPercent,omitempty"`

	// approvedMembershipRemovals approves an import that exceeds the
	// membership thresholds: it may remove up to this many memberships.
	// +kubebuilder:validation:Minimum=0
	// +optional
	ApprovedMembershipRemovals *int32 `json:"approvedMembershipRemovals,omitempty"`
}

// StatusColumn names a column whose value deactivates or deletes the user
// of a row in a Delta import.
type StatusColumn struct {
	// column is the CSV column holding the status.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Column string `json:"column"`

	// deactivateValues are the values (compared case-insensitively) that
	// deactivate the row's user.
	// +kubebuilder:default={"inactive","deactivated"}
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +optional
	DeactivateValues []string `json:"deactivateValues,omitempty"`

	// deleteValues are the values (compared case-insensitively) that
	// delete the row's user.
	// +kubebuilder:default={"deleted"}
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +optional
	DeleteValues []string `json:"deleteValues,omitempty"`
}

// ErrorPolicy says how many bad rows an import tolerates. A bad row is
// reported by line and skipped; past a limit the import fails.
type ErrorPolicy struct {
	// maxErrors is the most bad rows tolerated; unset means no limit by count.
	// +kubebuilder:validation:Minimum=0
	// +optional
	MaxErrors *int64 `json:"maxErrors,omitempty"`

	// maxErrorPercent is the most bad rows tolerated, in percent of the rows
	// read so far (checked once 100 rows have been read). Defaults to 10.
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	MaxErrorPercent *int32 `json:"maxErrorPercent,omitempty"`
}

// Invitations says which users get an invitation mail.
// +kubebuilder:validation:XValidation:rule="!((has(self.newUsers) && self.newUsers) || (has(self.pendingUsers) && self.pendingUsers)) || (has(self.addressAttribute) && size(self.addressAttribute) > 0)",message="spec.invitations.addressAttribute must name the mapped attribute that holds the address when newUsers or pendingUsers is set"
type Invitations struct {
	// newUsers sends an invitation to every user this import creates.
	// +optional
	NewUsers bool `json:"newUsers,omitempty"`

	// pendingUsers sends an invitation to every user of the file that the
	// directory records as pending (its spec.invitations) and that was not
	// invited within resendAfter.
	// +optional
	PendingUsers bool `json:"pendingUsers,omitempty"`

	// addressAttribute is the mapped attribute that holds a user's mail
	// address. A user without one is counted as noAddress, not as an error.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	AddressAttribute string `json:"addressAttribute,omitempty"`

	// resendAfter is the least time between two invitations to a pending
	// user; defaults to 7 days.
	// +kubebuilder:default="168h0m0s"
	// +optional
	ResendAfter *metav1.Duration `json:"resendAfter,omitempty"`

	// templates names a ConfigMap in the same namespace whose keys
	// "subject" and "text" (text/template) and "html" (html/template) are
	// the invitation; a key that is absent takes the built-in default.
	// Templates see .Identity, .Address, .Attributes (the mapped
	// attributes by name), .Organization, .SignInURL and .RecoveryCode
	// (the code spec.recoveryCodes gave the user, or empty).
	// +optional
	Templates *LocalObjectReference `json:"templates,omitempty"`

	// organization is the name templates give as .Organization.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	Organization string `json:"organization,omitempty"`

	// signInURL is the address templates give as .SignInURL.
	// +kubebuilder:validation:MaxLength=2048
	// +optional
	SignInURL string `json:"signInURL,omitempty"`
}

// Enabled tells whether any invitation is asked for.
func (i Invitations) Enabled() bool { return i.NewUsers || i.PendingUsers }

// RecoveryCodePolicy says which users get a recovery code.
// +kubebuilder:validation:Enum=ForNewUsers;WhereMissing;All
type RecoveryCodePolicy string

const (
	// CodesForNewUsers: the users the import creates.
	CodesForNewUsers RecoveryCodePolicy = "ForNewUsers"
	// CodesWhereMissing: the users of the file the directory holds no
	// code for, new users included.
	CodesWhereMissing RecoveryCodePolicy = "WhereMissing"
	// CodesAll: every user of the file gets a new code (rotation).
	CodesAll RecoveryCodePolicy = "All"
)

// RecoveryCodes says which users an import gives a recovery code.
// +kubebuilder:validation:XValidation:rule="has(self.generate) || (!has(self.column) && !has(self.expiresAfter) && !has(self.mustChange))",message="spec.recoveryCodes: column, expiresAfter and mustChange need generate (ForNewUsers, WhereMissing or All)"
type RecoveryCodes struct {
	// generate says which users of the file get a code: ForNewUsers,
	// WhereMissing or All. Unset: none.
	// +optional
	Generate RecoveryCodePolicy `json:"generate,omitempty"`

	// column, when set, is a column of the file holding the code of each
	// user; a row whose cell is empty gets a generated code. An imported
	// code must be as strong as a generated one (80 bits), or the row is
	// refused. The column must not be mapped.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	Column string `json:"column,omitempty"`

	// expiresAfter is how long a code is valid from the start of the
	// import; the time is written to the directory's
	// recoveryCodes.expiresAttribute and to the codes Secrets.
	// +optional
	ExpiresAfter *metav1.Duration `json:"expiresAfter,omitempty"`

	// mustChange marks each code to be changed at its first use, where the
	// directory can: LDAP's password policy (pwdReset: TRUE, which slapd
	// enforces with its ppolicy overlay when the policy has pwdMustChange).
	// SQL and SCIM directories have no such mark and refuse it.
	// +optional
	MustChange bool `json:"mustChange,omitempty"`
}

// Enabled tells whether the import gives users codes.
func (c RecoveryCodes) Enabled() bool { return c.Generate != "" }

// ReportMail says who gets the report of an import, and when.
type ReportMail struct {
	// recipients of the report: mail addresses, such as the HR team's.
	// +kubebuilder:validation:MaxItems=32
	// +kubebuilder:validation:items:MaxLength=320
	// +listType=atomic
	// +optional
	Recipients []string `json:"recipients,omitempty"`

	// on lists the phases whose reaching sends the report: any of
	// PreviewReady, Completed, Failed. Defaults to Completed and Failed.
	// +kubebuilder:validation:MaxItems=3
	// +kubebuilder:validation:XValidation:rule="self.all(p, p in ['PreviewReady', 'Completed', 'Failed'])",message="spec.report.on: only PreviewReady, Completed and Failed are reported"
	// +listType=set
	// +optional
	On []ImportPhase `json:"on,omitempty"`
}

// Phases returns the phases the report is sent on.
func (r ReportMail) Phases() []ImportPhase {
	if len(r.On) == 0 {
		return []ImportPhase{PhaseCompleted, PhaseFailed}
	}
	return r.On
}
