package v1alpha1

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
