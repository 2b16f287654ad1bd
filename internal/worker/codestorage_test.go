package worker

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/userimport/user-import-operator/api/v1alpha1"
)

// A directory that cannot store codes as configured is refused with a
// sentence naming the field; one that can gets its defaults.
func TestCodeStorage(t *testing.T) {
	ldap := v1alpha1.UserDirectorySpec{LDAP: &v1alpha1.LDAPDirectory{}}
	sql := v1alpha1.UserDirectorySpec{SQL: &v1alpha1.SQLDirectory{}}
	scim := v1alpha1.UserDirectorySpec{SCIM: &v1alpha1.SCIMDirectory{}}
	with := func(d v1alpha1.UserDirectorySpec, rc v1alpha1.DirectoryRecoveryCodes) v1alpha1.UserDirectorySpec {
		d.RecoveryCodes = &rc
		return d
	}
	gen := v1alpha1.RecoveryCodes{Generate: v1alpha1.CodesForNewUsers}
	for _, tc := range []struct {
		name string
		spec v1alpha1.RecoveryCodes
		dir  v1alpha1.UserDirectorySpec
		want string // part of the error; "" for none
	}{
		{"no directory config", gen, ldap, "has no spec.recoveryCodes"},
		{"LDAP defaults", gen, with(ldap, v1alpha1.DirectoryRecoveryCodes{}), ""},
		{"LDAP bcrypt", gen, with(ldap, v1alpha1.DirectoryRecoveryCodes{Scheme: v1alpha1.SchemeBcrypt}), "spec.recoveryCodes.scheme"},
		{"SQL without a column", gen, with(sql, v1alpha1.DirectoryRecoveryCodes{}), "spec.recoveryCodes.attribute"},
		{"SQL SSHA512", gen, with(sql, v1alpha1.DirectoryRecoveryCodes{Attribute: "code", Scheme: v1alpha1.SchemeSSHA512}), "PHC"},
		{"SQL mustChange", v1alpha1.RecoveryCodes{Generate: v1alpha1.CodesAll, MustChange: true}, with(sql, v1alpha1.DirectoryRecoveryCodes{Attribute: "code"}), "mustChange"},
		{"SCIM other attribute", gen, with(scim, v1alpha1.DirectoryRecoveryCodes{Attribute: "title"}), "password"},
		{"SCIM WhereMissing", v1alpha1.RecoveryCodes{Generate: v1alpha1.CodesWhereMissing}, with(scim, v1alpha1.DirectoryRecoveryCodes{}), "expiresAttribute"},
		{"expiry without attribute", v1alpha1.RecoveryCodes{Generate: v1alpha1.CodesAll, ExpiresAfter: &metav1.Duration{Duration: time.Hour}}, with(ldap, v1alpha1.DirectoryRecoveryCodes{}), "expiresAttribute"},
	} {
		cc, err := CodeStorage(tc.spec, tc.dir, "corp")
		if tc.want == "" {
			if err != nil || cc.Attribute != "userPassword" || cc.Hasher.Scheme() != v1alpha1.SchemeSSHA512 {
				t.Errorf("%s: %+v, %v", tc.name, cc, err)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "corp") && tc.want != "mustChange" {
			t.Errorf("%s: got %v, want an error naming %s", tc.name, err, tc.want)
		}
	}
}

// Active Directory takes a code only as the password: in unicodePwd,
// unhashed (AD hashes it), never read back; mustChange sets pwdLastSet 0.
func TestCodeStorageActiveDirectory(t *testing.T) {
	ad := v1alpha1.UserDirectorySpec{LDAP: &v1alpha1.LDAPDirectory{Vendor: v1alpha1.LDAPActiveDirectory},
		RecoveryCodes: &v1alpha1.DirectoryRecoveryCodes{Attribute: "unicodePwd"}}
	cc, err := CodeStorage(v1alpha1.RecoveryCodes{Generate: v1alpha1.CodesForNewUsers, MustChange: true}, ad, "corp-ad")
	if err != nil || cc.Attribute != "unicodePwd" || cc.Hasher.Scheme() != v1alpha1.SchemePlain || cc.ResetAttribute != "pwdLastSet" || cc.ResetValue != "0" {
		t.Fatalf("%+v, %v", cc, err)
	}
	for name, tc := range map[string]struct {
		rc   v1alpha1.DirectoryRecoveryCodes
		spec v1alpha1.RecoveryCodes
		want string
	}{
		"userPassword":            {v1alpha1.DirectoryRecoveryCodes{Attribute: "userPassword"}, v1alpha1.RecoveryCodes{Generate: v1alpha1.CodesForNewUsers}, "unicodePwd"},
		"a scheme":                {v1alpha1.DirectoryRecoveryCodes{Scheme: v1alpha1.SchemeSSHA512}, v1alpha1.RecoveryCodes{Generate: v1alpha1.CodesForNewUsers}, "hashes the password itself"},
		"WhereMissing, no marker": {v1alpha1.DirectoryRecoveryCodes{}, v1alpha1.RecoveryCodes{Generate: v1alpha1.CodesWhereMissing}, "expiresAttribute"},
	} {
		d := ad
		d.RecoveryCodes = &tc.rc
		if _, err := CodeStorage(tc.spec, d, "corp-ad"); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %s", name, err, tc.want)
		}
	}
	ad.RecoveryCodes = &v1alpha1.DirectoryRecoveryCodes{ExpiresAttribute: "info"}
	if cc, err := CodeStorage(v1alpha1.RecoveryCodes{Generate: v1alpha1.CodesWhereMissing}, ad, "corp-ad"); err != nil || cc.HeldAttribute != "info" {
		t.Fatalf("WhereMissing with expiresAttribute: %+v, %v", cc, err)
	}
}
