package controllers

import (
	"testing"

	"github.com/userimport/user-import-operator/api/v1alpha1"
)

// The condition InsecureTransport follows the insecure fields: set while
// one is, gone once none is.
func TestInsecureTransportFollowsTheSpec(t *testing.T) {
	dir := &v1alpha1.UserDirectory{Spec: v1alpha1.UserDirectorySpec{LDAP: &v1alpha1.LDAPDirectory{Insecure: true}, Mail: &v1alpha1.MailRelay{Insecure: true}}}
	dir.Generation = 1
	setInsecureTransport(dir, directoryInsecure(dir.Spec))
	conds := dir.Status.Conditions
	if len(conds) != 1 || conds[0].Type != v1alpha1.ConditionInsecureTransport || conds[0].ObservedGeneration != 1 ||
		conds[0].Message != "spec.ldap.insecure, spec.mail.insecure allows credentials and users to travel in clear, or to a server that is not verified" {
		t.Fatalf("conditions %+v", conds)
	}
	dir.Spec.LDAP.Insecure, dir.Spec.Mail.Insecure = false, false
	setInsecureTransport(dir, directoryInsecure(dir.Spec))
	if len(dir.Status.Conditions) != 0 {
		t.Fatalf("conditions %+v, want none", dir.Status.Conditions)
	}
	src := v1alpha1.ImportSource{S3: &v1alpha1.S3Source{Insecure: true}}
	if got := sourceInsecure(src); len(got) != 1 || got[0] != "spec.source.s3.insecure" {
		t.Fatalf("source: %v", got)
	}
}
