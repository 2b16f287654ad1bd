package worker

import (
	"bytes"
	"context"
	stdsql "database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory/open"
	"github.com/userimport/user-import-operator/internal/keyread"
	"github.com/userimport/user-import-operator/internal/reportmail"
	"github.com/userimport/user-import-operator/internal/runcontract"
	"github.com/userimport/user-import-operator/internal/safetext"
	"github.com/userimport/user-import-operator/internal/source"
	"github.com/userimport/user-import-operator/internal/testenv"
	"github.com/userimport/user-import-operator/internal/testpeer/leakcheck"
	"github.com/userimport/user-import-operator/internal/testpeer/postgres"
	"github.com/userimport/user-import-operator/internal/testpeer/scimserver"
	"github.com/userimport/user-import-operator/internal/testpeer/slapd"
)

// Canaries are row values that each directory refuses: the refusal is the
// line's error, and no status, log, worker error or report mail body
// quotes the value. (The report Secret's CSVs and the mail's attachment
// list identities by design.)
func TestPersonalDataCanaries(t *testing.T) {
	_, c := testenv.Shared(t)
	ctx := context.Background()

	type scenario struct {
		dir      v1alpha1.UserDirectorySpec
		secrets  map[string]string // "name/key" -> value
		mapping  []v1alpha1.AttributeMapping
		csv      string
		canaries []string
		failed   int64
	}
	pgCase := func(t *testing.T) scenario {
		srv := postgres.Start(t)
		conn, err := pgx.Connect(ctx, srv.DSN)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, `CREATE TABLE staff (uid uuid PRIMARY KEY, title varchar(8), mark text, active boolean NOT NULL DEFAULT true)`); err != nil {
			t.Fatal(err)
		}
		return scenario{
			dir: v1alpha1.UserDirectorySpec{IdentityAttribute: "uid", ManagedUsers: v1alpha1.ManagedUsers{MarkerAttribute: "mark"},
				SQL: &v1alpha1.SQLDirectory{Driver: v1alpha1.SQLDriverPostgres, DSN: v1alpha1.SecretKeyRef{Name: "db", Key: "dsn"}, Table: "staff", ActiveColumn: "active", Insecure: true}},
			secrets: map[string]string{"db/dsn": srv.DSN},
			mapping: []v1alpha1.AttributeMapping{{Attribute: "uid", Column: "id", Identity: true}, {Attribute: "title", Column: "title"}},
			csv: "id,title\n" +
				"6f1c2a7e-0d6b-4d8e-9f11-2b5d0c9a1e01,Dev\n" +
				"canary.pg.identity@corp.example,Dev\n" +
				"6f1c2a7e-0d6b-4d8e-9f11-2b5d0c9a1e03,Canary-Title-Ångström-7731\n",
			canaries: []string{"canary.pg.identity@corp.example", "Canary-Title-Ångström-7731"},
			failed:   2,
		}
	}
	sqliteCase := func(t *testing.T) scenario {
		path := filepath.Join(t.TempDir(), "hr.db")
		db, err := stdsql.Open("sqlite", path)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec(`CREATE TABLE staff (uid TEXT PRIMARY KEY, title TEXT CHECK (length(title) < 12), mark TEXT, active INTEGER NOT NULL DEFAULT 1)`); err != nil {
			t.Fatal(err)
		}
		return scenario{
			dir: v1alpha1.UserDirectorySpec{IdentityAttribute: "uid", ManagedUsers: v1alpha1.ManagedUsers{MarkerAttribute: "mark"},
				SQL: &v1alpha1.SQLDirectory{Driver: v1alpha1.SQLDriverSQLite, DSN: v1alpha1.SecretKeyRef{Name: "db", Key: "dsn"}, Table: "staff", ActiveColumn: "active"}},
			secrets:  map[string]string{"db/dsn": path},
			mapping:  []v1alpha1.AttributeMapping{{Attribute: "uid", Column: "id", Identity: true}, {Attribute: "title", Column: "title"}},
			csv:      "id,title\nann,Dev\nbob,Canary-Title-SQLite-4417\n",
			canaries: []string{"Canary-Title-SQLite-4417"},
			failed:   1,
		}
	}
	ldapCase := func(t *testing.T) scenario {
		s := slapd.Start(t, slapd.Options{})
		return scenario{
			dir: v1alpha1.UserDirectorySpec{IdentityAttribute: "uid",
				LDAP: &v1alpha1.LDAPDirectory{URL: s.URL, BindDN: s.BindDN, BindPassword: v1alpha1.SecretKeyRef{Name: "ldap", Key: "password"}, UsersBaseDN: s.PeopleDN, Insecure: true}},
			secrets: map[string]string{"ldap/password": s.BindPassword},
			mapping: []v1alpha1.AttributeMapping{{Attribute: "uid", Column: "id", Identity: true}, {Attribute: "sn", Column: "last"},
				{Attribute: "cn", Column: "last"}, {Attribute: "mail", Column: "mail"}},
			// mail is an IA5 string: ASCII only.
			csv:      "id,last,mail\nann,Lee,ann@corp.example\nbob,Kim,canary.zoë.ldap@corp.example\n",
			canaries: []string{"canary.zoë.ldap@corp.example", "canary.zo"},
			failed:   1,
		}
	}
	for name, build := range map[string]func(*testing.T) scenario{"PostgreSQL": pgCase, "SQLite": sqliteCase, "LDAP": ldapCase} {
		t.Run(name, func(t *testing.T) {
			s := build(t)
			work := t.TempDir()
			for k, v := range s.secrets {
				name, key, _ := strings.Cut(k, "/")
				os.MkdirAll(filepath.Join(work, "secrets", name), 0o700)
				os.WriteFile(filepath.Join(work, "secrets", name, key), []byte(v), 0o600)
			}
			secrets := keyread.MountedSecrets(filepath.Join(work, "secrets"))
			csvPath := filepath.Join(work, "users.csv")
			if err := os.WriteFile(csvPath, []byte(s.csv), 0o600); err != nil {
				t.Fatal(err)
			}
			key := types.NamespacedName{Namespace: "default", Name: "canary-" + strings.ToLower(name)}
			imp := &v1alpha1.UserImport{}
			imp.Namespace, imp.Name = key.Namespace, key.Name
			imp.Spec = v1alpha1.UserImportSpec{DirectoryRef: v1alpha1.LocalObjectReference{Name: "dir"},
				Source: v1alpha1.ImportSource{ConfigMap: &v1alpha1.ConfigMapKeyRef{Name: "hr", Key: "users.csv"}},
				Mode:   v1alpha1.ModeDelta, Mapping: s.mapping}
			if err := c.Create(ctx, imp); err != nil {
				t.Fatal(err)
			}
			report := &corev1.Secret{}
			report.Namespace, report.Name = key.Namespace, key.Name+"-report"
			if err := c.Create(ctx, report); err != nil {
				t.Fatal(err)
			}
			var log bytes.Buffer
			var errs []string
			for _, stage := range []Stage{runcontract.StagePreview, runcontract.StageImport} {
				var cur v1alpha1.UserImport
				if err := c.Get(ctx, key, &cur); err != nil {
					t.Fatal(err)
				}
				_, err := Run(ctx, Config{Stage: stage, Import: &cur, Directory: s.dir, Secrets: secrets,
					Source: source.Options{Dir: t.TempDir(), MountedFile: csvPath}, Open: open.Directory,
					Sink: Tee(&APISink{Client: c, Import: key, ReportSecret: report.Name}, &ConsoleSink{Out: &log}), ProgressInterval: time.Millisecond})
				if err != nil {
					errs = append(errs, err.Error())
				}
			}
			var cur v1alpha1.UserImport
			if err := c.Get(ctx, key, &cur); err != nil {
				t.Fatal(err)
			}
			if p := cur.Status.Progress; len(errs) > 0 || p == nil || p.Failed != s.failed {
				t.Fatalf("the import: errors %v, progress %+v; want %d failed lines and no error", errs, p, s.failed)
			}
			if err := c.Get(ctx, types.NamespacedName{Namespace: key.Namespace, Name: report.Name}, report); err != nil {
				t.Fatal(err)
			}
			if n := strings.Count(messagesOf(t, report.Data[runcontract.ReportErrorsKey]), "\n"); int64(n) != s.failed {
				t.Fatalf("errors.csv lists %d line errors, want %d:\n%s", n, s.failed, report.Data[runcontract.ReportErrorsKey])
			}
			status, _ := json.Marshal(cur.Status)
			mail := reportmail.Message(&cur, v1alpha1.PhaseCompleted, report.Data, time.Now())
			for what, text := range map[string]string{"status": string(status), "log": log.String(),
				"report mail": mail.Subject + "\n" + mail.Text, "worker errors": strings.Join(errs, "\n"),
				"line errors in errors.csv": messagesOf(t, report.Data[runcontract.ReportErrorsKey])} {
				leakcheck.NoValues(t, what, text, s.canaries)
			}
			t.Logf("%s: line errors %s", name, messagesOf(t, report.Data[runcontract.ReportErrorsKey]))
		})
	}
}

// messagesOf is the message column of an errors.csv: the identity
// column lists identities by design, the messages must not quote values.
func messagesOf(t *testing.T, data []byte) string {
	t.Helper()
	var b strings.Builder
	for i, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if i == 0 {
			continue
		}
		if j := strings.LastIndexByte(line, ','); j >= 0 {
			fmt.Fprintln(&b, line[j+1:])
		}
	}
	return b.String()
}

// A SCIM server that quotes the value it refuses, and one whose answer
// cannot be decoded: the first is that line's error, the second fails
// the run; neither the line's error, the status, the log nor the
// message that leaves the worker quotes a value.
func TestSCIMAnswersQuotingValuesStayOutOfMessages(t *testing.T) {
	_, c := testenv.Shared(t)
	ctx := context.Background()
	s := scimserver.Start(t, scimserver.Options{Token: "t0ken"})
	p := scimserver.NewProxy(t, s)
	const refused, garbled = "canary.scim.refused@corp.example", "Canary-SCIM-Garbled-5521"
	p.FaultNextBody(1<<20, func(m, _ string, body []byte) bool { return m == "POST" && bytes.Contains(body, []byte(refused)) }, scimserver.FaultEcho)
	p.FaultNextBody(1<<20, func(m, _ string, body []byte) bool { return m == "POST" && bytes.Contains(body, []byte(garbled)) }, scimserver.FaultGarbled)

	work := t.TempDir()
	csvPath := filepath.Join(work, "users.csv")
	csv := "email,last\nann@corp.example,Lee\n" + refused + ",Kim\nzed@corp.example," + garbled + "\n"
	if err := os.WriteFile(csvPath, []byte(csv), 0o600); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(work, "secrets", "scim"), 0o700)
	os.WriteFile(filepath.Join(work, "secrets", "scim", "token"), []byte("t0ken"), 0o600)
	secrets := keyread.MountedSecrets(filepath.Join(work, "secrets"))

	key := types.NamespacedName{Namespace: "default", Name: "canary-scim"}
	imp := &v1alpha1.UserImport{}
	imp.Namespace, imp.Name = key.Namespace, key.Name
	imp.Spec = v1alpha1.UserImportSpec{DirectoryRef: v1alpha1.LocalObjectReference{Name: "scim"},
		Source: v1alpha1.ImportSource{ConfigMap: &v1alpha1.ConfigMapKeyRef{Name: "hr", Key: "users.csv"}},
		Mode:   v1alpha1.ModeDelta, Mapping: []v1alpha1.AttributeMapping{
			{Attribute: "userName", Column: "email", Identity: true}, {Attribute: "name.familyName", Column: "last"}}}
	if err := c.Create(ctx, imp); err != nil {
		t.Fatal(err)
	}
	report := &corev1.Secret{}
	report.Namespace, report.Name = key.Namespace, key.Name+"-report"
	if err := c.Create(ctx, report); err != nil {
		t.Fatal(err)
	}
	dir := v1alpha1.UserDirectorySpec{IdentityAttribute: "userName",
		SCIM:      &v1alpha1.SCIMDirectory{URL: p.URL, Insecure: true, Auth: v1alpha1.SCIMAuth{BearerToken: &v1alpha1.SecretKeyRef{Name: "scim", Key: "token"}}},
		Execution: v1alpha1.ExecutionSettings{BatchSize: 1, Concurrency: 1}}
	var log bytes.Buffer
	var cur v1alpha1.UserImport
	if err := c.Get(ctx, key, &cur); err != nil {
		t.Fatal(err)
	}
	_, err := Run(ctx, Config{Stage: runcontract.StageImport, Import: &cur, Directory: dir, Secrets: secrets,
		Source: source.Options{Dir: t.TempDir(), MountedFile: csvPath}, Open: open.Directory,
		Sink: Tee(&APISink{Client: c, Import: key, ReportSecret: report.Name}, &ConsoleSink{Out: &log}), ProgressInterval: time.Millisecond})
	if err == nil {
		t.Fatal("the run succeeded although the server's answer to a create could not be decoded")
	}
	if err := c.Get(ctx, key, &cur); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(ctx, types.NamespacedName{Namespace: key.Namespace, Name: report.Name}, report); err != nil {
		t.Fatal(err)
	}
	lineErrors := messagesOf(t, report.Data[runcontract.ReportErrorsKey])
	if !strings.Contains(lineErrors, "invalidValue") {
		t.Fatalf("the refused row is not a line error naming the server's scimType: %q", lineErrors)
	}
	status, _ := json.Marshal(cur.Status)
	for what, text := range map[string]string{"status": string(status), "log": log.String(),
		"termination message": safetext.Of(err), "line errors": lineErrors} {
		leakcheck.NoValues(t, what, text, []string{refused, garbled, "canary.scim", "Canary-SCIM"})
	}
	t.Logf("termination message: %s; line errors: %s", safetext.Of(err), lineErrors)
}
