package integration_test

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	uiov1 "github.com/userimport/user-import-operator/api/v1alpha1"
)

// Valid objects that the specs break one field at a time. Each is the
// smallest object the API server accepts, so that a rejection can only come
// from the change a spec makes.

func objectMeta(prefix string) metav1.ObjectMeta {
	return metav1.ObjectMeta{GenerateName: prefix + "-", Namespace: testNamespace}
}

func validImportSpec() uiov1.UserImportSpec {
	return uiov1.UserImportSpec{
		DirectoryRef: uiov1.LocalObjectReference{Name: "corp-idp"},
		Source: uiov1.ImportSource{
			ConfigMap: &uiov1.ConfigMapKeyRef{Name: "hr-export", Key: "employees.csv"},
		},
		Mapping: []uiov1.AttributeMapping{
			{Attribute: "userName", Column: "email", Identity: true, Check: "Email"},
			{Attribute: "name.givenName", Column: "first_name"},
		},
	}
}

func validImport(mutate ...func(*uiov1.UserImport)) *uiov1.UserImport {
	ui := &uiov1.UserImport{ObjectMeta: objectMeta("uimp"), Spec: validImportSpec()}
	for _, m := range mutate {
		m(ui)
	}
	return ui
}

func validSCIMDirectory(mutate ...func(*uiov1.UserDirectory)) *uiov1.UserDirectory {
	ud := &uiov1.UserDirectory{
		ObjectMeta: objectMeta("udir"),
		Spec: uiov1.UserDirectorySpec{
			SCIM:              &uiov1.SCIMDirectory{URL: "https://idp.example.com/scim/v2"},
			IdentityAttribute: "userName",
		},
	}
	for _, m := range mutate {
		m(ud)
	}
	return ud
}

func ldapDirectory() *uiov1.LDAPDirectory {
	return &uiov1.LDAPDirectory{
		URL:          "ldaps://ldap.example.com:636",
		BindDN:       "cn=user-import,dc=example,dc=com",
		BindPassword: uiov1.SecretKeyRef{Name: "ldap-bind", Key: "password"},
		UsersBaseDN:  "ou=people,dc=example,dc=com",
	}
}

func validLDAPDirectory(mutate ...func(*uiov1.UserDirectory)) *uiov1.UserDirectory {
	ud := &uiov1.UserDirectory{
		ObjectMeta: objectMeta("udir"),
		Spec:       uiov1.UserDirectorySpec{LDAP: ldapDirectory(), IdentityAttribute: "uid"},
	}
	for _, m := range mutate {
		m(ud)
	}
	return ud
}

func validSQLDirectory(mutate ...func(*uiov1.UserDirectory)) *uiov1.UserDirectory {
	ud := &uiov1.UserDirectory{
		ObjectMeta: objectMeta("udir"),
		Spec: uiov1.UserDirectorySpec{
			SQL: &uiov1.SQLDirectory{
				Driver: uiov1.SQLDriverPostgres,
				DSN:    uiov1.SecretKeyRef{Name: "hr-db", Key: "dsn"},
				Table:  "identity.users",
			},
			IdentityAttribute: "user_name",
		},
	}
	for _, m := range mutate {
		m(ud)
	}
	return ud
}

func validSchedule(mutate ...func(*uiov1.ImportSchedule)) *uiov1.ImportSchedule {
	is := &uiov1.ImportSchedule{
		ObjectMeta: objectMeta("isched"),
		Spec: uiov1.ImportScheduleSpec{
			Schedule: "0 2 * * *",
			Template: uiov1.UserImportTemplate{Spec: validImportSpec()},
		},
	}
	for _, m := range mutate {
		m(is)
	}
	return is
}

// Shorthands for the mutations of the tables.

func withSchedule(s string) func(*uiov1.ImportSchedule) {
	return func(is *uiov1.ImportSchedule) { is.Spec.Schedule = s }
}

func withTimeZone(tz string) func(*uiov1.ImportSchedule) {
	return func(is *uiov1.ImportSchedule) { is.Spec.TimeZone = tz }
}
