package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// UserDirectorySpec describes a directory that imports write users to.
// Exactly one of scim, ldap or sql is set.
// +kubebuilder:validation:XValidation:rule="(has(self.scim) ? 1 : 0) + (has(self.ldap) ? 1 : 0) + (has(self.sql) ? 1 : 0) == 1",message="exactly one of spec.scim, spec.ldap or spec.sql must be set"
type UserDirectorySpec struct {
	// scim connects to a SCIM 2.0 service provider (RFC 7643/7644).
	// +optional
	SCIM *SCIMDirectory `json:"scim,omitempty"`

	// ldap connects to an LDAP directory such as OpenLDAP or Active Directory.
	// +optional
	LDAP *LDAPDirectory `json:"ldap,omitempty"`

	// sql writes users to a table of a PostgreSQL or SQLite database.
	// +optional
	SQL *SQLDirectory `json:"sql,omitempty"`

	// identityAttribute is the directory attribute that identifies a user
	// across imports: rows of a CSV file are matched to existing users by
	// it. Typical values are "userName" (SCIM), "uid" (LDAP) or the name of
	// a unique column (SQL). Every UserImport must map a column to it.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	IdentityAttribute string `json:"identityAttribute"`

	// managedUsers says which users of the directory imports own. A full
	// import deactivates or deletes only users in this scope.
	// +kubebuilder:default={}
	// +optional
	ManagedUsers ManagedUsers `json:"managedUsers,omitempty"`

	// execution holds the defaults for the Jobs that run previews and
	// imports against this directory.
	// +kubebuilder:default={}
	// +optional
	Execution ExecutionSettings `json:"execution,omitempty"`

	// mail is the SMTP relay that mail about this directory's imports goes
	// out through. The directory's check connects to it (EHLO, STARTTLS,
	// AUTH; no message is sent) and reports in the condition MailReady.
	// +optional
	Mail *MailRelay `json:"mail,omitempty"`

	// invitations says how the directory records invitations: which
	// attribute holds when a user was last invited, and how a user that
	// has not signed in yet (pending) is recognised. Imports that send
	// invitations need it.
	// +optional
	Invitations *DirectoryInvitations `json:"invitations,omitempty"`

	// recoveryCodes says where the directory keeps users' recovery codes,
	// and how they are hashed. Imports that give users codes need it.
	// +optional
	RecoveryCodes *DirectoryRecoveryCodes `json:"recoveryCodes,omitempty"`
}

// UserScope names the users that full imports may deprovision.
// +kubebuilder:validation:Enum=Managed;All
type UserScope string

const (
	// UserScopeManaged limits imports to users that carry the marker.
	UserScopeManaged UserScope = "Managed"
	// UserScopeAll lets imports own every user of the directory.
	UserScopeAll UserScope = "All"
)

// ManagedUsers says how users created by imports are marked, and which
// users full imports may deprovision.
type ManagedUsers struct {
	// scope is Managed (the default: only users that carry the marker are
	// considered by full imports) or All (every user under the directory's
	// base is owned by imports).
	// +kubebuilder:default=Managed
	// +optional
	Scope UserScope `json:"scope,omitempty"`

	// markerAttribute is the directory attribute written on every user that
	// an import creates, and read to tell managed users apart. It must be
	// an attribute the directory's schema has. Defaults by directory type:
	// SCIM "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:organization",
	// LDAP "businessCategory", SQL "userImportManagedBy" (a column).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +optional
	MarkerAttribute string `json:"markerAttribute,omitempty"`

	// markerValue is the value of markerAttribute on managed users.
	// +kubebuilder:default=user-import-operator
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +optional
	MarkerValue string `json:"markerValue,omitempty"`
}

// ExecutionSettings tune the Jobs that run previews and imports.
type ExecutionSettings struct {
	// resources of the worker container. Defaults to requests of 100m CPU
	// and 128Mi memory and a limit of 512Mi memory.
	// +optional
	Resources *corev1.ResourceRequirements `json:"resources,omitempty"`

	// concurrency is the number of requests or connections the worker uses
	// against the directory at once. An LDAP directory gets this many
	// connections for searches and modifications, and as many again (at
	// least 4) for the adds it pipelines.
	// +kubebuilder:default=4
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=64
	// +optional
	Concurrency int32 `json:"concurrency,omitempty"`

	// batchSize is the number of changes written per batch (one SCIM /Bulk
	// request, one SQL transaction, one checkpoint step). Unset: 1000 for
	// an SQL directory, whose batch is one COPY, and 100 for the others.
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	// +optional
	BatchSize int32 `json:"batchSize,omitempty"`

	// rateLimit caps the requests per second sent to the directory (for an
	// SQL directory: statements, each row written counting as one); 0 means
	// no limit.
	// +kubebuilder:default=0
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100000
	// +optional
	RateLimit int32 `json:"rateLimit,omitempty"`

	// requestTimeoutSeconds bounds one request to the directory (an HTTP
	// request, an LDAP operation, an SQL statement or transaction); a
	// request that takes longer is abandoned and retried like a dropped
	// connection, while other batches go on.
	// +kubebuilder:default=30
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=600
	// +optional
	RequestTimeoutSeconds int32 `json:"requestTimeoutSeconds,omitempty"`

	// backoffLimit is the number of times a failed worker pod is retried;
	// each retry resumes from the last checkpoint.
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	BackoffLimit *int32 `json:"backoffLimit,omitempty"`

	// activeDeadlineSeconds bounds the run time of one Job, retries included.
	// +kubebuilder:default=86400
	// +kubebuilder:validation:Minimum=60
	// +optional
	ActiveDeadlineSeconds *int64 `json:"activeDeadlineSeconds,omitempty"`
}

// DirectoryCapabilities are what the controller found the directory to offer.
type DirectoryCapabilities struct {
	// bulk is true when the directory accepts several changes per request
	// (SCIM /Bulk).
	// +optional
	Bulk bool `json:"bulk,omitempty"`
	// maxBulkOperations is the most changes one bulk request may carry.
	// +optional
	MaxBulkOperations int32 `json:"maxBulkOperations,omitempty"`
	// maxBulkPayloadBytes is the largest bulk request body accepted.
	// +optional
	MaxBulkPayloadBytes int64 `json:"maxBulkPayloadBytes,omitempty"`
	// patch is true when users can be changed attribute by attribute (SCIM
	// PATCH); otherwise whole users are replaced.
	// +optional
	Patch bool `json:"patch,omitempty"`
	// filter is true when users can be looked up by a filter on identity.
	// +optional
	Filter bool `json:"filter,omitempty"`
	// pagedSearch is true when the directory lists users in pages.
	// +optional
	PagedSearch bool `json:"pagedSearch,omitempty"`
}

// UserDirectoryStatus is the observed state of a UserDirectory.
type UserDirectoryStatus struct {
	// observedGeneration is the generation of the spec last reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready (True when the directory answers and accepts the
	// credentials; its reason says what is wrong otherwise), Reconciling,
	// Stalled.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// type of the directory: SCIM, LDAP or SQL.
	// +optional
	Type string `json:"type,omitempty"`

	// capabilities found when the directory was last checked.
	// +optional
	Capabilities *DirectoryCapabilities `json:"capabilities,omitempty"`

	// lastCheckTime is when reachability and authentication were last checked.
	// +optional
	LastCheckTime *metav1.Time `json:"lastCheckTime,omitempty"`

	// activeImport is the UserImport now writing to this directory.
	// +optional
	ActiveImport string `json:"activeImport,omitempty"`

	// queue lists the UserImports waiting to write to this directory, in
	// the order they will run.
	// +listType=atomic
	// +optional
	Queue []string `json:"queue,omitempty"`

	// queueLength is the number of UserImports in queue.
	// +optional
	QueueLength int32 `json:"queueLength,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=udir,categories=usersync
// +kubebuilder:printcolumn:name="Type",type=string,JSONPath=`.status.type`
// +kubebuilder:printcolumn:name="Ready",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].status`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.conditions[?(@.type=="Ready")].reason`
// +kubebuilder:printcolumn:name="Active import",type=string,JSONPath=`.status.activeImport`
// +kubebuilder:printcolumn:name="Queue",type=integer,JSONPath=`.status.queueLength`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// UserDirectory is a directory that UserImports write users to: its
// connection, credentials, identity attribute, managed-user marker and
// execution defaults. Imports that write to one directory run one at a time.
type UserDirectory struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec describes the directory.
	// +required
	Spec UserDirectorySpec `json:"spec"`

	// status is the state the controller observed.
	// +optional
	Status UserDirectoryStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// UserDirectoryList is a list of UserDirectories.
type UserDirectoryList struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard list metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the UserDirectories.
	Items []UserDirectory `json:"items"`
}

func init() {
	SchemeBuilder.Register(&UserDirectory{}, &UserDirectoryList{})
}
