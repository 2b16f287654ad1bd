package executor

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/jobs"
	"github.com/userimport/user-import-operator/internal/recoverycode"
	"github.com/userimport/user-import-operator/internal/runcontract"
)

// PrepareCodes creates the key Secret, with a new random key, and the
// empty codes Secrets of imp (jobs.CodesSecretNames), controlled by it,
// before its import runs: its worker then needs no right to create
// Secrets. A Secret of those names that exists must be controlled by imp
// (*jobs.NotOwnedError otherwise): a key someone else chose would let
// them compute every code.
//
// The codes Secrets the worker lists in status as used are its own and
// are not looked at again.
func PrepareCodes(ctx context.Context, c client.Client, r client.Reader, imp *v1alpha1.UserImport) error {
	used := 0
	if rc := imp.Status.RecoveryCodes; rc != nil {
		used = len(rc.Secrets)
	}
	for i, name := range jobs.CodesSecretNames(imp) {
		if i > 0 && i <= used {
			continue
		}
		// Read first: a running import is prepared at every look, and its
		// Secrets exist but for the next ones.
		var cur corev1.Secret
		err := r.Get(ctx, client.ObjectKey{Namespace: imp.Namespace, Name: name}, &cur)
		if apierrors.IsNotFound(err) {
			var data map[string][]byte
			if i == 0 {
				k, kerr := recoverycode.NewKey()
				if kerr != nil {
					return kerr
				}
				data = map[string][]byte{runcontract.CodesKeyData: k}
			}
			err = c.Create(ctx, jobs.CodesSecret(imp, name, data))
			if apierrors.IsAlreadyExists(err) {
				err = r.Get(ctx, client.ObjectKey{Namespace: imp.Namespace, Name: name}, &cur)
			} else if err == nil {
				continue
			}
		}
		if err != nil {
			return fmt.Errorf("Secret %s: %w", name, err)
		}
		if !metav1.IsControlledBy(&cur, imp) {
			return &jobs.NotOwnedError{Import: imp.Name, Secret: name}
		}
	}
	return nil
}
