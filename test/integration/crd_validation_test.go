package integration_test

import (
	"fmt"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uiov1 "github.com/userimport/user-import-operator/api/v1alpha1"
	uioschedule "github.com/userimport/user-import-operator/internal/schedule"
)

// expectRejected asserts that err is the API server's 422 Invalid and that
// its message holds every one of wants (the field path and the words that
// tell a person what to fix). The message is printed (go test -v
// -ginkgo.v) so that the exact wording can be read without a debugger.
func expectRejected(err error, wants ...string) {
	GinkgoHelper()
	Expect(err).To(HaveOccurred(), "the API server accepted an invalid object")
	Expect(apierrors.IsInvalid(err)).To(BeTrue(), "want a 422 Invalid, got: %v", err)
	for _, w := range wants {
		Expect(err.Error()).To(ContainSubstring(w))
	}
	GinkgoWriter.Printf("REJECTED [%s]: %s\n", CurrentSpecReport().LeafNodeText, err.Error())
}

// patchPhase moves an import to phase through the status subresource, as the
// controller does.
func patchPhase(ui *uiov1.UserImport, phase uiov1.ImportPhase) error {
	ui.Status.Phase = phase
	return apiClient.Status().Update(ctx, ui)
}

// createInPhase creates a valid import and moves it to phase.
func createInPhase(phase uiov1.ImportPhase, mutate ...func(*uiov1.UserImport)) *uiov1.UserImport {
	GinkgoHelper()
	ui := validImport(mutate...)
	Expect(apiClient.Create(ctx, ui)).To(Succeed())
	Expect(patchPhase(ui, phase)).To(Succeed())
	return ui
}

func mapping(attr, column string, identity bool) uiov1.AttributeMapping {
	return uiov1.AttributeMapping{Attribute: attr, Column: column, Identity: identity}
}

var _ = Describe("Validation by the API server", Label(labelAPIServerAlone), func() {
	DescribeTable("rejects an invalid UserImport",
		func(mutate func(*uiov1.UserImport), wants ...string) {
			expectRejected(apiClient.Create(ctx, validImport(mutate)), wants...)
		},
		Entry("no source", func(ui *uiov1.UserImport) {
			ui.Spec.Source = uiov1.ImportSource{}
		}, "spec.source", "exactly one of configMap, secret, http, sftp, s3 or persistentVolumeClaim must be set"),
		Entry("two sources", func(ui *uiov1.UserImport) {
			ui.Spec.Source.HTTP = &uiov1.HTTPSource{URL: "https://hr.example.com/export.csv"}
		}, "spec.source", "exactly one of configMap, secret, http, sftp, s3 or persistentVolumeClaim must be set"),
		Entry("an sftp source beside a configMap", func(ui *uiov1.UserImport) {
			ui.Spec.Source.SFTP = &uiov1.SFTPSource{FileSelector: uiov1.FileSelector{Path: "hr.csv"}, Host: "sftp.example.com", Credentials: uiov1.LocalObjectReference{Name: "sftp"}}
		}, "spec.source", "exactly one of configMap, secret, http, sftp, s3 or persistentVolumeClaim must be set"),
		Entry("an s3 source with both a path and a pattern", func(ui *uiov1.UserImport) {
			ui.Spec.Source = uiov1.ImportSource{S3: &uiov1.S3Source{FileSelector: uiov1.FileSelector{Path: "a.csv", Pattern: "*.csv"}, Bucket: "hr"}}
		}, "spec.source.s3", "exactly one of path or pattern must be set"),
		Entry("an sftp source with neither a path nor a pattern", func(ui *uiov1.UserImport) {
			ui.Spec.Source = uiov1.ImportSource{SFTP: &uiov1.SFTPSource{Host: "sftp.example.com", Credentials: uiov1.LocalObjectReference{Name: "sftp"}}}
		}, "spec.source.sftp", "exactly one of path or pattern must be set"),
		Entry("an http source in clear without insecure", func(ui *uiov1.UserImport) {
			ui.Spec.Source = uiov1.ImportSource{HTTP: &uiov1.HTTPSource{URL: "http://hr.example.com/export.csv"}}
		}, "spec.source.http.url: http:// sends the file (and any credentials) in clear; use https://, or set spec.source.http.insecure: true"),
		Entry("an s3 endpoint in clear without insecure", func(ui *uiov1.UserImport) {
			ui.Spec.Source = uiov1.ImportSource{S3: &uiov1.S3Source{FileSelector: uiov1.FileSelector{Path: "a.csv"}, Bucket: "hr", Endpoint: "http://minio.example:9000"}}
		}, "spec.source.s3.endpoint: http:// sends the file and the request signatures in clear"),
		Entry("an s3 endpoint that is not a URL", func(ui *uiov1.UserImport) {
			ui.Spec.Source = uiov1.ImportSource{S3: &uiov1.S3Source{FileSelector: uiov1.FileSelector{Path: "a.csv"}, Bucket: "hr", Endpoint: "minio:9000"}}
		}, "spec.source.s3.endpoint must be an http:// or https:// URL"),
		Entry("a move without a destination", func(ui *uiov1.UserImport) {
			ui.Spec.Source = uiov1.ImportSource{S3: &uiov1.S3Source{FileSelector: uiov1.FileSelector{Path: "a.csv"}, Bucket: "hr"},
				AfterImport: &uiov1.AfterImport{Action: uiov1.AfterImportMove}}
		}, "spec.source.afterImport.to is required for Move"),
		Entry("a claim whose file would be deleted", func(ui *uiov1.UserImport) {
			ui.Spec.Source = uiov1.ImportSource{PersistentVolumeClaim: &uiov1.PVCSource{ClaimName: "exports", FileSelector: uiov1.FileSelector{Path: "a.csv"}},
				AfterImport: &uiov1.AfterImport{Action: uiov1.AfterImportDelete}}
		}, "spec.source.afterImport: Move and Delete need an sftp or s3 source"),
		Entry("a mapping without an identity entry", func(ui *uiov1.UserImport) {
			ui.Spec.Mapping[0].Identity = false
		}, "spec.mapping must mark exactly one entry with identity: true"),
		Entry("a mapping with two identity entries", func(ui *uiov1.UserImport) {
			ui.Spec.Mapping[1].Identity = true
		}, "spec.mapping must mark exactly one entry with identity: true"),
		Entry("a mapping entry with both column and template", func(ui *uiov1.UserImport) {
			ui.Spec.Mapping[1].Template = "{{.first_name}}"
		}, "spec.mapping[1]", "each entry sets exactly one of column, template or value"),
		Entry("a mapping entry with neither column, template nor value", func(ui *uiov1.UserImport) {
			ui.Spec.Mapping[1].Column = ""
		}, "spec.mapping[1]", "each entry sets exactly one of column, template or value"),
		Entry("two mapping entries for one attribute", func(ui *uiov1.UserImport) {
			ui.Spec.Mapping = append(ui.Spec.Mapping, mapping("name.givenName", "given_name", false))
		}, "spec.mapping[2]", "Duplicate value"),
		Entry("two mapping entries with target Groups", func(ui *uiov1.UserImport) {
			ui.Spec.Mapping = append(ui.Spec.Mapping,
				uiov1.AttributeMapping{Attribute: "departments", Column: "department", Target: uiov1.TargetGroups},
				uiov1.AttributeMapping{Attribute: "locations", Column: "location", Target: uiov1.TargetGroups})
		}, "spec.mapping may have at most one entry with target Groups"),
		Entry("two mapping entries with target Manager", func(ui *uiov1.UserImport) {
			ui.Spec.Mapping = append(ui.Spec.Mapping,
				uiov1.AttributeMapping{Attribute: "manager", Column: "manager_id", Target: uiov1.TargetManager},
				uiov1.AttributeMapping{Attribute: "secretary", Column: "assistant_id", Target: uiov1.TargetManager})
		}, "spec.mapping may have at most one entry with target Manager"),
		Entry("an identity entry with target Groups", func(ui *uiov1.UserImport) {
			ui.Spec.Mapping[0].Target = uiov1.TargetGroups
		}, "spec.mapping[0]", "the identity entry has target Attribute"),
		Entry("a manager entry that splits", func(ui *uiov1.UserImport) {
			ui.Spec.Mapping = append(ui.Spec.Mapping, uiov1.AttributeMapping{Attribute: "manager", Column: "manager_id", Split: ";", Target: uiov1.TargetManager})
		}, "spec.mapping[2]", "an entry with target Manager takes one value, without split"),
		Entry("an unknown mapping target", func(ui *uiov1.UserImport) {
			ui.Spec.Mapping[1].Target = "Roles"
		}, `spec.mapping[1].target: Unsupported value: "Roles"`),
		Entry("a membership removal percent over 100", func(ui *uiov1.UserImport) {
			pct := int32(150)
			ui.Spec.Safety.MaxMembershipRemovalPercent = &pct
		}, "spec.safety.maxMembershipRemovalPercent"),
		Entry("invitations without the attribute that holds the address", func(ui *uiov1.UserImport) {
			ui.Spec.Invitations = uiov1.Invitations{NewUsers: true}
		}, "spec.invitations.addressAttribute must name the mapped attribute"),
		Entry("a report on a phase that is not PreviewReady, Completed or Failed", func(ui *uiov1.UserImport) {
			ui.Spec.Report = uiov1.ReportMail{Recipients: []string{"hr@example.com"}, On: []uiov1.ImportPhase{uiov1.PhaseImporting}}
		}, "spec.report.on"),
		Entry("an unknown mode", func(ui *uiov1.UserImport) {
			ui.Spec.Mode = "Incremental"
		}, `spec.mode: Unsupported value: "Incremental"`, `"Full", "Delta"`),
		Entry("an unknown action", func(ui *uiov1.UserImport) {
			ui.Spec.Action = "Run"
		}, `spec.action: Unsupported value: "Run"`),
		Entry("an unknown missingUsers policy", func(ui *uiov1.UserImport) {
			ui.Spec.Mode = uiov1.ModeFull
			ui.Spec.MissingUsers = "Archive"
		}, `spec.missingUsers: Unsupported value: "Archive"`),
		Entry("an unknown encoding", func(ui *uiov1.UserImport) {
			ui.Spec.Format.Encoding = "EBCDIC"
		}, `spec.format.encoding: Unsupported value: "EBCDIC"`),
		Entry("an unknown delimiter", func(ui *uiov1.UserImport) {
			ui.Spec.Format.Delimiter = ":"
		}, `spec.format.delimiter: Unsupported value: ":"`),
		Entry("an unknown quote", func(ui *uiov1.UserImport) {
			ui.Spec.Format.Quote = "`"
		}, "spec.format.quote: Unsupported value"),
		Entry("an unknown check", func(ui *uiov1.UserImport) {
			ui.Spec.Mapping[0].Check = "Phone"
		}, `spec.mapping[0].check: Unsupported value: "Phone"`),
		Entry("an unknown transform type", func(ui *uiov1.UserImport) {
			ui.Spec.Mapping[0].Transforms = []uiov1.Transform{{Type: "Capitalize"}}
		}, `spec.mapping[0].transforms[0].type: Unsupported value: "Capitalize"`),
		Entry("RegexReplace without pattern", func(ui *uiov1.UserImport) {
			ui.Spec.Mapping[0].Transforms = []uiov1.Transform{{Type: "RegexReplace", Replacement: "x"}}
		}, "spec.mapping[0].transforms[0]", "RegexReplace needs pattern"),
		Entry("DateFormat without toLayout", func(ui *uiov1.UserImport) {
			ui.Spec.Mapping[1].Transforms = []uiov1.Transform{{Type: "DateFormat", FromLayout: "02.01.2006"}}
		}, "spec.mapping[1].transforms[0]", "DateFormat needs fromLayout and toLayout"),
		Entry("a negative safety threshold", func(ui *uiov1.UserImport) {
			ui.Spec.Safety.MaxDeprovision = ptr.To[int32](-1)
		}, "spec.safety.maxDeprovision", "greater than or equal to 0"),
		Entry("a safety percent over 100", func(ui *uiov1.UserImport) {
			ui.Spec.Safety.MaxDeprovisionPercent = ptr.To[int32](101)
		}, "spec.safety.maxDeprovisionPercent", "less than or equal to 100"),
		Entry("an error percent over 100", func(ui *uiov1.UserImport) {
			ui.Spec.ErrorPolicy.MaxErrorPercent = ptr.To[int32](150)
		}, "spec.errorPolicy.maxErrorPercent", "less than or equal to 100"),
		Entry("missingUsers Deactivate in Delta mode", func(ui *uiov1.UserImport) {
			ui.Spec.Mode = uiov1.ModeDelta
			ui.Spec.MissingUsers = uiov1.MissingDeactivate
		}, "spec.missingUsers may be Deactivate or Delete only with spec.mode Full"),
		Entry("statusColumn in Full mode", func(ui *uiov1.UserImport) {
			ui.Spec.Mode = uiov1.ModeFull
			ui.Spec.StatusColumn = &uiov1.StatusColumn{Column: "employment_status"}
		}, "spec.statusColumn is only allowed with spec.mode Delta"),
		Entry("an http source that is not an http(s) URL", func(ui *uiov1.UserImport) {
			ui.Spec.Source = uiov1.ImportSource{HTTP: &uiov1.HTTPSource{URL: "ftp://hr.example.com/export.csv"}}
		}, "spec.source.http.url", "must be an http:// or https:// URL"),
		Entry("an empty directoryRef", func(ui *uiov1.UserImport) {
			ui.Spec.DirectoryRef.Name = ""
		}, "spec.directoryRef.name", "at least 1 chars long"),
	)

	It("accepts groups and a manager, with createGroups true by default", func() {
		ui := validImport(func(ui *uiov1.UserImport) {
			ui.Spec.Mapping = append(ui.Spec.Mapping,
				uiov1.AttributeMapping{Attribute: "groups", Template: "dept-{{.department}}", Split: ";", Target: uiov1.TargetGroups},
				uiov1.AttributeMapping{Attribute: "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager", Column: "manager_id", Target: uiov1.TargetManager})
		})
		Expect(apiClient.Create(ctx, ui)).To(Succeed())
		Expect(ui.Spec.CreateGroups).NotTo(BeNil())
		Expect(*ui.Spec.CreateGroups).To(BeTrue())
		Expect(ui.Spec.Safety.MaxMembershipRemovalPercent).NotTo(BeNil())
		Expect(*ui.Spec.Safety.MaxMembershipRemovalPercent).To(Equal(int32(10)))
	})

	It("accepts directories with groups, and fills in their defaults", func() {
		ldap := validLDAPDirectory(func(ud *uiov1.UserDirectory) {
			ud.Spec.LDAP.Groups = &uiov1.LDAPGroups{BaseDN: "ou=groups,dc=example,dc=com"}
		})
		Expect(apiClient.Create(ctx, ldap)).To(Succeed())
		Expect(ldap.Spec.LDAP.Vendor).To(Equal(uiov1.LDAPGeneric))
		Expect(ldap.Spec.LDAP.Groups.ObjectClass).To(BeEmpty(), "the provider picks the vendor's: groupOfNames, or group for ActiveDirectory")
		ad := validLDAPDirectory(func(ud *uiov1.UserDirectory) {
			ud.Spec.LDAP.Vendor = uiov1.LDAPActiveDirectory
			ud.Spec.LDAP.Groups = &uiov1.LDAPGroups{BaseDN: "OU=Groups,DC=corp,DC=example", ObjectClass: uiov1.ADGroup}
		})
		Expect(apiClient.Create(ctx, ad)).To(Succeed())
		sql := validSQLDirectory(func(ud *uiov1.UserDirectory) {
			ud.Spec.SQL.Groups = &uiov1.SQLGroups{Table: "hr.memberships"}
		})
		Expect(apiClient.Create(ctx, sql)).To(Succeed())
		Expect(*sql.Spec.SQL.Groups).To(Equal(uiov1.SQLGroups{Table: "hr.memberships", UserColumn: "user_identity", GroupColumn: "group_name", MarkerColumn: "managed_by"}))
		scim := validSCIMDirectory(func(ud *uiov1.UserDirectory) {
			ud.Spec.SCIM.Groups = &uiov1.SCIMGroups{}
		})
		Expect(apiClient.Create(ctx, scim)).To(Succeed())
		Expect(scim.Spec.SCIM.Groups.MaxPatchOperations).To(Equal(int32(100)))
	})

	DescribeTable("accepts files read in place",
		func(src uiov1.ImportSource) {
			Expect(apiClient.Create(ctx, validImport(func(ui *uiov1.UserImport) { ui.Spec.Source = src }))).To(Succeed())
		},
		Entry("the newest dated file on SFTP, moved to archive/", uiov1.ImportSource{
			SFTP: &uiov1.SFTPSource{FileSelector: uiov1.FileSelector{Pattern: "out/employees_*.csv"}, Host: "sftp.example.com",
				Credentials: uiov1.LocalObjectReference{Name: "sftp"}, KnownHosts: &uiov1.SecretKeyRef{Name: "sftp", Key: "known_hosts"}},
			AfterImport: &uiov1.AfterImport{Action: uiov1.AfterImportMove, To: "archive/"}}),
		Entry("an S3 key with the pod's own credentials, deleted", uiov1.ImportSource{
			S3:          &uiov1.S3Source{FileSelector: uiov1.FileSelector{Path: "hr/employees.csv"}, Bucket: "acme-hr", Region: "eu-central-1"},
			AfterImport: &uiov1.AfterImport{Action: uiov1.AfterImportDelete}}),
		Entry("an S3-compatible server in clear, marked insecure", uiov1.ImportSource{
			S3: &uiov1.S3Source{FileSelector: uiov1.FileSelector{Path: "hr/employees.csv"}, Bucket: "acme-hr", Endpoint: "http://minio.hr.internal:9000", Insecure: true}}),
		Entry("an http source in clear, marked insecure", uiov1.ImportSource{
			HTTP: &uiov1.HTTPSource{URL: "http://hr.internal/export.csv", Insecure: true}}),
		Entry("a claim, kept", uiov1.ImportSource{
			PersistentVolumeClaim: &uiov1.PVCSource{ClaimName: "exports", FileSelector: uiov1.FileSelector{Pattern: "*.csv"}},
			AfterImport:           &uiov1.AfterImport{Action: uiov1.AfterImportKeep}}),
	)

	DescribeTable("rejects an invalid UserDirectory",
		func(ud *uiov1.UserDirectory, wants ...string) {
			expectRejected(apiClient.Create(ctx, ud), wants...)
		},
		Entry("a SCIM service over http without insecure", validSCIMDirectory(func(ud *uiov1.UserDirectory) {
			ud.Spec.SCIM.URL = "http://idp.example.com/scim/v2"
		}), "spec.scim.url: http:// sends the token and every user in clear; use https://, or set spec.scim.insecure: true"),
		Entry("an OAuth token URL over http without insecure", validSCIMDirectory(func(ud *uiov1.UserDirectory) {
			ud.Spec.SCIM.Auth = uiov1.SCIMAuth{OAuth2: &uiov1.OAuth2ClientCredentials{TokenURL: "http://idp.example.com/token", ClientSecretRef: uiov1.LocalObjectReference{Name: "oauth"}}}
		}), "spec.scim.auth.oauth2.tokenURL: http:// sends the client secret in clear"),
		Entry("LDAP in clear without insecure", validSCIMDirectory(func(ud *uiov1.UserDirectory) {
			ud.Spec.SCIM = nil
			ud.Spec.LDAP = ldapDirectory()
			ud.Spec.LDAP.URL = "ldap://ldap.example.com:389"
		}), "spec.ldap.url: ldap:// without startTLS sends the bind password and every user in clear"),
		Entry("a mail relay in clear without insecure", validSCIMDirectory(func(ud *uiov1.UserDirectory) {
			ud.Spec.Mail = &uiov1.MailRelay{Host: "smtp.example.com", TLS: uiov1.MailNoTLS, From: "hr@example.com"}
		}), "spec.mail", "spec.mail.tls None sends passwords and mail in clear: set spec.mail.insecure: true to allow it"),
		Entry("a mail relay with an unknown TLS mode", validSCIMDirectory(func(ud *uiov1.UserDirectory) {
			ud.Spec.Mail = &uiov1.MailRelay{Host: "smtp.example.com", TLS: "Maybe", From: "hr@example.com"}
		}), `spec.mail.tls: Unsupported value: "Maybe"`),
		Entry("no directory type", validSCIMDirectory(func(ud *uiov1.UserDirectory) {
			ud.Spec.SCIM = nil
		}), "exactly one of spec.scim, spec.ldap or spec.sql must be set"),
		Entry("two directory types", validSCIMDirectory(func(ud *uiov1.UserDirectory) {
			ud.Spec.LDAP = ldapDirectory()
		}), "exactly one of spec.scim, spec.ldap or spec.sql must be set"),
		Entry("a SCIM URL without a scheme", validSCIMDirectory(func(ud *uiov1.UserDirectory) {
			ud.Spec.SCIM.URL = "idp.example.com/scim/v2"
		}), "spec.scim.url", "must be an http:// or https:// URL"),
		Entry("two SCIM authentication methods", validSCIMDirectory(func(ud *uiov1.UserDirectory) {
			ud.Spec.SCIM.Auth = uiov1.SCIMAuth{
				BearerToken: &uiov1.SecretKeyRef{Name: "scim", Key: "token"},
				Basic:       &uiov1.LocalObjectReference{Name: "scim-basic"},
			}
		}), "spec.scim.auth", "at most one of bearerToken, basic or oauth2"),
		Entry("an OAuth2 token URL that is not a URL", validSCIMDirectory(func(ud *uiov1.UserDirectory) {
			ud.Spec.SCIM.Auth.OAuth2 = &uiov1.OAuth2ClientCredentials{
				TokenURL:        "login.example.com/oauth2/token",
				ClientSecretRef: uiov1.LocalObjectReference{Name: "scim-oauth"},
			}
		}), "spec.scim.auth.oauth2.tokenURL", "must be an http:// or https:// URL"),
		Entry("an LDAP URL with an http scheme", validLDAPDirectory(func(ud *uiov1.UserDirectory) {
			ud.Spec.LDAP.URL = "http://ldap.example.com:389"
		}), "spec.ldap.url", "must be an ldap:// or ldaps:// URL"),
		Entry("LDAP disable with both attribute and moveToDN", validLDAPDirectory(func(ud *uiov1.UserDirectory) {
			ud.Spec.LDAP.Disable = &uiov1.LDAPDisable{
				Attribute: "employeeType", Value: "disabled", MoveToDN: "ou=disabled,dc=example,dc=com",
			}
		}), "spec.ldap.disable", "set exactly one of attribute or moveToDN"),
		Entry("an LDAP user filter without parentheses", validLDAPDirectory(func(ud *uiov1.UserDirectory) {
			ud.Spec.LDAP.UserFilter = "objectClass=person"
		}), "spec.ldap.userFilter", "must be an LDAP filter in parentheses"),
		Entry("an LDAP group class that is not one", validLDAPDirectory(func(ud *uiov1.UserDirectory) {
			ud.Spec.LDAP.Groups = &uiov1.LDAPGroups{BaseDN: "ou=groups,dc=example,dc=com", ObjectClass: "organizationalUnit"}
		}), `spec.ldap.groups.objectClass: Unsupported value: "organizationalUnit"`),
		Entry("Active Directory groups on a generic LDAP server", validLDAPDirectory(func(ud *uiov1.UserDirectory) {
			ud.Spec.LDAP.Groups = &uiov1.LDAPGroups{BaseDN: "ou=groups,dc=example,dc=com", ObjectClass: "group"}
		}), `spec.ldap.groups.objectClass group is Active Directory's`),
		Entry("LDAP groups without a base DN", validLDAPDirectory(func(ud *uiov1.UserDirectory) {
			ud.Spec.LDAP.Groups = &uiov1.LDAPGroups{}
		}), "spec.ldap.groups.baseDN"),
		Entry("an SQL membership table name that is not a name", validSQLDirectory(func(ud *uiov1.UserDirectory) {
			ud.Spec.SQL.Groups = &uiov1.SQLGroups{Table: "members; drop"}
		}), "spec.sql.groups.table must be a table name"),
		Entry("a SCIM PATCH of no members", validSCIMDirectory(func(ud *uiov1.UserDirectory) {
			ud.Spec.SCIM.Groups = &uiov1.SCIMGroups{MaxPatchOperations: -1}
		}), "spec.scim.groups.maxPatchOperations"),
		Entry("an SQL table name that is not a name", validSQLDirectory(func(ud *uiov1.UserDirectory) {
			ud.Spec.SQL.Table = "users; DROP TABLE users"
		}), "spec.sql.table", "must be a table name"),
		Entry("an unknown SQL driver", validSQLDirectory(func(ud *uiov1.UserDirectory) {
			ud.Spec.SQL.Driver = "mysql"
		}), `spec.sql.driver: Unsupported value: "mysql"`),
		Entry("an SQL active column and a status column", validSQLDirectory(func(ud *uiov1.UserDirectory) {
			ud.Spec.SQL.ActiveColumn = "enabled"
			ud.Spec.SQL.StatusColumn = &uiov1.SQLStatusColumn{Name: "status", ActiveValue: "active", InactiveValue: "inactive"}
		}), "spec.sql", "set activeColumn (a boolean column) or statusColumn (a status text column), not both"),
		Entry("an SQL status column whose two values are the same", validSQLDirectory(func(ud *uiov1.UserDirectory) {
			ud.Spec.SQL.StatusColumn = &uiov1.SQLStatusColumn{Name: "status", ActiveValue: "x", InactiveValue: "x"}
		}), "spec.sql.statusColumn", "activeValue and inactiveValue must differ"),
		Entry("an empty identity attribute", validSCIMDirectory(func(ud *uiov1.UserDirectory) {
			ud.Spec.IdentityAttribute = ""
		}), "spec.identityAttribute", "at least 1 chars long"),
		Entry("a negative concurrency", validSCIMDirectory(func(ud *uiov1.UserDirectory) {
			ud.Spec.Execution.Concurrency = -1
		}), "spec.execution.concurrency", "greater than or equal to 1"),
		Entry("an unknown managed-user scope", validSCIMDirectory(func(ud *uiov1.UserDirectory) {
			ud.Spec.ManagedUsers.Scope = "Everyone"
		}), `spec.managedUsers.scope: Unsupported value: "Everyone"`),
	)

	const cronMessage = "spec.schedule must be a cron expression of five fields"
	const zoneMessage = "spec.timeZone must be an IANA time zone name"

	DescribeTable("rejects an invalid ImportSchedule",
		func(is *uiov1.ImportSchedule, wants ...string) {
			expectRejected(apiClient.Create(ctx, is), wants...)
		},
		Entry(`schedule "61 * * * *"`, validSchedule(withSchedule("61 * * * *")), "spec.schedule", cronMessage),
		Entry(`schedule "0 24 * * *"`, validSchedule(withSchedule("0 24 * * *")), "spec.schedule", cronMessage),
		Entry(`schedule "* * *"`, validSchedule(withSchedule("* * *")), "spec.schedule", cronMessage),
		Entry(`schedule "@every 5m"`, validSchedule(withSchedule("@every 5m")), "spec.schedule", cronMessage),
		Entry(`schedule "*/0 * * * *" (a step of 0)`, validSchedule(withSchedule("*/0 * * * *")), "spec.schedule", cronMessage),
		Entry(`schedule "0 2 * * * *" (six fields)`, validSchedule(withSchedule("0 2 * * * *")), "spec.schedule", cronMessage),
		Entry(`time zone "Mars/Olympus"`, validSchedule(withTimeZone("Mars/Olympus")), "spec.timeZone", zoneMessage),
		Entry(`time zone "Europe/Berlinn"`, validSchedule(withTimeZone("Europe/Berlinn")), "spec.timeZone", zoneMessage),
		Entry(`time zone "../../etc/passwd"`, validSchedule(withTimeZone("../../etc/passwd")), "spec.timeZone", zoneMessage),
		Entry(`time zone "Local" (the zone of whichever node runs the manager)`, validSchedule(withTimeZone("Local")), "spec.timeZone", zoneMessage),
		Entry("a negative startingDeadlineSeconds", validSchedule(func(is *uiov1.ImportSchedule) {
			is.Spec.StartingDeadlineSeconds = ptr.To[int64](-1)
		}), "spec.startingDeadlineSeconds", "greater than or equal to 0"),
		Entry("a successful history limit over 100", validSchedule(func(is *uiov1.ImportSchedule) {
			is.Spec.SuccessfulHistoryLimit = ptr.To[int32](101)
		}), "spec.successfulHistoryLimit", "less than or equal to 100"),
		Entry("a failed history limit over 100", validSchedule(func(is *uiov1.ImportSchedule) {
			is.Spec.FailedHistoryLimit = ptr.To[int32](1000)
		}), "spec.failedHistoryLimit", "less than or equal to 100"),
		Entry("skipIfUnchanged with no Completed import kept to compare with", validSchedule(func(is *uiov1.ImportSchedule) {
			is.Spec.SkipIfUnchanged = true
			is.Spec.SuccessfulHistoryLimit = ptr.To[int32](0)
		}), "spec: Invalid value", "spec.skipIfUnchanged compares the source with the last Completed import, which spec.successfulHistoryLimit: 0 deletes: keep at least 1"),
		Entry("skipIfUnchanged on a PersistentVolumeClaim, which the manager cannot read", validSchedule(func(is *uiov1.ImportSchedule) {
			is.Spec.SkipIfUnchanged = true
			is.Spec.Template.Spec.Source = uiov1.ImportSource{PersistentVolumeClaim: &uiov1.PVCSource{ClaimName: "exports", FileSelector: uiov1.FileSelector{Path: "a.csv"}}}
		}), "spec: Invalid value", "a PersistentVolumeClaim's file is read by the import's worker only"),
		Entry("onChange on a PersistentVolumeClaim, which the manager cannot read", validSchedule(func(is *uiov1.ImportSchedule) {
			is.Spec.Triggers = &uiov1.ScheduleTriggers{OnChange: true}
			is.Spec.Template.Spec.Source = uiov1.ImportSource{PersistentVolumeClaim: &uiov1.PVCSource{ClaimName: "exports", FileSelector: uiov1.FileSelector{Path: "a.csv"}}}
		}), "spec: Invalid value", "a PersistentVolumeClaim's file is read by the import's worker only"),
		Entry("an unknown concurrency policy", validSchedule(func(is *uiov1.ImportSchedule) {
			is.Spec.ConcurrencyPolicy = "Queue"
		}), `spec.concurrencyPolicy: Unsupported value: "Queue"`),
		Entry("a template with two sources", validSchedule(func(is *uiov1.ImportSchedule) {
			is.Spec.Template.Spec.Source.Secret = &uiov1.SecretKeyRef{Name: "hr", Key: "export.csv"}
		}), "spec.template.spec.source", "exactly one of configMap, secret, http, sftp, s3 or persistentVolumeClaim must be set"),
		Entry("neither a schedule nor a trigger", validSchedule(withSchedule("")), "spec: set schedule, triggers.onChange, or both"),
		Entry("a trigger that is off and no schedule", validSchedule(func(is *uiov1.ImportSchedule) {
			is.Spec.Schedule = ""
			is.Spec.Triggers = &uiov1.ScheduleTriggers{OnChange: false}
		}), "spec: set schedule, triggers.onChange, or both"),
		Entry("a poll faster than every 5 seconds", validSchedule(func(is *uiov1.ImportSchedule) {
			is.Spec.Triggers = &uiov1.ScheduleTriggers{OnChange: true, PollSeconds: ptr.To[int32](1)}
		}), "spec.triggers.pollSeconds"),
	)

	It("accepts a schedule that runs on change only, with the trigger's defaults", func() {
		is := validSchedule(func(is *uiov1.ImportSchedule) {
			is.Spec.Schedule = ""
			is.Spec.Triggers = &uiov1.ScheduleTriggers{OnChange: true}
		})
		Expect(apiClient.Create(ctx, is)).To(Succeed())
		Expect(is.Spec.Triggers.DebounceSeconds).To(HaveValue(BeEquivalentTo(30)))
		Expect(is.Spec.Triggers.PollSeconds).To(HaveValue(BeEquivalentTo(60)))
	})

	// What the API server accepts, the schedule controller must be able to
	// run: an accepted schedule that the controller cannot parse would
	// only show up later as a Stalled condition.
	DescribeTable("accepts valid schedules, which the controller's parser reads too",
		func(schedule string) {
			Expect(apiClient.Create(ctx, validSchedule(withSchedule(schedule)))).To(Succeed())
			_, err := uioschedule.Parse(schedule, "Europe/Berlin")
			Expect(err).NotTo(HaveOccurred())
		},
		Entry(nil, "*/5 * * * *"),
		Entry(nil, "0 2 * * 1-5"),
		Entry(nil, "@daily"),
		Entry(nil, "@hourly"),
		Entry(nil, "@Weekly"),
		Entry(nil, "0 0 1 JAN *"),
		Entry(nil, "0 0 1 jan,jul *"),
		Entry(nil, "15 6 ? * 1/2"),
		Entry(nil, "30 2 * * MON-FRI"),
		Entry(nil, "0,15,30,45 8-18 * * *"),
		Entry(nil, "0 3 1-7 * SUN"),
	)

	DescribeTable("accepts IANA time zones, which the controller loads too",
		func(tz string) {
			is := validSchedule(withTimeZone(tz))
			Expect(apiClient.Create(ctx, is)).To(Succeed())
			Expect(is.Spec.TimeZone).To(Equal(tz))
			_, err := uioschedule.LoadZone(tz)
			Expect(err).NotTo(HaveOccurred())
		},
		Entry(nil, "UTC"),
		Entry(nil, "Europe/Berlin"),
		Entry(nil, "America/Argentina/Buenos_Aires"),
		Entry(nil, "America/Port-au-Prince"),
		Entry(nil, "Etc/GMT+5"),
		Entry(nil, "Asia/Kolkata"),
	)

	It("defaults a schedule's time zone to UTC, its policy to Allow and its history to 3 completed and 1 failed import", func() {
		is := validSchedule()
		Expect(apiClient.Create(ctx, is)).To(Succeed())
		Expect(is.Spec.TimeZone).To(Equal("UTC"))
		Expect(is.Spec.ConcurrencyPolicy).To(Equal(uiov1.ConcurrencyAllow))
		Expect(is.Spec.SuccessfulHistoryLimit).To(HaveValue(BeEquivalentTo(3)))
		Expect(is.Spec.FailedHistoryLimit).To(HaveValue(BeEquivalentTo(1)))
	})

	Describe("the life of a UserImport", func() {
		It("rejects moving a Completed import back to Importing", func() {
			ui := createInPhase(uiov1.PhaseCompleted)
			expectRejected(patchPhase(ui, uiov1.PhaseImporting),
				"status.phase", "is final and cannot move to another phase")
		})

		It("rejects moving a Failed import back to Draft", func() {
			ui := createInPhase(uiov1.PhaseFailed)
			expectRejected(patchPhase(ui, uiov1.PhaseDraft),
				"status.phase", "is final and cannot move to another phase")
		})

		It("rejects clearing the phase of a Cancelled import", func() {
			ui := createInPhase(uiov1.PhaseCancelled)
			expectRejected(patchPhase(ui, ""),
				"status.phase", "is final and cannot move to another phase")
		})

		It("rejects a spec edit while Importing", func() {
			ui := createInPhase(uiov1.PhaseImporting)
			ui.Spec.Source = uiov1.ImportSource{HTTP: &uiov1.HTTPSource{URL: "https://hr.example.com/other.csv"}}
			expectRejected(apiClient.Update(ctx, ui), "the import is Importing; only spec.action may change, to Cancel")
		})

		It("rejects a mapping edit while Importing", func() {
			ui := createInPhase(uiov1.PhaseImporting)
			ui.Spec.Mapping[1].Column = "given_name"
			expectRejected(apiClient.Update(ctx, ui), "the import is Importing; only spec.action may change, to Cancel")
		})

		It("rejects action Draft while Importing but accepts Cancel", func() {
			ui := createInPhase(uiov1.PhaseImporting)
			ui.Spec.Action = uiov1.ActionDraft
			expectRejected(apiClient.Update(ctx, ui), "the import is Importing; only spec.action may change, to Cancel")

			Expect(apiClient.Get(ctx, client.ObjectKeyFromObject(ui), ui)).To(Succeed())
			ui.Spec.Action = uiov1.ActionCancel
			Expect(apiClient.Update(ctx, ui)).To(Succeed())
		})

		It("accepts progress reports while Importing", func() {
			ui := createInPhase(uiov1.PhaseImporting)
			ui.Status.Progress = &uiov1.ProgressStatus{RowsTotal: 10, RowsProcessed: 4, Percent: 40, ChangeCounts: uiov1.ChangeCounts{Created: 3, Updated: 1}}
			Expect(apiClient.Status().Update(ctx, ui)).To(Succeed())
		})

		It("rejects a spec edit on a Completed import", func() {
			ui := createInPhase(uiov1.PhaseCompleted)
			ui.Spec.Action = uiov1.ActionPreview
			expectRejected(apiClient.Update(ctx, ui), "spec", "the import is in a final phase (Completed, Cancelled or Failed); its spec cannot change")
		})

		It("accepts label and finalizer edits on a Completed import, so that it can be deleted", func() {
			ui := createInPhase(uiov1.PhaseCompleted)
			ui.Labels = map[string]string{"reviewed": "yes"}
			ui.Finalizers = []string{"userimport.dev/report"}
			Expect(apiClient.Update(ctx, ui)).To(Succeed())
			ui.Finalizers = nil
			Expect(apiClient.Update(ctx, ui)).To(Succeed())
			Expect(apiClient.Delete(ctx, ui)).To(Succeed())
		})

		It("accepts any spec edit in Draft", func() {
			ui := createInPhase(uiov1.PhaseDraft, func(ui *uiov1.UserImport) { ui.Spec.Action = uiov1.ActionDraft })
			ui.Spec.Source = uiov1.ImportSource{HTTP: &uiov1.HTTPSource{URL: "https://hr.example.com/export.csv"}}
			ui.Spec.Mode = uiov1.ModeFull
			ui.Spec.MissingUsers = uiov1.MissingDeactivate
			ui.Spec.Mapping = append(ui.Spec.Mapping, mapping("name.familyName", "last_name", false))
			Expect(apiClient.Update(ctx, ui)).To(Succeed())
			ui.Spec.Action = uiov1.ActionPreview
			Expect(apiClient.Update(ctx, ui)).To(Succeed())
		})

		It("accepts a spec edit and an approval in PreviewReady", func() {
			ui := createInPhase(uiov1.PhasePreviewReady, func(ui *uiov1.UserImport) {
				ui.Spec.Action = uiov1.ActionPreview
				ui.Spec.Mode = uiov1.ModeFull
				ui.Spec.MissingUsers = uiov1.MissingDeactivate
			})
			ui.Spec.Safety.ApprovedDeprovisions = ptr.To[int32](40)
			ui.Spec.Action = uiov1.ActionImport
			Expect(apiClient.Update(ctx, ui)).To(Succeed())
		})

		It("accepts skipping states: Draft straight to ImportPending, then Importing and Completed", func() {
			ui := createInPhase(uiov1.PhaseDraft)
			for _, p := range []uiov1.ImportPhase{uiov1.PhaseImportPending, uiov1.PhaseImporting, uiov1.PhaseCompleted} {
				Expect(patchPhase(ui, p)).To(Succeed(), fmt.Sprintf("to %s", p))
			}
		})
	})
})
