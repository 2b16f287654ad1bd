// Package invite renders invitation mails from templates and sends them
// through a mail.Sender: the engine's Inviter.
package invite

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	htmltemplate "html/template"
	"strings"
	texttemplate "text/template"
	"text/template/parse"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/engine"
	"github.com/userimport/user-import-operator/internal/keyread"
	"github.com/userimport/user-import-operator/internal/mail"
)

// Keys of the templates ConfigMap (spec.invitations.templates).
const (
	SubjectKey = "subject"
	TextKey    = "text"
	HTMLKey    = "html"
)

// The built-in templates, used for every key the ConfigMap does not have.
const (
	DefaultSubject = `{{with .Organization}}{{.}}: {{end}}your account is ready`
	DefaultText    = `Hello{{with .GivenName}} {{.}}{{end}},

an account has been created for you{{with .Organization}} at {{.}}{{end}}.
You sign in as {{.Identity}}{{with .SignInURL}} at
{{.}}{{end}}.
{{with .RecoveryCode}}
Your recovery code, to sign in without e-mail: {{.}}
Keep it safe: it is personal.
{{end}}
This mail was sent because your organisation added you to its directory.
`
	DefaultHTML = `<!DOCTYPE html>
<html><body>
<p>Hello{{with .GivenName}} {{.}}{{end}},</p>
<p>an account has been created for you{{with .Organization}} at {{.}}{{end}}.
You sign in as <b>{{.Identity}}</b>{{with .SignInURL}} at <a href="{{.}}">{{.}}</a>{{end}}.</p>
{{with .RecoveryCode}}<p>Your recovery code, to sign in without e-mail: <b>{{.}}</b><br>Keep it safe: it is personal.</p>
{{end}}<p>This mail was sent because your organisation added you to its directory.</p>
</body></html>
`
)

// Data is what the templates see.
type Data struct {
	Identity string
	Address  string
	// Attributes are the user's mapped attributes by name; use
	// {{index .Attributes "name.givenName"}} for names with dots.
	Attributes   map[string]string
	Organization string
	SignInURL    string
	// RecoveryCode is the user's recovery code when the import gave it
	// one, or "".
	RecoveryCode string
	// GivenName is the value of the first mapped attribute of
	// GivenNameAttributes, or "": the default templates greet by it.
	GivenName string
}

// GivenNameAttributes are the attributes that hold a given name, in the
// directories' vocabularies: LDAP, SCIM, and common SQL column names.
var GivenNameAttributes = []string{"givenName", "name.givenName", "given_name", "first_name", "firstName"}

// Templates are the parsed subject, text and HTML of an invitation.
type Templates struct {
	subject, text *texttemplate.Template
	html          *htmltemplate.Template
	// SHA256 identifies the three sources: a preview records it, and an
	// import whose templates changed since is previewed again.
	SHA256 string
}

// Parse parses the three templates and checks them against the sandbox
// (sandbox.go). An error names the template and the line, as in
// `template: subject:1: unexpected "}" in operand`.
func Parse(subject, text, html string) (*Templates, error) {
	var t Templates
	var err error
	// An attribute the mapping does not have is a mistake in the template:
	// it fails the preview instead of rendering as nothing.
	if t.subject, err = texttemplate.New(SubjectKey).Option("missingkey=error").Parse(subject); err != nil {
		return nil, err
	}
	if t.text, err = texttemplate.New(TextKey).Option("missingkey=error").Parse(text); err != nil {
		return nil, err
	}
	if t.html, err = htmltemplate.New(HTMLKey).Option("missingkey=error").Parse(html); err != nil {
		return nil, err
	}
	for _, c := range []struct {
		name, src string
		defined   int
		tree      *parse.Tree
	}{
		{SubjectKey, subject, len(t.subject.Templates()), t.subject.Tree},
		{TextKey, text, len(t.text.Templates()), t.text.Tree},
		{HTMLKey, html, len(t.html.Templates()), t.html.Tree},
	} {
		if c.defined > 1 {
			return nil, fmt.Errorf("template %s defines templates; define and block are not allowed", c.name)
		}
		if c.tree != nil {
			if err := checkTree(c.name, c.src, c.tree.Root); err != nil {
				return nil, err
			}
		}
	}
	sum := sha256.Sum256([]byte(subject + "\x00" + text + "\x00" + html))
	t.SHA256 = hex.EncodeToString(sum[:])
	return &t, nil
}

// Load reads the templates of spec.invitations.templates from configMaps;
// the built-in default stands in for every key the ConfigMap lacks, and
// for all three without a ConfigMap. A ConfigMap that is named but does
// not exist is an error.
func Load(ctx context.Context, configMaps keyread.KeyReader, ref *v1alpha1.LocalObjectReference) (*Templates, error) {
	src := map[string]string{SubjectKey: DefaultSubject, TextKey: DefaultText, HTMLKey: DefaultHTML}
	if ref != nil {
		found := 0
		for key := range src {
			b, err := configMaps(ctx, ref.Name, key)
			switch {
			case errors.Is(err, keyread.ErrNotFound):
				continue
			case err != nil:
				return nil, err
			}
			src[key] = string(b)
			found++
		}
		if found == 0 {
			return nil, keyread.NotFound("ConfigMap %s does not exist or has none of the keys subject, text, html", ref.Name)
		}
	}
	return Parse(src[SubjectKey], src[TextKey], src[HTMLKey])
}

// Render renders the message for d. Each template's output is bounded,
// and an error names the template and the position, never a value.
func (t *Templates) Render(d Data) (mail.Message, error) {
	var subject, text, html bytes.Buffer
	if err := t.subject.Execute(&boundedWriter{w: &subject}, d); err != nil {
		return mail.Message{}, execError(SubjectKey, err)
	}
	if err := t.text.Execute(&boundedWriter{w: &text}, d); err != nil {
		return mail.Message{}, execError(TextKey, err)
	}
	if err := t.html.Execute(&boundedWriter{w: &html}, d); err != nil {
		return mail.Message{}, execError(HTMLKey, err)
	}
	// A subject is one line: a line break would end the header.
	s := strings.Join(strings.Fields(subject.String()), " ")
	return mail.Message{To: []string{d.Address}, Subject: s, Text: text.String(), HTML: html.String()}, nil
}

// Mailer is the engine's Inviter: it renders the templates for a user and
// sends the message.
type Mailer struct {
	Templates    *Templates
	Sender       *mail.Sender
	Organization string
	SignInURL    string
	// MessageIDs, when set, is the Message-ID domain part and seed (the
	// import's UID): a user's invitation of one import always has the
	// same Message-ID.
	MessageIDs string
}

var _ engine.Inviter = (*Mailer)(nil)

func (m *Mailer) data(inv engine.Invitee) Data {
	d := Data{Identity: inv.Identity, Address: inv.Address, Attributes: inv.Attributes, Organization: m.Organization, SignInURL: m.SignInURL, RecoveryCode: inv.RecoveryCode}
	for _, a := range GivenNameAttributes {
		if v := strings.TrimSpace(inv.Attributes[a]); v != "" {
			d.GivenName = v
			break
		}
	}
	return d
}

// Render renders the invitation of inv.
func (m *Mailer) Render(inv engine.Invitee) error {
	_, err := m.Templates.Render(m.data(inv))
	return err
}

// Send renders and sends the invitation of inv. A recipient the relay
// refuses for good, or whose template fails, is an
// *engine.RecipientError.
func (m *Mailer) Send(ctx context.Context, inv engine.Invitee) error {
	msg, err := m.Templates.Render(m.data(inv))
	if err != nil {
		return &engine.RecipientError{Msg: "the template does not render: " + err.Error()}
	}
	if m.MessageIDs != "" {
		sum := sha256.Sum256([]byte(m.MessageIDs + "\x00" + inv.Identity))
		msg.ID = hex.EncodeToString(sum[:16]) + ".invitation"
	}
	err = m.Sender.Send(ctx, msg)
	var refused *mail.RefusedError
	if errors.As(err, &refused) {
		return &engine.RecipientError{Msg: refused.Error()}
	}
	return err
}
