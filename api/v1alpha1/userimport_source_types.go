package v1alpha1

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
