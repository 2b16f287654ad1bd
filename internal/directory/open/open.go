// Package open opens the provider a UserDirectory spec names.
package open

import (
	"context"
	"errors"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/directory/ldap"
	"github.com/userimport/user-import-operator/internal/directory/scim"
	sqldir "github.com/userimport/user-import-operator/internal/directory/sql"
)

// Options builds the provider options from a UserDirectory spec, with the
// API's defaults for fields the API server did not default (specs read
// from files).
func Options(spec v1alpha1.UserDirectorySpec) directory.Options {
	o := directory.Options{
		IdentityAttribute: spec.IdentityAttribute,
		ManagedOnly:       spec.ManagedUsers.Scope != v1alpha1.UserScopeAll,
		MarkerAttribute:   spec.ManagedUsers.MarkerAttribute,
		MarkerValue:       spec.ManagedUsers.MarkerValue,
		Concurrency:       int(spec.Execution.Concurrency),
		RateLimit:         int(spec.Execution.RateLimit),
		MaxRetries:        5,
	}
	if o.MarkerAttribute == "" {
		o.MarkerAttribute = "userImportManagedBy"
	}
	if o.MarkerValue == "" {
		o.MarkerValue = "user-import-operator"
	}
	if o.Concurrency <= 0 {
		o.Concurrency = 4
	}
	return o
}

// Open opens the directory of spec.
func Open(ctx context.Context, spec v1alpha1.UserDirectorySpec, secrets directory.SecretGetter) (directory.Directory, error) {
	opts := Options(spec)
	switch {
	case spec.SCIM != nil:
		return scim.New(ctx, spec.SCIM, opts, secrets)
	case spec.LDAP != nil:
		return ldap.New(ctx, spec.LDAP, opts, secrets)
	case spec.SQL != nil:
		return sqldir.New(ctx, spec.SQL, opts, secrets)
	}
	return nil, directory.Errorf(directory.ReasonInvalidConfig, "spec: none of scim, ldap or sql is set")
}

// ErrNoDirectory is returned for a spec without a directory type.
var ErrNoDirectory = errors.New("no directory type")
