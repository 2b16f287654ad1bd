// Command mail benchmarks sending mail through the product's sender
// (internal/mail.Sender: one connection, rate limit off, retries) against
// a plain go-mail loop sending the same messages on one connection, both
// to a real Mailpit on 127.0.0.1 with STARTTLS and SMTP AUTH, taking turns
// over -rounds rounds; each keeps its fastest. The last line printed is
//
//	BENCH mail mails=… send_s=… raw_s=… ratio=… load1=…
//
// ratio is raw_s / send_s: 1 means the sender costs nothing over go-mail.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"os"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/hack/bench/benchio"
	"github.com/userimport/user-import-operator/internal/kube"
	"github.com/userimport/user-import-operator/internal/mail"
	"github.com/userimport/user-import-operator/internal/testpeer/mailpit"
)

func main() {
	n := flag.Int("mails", 10000, "messages per side and round")
	rounds := flag.Int("rounds", 2, "rounds, the sides taking turns; each keeps its fastest")
	flag.Parse()
	if err := run(*n, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		os.Exit(1)
	}
}

func run(n, rounds int) error {
	dir, err := os.MkdirTemp("", "uio-bench-mail-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := mailpit.StartIn(dir)
	if err != nil {
		return err
	}
	defer srv.Stop()
	spec := &v1alpha1.MailRelay{
		Host: srv.Host, Port: int32(srv.SMTPPort), TLS: v1alpha1.MailStartTLS,
		CABundle:     &v1alpha1.SecretKeyRef{Name: "relay", Key: "ca.crt"},
		AuthUsername: mailpit.User, AuthPassword: &v1alpha1.SecretKeyRef{Name: "relay", Key: "password"},
		From: "HR onboarding <onboarding@example.com>",
	}
	secrets := func(_ context.Context, name, key string) ([]byte, error) {
		switch key {
		case "ca.crt":
			return srv.CAPEM, nil
		case "password":
			return []byte(mailpit.Password), nil
		}
		return nil, kube.NotFound("Secret %s has no key %s", name, key)
	}
	messages := make([]mail.Message, n)
	for i := range messages {
		messages[i] = mail.Message{
			To:      []string{fmt.Sprintf("person%05d@example.com", i)},
			Subject: fmt.Sprintf("Welcome, Person %d", i),
			Text:    fmt.Sprintf("Hello Person %d,\n\nyour account is ready: https://intranet.example.com/sign-in\n", i),
			HTML:    fmt.Sprintf("<p>Hello Person %d,</p><p>your account is <a href=\"https://intranet.example.com/sign-in\">ready</a>.</p>", i),
		}
	}
	ctx := context.Background()
	best := func(cur, d time.Duration) time.Duration {
		if cur == 0 || d < cur {
			return d
		}
		return cur
	}
	var sendBest, rawBest time.Duration
	for r := range rounds {
		d, err := product(ctx, spec, secrets, messages)
		if err != nil {
			return err
		}
		sendBest = best(sendBest, d)
		d2, err := raw(ctx, srv, messages)
		if err != nil {
			return err
		}
		rawBest = best(rawBest, d2)
		fmt.Fprintf(os.Stderr, "round %d: sender %.2fs, go-mail loop %.2fs\n", r+1, d.Seconds(), d2.Seconds())
	}
	fmt.Printf("BENCH mail mails=%d send_s=%.2f raw_s=%.2f ratio=%.2f load1=%s\n",
		n, sendBest.Seconds(), rawBest.Seconds(), rawBest.Seconds()/sendBest.Seconds(), benchio.Load1())
	return nil
}

// product sends through the sender the invitations will use, with no
// rate limit (spec.rateLimit 0).
func product(ctx context.Context, spec *v1alpha1.MailRelay, secrets kube.KeyReader, messages []mail.Message) (time.Duration, error) {
	start := time.Now()
	s := mail.NewSender(spec, secrets, 10*time.Second)
	defer s.Close()
	for _, m := range messages {
		if err := s.Send(ctx, m); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

// raw sends the same messages with go-mail alone, on one connection.
func raw(ctx context.Context, srv *mailpit.Server, messages []mail.Message) (time.Duration, error) {
	start := time.Now()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(srv.CAPEM)
	c, err := gomail.NewClient(srv.Host, gomail.WithPort(srv.SMTPPort), gomail.WithTLSPolicy(gomail.TLSMandatory),
		gomail.WithTLSConfig(&tls.Config{ServerName: srv.Host, RootCAs: pool, MinVersion: tls.VersionTLS12}),
		gomail.WithSMTPAuth(gomail.SMTPAuthAutoDiscover), gomail.WithUsername(mailpit.User), gomail.WithPassword(mailpit.Password))
	if err != nil {
		return 0, err
	}
	if err := c.DialWithContext(ctx); err != nil {
		return 0, err
	}
	defer c.Close()
	for _, m := range messages {
		msg := gomail.NewMsg()
		if err := msg.From("HR onboarding <onboarding@example.com>"); err != nil {
			return 0, err
		}
		if err := msg.To(m.To...); err != nil {
			return 0, err
		}
		msg.Subject(m.Subject)
		msg.SetBodyString(gomail.TypeTextPlain, m.Text)
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
		if err := c.Send(msg); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}
