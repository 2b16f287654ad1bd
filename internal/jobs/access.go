package jobs

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/userimport/user-import-operator/api/v1alpha1"
)

// ServiceAccount is the identity the worker of imp runs as.
func ServiceAccount(imp *v1alpha1.UserImport) *corev1.ServiceAccount {
	return &corev1.ServiceAccount{
		ObjectMeta: meta(imp, ServiceAccountName(imp)),
		// The token is mounted by the pod spec (the worker needs it); no
		// other pod should pick this account up by accident.
		AutomountServiceAccountToken: ptr.To(false),
	}
}

// Role allows the worker of imp exactly what it needs: read its own
// UserImport, patch its status, and patch its report Secret. It can read
// no Secret of the directory or the source (those reach it as volumes)
// and no other import.
//
// An import that gives recovery codes also reads and patches its key
// Secret and its codes Secrets, by name (CodesSecretNames). It creates
// none: Kubernetes cannot limit create to names, and create on every
// Secret would let it make service-account token Secrets. The controller
// creates them, controlled by the import, before the run starts.
func Role(imp *v1alpha1.UserImport) *rbacv1.Role {
	group := v1alpha1.GroupVersion.Group
	rules := []rbacv1.PolicyRule{
		{APIGroups: []string{group}, Resources: []string{"userimports"}, ResourceNames: []string{imp.Name}, Verbs: []string{"get"}},
		{APIGroups: []string{group}, Resources: []string{"userimports/status"}, ResourceNames: []string{imp.Name}, Verbs: []string{"patch"}},
		{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{ReportSecretName(imp)}, Verbs: []string{"patch"}},
	}
	if imp.Spec.RecoveryCodes.Enabled() {
		rules = append(rules,
			rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: CodesSecretNames(imp), Verbs: []string{"get", "patch"}})
	}
	return &rbacv1.Role{ObjectMeta: meta(imp, ServiceAccountName(imp)), Rules: rules}
}

// CodesPerSecret bounds the recovery codes of one codes Secret; a Secret
// also stays under MaxCodesSecretBytes, well below the 1 MiB a Secret can
// hold.
const (
	CodesPerSecret      = 3000
	MaxCodesSecretBytes = 900 << 10
)

// CodesSecretsFor is the number of codes Secrets the worker of imp may
// write: twice what one code for every row of its file fills at
// CodesPerSecret, so that long identities, which fill a Secret by size
// first, still fit.
//
// A file whose rows are not known yet (an import without a preview) gets
// CodesSecretsAhead Secrets beyond those its worker has used
// (status.recoveryCodes.secrets): the controller makes more as the
// worker fills them.
func CodesSecretsFor(imp *v1alpha1.UserImport) int {
	var rows int64
	if s := imp.Status.Source; s != nil {
		rows = s.Rows
	}
	n := 2*int((rows+CodesPerSecret-1)/CodesPerSecret) + 1
	if rc := imp.Status.RecoveryCodes; rc != nil {
		n = max(n, len(rc.Secrets)+CodesSecretsAhead)
	}
	return max(n, CodesSecretsAhead)
}

// CodesSecretsAhead is how many codes Secrets the controller keeps made
// beyond those the worker has used.
const CodesSecretsAhead = 2

// CodesSecretNames are the Secrets of imp's recovery codes: its key
// Secret, then as many codes Secrets as its file could fill
// (CodesSecretsFor).
func CodesSecretNames(imp *v1alpha1.UserImport) []string {
	names := []string{CodesKeySecretName(imp)}
	for n := range CodesSecretsFor(imp) {
		names = append(names, CodesSecretName(imp, n))
	}
	return names
}

// NotOwnedError is a Secret of an import's codes that exists and is not
// controlled by the import: someone else made it, and may know or choose
// what it holds.
type NotOwnedError struct{ Import, Secret string }

func (e *NotOwnedError) Error() string {
	return fmt.Sprintf("Secret %s exists and is not controlled by UserImport %s: the operator keeps recovery codes and their key only in Secrets it made for the import; delete it", e.Secret, e.Import)
}

// CodesSecret is a Secret of imp's recovery codes, or its key.
func CodesSecret(imp *v1alpha1.UserImport, name string, data map[string][]byte) *corev1.Secret {
	return &corev1.Secret{ObjectMeta: meta(imp, name), Type: corev1.SecretTypeOpaque, Data: data}
}

// RoleBinding grants Role(imp) to ServiceAccount(imp).
func RoleBinding(imp *v1alpha1.UserImport) *rbacv1.RoleBinding {
	name := ServiceAccountName(imp)
	return &rbacv1.RoleBinding{
		ObjectMeta: meta(imp, name),
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: name},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: name, Namespace: imp.Namespace}},
	}
}

// ReportSecret is the empty Secret the worker of imp fills with the
// preview's planned changes and the errors by line. The controller
// creates it so that the worker needs only patch, never create or get.
func ReportSecret(imp *v1alpha1.UserImport) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: meta(imp, ReportSecretName(imp)),
		Type:       corev1.SecretTypeOpaque,
	}
}

func meta(imp *v1alpha1.UserImport, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{
		Name:            name,
		Namespace:       imp.Namespace,
		Labels:          Labels(imp, ""),
		OwnerReferences: []metav1.OwnerReference{ownerRef(imp)},
	}
}
