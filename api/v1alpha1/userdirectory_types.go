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

// RecoveryCodeScheme is how a recovery code is stored.
// +kubebuilder:validation:Enum=SSHA512;SSHA256;Argon2id;Bcrypt
type RecoveryCodeScheme string

const (
	// SchemeSSHA512 and SchemeSSHA256: salted SHA-2 in LDAP userPassword
	// form ({SSHA512}...), which slapd verifies on bind with its pw-sha2
	// module. LDAP only.
	SchemeSSHA512 RecoveryCodeScheme = "SSHA512"
	SchemeSSHA256 RecoveryCodeScheme = "SSHA256"
	// SchemeArgon2id: an argon2id PHC string; {ARGON2}-prefixed in LDAP,
	// where slapd's argon2 module verifies it.
	SchemeArgon2id RecoveryCodeScheme = "Argon2id"
	// SchemeBcrypt: a bcrypt hash. SQL only.
	SchemeBcrypt RecoveryCodeScheme = "Bcrypt"
	// SchemePlain is not a value of the API: a SCIM server receives the
	// code in its write-only password attribute and hashes it itself.
	SchemePlain RecoveryCodeScheme = "Plain"
)

// DirectoryRecoveryCodes says where a directory keeps recovery codes.
type DirectoryRecoveryCodes struct {
	// attribute holds the code's hash: for LDAP userPassword (the
	// default), so that the user binds with the code; for SQL a column
	// (required) that holds a PHC string. SCIM always writes the
	// write-only password attribute, which the server hashes; attribute
	// must then be empty or "password".
	// +kubebuilder:validation:MaxLength=256
	// +optional
	Attribute string `json:"attribute,omitempty"`

	// scheme is the hash: SSHA512 (the LDAP default), SSHA256 or Argon2id
	// for LDAP; Argon2id (the SQL default) or Bcrypt for SQL. Not used by
	// SCIM.
	// +optional
	Scheme RecoveryCodeScheme `json:"scheme,omitempty"`

	// memoryKiB is the memory of Argon2id in KiB (default 19456, 19 MiB).
	// +kubebuilder:validation:Minimum=8
	// +kubebuilder:validation:Maximum=4194304
	// +optional
	MemoryKiB int32 `json:"memoryKiB,omitempty"`
	// iterations is the number of Argon2id passes (default 2).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100
	// +optional
	Iterations int32 `json:"iterations,omitempty"`
	// parallelism is the number of Argon2id lanes (default 1).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=64
	// +optional
	Parallelism int32 `json:"parallelism,omitempty"`

	// bcryptCost is the cost of Bcrypt (default 10).
	// +kubebuilder:validation:Minimum=4
	// +kubebuilder:validation:Maximum=31
	// +optional
	BcryptCost int32 `json:"bcryptCost,omitempty"`

	// expiresAttribute records when a code expires (RFC 3339), for imports
	// with recoveryCodes.expiresAfter. On SCIM, whose password is never
	// returned, it is also how an import tells which users hold a code
	// (generate: WhereMissing).
	// +kubebuilder:validation:MaxLength=256
	// +optional
	ExpiresAttribute string `json:"expiresAttribute,omitempty"`
}

// DirectoryInvitations says how a directory records invitations.
type DirectoryInvitations struct {
	// invitedAttribute holds when the user was last invited (RFC 3339), or
	// "due" from the moment an import that invites new users creates the
	// user until its invitation is sent: invitations are driven by this
	// record, so a resumed import neither repeats nor loses one. An SQL
	// column, an LDAP attribute or a SCIM attribute the server keeps.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	InvitedAttribute string `json:"invitedAttribute"`

	// pendingAttribute and pendingValue recognise a pending user: one whose
	// pendingAttribute holds pendingValue (an SQL status column, an LDAP
	// attribute, a SCIM attribute). Without them no user is pending.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	PendingAttribute string `json:"pendingAttribute,omitempty"`
	// pendingValue is the value of pendingAttribute on a pending user.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	PendingValue string `json:"pendingValue,omitempty"`
}

// MailTLS says how the connection to a mail relay is protected.
// +kubebuilder:validation:Enum=StartTLS;TLS;None
type MailTLS string

const (
	// MailStartTLS: plain connection upgraded with STARTTLS, which the
	// relay must offer (submission, port 587).
	MailStartTLS MailTLS = "StartTLS"
	// MailImplicitTLS: TLS from the first byte (port 465).
	MailImplicitTLS MailTLS = "TLS"
	// MailNoTLS: no encryption; only with insecure: true.
	MailNoTLS MailTLS = "None"
)

// MailRelay is an SMTP relay.
// +kubebuilder:validation:XValidation:rule="self.tls != 'None' || (has(self.insecure) && self.insecure)",message="spec.mail.tls None sends passwords and mail in clear: set spec.mail.insecure: true to allow it"
type MailRelay struct {
	// host name or address of the relay.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	Host string `json:"host"`

	// port of the relay; defaults to 587.
	// +kubebuilder:default=587
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	// +optional
	Port int32 `json:"port,omitempty"`

	// tls: StartTLS (the default: the relay must offer it), TLS (implicit,
	// as on port 465) or None (plain; needs insecure: true).
	// +kubebuilder:default=StartTLS
	// +optional
	TLS MailTLS `json:"tls,omitempty"`

	// insecure allows tls: None.
	// +optional
	Insecure bool `json:"insecure,omitempty"`

	// caBundle is a Secret key holding PEM certificates that sign the
	// relay's certificate, when it is not signed by a public CA.
	// +optional
	CABundle *SecretKeyRef `json:"caBundle,omitempty"`

	// authUsername and authPassword sign in to the relay (SMTP AUTH), as
	// the Prometheus operator's e-mail receivers do; without them no
	// AUTH is sent.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	AuthUsername string `json:"authUsername,omitempty"`
	// +optional
	AuthPassword *SecretKeyRef `json:"authPassword,omitempty"`

	// from is the sender address of every mail, such as
	// "HR onboarding <onboarding@example.com>".
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=320
	From string `json:"from"`

	// replyTo, when set, is where replies go.
	// +kubebuilder:validation:MaxLength=320
	// +optional
	ReplyTo string `json:"replyTo,omitempty"`

	// rateLimit is the most messages sent per second; 0 is no limit.
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=0
	// +optional
	RateLimit int32 `json:"rateLimit,omitempty"`
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

// SCIMDirectory connects to a SCIM 2.0 service provider.
// +kubebuilder:validation:XValidation:rule="self.url.startsWith('https://') || (has(self.insecure) && self.insecure)",message="spec.scim.url: http:// sends the token and every user in clear; use https://, or set spec.scim.insecure: true"
// +kubebuilder:validation:XValidation:rule="!has(self.auth) || !has(self.auth.oauth2) || self.auth.oauth2.tokenURL.startsWith('https://') || (has(self.insecure) && self.insecure)",message="spec.scim.auth.oauth2.tokenURL: http:// sends the client secret in clear; use https://, or set spec.scim.insecure: true"
type SCIMDirectory struct {
	// url is the base URL of the SCIM service, under which /Users,
	// /ServiceProviderConfig and /Bulk are found, for example
	// "https://idp.example.com/scim/v2".
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.matches('^https?://[^/]+')",message="spec.scim.url must be an http:// or https:// URL"
	URL string `json:"url"`

	// auth says how the operator authenticates to the SCIM service.
	// +optional
	Auth SCIMAuth `json:"auth,omitempty"`

	// caBundle is a Secret key holding PEM certificates that sign the
	// server's certificate, when it is not signed by a public CA.
	// +optional
	CABundle *SecretKeyRef `json:"caBundle,omitempty"`

	// disableBulk makes imports send one request per change even when the
	// service offers /Bulk.
	// +optional
	DisableBulk bool `json:"disableBulk,omitempty"`

	// groups turns on group memberships (a mapping entry with target
	// Groups) in the service's /Groups.
	// +optional
	Groups *SCIMGroups `json:"groups,omitempty"`

	// insecure allows an http:// url or token URL in clear: without it, the API server refuses
	// a cleartext URL. The object then carries the condition
	// InsecureTransport.
	// +optional
	Insecure bool `json:"insecure,omitempty"`
}

// SCIMGroups says how an import keeps SCIM groups. Groups it creates carry
// the managed-user marker value in externalId; memberships are removed
// only from those.
type SCIMGroups struct {
	// maxPatchOperations is the most members one PATCH request adds or
	// removes; larger changes are sent in several requests. Some services
	// refuse more than 100.
	// +kubebuilder:default=100
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	// +optional
	MaxPatchOperations int32 `json:"maxPatchOperations,omitempty"`
}

// SCIMAuth holds at most one authentication method.
// +kubebuilder:validation:XValidation:rule="(has(self.bearerToken) ? 1 : 0) + (has(self.basic) ? 1 : 0) + (has(self.oauth2) ? 1 : 0) <= 1",message="spec.scim.auth: at most one of bearerToken, basic or oauth2 may be set"
type SCIMAuth struct {
	// bearerToken is a Secret key holding a token sent as
	// "Authorization: Bearer <token>".
	// +optional
	BearerToken *SecretKeyRef `json:"bearerToken,omitempty"`

	// basic is a Secret whose keys "username" and "password" are sent as
	// HTTP basic authentication.
	// +optional
	Basic *LocalObjectReference `json:"basic,omitempty"`

	// oauth2 obtains a token with the OAuth2 client-credentials grant.
	// +optional
	OAuth2 *OAuth2ClientCredentials `json:"oauth2,omitempty"`
}

// OAuth2ClientCredentials configures the OAuth2 client-credentials grant.
type OAuth2ClientCredentials struct {
	// tokenURL is the token endpoint of the authorization server.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.matches('^https?://[^/]+')",message="spec.scim.auth.oauth2.tokenURL must be an http:// or https:// URL"
	TokenURL string `json:"tokenURL"`

	// clientSecretRef names a Secret whose keys "clientID" and
	// "clientSecret" hold the client's credentials.
	ClientSecretRef LocalObjectReference `json:"clientSecretRef"`

	// scopes requested with the token.
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +optional
	Scopes []string `json:"scopes,omitempty"`
}

// LDAPDirectory connects to an LDAP directory.
// +kubebuilder:validation:XValidation:rule="!has(self.groups) || !has(self.groups.objectClass) || self.groups.objectClass != 'group' || (has(self.vendor) && self.vendor == 'ActiveDirectory')",message="spec.ldap.groups.objectClass group is Active Directory's: set spec.ldap.vendor: ActiveDirectory"
// +kubebuilder:validation:XValidation:rule="self.url.startsWith('ldaps://') || (has(self.startTLS) && self.startTLS) || (has(self.insecure) && self.insecure)",message="spec.ldap.url: ldap:// without startTLS sends the bind password and every user in clear; use ldaps:// or startTLS: true, or set spec.ldap.insecure: true"
type LDAPDirectory struct {
	// vendor is Generic (OpenLDAP and other LDAPv3 servers, the default)
	// or ActiveDirectory. ActiveDirectory changes the defaults
	// (userFilter (objectClass=user); objectClasses top, person,
	// organizationalPerson, user; rdnAttribute cn; groups of objectClass
	// group) and how accounts are kept: the account state is bit 0x2 of
	// userAccountControl, changed with the other bits kept; new users get
	// a password (their recovery code, or an unusable random one) so that
	// they are enabled; recovery codes go to unicodePwd, over TLS only;
	// mustChange sets pwdLastSet to 0.
	// +kubebuilder:default=Generic
	// +optional
	Vendor LDAPVendor `json:"vendor,omitempty"`

	// url of the server: ldap://host:389 or ldaps://host:636.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:XValidation:rule="self.matches('^ldaps?://[^/]+')",message="spec.ldap.url must be an ldap:// or ldaps:// URL"
	URL string `json:"url"`

	// startTLS upgrades an ldap:// connection with the StartTLS operation
	// before binding.
	// +optional
	StartTLS bool `json:"startTLS,omitempty"`

	// insecure allows an ldap:// url without startTLS in clear: without it, the API server refuses
	// a cleartext URL. The object then carries the condition
	// InsecureTransport.
	// +optional
	Insecure bool `json:"insecure,omitempty"`

	// caBundle is a Secret key holding PEM certificates that sign the
	// server's certificate.
	// +optional
	CABundle *SecretKeyRef `json:"caBundle,omitempty"`

	// bindDN is the distinguished name the operator binds as.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	BindDN string `json:"bindDN"`

	// bindPassword is a Secret key holding the password of bindDN.
	BindPassword SecretKeyRef `json:"bindPassword"`

	// usersBaseDN is the subtree where users are searched and created,
	// for example "ou=people,dc=example,dc=com".
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	UsersBaseDN string `json:"usersBaseDN"`

	// userFilter narrows the search for users under usersBaseDN:
	// (objectClass=inetOrgPerson) by default, (objectClass=user) for
	// ActiveDirectory.
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:XValidation:rule="self.startsWith('(') && self.endsWith(')')",message="spec.ldap.userFilter must be an LDAP filter in parentheses"
	// +optional
	UserFilter string `json:"userFilter,omitempty"`

	// objectClasses given to the users an import creates: inetOrgPerson,
	// organizationalPerson, person, top by default; top, person,
	// organizationalPerson, user for ActiveDirectory.
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +optional
	ObjectClasses []string `json:"objectClasses,omitempty"`

	// rdnAttribute is the attribute that forms the relative distinguished
	// name of a new user, as in "uid=jdoe,ou=people,dc=example,dc=com":
	// uid by default, cn for ActiveDirectory.
	// +kubebuilder:validation:MaxLength=64
	// +optional
	RDNAttribute string `json:"rdnAttribute,omitempty"`

	// disable says how a user is deactivated. Without it, users are
	// disabled by setting the attribute "employeeType" to "disabled".
	// +optional
	Disable *LDAPDisable `json:"disable,omitempty"`

	// pageSize is the page size of the paged search of users.
	// +kubebuilder:default=500
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=10000
	// +optional
	PageSize int32 `json:"pageSize,omitempty"`

	// groups turns on group memberships (a mapping entry with target
	// Groups): groups are the entries of objectClass under baseDN, named
	// cn=<group name>.
	// +optional
	Groups *LDAPGroups `json:"groups,omitempty"`
}

// LDAPVendor names the kind of LDAP server.
// +kubebuilder:validation:Enum=Generic;ActiveDirectory
type LDAPVendor string

const (
	// LDAPGeneric is OpenLDAP or another LDAPv3 server.
	LDAPGeneric LDAPVendor = "Generic"
	// LDAPActiveDirectory is Microsoft Active Directory or Samba's AD DC.
	LDAPActiveDirectory LDAPVendor = "ActiveDirectory"
)

// LDAPGroupClass is the object class of LDAP groups.
// +kubebuilder:validation:Enum=groupOfNames;groupOfUniqueNames;posixGroup;group
type LDAPGroupClass string

// Group object classes.
const (
	GroupOfNames       LDAPGroupClass = "groupOfNames"
	GroupOfUniqueNames LDAPGroupClass = "groupOfUniqueNames"
	PosixGroup         LDAPGroupClass = "posixGroup"
	// ADGroup is Active Directory's group: members by DN in member, a
	// groupType and a sAMAccountName.
	ADGroup LDAPGroupClass = "group"
)

// LDAPGroups says where and how an import keeps LDAP groups. Groups it
// creates carry the managed-user marker value in description; memberships
// are removed only from those.
type LDAPGroups struct {
	// baseDN is the container of the groups, such as
	// "ou=groups,dc=example,dc=com".
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=1024
	BaseDN string `json:"baseDN"`

	// objectClass of the groups: groupOfNames (members in member, by DN,
	// the default), groupOfUniqueNames (uniqueMember, by DN) or posixGroup
	// (memberUid, by the user's rdnAttribute value; new groups get the
	// next free gidNumber). A groupOfNames or groupOfUniqueNames group
	// must have a member: a managed group whose last member leaves is
	// deleted. group is Active Directory's (the default for
	// ActiveDirectory): members by DN, created with groupType and a
	// sAMAccountName of the group's name.
	// +optional
	ObjectClass LDAPGroupClass `json:"objectClass,omitempty"`

	// groupType of the Active Directory groups an import creates:
	// -2147483646 (a global security group) by default.
	// +optional
	GroupType *int32 `json:"groupType,omitempty"`
}

// LDAPDisable says how an LDAP user is deactivated: exactly one of
// attribute or moveToDN.
// +kubebuilder:validation:XValidation:rule="has(self.attribute) != has(self.moveToDN)",message="spec.ldap.disable: set exactly one of attribute or moveToDN"
type LDAPDisable struct {
	// attribute is set to value on a deactivated user, and removed when the
	// user is activated again.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	Attribute string `json:"attribute,omitempty"`

	// value of attribute on deactivated users.
	// +kubebuilder:validation:MaxLength=256
	// +optional
	Value string `json:"value,omitempty"`

	// moveToDN is a container that deactivated users are moved to, such as
	// "ou=disabled,dc=example,dc=com".
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	MoveToDN string `json:"moveToDN,omitempty"`
}

// SQLDriver names a database driver.
// +kubebuilder:validation:Enum=postgres;sqlite
type SQLDriver string

const (
	// SQLDriverPostgres connects to PostgreSQL.
	SQLDriverPostgres SQLDriver = "postgres"
	// SQLDriverSQLite opens an SQLite database file.
	SQLDriverSQLite SQLDriver = "sqlite"
)

// SQLDirectory writes users to a database table.
// +kubebuilder:validation:XValidation:rule="!(has(self.activeColumn) && has(self.statusColumn))",message="spec.sql: set activeColumn (a boolean column) or statusColumn (a status text column), not both"
type SQLDirectory struct {
	// driver is postgres or sqlite.
	Driver SQLDriver `json:"driver"`

	// dsn is a Secret key holding the data source name: a PostgreSQL
	// connection URL, or an SQLite file path.
	DSN SecretKeyRef `json:"dsn"`

	// insecure allows a PostgreSQL DSN whose sslmode is below verify-ca
	// (disable, allow, prefer, require: the server is not verified, or the
	// connection may be in clear). Without it such a directory is refused
	// (InvalidConfig). The object then carries the condition
	// InsecureTransport.
	// +optional
	Insecure bool `json:"insecure,omitempty"`

	// table that holds one row per user, optionally schema-qualified.
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z_][A-Za-z0-9_]*(\\\\.[A-Za-z_][A-Za-z0-9_]*)?$')",message="spec.sql.table must be a table name, optionally schema-qualified (letters, digits, underscores)"
	Table string `json:"table"`

	// columns maps directory attributes to column names where they differ;
	// an attribute that is not listed is stored in the column of its name.
	// +kubebuilder:validation:MaxProperties=256
	// +optional
	Columns map[string]string `json:"columns,omitempty"`

	// activeColumn is a boolean column that is false for deactivated users
	// ("active" when neither it nor statusColumn is set).
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +optional
	ActiveColumn string `json:"activeColumn,omitempty"`

	// statusColumn, in place of activeColumn, is a column holding a status
	// text: inactiveValue marks a deactivated user, any other value (or
	// none) an active one. Creating or reactivating a user writes
	// activeValue.
	// +optional
	StatusColumn *SQLStatusColumn `json:"statusColumn,omitempty"`

	// groups turns on group memberships (a mapping entry with target
	// Groups), kept as rows of a membership table.
	// +optional
	Groups *SQLGroups `json:"groups,omitempty"`
}

// SQLGroups is a membership table: one row per user and group. A group is
// the set of rows with its name. Every row an import writes carries the
// managed-user marker value in markerColumn; a group is managed when all
// its rows do. Memberships are removed only from managed groups.
type SQLGroups struct {
	// table holds the memberships, optionally schema-qualified.
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z_][A-Za-z0-9_]*(\\\\.[A-Za-z_][A-Za-z0-9_]*)?$')",message="spec.sql.groups.table must be a table name, optionally schema-qualified (letters, digits, underscores)"
	Table string `json:"table"`

	// userColumn holds the user's identity.
	// +kubebuilder:default=user_identity
	// +kubebuilder:validation:MaxLength=128
	// +optional
	UserColumn string `json:"userColumn,omitempty"`

	// groupColumn holds the group's name.
	// +kubebuilder:default=group_name
	// +kubebuilder:validation:MaxLength=128
	// +optional
	GroupColumn string `json:"groupColumn,omitempty"`

	// markerColumn holds the managed-user marker value on the rows an
	// import writes.
	// +kubebuilder:default=managed_by
	// +kubebuilder:validation:MaxLength=128
	// +optional
	MarkerColumn string `json:"markerColumn,omitempty"`
}

// SQLStatusColumn is a status column of an SQL users table.
// +kubebuilder:validation:XValidation:rule="self.activeValue != self.inactiveValue",message="spec.sql.statusColumn: activeValue and inactiveValue must differ"
type SQLStatusColumn struct {
	// name of the column.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	Name string `json:"name"`

	// activeValue is written for active users, such as "active".
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	ActiveValue string `json:"activeValue"`

	// inactiveValue is written for deactivated users, such as "inactive".
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	InactiveValue string `json:"inactiveValue"`
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
