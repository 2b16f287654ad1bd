// Package open builds the provider a UserDirectory's spec describes. It is
// the one place that knows every provider, so that the controller and the
// worker open directories the same way.
package open

import (
	"context"
	"strings"
	"time"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/directory/ldap"
	"github.com/userimport/user-import-operator/internal/directory/scim"
	sqldir "github.com/userimport/user-import-operator/internal/directory/sql"
	"github.com/userimport/user-import-operator/internal/failure"
	"github.com/userimport/user-import-operator/internal/keyread"
)

// Defaults applied when the spec leaves a field empty (objects built
// outside the API server, which applies the CRD defaults).
const (
	DefaultSCIMMarkerAttribute = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:organization"
	DefaultLDAPMarkerAttribute = "businessCategory"
	DefaultSQLMarkerAttribute  = "userImportManagedBy"
	DefaultMarkerValue         = "user-import-operator"
	DefaultConcurrency         = 4
	DefaultBatchSize           = 100
	DefaultSQLBatchSize        = 1000
	DefaultMaxRetries          = 5
	DefaultRequestTimeout      = 30 * time.Second
)

// Type names the provider of spec: SCIM, LDAP, SQL, or "" when none is set.
func Type(spec v1alpha1.UserDirectorySpec) string {
	switch {
	case spec.SCIM != nil:
		return "SCIM"
	case spec.LDAP != nil:
		return "LDAP"
	case spec.SQL != nil:
		return "SQL"
	}
	return ""
}

// BatchSize is the number of changes per batch spec asks for, or its
// type's default: an SQL batch is one COPY, and a thousand rows a
// transaction cost the database a tenth of what a hundred do, while a
// SCIM /Bulk request or an LDAP step stays small enough to retry.
func BatchSize(spec v1alpha1.UserDirectorySpec) int32 {
	switch {
	case spec.Execution.BatchSize > 0:
		return spec.Execution.BatchSize
	case Type(spec) == "SQL":
		return DefaultSQLBatchSize
	}
	return DefaultBatchSize
}

// Options are the provider options spec asks for.
func Options(spec v1alpha1.UserDirectorySpec) directory.Options {
	o := directory.Options{
		IdentityAttribute: spec.IdentityAttribute,
		ManagedOnly:       spec.ManagedUsers.Scope != v1alpha1.UserScopeAll,
		MarkerAttribute:   spec.ManagedUsers.MarkerAttribute,
		MarkerValue:       spec.ManagedUsers.MarkerValue,
		Concurrency:       int(spec.Execution.Concurrency),
		RateLimit:         int(spec.Execution.RateLimit),
		MaxRetries:        DefaultMaxRetries,
		RequestTimeout:    time.Duration(spec.Execution.RequestTimeoutSeconds) * time.Second,
	}
	if o.RequestTimeout <= 0 {
		o.RequestTimeout = DefaultRequestTimeout
	}
	if o.MarkerAttribute == "" {
		// Each type has its own: the marker must be in the directory's schema.
		switch Type(spec) {
		case "SCIM":
			o.MarkerAttribute = DefaultSCIMMarkerAttribute
		case "LDAP":
			o.MarkerAttribute = DefaultLDAPMarkerAttribute
		default:
			o.MarkerAttribute = DefaultSQLMarkerAttribute
		}
	}
	if o.MarkerValue == "" {
		o.MarkerValue = DefaultMarkerValue
	}
	if o.Concurrency < 1 {
		o.Concurrency = DefaultConcurrency
	}
	return o
}

// Directory builds the directory spec describes, with Options(spec).
func Directory(ctx context.Context, spec v1alpha1.UserDirectorySpec, secrets keyread.KeyReader) (directory.Directory, error) {
	return DirectoryWith(ctx, spec, Options(spec), secrets)
}

// DirectoryWith builds the directory spec describes with the given options.
// Errors are *failure.Error values whose reason tells a person what to
// fix.
func DirectoryWith(ctx context.Context, spec v1alpha1.UserDirectorySpec, opts directory.Options, secrets keyread.KeyReader) (directory.Directory, error) {
	switch Type(spec) {
	case "SCIM":
		return scim.New(ctx, spec.SCIM, opts, secrets)
	case "LDAP":
		return ldap.New(ctx, spec.LDAP, opts, secrets)
	case "SQL":
		return sqldir.New(ctx, spec.SQL, opts, secrets)
	}
	return nil, failure.Errorf(v1alpha1.ReasonInvalidConfig, "exactly one of spec.scim, spec.ldap or spec.sql must be set")
}

// ReservedAttributes are the attributes of spec's users that the operator
// writes itself and a mapping may not: the managed marker (a row that
// wrote it could exempt its user from deprovisioning), the invitation
// state and the recovery code with its expiry.
func ReservedAttributes(spec v1alpha1.UserDirectorySpec) map[string]string {
	r := map[string]string{Options(spec).MarkerAttribute: "spec.managedUsers.markerAttribute"}
	if i := spec.Invitations; i != nil {
		r[i.InvitedAttribute] = "spec.invitations.invitedAttribute"
		r[i.PendingAttribute] = "spec.invitations.pendingAttribute"
	}
	if c := spec.RecoveryCodes; c != nil {
		r[c.Attribute] = "spec.recoveryCodes.attribute"
		r[c.ExpiresAttribute] = "spec.recoveryCodes.expiresAttribute"
		switch Type(spec) {
		case "LDAP":
			r["userPassword"] = "spec.recoveryCodes (the password)"
		case "SCIM":
			r["password"] = "spec.recoveryCodes (the password)"
		}
	}
	if l := spec.LDAP; l != nil && l.Vendor == v1alpha1.LDAPActiveDirectory {
		// The account state and the password are the operator's: a row
		// that wrote them could enable an account a full import disabled.
		r["userAccountControl"] = "spec.ldap.vendor ActiveDirectory (the account state)"
		r["unicodePwd"] = "spec.ldap.vendor ActiveDirectory (the password)"
		r["pwdLastSet"] = "spec.ldap.vendor ActiveDirectory (the password's age)"
	}
	delete(r, "")
	return r
}

// CheckReserved refuses a mapping of imp that writes an attribute the
// operator keeps for itself in dir (ReservedAttributes); attribute names
// compare without case, as LDAP and SCIM compare them.
func CheckReserved(imp v1alpha1.UserImportSpec, dir v1alpha1.UserDirectorySpec) error {
	reserved := ReservedAttributes(dir)
	for i, m := range imp.Mapping {
		if m.Target == v1alpha1.TargetGroups {
			continue // its attribute only names the entry
		}
		for attr, field := range reserved {
			if strings.EqualFold(m.Attribute, attr) {
				return failure.Errorf(v1alpha1.ReasonInvalidMapping,
					"spec.mapping[%d]: attribute %q is written by the operator itself (UserDirectory %s %s): a mapping may not write it", i, m.Attribute, imp.DirectoryRef.Name, field)
			}
		}
	}
	return nil
}
