package invite

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/engine"
	"github.com/userimport/user-import-operator/internal/failure"
	"github.com/userimport/user-import-operator/internal/keyread"
	"github.com/userimport/user-import-operator/internal/testpeer/mailpit"
)

func configMap(data map[string]string) keyread.KeyReader {
	return func(_ context.Context, name, key string) ([]byte, error) {
		if v, ok := data[key]; ok && name == "welcome" {
			return []byte(v), nil
		}
		return nil, keyread.NotFound("ConfigMap %s has no key %s", name, key)
	}
}

// A template that does not parse is named with its line.
func TestTemplateErrorsNameTheTemplateAndLine(t *testing.T) {
	_, err := Load(context.Background(), configMap(map[string]string{"text": "Hello\n{{.Identity}\n"}), &v1alpha1.LocalObjectReference{Name: "welcome"})
	if err == nil || !strings.Contains(err.Error(), "text:2") {
		t.Fatalf("got %v, want an error naming text:2", err)
	}
	_, err = Load(context.Background(), configMap(nil), &v1alpha1.LocalObjectReference{Name: "welcome"})
	if !errors.Is(err, keyread.ErrNotFound) {
		t.Fatalf("a missing ConfigMap: %v", err)
	}
}

// The preview renders the templates against the first valid row: an
// attribute the mapping does not have stops it with InvalidTemplate, and
// nothing is sent.
func TestPreviewRendersTheTemplates(t *testing.T) {
	relay := mailpit.Start(t)
	dsn, table := usersTable(t)
	tpl, err := Load(context.Background(), configMap(map[string]string{"subject": "Welcome {{.Attributes.surname}}"}), &v1alpha1.LocalObjectReference{Name: "welcome"})
	if err != nil {
		t.Fatal(err)
	}
	m, sender := mailer(t, relay, mailpit.Password)
	defer sender.Close()
	m.Templates = tpl
	cfg := config(engine.InviteConfig{NewUsers: true, AddressAttribute: "mail", InvitedAttribute: "invited", Inviter: m})
	content := "id,mail,given\n\"\",bad@example.com,x\nu1,u1@example.com,Ann\n"
	_, err = engine.Run(context.Background(), input(content, nil), openSQL(t, dsn, table), cfg, true, nil)
	if !failure.IsStalled(err) || failure.ReasonOf(err, "") != v1alpha1.ReasonInvalidTemplate || !strings.Contains(err.Error(), "subject:1") || !strings.Contains(err.Error(), "surname") {
		t.Fatalf("got %v, want InvalidTemplate naming subject:1 and the attribute", err)
	}
	if n := len(addressesOf(t, relay)); n != 0 {
		t.Fatalf("the preview sent %d mails", n)
	}
}

// What arrives: the subject and bodies rendered with the user's mapped
// attributes; in the HTML body a name is text, never markup.
func TestInvitationAsItArrives(t *testing.T) {
	relay := mailpit.Start(t)
	dsn, table := usersTable(t)
	tpl, err := Load(context.Background(), configMap(map[string]string{
		"subject": "Welcome to {{.Organization}}, {{.Attributes.given}}",
		"html":    `<p>Hello {{.Attributes.given}}, sign in at <a href="{{.SignInURL}}">{{.SignInURL}}</a></p>`,
	}), &v1alpha1.LocalObjectReference{Name: "welcome"})
	if err != nil {
		t.Fatal(err)
	}
	m, sender := mailer(t, relay, mailpit.Password)
	defer sender.Close()
	m.Templates = tpl
	cfg := config(engine.InviteConfig{NewUsers: true, AddressAttribute: "mail", InvitedAttribute: "invited", Inviter: m})
	content := "id,mail,given\nu1,ann@example.com,<script>alert(1)</script>\n"
	res, err := engine.Run(context.Background(), input(content, nil), openSQL(t, dsn, table), cfg, false, nil)
	if err != nil || res.Invitations.Sent != 1 {
		t.Fatalf("%+v %v", res.Invitations, err)
	}
	msgs, err := relay.Messages()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("%d messages (%v)", len(msgs), err)
	}
	d, err := relay.Detail(msgs[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.Subject != "Welcome to Example Corp, <script>alert(1)</script>" || d.To[0].Address != "ann@example.com" {
		t.Fatalf("subject %q to %v", d.Subject, d.To)
	}
	if strings.Contains(d.HTML, "<script>") || !strings.Contains(d.HTML, "&lt;script&gt;") || !strings.Contains(d.HTML, `href="https://sso.example.com"`) {
		t.Fatalf("HTML body not escaped as text: %s", d.HTML)
	}
	if !strings.Contains(d.Text, "You sign in as u1 at") || !strings.Contains(d.Text, "Example Corp") {
		t.Fatalf("text body (the default): %s", d.Text)
	}
	if !strings.HasSuffix(d.MessageID, ".invitation@example.com") {
		t.Fatalf("Message-ID %q: want the domain of the sender, example.com", d.MessageID)
	}
}

// The default invitation greets the user by the given name when the
// mapping has one, and says it is automatic, so that out-of-office replies
// stay away (RFC 3834); its Message-ID is in the sender's domain.
func TestDefaultInvitationGreetsByNameAndIsAutomatic(t *testing.T) {
	relay := mailpit.Start(t)
	m, sender := mailer(t, relay, mailpit.Password)
	defer sender.Close()
	inv := engine.Invitee{Line: 2, Identity: "u1", Address: "ann@example.com", Attributes: map[string]string{"givenName": "Ann", "mail": "ann@example.com"}}
	if err := m.Send(context.Background(), inv); err != nil {
		t.Fatal(err)
	}
	anon := engine.Invitee{Line: 3, Identity: "u2", Address: "bob@example.com", Attributes: map[string]string{"mail": "bob@example.com"}}
	if err := m.Send(context.Background(), anon); err != nil {
		t.Fatal(err)
	}
	msgs, err := relay.Messages()
	if err != nil || len(msgs) != 2 {
		t.Fatalf("%d messages (%v)", len(msgs), err)
	}
	for _, msg := range msgs {
		d, err := relay.Detail(msg.ID)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := relay.Raw(msg.ID)
		if err != nil {
			t.Fatal(err)
		}
		greeting := "Hello,"
		if d.To[0].Address == "ann@example.com" {
			greeting = "Hello Ann,"
		}
		if !strings.HasPrefix(d.Text, greeting) || !strings.Contains(d.HTML, "<p>"+greeting+"</p>") {
			t.Errorf("to %s: want %q in both bodies:\n%s\n%s", d.To[0].Address, greeting, d.Text, d.HTML)
		}
		if !strings.Contains(string(raw), "\r\nAuto-Submitted: auto-generated\r\n") {
			t.Errorf("no Auto-Submitted header:\n%s", raw)
		}
		if !strings.HasSuffix(d.MessageID, "@example.com") {
			t.Errorf("Message-ID %q is not in the sender's domain", d.MessageID)
		}
	}
}
