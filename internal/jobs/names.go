// Package jobs builds the Kubernetes objects that run a preview or an import
// of a UserImport: the batch/v1 Job, the worker's ServiceAccount, Role and
// RoleBinding, and the empty report Secret. Every builder is a pure function
// of its arguments, so that the controller can rebuild an object at any time
// and find it again by its deterministic name. What the worker in the Job
// relies on (paths, exit statuses, its outcome) is in runcontract.
package jobs

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/dnsname"
	"github.com/userimport/user-import-operator/internal/runcontract"
)

// Names the Job builder sets on what it builds.
const (
	// ContainerName is the name of the worker container.
	ContainerName = "worker"
	// WorkerUID is the user the worker runs as (distroless "nonroot").
	WorkerUID int64 = 65532
)

// Labels set on every object this package builds.
const (
	LabelName      = "app.kubernetes.io/name"
	LabelInstance  = "app.kubernetes.io/instance"
	LabelComponent = "app.kubernetes.io/component"
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// AppName is the value of LabelName and LabelManagedBy.
	AppName = "user-import-operator"
	// JobNameLabel is the label the Job controller sets on its pods.
	JobNameLabel = "batch.kubernetes.io/job-name"
	// JobUIDLabel is the label holding the UID of the Job on its pods; it
	// tells the pods of a Job from those of an earlier Job of that name.
	JobUIDLabel = "batch.kubernetes.io/controller-uid"
)

// shortHash is the first 8 hex digits of the SHA-256 of parts joined.
func shortHash(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "/")))
	return hex.EncodeToString(sum[:])[:8]
}

// JobName is the deterministic name of the Job running stage of imp:
// "<import>-<stage>-<hash of UID and stage>". A restarted controller finds
// the Job by this name and adopts it instead of starting a second one.
func JobName(imp *v1alpha1.UserImport, stage runcontract.Stage) string {
	s := strings.ToLower(string(stage))
	return dnsname.Join(imp.Name+"-"+s, shortHash(string(imp.UID), string(stage)), dnsname.MaxLength)
}

// ServiceAccountName is the name of the ServiceAccount, Role and
// RoleBinding of the worker of imp: "userimport-worker-<import>", with a
// hash in place of the end of a long name.
func ServiceAccountName(imp *v1alpha1.UserImport) string {
	n := "userimport-worker-" + imp.Name
	if len(n) <= dnsname.MaxLength {
		return n
	}
	return dnsname.Join(n, shortHash(imp.Name), dnsname.MaxLength)
}

// ReportSecretName is the name of the Secret the worker writes the
// per-row report to: "<import>-report". Import names are at most 253
// characters; a longer result is shortened with a hash.
func ReportSecretName(imp *v1alpha1.UserImport) string { return secretName(imp, "-report") }

// CodesKeySecretName is the name of the Secret holding the key the
// import's recovery codes are derived from: "<import>-codes-key".
func CodesKeySecretName(imp *v1alpha1.UserImport) string { return secretName(imp, "-codes-key") }

// CodesSecretName is the name of the n-th Secret holding the import's
// recovery codes: "<import>-codes-<n>", from 0.
func CodesSecretName(imp *v1alpha1.UserImport, n int) string {
	return secretName(imp, "-codes-"+strconv.Itoa(n))
}

// secretName is the import's name with suffix, shortened with a hash of
// the name when the result would pass 253 characters.
func secretName(imp *v1alpha1.UserImport, suffix string) string {
	n := imp.Name + suffix
	if len(n) <= 253 {
		return n
	}
	return imp.Name[:253-len(suffix)-9] + "-" + shortHash(imp.Name) + suffix
}

// Labels are the labels of every object built for stage of imp; an empty
// stage gives the labels shared by both stages.
func Labels(imp *v1alpha1.UserImport, stage runcontract.Stage) map[string]string {
	l := map[string]string{
		LabelName:      AppName,
		LabelInstance:  truncateLabel(imp.Name),
		LabelManagedBy: AppName,
	}
	if stage != "" {
		l[LabelComponent] = strings.ToLower(string(stage))
	}
	return l
}

// truncateLabel fits v into a label value (63 characters).
func truncateLabel(v string) string {
	if len(v) <= dnsname.MaxLength {
		return v
	}
	return dnsname.Join(v, shortHash(v), dnsname.MaxLength)
}
