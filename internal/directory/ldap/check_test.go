package ldap

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
	"github.com/userimport/user-import-operator/internal/failure"
	"github.com/userimport/user-import-operator/internal/testpeer/slapd"
)

func TestCheck(t *testing.T) {
	s := slapd.Start(t, slapd.Options{})
	ctx := context.Background()

	t.Run("plain", func(t *testing.T) {
		caps, err := newDir(t, s, baseSpec(s), baseOpts()).Check(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if !caps.PagedSearch {
			t.Error("PagedSearch not detected")
		}
	})
	t.Run("StartTLS with CA", func(t *testing.T) {
		spec := baseSpec(s)
		spec.StartTLS = true
		spec.CABundle = &v1alpha1.SecretKeyRef{Name: "ldap", Key: "ca.crt"}
		d := newDir(t, s, spec, baseOpts())
		if _, err := d.Check(ctx); err != nil {
			t.Fatal(err)
		}
		mustApply(t, d, create("tls1", commonAttributes("tls1")))
	})
	t.Run("LDAPS with CA", func(t *testing.T) {
		spec := baseSpec(s)
		spec.URL = s.LDAPSURL
		spec.CABundle = &v1alpha1.SecretKeyRef{Name: "ldap", Key: "ca.crt"}
		d := newDir(t, s, spec, baseOpts())
		if _, err := d.Check(ctx); err != nil {
			t.Fatal(err)
		}
		mustApply(t, d, create("tls2", commonAttributes("tls2")))
		if len(listAll(t, d, nil)) != 2 {
			t.Error("users written over TLS not listed")
		}
	})
	wantReason := func(t *testing.T, spec *v1alpha1.LDAPDirectory, opts directory.Options, reason string, mention ...string) {
		t.Helper()
		_, err := newDir(t, s, spec, opts).Check(ctx)
		if got := failure.ReasonOf(err, v1alpha1.ReasonDirectoryError); got != reason {
			t.Fatalf("reason %s (%v), want %s", got, err, reason)
		}
		for _, m := range mention {
			if !strings.Contains(err.Error(), m) {
				t.Errorf("%q does not mention %q", err, m)
			}
		}
	}
	t.Run("LDAPS without CA", func(t *testing.T) {
		spec := baseSpec(s)
		spec.URL = s.LDAPSURL
		wantReason(t, spec, baseOpts(), v1alpha1.ReasonTLSError)
	})
	t.Run("StartTLS without CA", func(t *testing.T) {
		spec := baseSpec(s)
		spec.StartTLS = true
		wantReason(t, spec, baseOpts(), v1alpha1.ReasonTLSError)
	})
	t.Run("wrong password", func(t *testing.T) {
		spec := baseSpec(s)
		d, err := New(ctx, spec, baseOpts(), func(context.Context, string, string) ([]byte, error) { return []byte("wrong"), nil })
		if err != nil {
			t.Fatal(err)
		}
		defer d.Close()
		_, err = d.Check(ctx)
		if failure.ReasonOf(err, v1alpha1.ReasonDirectoryError) != v1alpha1.ReasonAuthenticationFailed {
			t.Fatalf("Check: %v", err)
		}
		// Writes fail the same way, at once, without retrying.
		start := time.Now()
		_, err = d.Apply(ctx, []directory.Change{create("x", commonAttributes("x"))})
		if failure.ReasonOf(err, v1alpha1.ReasonDirectoryError) != v1alpha1.ReasonAuthenticationFailed || time.Since(start) > 2*time.Second {
			t.Fatalf("Apply: %v after %v", err, time.Since(start))
		}
	})
	t.Run("unreachable", func(t *testing.T) {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		l.Close()
		spec := baseSpec(s)
		spec.URL = "ldap://" + addr
		wantReason(t, spec, baseOpts(), v1alpha1.ReasonUnreachable)
		// List retries, then fails: it never reports an empty directory.
		opts := baseOpts()
		opts.MaxRetries = 1
		err = newDir(t, s, spec, opts).List(ctx, nil, func(directory.User) error { return nil })
		if failure.ReasonOf(err, v1alpha1.ReasonDirectoryError) != v1alpha1.ReasonUnreachable {
			t.Fatalf("List: %v", err)
		}
	})
	t.Run("marker not in schema", func(t *testing.T) {
		opts := baseOpts()
		opts.MarkerAttribute = "userImportManagedBy"
		wantReason(t, baseSpec(s), opts, v1alpha1.ReasonSchemaMismatch, "userImportManagedBy", "businessCategory")
	})
	t.Run("marker not allowed by the object classes", func(t *testing.T) {
		opts := baseOpts()
		opts.MarkerAttribute = "gidNumber" // nis schema, posixAccount only
		wantReason(t, baseSpec(s), opts, v1alpha1.ReasonSchemaMismatch, "gidNumber", "not allowed")
	})
	t.Run("base DN missing", func(t *testing.T) {
		spec := baseSpec(s)
		spec.UsersBaseDN = "ou=nowhere," + s.Suffix
		wantReason(t, spec, baseOpts(), v1alpha1.ReasonInvalidConfig, spec.UsersBaseDN)
	})
	t.Run("moveToDN missing", func(t *testing.T) {
		spec := baseSpec(s)
		spec.Disable = &v1alpha1.LDAPDisable{MoveToDN: "ou=gone," + s.Suffix}
		wantReason(t, spec, baseOpts(), v1alpha1.ReasonInvalidConfig, "ou=gone,")
	})
}

func TestNewRejectsBadConfig(t *testing.T) {
	s := slapd.Start(t, slapd.Options{})
	ctx := context.Background()
	cases := map[string]func(*v1alpha1.LDAPDirectory, *directory.Options){
		"http URL":          func(sp *v1alpha1.LDAPDirectory, _ *directory.Options) { sp.URL = "http://127.0.0.1" },
		"StartTLS on ldaps": func(sp *v1alpha1.LDAPDirectory, _ *directory.Options) { sp.URL = s.LDAPSURL; sp.StartTLS = true },
		"bad base DN":       func(sp *v1alpha1.LDAPDirectory, _ *directory.Options) { sp.UsersBaseDN = "not a dn" },
		"bad filter":        func(sp *v1alpha1.LDAPDirectory, _ *directory.Options) { sp.UserFilter = "(objectClass=" },
		"bad marker name":   func(_ *v1alpha1.LDAPDirectory, o *directory.Options) { o.MarkerAttribute = "a b" },
		"CA without PEM": func(sp *v1alpha1.LDAPDirectory, _ *directory.Options) {
			sp.CABundle = &v1alpha1.SecretKeyRef{Name: "ldap", Key: "password"}
		},
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			spec, opts := baseSpec(s), baseOpts()
			mutate(spec, &opts)
			_, err := New(ctx, spec, opts, secrets(s))
			if failure.ReasonOf(err, v1alpha1.ReasonDirectoryError) != v1alpha1.ReasonInvalidConfig {
				t.Fatalf("want InvalidConfig, got %v", err)
			}
		})
	}
	spec := baseSpec(s)
	spec.BindPassword.Name = "missing"
	if _, err := New(ctx, spec, baseOpts(), secrets(s)); failure.ReasonOf(err, v1alpha1.ReasonDirectoryError) != v1alpha1.ReasonSecretNotFound {
		t.Fatalf("missing Secret: want SecretNotFound, got %v", err)
	}
}

func TestValidAttrName(t *testing.T) {
	for name, want := range map[string]bool{
		"uid": true, "givenName": true, "x-custom-1": true, "2.5.4.42": true, "cn;lang-de": true, "userCertificate;binary": true,
		"": false, "1uid": false, "-uid": false, "a b": false, "uid=x": false, "2.5.": false, "2": false, "2..5": false, "cn;": false, "cn;;x": false, "cn;lang_de": false,
	} {
		if got := validAttrName(name); got != want {
			t.Errorf("validAttrName(%q) = %v, want %v", name, got, want)
		}
	}
}
