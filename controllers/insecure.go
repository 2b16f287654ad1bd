package controllers

import (
	"strings"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/conditions"
)

// directoryInsecure lists the fields of a directory's spec that allow a
// connection in clear (or to a server nobody verified).
func directoryInsecure(spec v1alpha1.UserDirectorySpec) []string {
	var on []string
	if s := spec.SCIM; s != nil && s.Insecure {
		on = append(on, "spec.scim.insecure")
	}
	if l := spec.LDAP; l != nil && l.Insecure {
		on = append(on, "spec.ldap.insecure")
	}
	if q := spec.SQL; q != nil && q.Insecure {
		on = append(on, "spec.sql.insecure")
	}
	if m := spec.Mail; m != nil && m.Insecure {
		on = append(on, "spec.mail.insecure")
	}
	return on
}

// sourceInsecure lists the fields of an import's source that allow it
// in clear.
func sourceInsecure(src v1alpha1.ImportSource) []string {
	var on []string
	if h := src.HTTP; h != nil && h.Insecure {
		on = append(on, "spec.source.http.insecure")
	}
	if s := src.S3; s != nil && s.Insecure {
		on = append(on, "spec.source.s3.insecure")
	}
	return on
}

// setInsecureTransport sets the condition InsecureTransport while any
// of fields is set, and removes it otherwise: a person scanning
// conditions sees which objects send credentials or users in clear.
func setInsecureTransport(obj conditions.Object, fields []string) {
	if len(fields) == 0 {
		conditions.Remove(obj, v1alpha1.ConditionInsecureTransport)
		return
	}
	conditions.MarkTrue(obj, v1alpha1.ConditionInsecureTransport, v1alpha1.ReasonInsecureAllowed,
		"%s allows credentials and users to travel in clear, or to a server that is not verified", strings.Join(fields, ", "))
}
