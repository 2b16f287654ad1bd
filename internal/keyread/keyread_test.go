package keyread

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A Secret name or key that is not a Kubernetes name never reads a file
// outside the secrets directory.
func TestMountedSecretsRefusesNamesOutsideTheDirectory(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "secrets")
	if err := os.MkdirAll(filepath.Join(dir, "ldap-bind"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "ldap-bind", "password"), []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Files beside and above the directory that a crafted name could reach.
	if err := os.WriteFile(filepath.Join(root, "password"), []byte("outside"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "password"), []byte("loose"), 0o600); err != nil {
		t.Fatal(err)
	}
	get := MountedSecrets(dir)
	ctx := context.Background()
	if b, err := get(ctx, "ldap-bind", "password"); err != nil || string(b) != "s3cret" {
		t.Fatalf("valid name: %q, %v", b, err)
	}
	for _, c := range []struct{ name, key string }{
		{"..", "password"}, {".", "password"}, {"ldap-bind", ".."}, {"ldap-bind", "."},
		{"../secrets/ldap-bind", "password"}, {"ldap-bind/..", "password"}, {"", "password"},
		{"ldap-bind", ""}, {"ldap-bind", "a/b"}, {"LDAP_BIND", "password"},
	} {
		b, err := get(ctx, c.name, c.key)
		if err == nil {
			t.Errorf("Secret %q key %q: read %q, want a refusal", c.name, c.key, b)
			continue
		}
		if !errors.Is(err, ErrInvalidName) || !strings.Contains(err.Error(), "Secret") {
			t.Errorf("Secret %q key %q: error %v, want ErrInvalidName naming the Secret", c.name, c.key, err)
		}
	}
}

// A key that is not there is ErrNotFound, named in the message, so that a
// directory check reports SecretNotFound.
func TestMountedSecretsMissingKeyIsNotFound(t *testing.T) {
	dir := t.TempDir()
	_, err := MountedSecrets(dir)(context.Background(), "ldap-bind", "password")
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "Secret ldap-bind has no key password") {
		t.Fatalf("missing key: %v, want ErrNotFound naming the Secret and key", err)
	}
}
