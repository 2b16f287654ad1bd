package v1alpha1

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
