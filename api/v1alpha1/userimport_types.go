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

// ImportSource names where a CSV file is read from: exactly one of
// configMap, secret, http, sftp, s3 or persistentVolumeClaim.
// +kubebuilder:validation:XValidation:rule="(has(self.configMap) ? 1 : 0) + (has(self.secret) ? 1 : 0) + (has(self.http) ? 1 : 0) + (has(self.sftp) ? 1 : 0) + (has(self.s3) ? 1 : 0) + (has(self.persistentVolumeClaim) ? 1 : 0) == 1",message="spec.source: exactly one of configMap, secret, http, sftp, s3 or persistentVolumeClaim must be set"
// +kubebuilder:validation:XValidation:rule="!has(self.afterImport) || self.afterImport.action == 'Keep' || has(self.sftp) || has(self.s3)",message="spec.source.afterImport: Move and Delete need an sftp or s3 source (a persistentVolumeClaim is mounted read-only)"
type ImportSource struct {
	// configMap reads the file from a key of a ConfigMap (data or
	// binaryData); ConfigMaps hold at most 1 MiB.
	// +optional
	ConfigMap *ConfigMapKeyRef `json:"configMap,omitempty"`

	// secret reads the file from a key of a Secret.
	// +optional
	Secret *SecretKeyRef `json:"secret,omitempty"`

	// http downloads the file from an http:// or https:// URL.
	// +optional
	HTTP *HTTPSource `json:"http,omitempty"`

	// sftp reads the file from an SFTP server, in place.
	// +optional
	SFTP *SFTPSource `json:"sftp,omitempty"`

	// s3 reads the file from an S3 bucket (or an S3-compatible server), in
	// place.
	// +optional
	S3 *S3Source `json:"s3,omitempty"`

	// persistentVolumeClaim reads the file from a claim that the worker Job
	// mounts read-only. Only Jobs can: the manager's in-process executor
	// refuses it.
	// +optional
	PersistentVolumeClaim *PVCSource `json:"persistentVolumeClaim,omitempty"`

	// afterImport says what happens to an sftp or s3 file once its import
	// has Completed: Keep (the default), Move or Delete.
	// +optional
	AfterImport *AfterImport `json:"afterImport,omitempty"`
}

// FileSelector picks the file of a folder or bucket: a fixed path, or the
// newest of the files whose names match a pattern.
// +kubebuilder:validation:XValidation:rule="has(self.path) != has(self.pattern)",message="exactly one of path or pattern must be set"
type FileSelector struct {
	// path of the file: relative to the login folder (sftp) or the claim's
	// root (persistentVolumeClaim), or the object key (s3).
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Path string `json:"path,omitempty"`

	// pattern picks among the files of a folder: a folder and a shell
	// pattern for the file name ("exports/employees_*.csv"). For s3 the
	// folder is a key prefix, and the pattern is matched against the rest
	// of the key.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Pattern string `json:"pattern,omitempty"`

	// select says which matching file is read: Newest, by modification
	// time, then by name (the default and only choice).
	// +kubebuilder:validation:Enum=Newest
	// +kubebuilder:default=Newest
	// +optional
	Select string `json:"select,omitempty"`
}

// SelectNewest picks the matching file modified last.
const SelectNewest = "Newest"

// SFTPSource reads a file from an SFTP server.
type SFTPSource struct {
	FileSelector `json:",inline"`

	// host name or address of the server.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Host string `json:"host"`

	// port of the server (default 22).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +kubebuilder:default=22
	// +optional
	Port int32 `json:"port,omitempty"`

	// credentials names a Secret with the key "username" and either
	// "password" or "privateKey" (PEM or OpenSSH format; an encrypted key
	// also needs "passphrase").
	Credentials LocalObjectReference `json:"credentials"`

	// knownHosts is a Secret key holding the server's host keys in
	// known_hosts format. A key the server presents that is not listed is
	// refused (HostKeyMismatch).
	// +optional
	KnownHosts *SecretKeyRef `json:"knownHosts,omitempty"`

	// insecureSkipHostKeyVerification accepts any host key, so a machine
	// in the middle could read the file and the credentials. The import
	// then carries the condition InsecureSource.
	// +optional
	InsecureSkipHostKeyVerification bool `json:"insecureSkipHostKeyVerification,omitempty"`
}

// S3Source reads an object from an S3 bucket.
// +kubebuilder:validation:XValidation:rule="!has(self.endpoint) || size(self.endpoint) == 0 || self.endpoint.startsWith('https://') || (has(self.insecure) && self.insecure)",message="spec.source.s3.endpoint: http:// sends the file and the request signatures in clear; use https://, or set spec.source.s3.insecure: true"
type S3Source struct {
	FileSelector `json:",inline"`

	// bucket holding the file.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	Bucket string `json:"bucket"`

	// region of the bucket (default us-east-1).
	// +kubebuilder:validation:MaxLength=64
	// +optional
	Region string `json:"region,omitempty"`

	// endpoint of an S3-compatible server (https://minio.example:9000);
	// empty for AWS.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="size(self) == 0 || self.matches('^https?://[^/]+')",message="spec.source.s3.endpoint must be an http:// or https:// URL"
	// +optional
	Endpoint string `json:"endpoint,omitempty"`

	// pathStyle addresses the bucket in the URL path rather than the host
	// name, as most S3-compatible servers need.
	// +optional
	PathStyle bool `json:"pathStyle,omitempty"`

	// insecure allows an http:// endpoint in clear: without it, the API server refuses
	// a cleartext URL. The object then carries the condition
	// InsecureTransport.
	// +optional
	Insecure bool `json:"insecure,omitempty"`

	// credentials names a Secret with the keys "accessKeyID" and
	// "secretAccessKey" (and "sessionToken" when temporary). Without it the
	// pod's own credentials are used: web identity (IRSA), EKS Pod
	// Identity, or the instance's role.
	// +optional
	Credentials *LocalObjectReference `json:"credentials,omitempty"`

	// caBundle is a Secret key holding PEM certificates that sign the
	// endpoint's certificate.
	// +optional
	CABundle *SecretKeyRef `json:"caBundle,omitempty"`
}

// PVCSource reads a file from a PersistentVolumeClaim.
type PVCSource struct {
	FileSelector `json:",inline"`

	// claimName of the PersistentVolumeClaim, in the import's namespace.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	ClaimName string `json:"claimName"`
}

// AfterImportAction is what happens to a file after its import completed.
// +kubebuilder:validation:Enum=Keep;Move;Delete
type AfterImportAction string

const (
	AfterImportKeep   AfterImportAction = "Keep"
	AfterImportMove   AfterImportAction = "Move"
	AfterImportDelete AfterImportAction = "Delete"
)

// AfterImport says what happens to the file after a Completed import.
// +kubebuilder:validation:XValidation:rule="self.action != 'Move' || (has(self.to) && size(self.to) > 0)",message="spec.source.afterImport.to is required for Move"
type AfterImport struct {
	// action: Keep (the default), Move or Delete.
	// +kubebuilder:default=Keep
	Action AfterImportAction `json:"action"`

	// to is the folder (sftp) or key prefix (s3) a moved file goes to,
	// keeping its name ("archive/").
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	To string `json:"to,omitempty"`
}

// HTTPSource downloads a file over HTTP(S).
// +kubebuilder:validation:XValidation:rule="self.url.startsWith('https://') || (has(self.insecure) && self.insecure)",message="spec.source.http.url: http:// sends the file (and any credentials) in clear; use https://, or set spec.source.http.insecure: true"
type HTTPSource struct {
	// url of the file.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.matches('^https?://[^/]+')",message="spec.source.http.url must be an http:// or https:// URL"
	URL string `json:"url"`

	// caBundle is a Secret key holding PEM certificates that sign the
	// server's certificate.
	// +optional
	CABundle *SecretKeyRef `json:"caBundle,omitempty"`

	// basicAuth names a Secret whose keys "username" and "password" are sent
	// as HTTP basic authentication.
	// +optional
	BasicAuth *LocalObjectReference `json:"basicAuth,omitempty"`

	// bearerToken is a Secret key holding a token sent as
	// "Authorization: Bearer <token>".
	// +optional
	BearerToken *SecretKeyRef `json:"bearerToken,omitempty"`

	// maxBytes bounds the download, which is copied to the worker's disk
	// (default 1 GiB): a larger file fails the import before anything is
	// written. Files larger than a pod's disk belong on SFTP, S3 or a
	// PersistentVolumeClaim, which are read in place. The file is read as
	// the server sends it: a gzip Content-Encoding is not undone.
	// +kubebuilder:validation:Minimum=1
	// +optional
	MaxBytes int64 `json:"maxBytes,omitempty"`

	// insecure allows an http:// url in clear: without it, the API server refuses
	// a cleartext URL. The object then carries the condition
	// InsecureTransport.
	// +optional
	Insecure bool `json:"insecure,omitempty"`
}

// DefaultHTTPMaxBytes is the download limit of an http source without
// maxBytes.
const DefaultHTTPMaxBytes int64 = 1 << 30

// Encoding names a text encoding of a CSV file.
// +kubebuilder:validation:Enum=UTF-8;UTF-16;ISO-8859-1;Windows-1252
type Encoding string

// CSVFormat describes the layout of a CSV file.
type CSVFormat struct {
	// delimiter between fields: ",", ";", "|" or "\t". Empty (the default)
	// detects it from the header row.
	// +kubebuilder:validation:Enum="";",";";";"|";"\t"
	// +optional
	Delimiter string `json:"delimiter,omitempty"`

	// quote is the character that encloses fields holding delimiters,
	// quotes or line breaks.
	// +kubebuilder:default="\""
	// +kubebuilder:validation:Enum="\"";"'"
	// +optional
	Quote string `json:"quote,omitempty"`

	// encoding of the file: UTF-8 (the default; a byte-order mark is
	// skipped), UTF-16 (with a byte-order mark), ISO-8859-1 or Windows-1252.
	// +kubebuilder:default=UTF-8
	// +optional
	Encoding Encoding `json:"encoding,omitempty"`

	// header is true (the default) when the first row after skipRows names
	// the columns. Without a header, columns are named "1", "2", ….
	// +kubebuilder:default=true
	// +optional
	Header *bool `json:"header,omitempty"`

	// skipRows is the number of lines skipped before the header or the
	// first row.
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=1000
	// +optional
	SkipRows int32 `json:"skipRows,omitempty"`

	// maxLineBytes is the longest record accepted; a longer one is an error
	// on its line.
	// +kubebuilder:default=65536
	// +kubebuilder:validation:Minimum=256
	// +kubebuilder:validation:Maximum=16777216
	// +optional
	MaxLineBytes int32 `json:"maxLineBytes,omitempty"`
}

// MappingTarget says what the values of a mapping entry become.
// +kubebuilder:validation:Enum=Attribute;Groups;Manager
type MappingTarget string

const (
	// TargetAttribute writes the values to the directory attribute named by
	// the entry's attribute.
	TargetAttribute MappingTarget = "Attribute"
	// TargetGroups makes the values the names of the groups the user
	// belongs to.
	TargetGroups MappingTarget = "Groups"
	// TargetManager makes the value the identity of the user's manager.
	TargetManager MappingTarget = "Manager"
)

// AttributeMapping computes one directory attribute from a row: from a
// column or from a template, then through transforms, then checked.
// +kubebuilder:validation:XValidation:rule="(has(self.column) ? 1 : 0) + (has(self.template) ? 1 : 0) + (has(self.value) ? 1 : 0) == 1",message="spec.mapping: each entry sets exactly one of column, template or value"
// +kubebuilder:validation:XValidation:rule="!has(self.target) || self.target == 'Attribute' || !has(self.identity) || !self.identity",message="spec.mapping: the identity entry has target Attribute"
// +kubebuilder:validation:XValidation:rule="!has(self.target) || self.target != 'Manager' || !has(self.split)",message="spec.mapping: an entry with target Manager takes one value, without split"
type AttributeMapping struct {
	// attribute is the directory attribute written, such as "userName",
	// "name.givenName", "emails" (SCIM), "mail" (LDAP) or a column (SQL).
	// With target Manager it is the attribute that holds the reference to
	// the manager's entry ("manager" in LDAP, the enterprise extension's
	// manager in SCIM, a column in SQL); with target Groups it only names
	// the entry.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	Attribute string `json:"attribute"`

	// column is the CSV column (header name) the value comes from.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +optional
	Column string `json:"column,omitempty"`

	// template computes the value with a Go template over the row's
	// columns, as in "{{.first_name}}.{{.last_name}}@corp.example".
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	Template string `json:"template,omitempty"`

	// value is a constant written on every user.
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	Value *string `json:"value,omitempty"`

	// identity marks the entry that maps the directory's identity
	// attribute. Exactly one entry is marked.
	// +optional
	Identity bool `json:"identity,omitempty"`

	// transforms are applied in order to the value.
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +optional
	Transforms []Transform `json:"transforms,omitempty"`

	// default is used when the value is empty after the transforms.
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	Default *string `json:"default,omitempty"`

	// required makes an empty value an error on the row's line.
	// +optional
	Required bool `json:"required,omitempty"`

	// split turns the value into several values (a multi-valued attribute)
	// at every occurrence of this separator.
	// +kubebuilder:validation:MaxLength=8
	// +optional
	Split string `json:"split,omitempty"`

	// check validates each value: Email, Boolean or Date (RFC 3339 date,
	// YYYY-MM-DD). A value that fails is an error on the row's line.
	// +kubebuilder:validation:Enum=Email;Boolean;Date
	// +optional
	Check string `json:"check,omitempty"`

	// target says what the values become: Attribute (the default) writes
	// them to attribute. Groups makes them the names of the groups the
	// user is a member of (use split for several), kept in step in the
	// directory's groups (its spec.<provider>.groups). Manager makes the
	// value the identity of the user's manager: once the users are
	// written, it is resolved to the directory's reference to the
	// manager's entry and written to attribute.
	// +optional
	Target MappingTarget `json:"target,omitempty"`
}

// TransformType names a transform of a value.
// +kubebuilder:validation:Enum=Trim;Lower;Upper;RegexReplace;DateFormat
type TransformType string

// Transform types.
const (
	TransformTrim         TransformType = "Trim"
	TransformLower        TransformType = "Lower"
	TransformUpper        TransformType = "Upper"
	TransformRegexReplace TransformType = "RegexReplace"
	TransformDateFormat   TransformType = "DateFormat"
)

// Checks of spec.mapping[].check.
const (
	CheckEmail   = "Email"
	CheckBoolean = "Boolean"
	CheckDate    = "Date"
)

// Transform changes a value.
// +kubebuilder:validation:XValidation:rule="self.type != 'RegexReplace' || has(self.pattern)",message="spec.mapping.transforms: RegexReplace needs pattern (and replacement)"
// +kubebuilder:validation:XValidation:rule="self.type != 'DateFormat' || (has(self.fromLayout) && has(self.toLayout))",message="spec.mapping.transforms: DateFormat needs fromLayout and toLayout"
type Transform struct {
	// type is Trim (leading and trailing space), Lower, Upper,
	// RegexReplace (pattern → replacement, RE2 syntax, $1 for groups) or
	// DateFormat (fromLayout → toLayout, Go reference-time layouts such as
	// "02.01.2006" and "2006-01-02").
	Type TransformType `json:"type"`

	// pattern is the RE2 regular expression of RegexReplace.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Pattern string `json:"pattern,omitempty"`

	// replacement of RegexReplace; $1 … refer to groups.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Replacement string `json:"replacement,omitempty"`

	// fromLayout is the Go time layout DateFormat parses.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	FromLayout string `json:"fromLayout,omitempty"`

	// toLayout is the Go time layout DateFormat writes.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	ToLayout string `json:"toLayout,omitempty"`
}

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
