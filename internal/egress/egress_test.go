package egress

import (
	"testing"

	"github.com/userimport/user-import-operator/api/v1alpha1"
)

func TestPolicy(t *testing.T) {
	p, err := Parse("idp.corp.example, *.hr.example, 10.20.0.0/16, 192.0.2.7, ::1")
	if err != nil {
		t.Fatal(err)
	}
	allowed := []string{"idp.corp.example", "IDP.corp.example", "files.hr.example", "a.b.hr.example", "10.20.3.4", "192.0.2.7", "::1", "[::1]"}
	refused := []string{"corp.example", "hr.example", "evil-hr.example", "10.21.0.1", "192.0.2.8", "169.254.169.254", "127.0.0.1", "kubernetes.default.svc"}
	for _, h := range allowed {
		if err := p.Allow(h); err != nil {
			t.Errorf("%s refused: %v", h, err)
		}
	}
	for _, h := range refused {
		if err := p.Allow(h); err == nil {
			t.Errorf("%s allowed", h)
		}
	}
	var none *Policy
	if none.Allow("169.254.169.254") != nil || none.AllowURL("http://x") != nil {
		t.Error("the nil policy must allow everything")
	}
	for _, bad := range []string{"10.0.0.0/33", "http://x", "a b"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("Parse(%q) accepted", bad)
		}
	}
}

func TestAllowDirectory(t *testing.T) {
	p, _ := Parse("idp.corp.example,10.0.0.0/8")
	dsn := func(s string) func() (string, error) { return func() (string, error) { return s, nil } }
	cases := []struct {
		spec  v1alpha1.UserDirectorySpec
		dsn   string
		allow bool
	}{
		{v1alpha1.UserDirectorySpec{SCIM: &v1alpha1.SCIMDirectory{URL: "https://idp.corp.example/scim/v2"}}, "", true},
		{v1alpha1.UserDirectorySpec{SCIM: &v1alpha1.SCIMDirectory{URL: "http://169.254.169.254/latest"}}, "", false},
		{v1alpha1.UserDirectorySpec{SCIM: &v1alpha1.SCIMDirectory{URL: "https://idp.corp.example/scim/v2",
			Auth: v1alpha1.SCIMAuth{OAuth2: &v1alpha1.OAuth2ClientCredentials{TokenURL: "https://login.other.example/token"}}}}, "", false},
		{v1alpha1.UserDirectorySpec{LDAP: &v1alpha1.LDAPDirectory{URL: "ldaps://10.1.2.3:636"}}, "", true},
		{v1alpha1.UserDirectorySpec{LDAP: &v1alpha1.LDAPDirectory{URL: "ldap://ldap.elsewhere.example"}}, "", false},
		{v1alpha1.UserDirectorySpec{SQL: &v1alpha1.SQLDirectory{Driver: v1alpha1.SQLDriverPostgres}}, "postgres://u:p@10.9.9.9:5432/db", true},
		{v1alpha1.UserDirectorySpec{SQL: &v1alpha1.SQLDirectory{Driver: v1alpha1.SQLDriverPostgres}}, "host=db.elsewhere.example user=u", false},
		{v1alpha1.UserDirectorySpec{SQL: &v1alpha1.SQLDirectory{Driver: v1alpha1.SQLDriverSQLite}}, "/data/users.db", true},
	}
	for i, c := range cases {
		err := p.AllowDirectory(c.spec, dsn(c.dsn))
		if (err == nil) != c.allow {
			t.Errorf("case %d: %v, want allowed %v", i, err, c.allow)
		}
	}
}

func TestAllowSource(t *testing.T) {
	p, _ := Parse("sftp.corp.example,minio.corp.example,s3.eu-central-1.amazonaws.com")
	cases := []struct {
		src   v1alpha1.ImportSource
		allow bool
	}{
		{v1alpha1.ImportSource{SFTP: &v1alpha1.SFTPSource{Host: "sftp.corp.example"}}, true},
		{v1alpha1.ImportSource{SFTP: &v1alpha1.SFTPSource{Host: "169.254.169.254"}}, false},
		{v1alpha1.ImportSource{S3: &v1alpha1.S3Source{Endpoint: "https://minio.corp.example:9000"}}, true},
		{v1alpha1.ImportSource{S3: &v1alpha1.S3Source{Endpoint: "http://10.0.0.9:9000"}}, false},
		{v1alpha1.ImportSource{S3: &v1alpha1.S3Source{Region: "eu-central-1"}}, true},
		{v1alpha1.ImportSource{S3: &v1alpha1.S3Source{}}, false}, // us-east-1
		{v1alpha1.ImportSource{PersistentVolumeClaim: &v1alpha1.PVCSource{ClaimName: "exports"}}, true},
	}
	for i, c := range cases {
		if err := p.AllowSource(c.src); (err == nil) != c.allow {
			t.Errorf("case %d: allowed %v, want %v (%v)", i, err == nil, c.allow, err)
		}
	}
	if err := (*Policy)(nil).AllowSource(cases[1].src); err != nil {
		t.Errorf("no policy refuses: %v", err)
	}
}
