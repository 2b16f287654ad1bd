package worker

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/userimport/user-import-operator/internal/directory"
)

// A Secret name or key that is not a Kubernetes name never reads a file
// outside the secrets directory.
func TestDirSecretsRefusesNamesOutsideTheDirectory(t *testing.T) {
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
	get := DirSecrets(dir)
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
		if directory.ReasonOf(err) != directory.ReasonInvalidConfig || !strings.Contains(err.Error(), "Secret") {
			t.Errorf("Secret %q key %q: error %v, want InvalidConfig naming the Secret", c.name, c.key, err)
		}
	}
}
