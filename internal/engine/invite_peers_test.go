package engine

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/keyread"
	"github.com/userimport/user-import-operator/internal/mail"
	"github.com/userimport/user-import-operator/internal/testpeer/mailpit"
)

// relayInviter sends a plain invitation through a real relay.
type relayInviter struct{ s *mail.Sender }

func (relayInviter) Render(Invitee) error { return nil }
func (r relayInviter) Send(ctx context.Context, inv Invitee) error {
	return r.s.Send(ctx, mail.Message{To: []string{inv.Address}, Subject: "Welcome", Text: "Hello " + inv.Identity})
}

// Every directory keeps the record invitations are driven by: new users
// are created owed one, each is invited once, and a second import finds
// nothing owed.
func TestInvitationsAreRecordedInEveryDirectory(t *testing.T) {
	relay := mailpit.Start(t)
	spec := &v1alpha1.MailRelay{Host: relay.Host, Port: int32(relay.SMTPPort), TLS: v1alpha1.MailStartTLS,
		CABundle:     &v1alpha1.SecretKeyRef{Name: "relay", Key: "ca.crt"},
		AuthUsername: mailpit.User, AuthPassword: &v1alpha1.SecretKeyRef{Name: "relay", Key: "password"},
		From: "onboarding@example.com"}
	secrets := func(_ context.Context, name, key string) ([]byte, error) {
		switch key {
		case "ca.crt":
			return relay.CAPEM, nil
		case "password":
			return []byte(mailpit.Password), nil
		}
		return nil, keyread.NotFound("Secret %s has no key %s", name, key)
	}
	invited := map[string]string{"LDAP": "description", "SCIM": "nickName", "PostgreSQL": "invited"}
	for _, p := range peers() {
		t.Run(p.name, func(t *testing.T) {
			managed, _ := p.start(t, nil)
			const n = 12
			var rows []string
			for i := range n {
				rows = append(rows, fmt.Sprintf("%s-%02d,%s-%02d@example.com,Clerk,", strings.ToLower(p.name), i, strings.ToLower(p.name), i))
			}
			content := file(rows...)
			sender := mail.NewSender(spec, secrets, 5*time.Second)
			defer sender.Close()
			cfg := Config{
				Mode: v1alpha1.ModeDelta,
				Mapping: []v1alpha1.AttributeMapping{
					{Attribute: p.identity, Column: "id", Identity: true, Required: true},
					{Attribute: p.mailAttr, Column: "mail", Check: "Email"},
					{Attribute: "title", Column: "title"},
				},
				Directory: peerOptions(p.identity, p.marker, true),
				Invite:    &InviteConfig{NewUsers: true, AddressAttribute: p.mailAttr, InvitedAttribute: invited[p.name], Inviter: relayInviter{sender}},
			}
			preview, _, err := runOnce(t, managed, cfg, content, true)
			if err != nil || preview.Invitations.NewUsers != n {
				t.Fatalf("preview: %+v (%v), want %d new users to invite", preview.Invitations, err, n)
			}
			res, _, err := runOnce(t, managed, cfg, content, false)
			if err != nil || res.Counts.Created != n || res.Invitations.Sent != n {
				t.Fatalf("import: %+v %+v (%v), want %d created and invited", res.Counts, res.Invitations, err, n)
			}
			again, _, err := runOnce(t, managed, cfg, content, false)
			if err != nil || again.Invitations.Sent != 0 || again.Invitations.NewUsers != 0 {
				t.Fatalf("a second import: %+v (%v), want nothing owed", again.Invitations, err)
			}
			msgs, err := relay.Messages()
			if err != nil {
				t.Fatal(err)
			}
			got := 0
			for _, m := range msgs {
				if strings.HasPrefix(m.To[0].Address, strings.ToLower(p.name)+"-") {
					got++
				}
			}
			if got != n {
				t.Fatalf("%d invitations arrived, want %d", got, n)
			}
		})
	}
}
