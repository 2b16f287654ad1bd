// Package credentials reads what a connection needs from Secrets (a
// password, a token, a CA bundle) for a spec field, with the error a
// person acts on, and tells a failure of TLS from others. Directories,
// sources and the mail relay share it.
package credentials

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"strings"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/failure"
	"github.com/userimport/user-import-operator/internal/keyread"
)

// IsTLSError tells whether err is a failure of TLS: a certificate not
// trusted, invalid or for another host, or a server that does not speak
// TLS.
func IsTLSError(err error) bool {
	var (
		unknown   x509.UnknownAuthorityError
		invalid   x509.CertificateInvalidError
		hostname  x509.HostnameError
		verifyErr *tls.CertificateVerificationError
		recordErr tls.RecordHeaderError
		alert     tls.AlertError
	)
	if errors.As(err, &unknown) || errors.As(err, &invalid) || errors.As(err, &hostname) ||
		errors.As(err, &verifyErr) || errors.As(err, &recordErr) || errors.As(err, &alert) {
		return true
	}
	// Some clients (go-ldap's StartTLS) flatten the failure into a message.
	msg := err.Error()
	return strings.Contains(msg, "TLS handshake failed") || strings.Contains(msg, "tls: ") || strings.Contains(msg, "x509: ")
}

// SecretValue reads the Secret key ref for the spec field named field
// (e.g. "spec.ldap.bindPassword"); the error says which field, Secret and
// key, with the reason SecretNotFound or InvalidConfig.
func SecretValue(ctx context.Context, secrets keyread.KeyReader, field string, ref v1alpha1.SecretKeyRef) ([]byte, error) {
	if secrets == nil {
		return nil, failure.Errorf(v1alpha1.ReasonSecretNotFound, "%s: Secret %s: no way to read Secrets", field, ref.Name)
	}
	b, err := secrets(ctx, ref.Name, ref.Key)
	if err != nil {
		reason := v1alpha1.ReasonSecretNotFound
		if errors.Is(err, keyread.ErrInvalidName) {
			reason = v1alpha1.ReasonInvalidConfig
		}
		return nil, failure.Errorf(reason, "%s: %v", field, err)
	}
	return b, nil
}

// CertPool reads the PEM certificates of a caBundle (the Secret key ref of
// field) into a pool that trusts them alone.
func CertPool(ctx context.Context, secrets keyread.KeyReader, field string, ref v1alpha1.SecretKeyRef) (*x509.CertPool, error) {
	pem, err := SecretValue(ctx, secrets, field, ref)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, failure.Errorf(v1alpha1.ReasonInvalidConfig, "%s: key %s of Secret %s holds no PEM certificate", field, ref.Key, ref.Name)
	}
	return pool, nil
}
