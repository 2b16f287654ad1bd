// Package runcontract is what the controller and the worker agree on: the
// stages a worker runs, how its run ends (the Outcome, which a Job's
// worker leaves as its termination message), its exit statuses, the paths
// it reads, and the keys of the Secrets it writes. Both sides import it;
// it imports neither.
package runcontract

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/userimport/user-import-operator/api/v1alpha1"
)

// Stage is the part of an import a worker runs.
type Stage string

const (
	// StagePreview computes the changes without writing them.
	StagePreview Stage = "Preview"
	// StageImport writes the changes.
	StageImport Stage = "Import"
)

// ExitRejected is the exit status of a worker that refused its input: the
// Job fails at once (podFailurePolicy) instead of retrying what would be
// refused again.
const ExitRejected = 5

// Paths and names the Job gives the worker.
const (
	// SecretsDir holds one directory per Secret the worker needs: key K of
	// Secret S is the file SecretsDir/S/K.
	SecretsDir = "/var/run/userimport/secrets"
	// SourceDir holds the CSV file of a ConfigMap or Secret source, as
	// SourceDir/SourceFile.
	SourceDir = "/var/run/userimport/source"
	// SourceFile is the name of the CSV file in SourceDir.
	SourceFile = "data.csv"
	// TemplatesDir holds the invitation templates ConfigMap: key K of
	// ConfigMap C is the file TemplatesDir/C/K.
	TemplatesDir = "/var/run/userimport/templates"
	// TmpDir is a writable emptyDir where the worker downloads http sources.
	TmpDir = "/tmp"
	// EnvDirectory is the environment variable holding the JSON of the
	// UserDirectory's spec (references to Secrets only, never their values).
	EnvDirectory = "UIO_DIRECTORY"
	// TerminationLogPath is where the worker writes its Outcome.
	TerminationLogPath = "/dev/termination-log"
)

// SpecDigest identifies what an import reads and writes: its spec with
// spec.action aside. A preview stays valid while the digest is the same.
func SpecDigest(spec v1alpha1.UserImportSpec) string {
	spec.Action = ""
	b, _ := json.Marshal(spec)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// CheckIdentity refuses an import whose identity entry writes another
// attribute than the one its directory identifies users by: rows would be
// matched by one attribute and looked up by another, so every user would
// look new.
func CheckIdentity(spec v1alpha1.UserImportSpec, dir v1alpha1.UserDirectorySpec) error {
	for _, m := range spec.Mapping {
		if m.Identity && m.Attribute != dir.IdentityAttribute {
			return fmt.Errorf("spec.mapping: the identity entry maps attribute %q, but UserDirectory %s identifies users by %q",
				m.Attribute, spec.DirectoryRef.Name, dir.IdentityAttribute)
		}
	}
	return nil
}
