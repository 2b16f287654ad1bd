package mail

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/failure"
	"github.com/userimport/user-import-operator/internal/keyread"
	"github.com/userimport/user-import-operator/internal/testpeer/mailpit"
	"github.com/userimport/user-import-operator/internal/testpeer/tcpproxy"
)

// secretsOf serves the Secrets "relay" (key password) and "relay-ca"
// (key ca.crt).
func secretsOf(password string, ca []byte) keyread.KeyReader {
	return func(_ context.Context, name, key string) ([]byte, error) {
		switch {
		case name == "relay" && key == "password":
			return []byte(password), nil
		case name == "relay-ca" && key == "ca.crt" && ca != nil:
			return ca, nil
		}
		return nil, keyread.NotFound("Secret %s has no key %s", name, key)
	}
}

func relay(s *mailpit.Server) *v1alpha1.MailRelay {
	return &v1alpha1.MailRelay{
		Host: s.Host, Port: int32(s.SMTPPort), TLS: v1alpha1.MailStartTLS,
		CABundle:     &v1alpha1.SecretKeyRef{Name: "relay-ca", Key: "ca.crt"},
		AuthUsername: mailpit.User, AuthPassword: &v1alpha1.SecretKeyRef{Name: "relay", Key: "password"},
		From: "onboarding@example.com",
	}
}

// The check connects, upgrades with STARTTLS, signs in and sends nothing;
// each way it can fail has its own reason, and no message quotes the
// password.
func TestCheckAgainstARealRelay(t *testing.T) {
	srv := mailpit.Start(t)
	ctx := context.Background()
	if err := Check(ctx, relay(srv), secretsOf(mailpit.Password, srv.CAPEM), 5*time.Second, nil); err != nil {
		t.Fatalf("a relay that accepts: %v", err)
	}
	if msgs, err := srv.Messages(); err != nil || len(msgs) != 0 {
		t.Fatalf("the check sent %d messages (%v)", len(msgs), err)
	}

	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()

	cases := []struct {
		name     string
		spec     func(*v1alpha1.MailRelay)
		password string
		ca       []byte
		reason   string
	}{
		{"a wrong password", nil, "not-the-password", srv.CAPEM, v1alpha1.ReasonMailAuthenticationFailed},
		{"a certificate no trusted CA signed", func(r *v1alpha1.MailRelay) { r.CABundle = nil }, mailpit.Password, nil, v1alpha1.ReasonMailTLSError},
		{"implicit TLS against a STARTTLS port", func(r *v1alpha1.MailRelay) { r.TLS = v1alpha1.MailImplicitTLS }, mailpit.Password, srv.CAPEM, v1alpha1.ReasonMailTLSError},
		{"nothing listening", func(r *v1alpha1.MailRelay) { r.Port = int32(closedPort) }, mailpit.Password, srv.CAPEM, v1alpha1.ReasonMailUnreachable},
		{"a password Secret that is missing", nil, mailpit.Password, srv.CAPEM, v1alpha1.ReasonMailInvalidConfig},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec := relay(srv)
			if c.spec != nil {
				c.spec(spec)
			}
			secrets := secretsOf(c.password, c.ca)
			if c.reason == v1alpha1.ReasonMailInvalidConfig {
				spec.AuthPassword.Name = "missing"
			}
			err := Check(ctx, spec, secrets, 5*time.Second, nil)
			if err == nil || failure.ReasonOf(err, v1alpha1.ReasonMailUnreachable) != c.reason {
				t.Fatalf("reason %s (%v), want %s", failure.ReasonOf(err, v1alpha1.ReasonMailUnreachable), err, c.reason)
			}
			if strings.Contains(err.Error(), c.password) {
				t.Errorf("the message quotes the password: %v", err)
			}
			if c.reason != v1alpha1.ReasonMailInvalidConfig && !strings.Contains(err.Error(), srv.Host+":"+strconv.Itoa(int(spec.Port))) {
				t.Errorf("the message does not name the relay: %v", err)
			}
		})
	}
}

// Messages go out on one connection; a recipient the relay refuses for
// good fails that message alone, named by its reply and not its address,
// and the next message goes out.
func TestSenderDeliversAndRefusesOneRecipientAlone(t *testing.T) {
	srv, err := mailpit.StartIn(t.TempDir(), "--smtp-allowed-recipients", `@example\.com$`)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Stop)
	ctx := context.Background()
	s := NewSender(relay(srv), secretsOf(mailpit.Password, srv.CAPEM), 5*time.Second)
	defer s.Close()
	send := func(to string) error {
		return s.Send(ctx, Message{To: []string{to}, Subject: "Welcome", Text: "Hello", HTML: "<p>Hello</p>"})
	}
	for i := range 5 {
		if err := send(fmt.Sprintf("user%d@example.com", i)); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	err = send("someone@elsewhere.test")
	var refused *RefusedError
	if !errors.As(err, &refused) || refused.Code < 500 || strings.Contains(err.Error(), "elsewhere") {
		t.Fatalf("a refused recipient: %v, want a RefusedError with a 5xx code and no address", err)
	}
	if err := send("after@example.com"); err != nil {
		t.Fatalf("the message after a refusal: %v", err)
	}
	if err := send("not an address"); err == nil || !strings.Contains(err.Error(), "not a valid address") {
		t.Fatalf("an invalid address: %v", err)
	}
	msgs, err := srv.Messages()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 6 {
		t.Fatalf("%d messages arrived, want 6", len(msgs))
	}
	for _, m := range msgs {
		if m.Subject != "Welcome" || len(m.To) != 1 || !strings.HasSuffix(m.To[0].Address, "@example.com") {
			t.Errorf("message %+v", m)
		}
	}
}

// A relay that is down is retried with backoff, and the message goes out
// once it is back.
func TestSenderRetriesARelayThatIsDown(t *testing.T) {
	srv := mailpit.Start(t)
	proxy := tcpproxy.Start(t, net.JoinHostPort(srv.Host, strconv.Itoa(srv.SMTPPort)))
	spec := relay(srv)
	_, port, _ := net.SplitHostPort(proxy.Addr)
	p, _ := strconv.Atoi(port)
	spec.Port = int32(p)
	s := NewSender(spec, secretsOf(mailpit.Password, srv.CAPEM), 2*time.Second)
	s.Backoff = 200 * time.Millisecond
	defer s.Close()
	proxy.Down()
	go func() {
		time.Sleep(700 * time.Millisecond)
		proxy.Up()
	}()
	if err := s.Send(context.Background(), Message{To: []string{"user@example.com"}, Subject: "Welcome", Text: "Hello"}); err != nil {
		t.Fatalf("after the relay came back: %v", err)
	}
	msgs, err := srv.Messages()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("%d messages (%v), want 1", len(msgs), err)
	}
}
