// Command mail benchmarks invitations sent through the product — an
// import whose users are owed an invitation, in an SQLite directory: the
// engine reads the file, looks the users up, renders the templates, sends
// each message through internal/mail.Sender (one connection, rate limit
// off) and records it in the directory before the next — against a plain
// go-mail loop sending the same messages on one connection. Both go to a
// real Mailpit on 127.0.0.1 with STARTTLS and SMTP AUTH, taking turns over
// -rounds rounds; each keeps its fastest. The last line printed is
//
//	BENCH mail mails=… send_s=… raw_s=… ratio=… load1=…
//
// ratio is raw_s / send_s: 1 means the product costs nothing over go-mail.
package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	stdsql "database/sql"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/hack/bench/benchio"
	"github.com/userimport/user-import-operator/internal/directory"
	sqldir "github.com/userimport/user-import-operator/internal/directory/sql"
	"github.com/userimport/user-import-operator/internal/engine"
	"github.com/userimport/user-import-operator/internal/invite"
	"github.com/userimport/user-import-operator/internal/keyread"
	"github.com/userimport/user-import-operator/internal/mail"
	"github.com/userimport/user-import-operator/internal/testpeer/mailpit"
)

func main() {
	n := flag.Int("mails", 10000, "messages per side and round")
	rounds := flag.Int("rounds", 2, "rounds, the sides taking turns; each keeps its fastest")
	cpuprofile := flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	flag.Parse()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			_ = pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	if err := run(*n, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "error:", err)
		pprof.StopCPUProfile()
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
		return nil, keyread.NotFound("Secret %s has no key %s", name, key)
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
		d, err := product(ctx, spec, secrets, n)
		if err != nil {
			return err
		}
		sendBest = best(sendBest, d)
		d2, err := raw(ctx, srv, messages)
		if err != nil {
			return err
		}
		rawBest = best(rawBest, d2)
		fmt.Fprintf(os.Stderr, "round %d: invitations %.2fs, go-mail loop %.2fs\n", r+1, d.Seconds(), d2.Seconds())
	}
	fmt.Printf("BENCH mail mails=%d send_s=%.2f raw_s=%.2f ratio=%.2f load1=%s\n",
		n, sendBest.Seconds(), rawBest.Seconds(), rawBest.Seconds()/sendBest.Seconds(), benchio.Load1())
	return nil
}

// product runs the invitation pass of a delta import of n users the
// directory holds, each owed an invitation, and times it.
func product(ctx context.Context, spec *v1alpha1.MailRelay, secrets keyread.KeyReader, n int) (time.Duration, error) {
	work, err := os.MkdirTemp("", "uio-bench-invite-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(work)
	db := filepath.Join(work, "users.db")
	if err := sqldir.CreateTable(ctx, v1alpha1.SQLDriverSQLite, db, sqldir.TableSpec{
		Table: "users", IdentityColumn: "uid", Columns: []string{"mail", "given", "mark", "invited"},
	}); err != nil {
		return 0, err
	}
	var file strings.Builder
	file.WriteString("uid,mail,given\n")
	conn, err := stdsql.Open("sqlite", db)
	if err != nil {
		return 0, err
	}
	tx, err := conn.Begin()
	if err != nil {
		return 0, err
	}
	for i := range n {
		uid, addr, given := fmt.Sprintf("u%05d", i), fmt.Sprintf("person%05d@example.com", i), fmt.Sprintf("Person %d", i)
		if _, err := tx.Exec("INSERT INTO users (uid, mail, given, mark, invited, active) VALUES (?, ?, ?, 'uio', ?, 1)", uid, addr, given, engine.InvitationDue); err != nil {
			return 0, err
		}
		fmt.Fprintf(&file, "%s,%s,%s\n", uid, addr, given)
	}
	if err := tx.Commit(); err != nil {
		return 0, err
	}
	conn.Close()

	opts := directory.Options{IdentityAttribute: "uid", ManagedOnly: true, MarkerAttribute: "mark", MarkerValue: "uio", Concurrency: 4}
	dir, err := sqldir.New(ctx, &v1alpha1.SQLDirectory{Driver: v1alpha1.SQLDriverSQLite, DSN: v1alpha1.SecretKeyRef{Name: "db", Key: "dsn"}, Table: "users"},
		opts, func(context.Context, string, string) ([]byte, error) { return []byte(db), nil })
	if err != nil {
		return 0, err
	}
	defer dir.Close()
	tpl, err := invite.Parse("Welcome, {{.Attributes.given}}",
		"Hello {{.Attributes.given}},\n\nyour account is ready: {{.SignInURL}}\n",
		`<p>Hello {{.Attributes.given}},</p><p>your account is <a href="{{.SignInURL}}">ready</a>.</p>`)
	if err != nil {
		return 0, err
	}
	sender := mail.NewSender(spec, secrets, 10*time.Second)
	defer sender.Close()
	cfg := engine.Config{
		Mode: v1alpha1.ModeDelta,
		Mapping: []v1alpha1.AttributeMapping{
			{Attribute: "uid", Column: "uid", Identity: true},
			{Attribute: "mail", Column: "mail"},
			{Attribute: "given", Column: "given"},
		},
		Directory: opts,
		Invite: &engine.InviteConfig{NewUsers: true, AddressAttribute: "mail", InvitedAttribute: "invited",
			Inviter: &invite.Mailer{Templates: tpl, Sender: sender, SignInURL: "https://intranet.example.com/sign-in", MessageIDs: work}},
	}
	content := file.String()
	sum := sha256.Sum256([]byte(content))
	start := time.Now()
	res, err := engine.Run(ctx, engine.Input{File: strings.NewReader(content), SHA256: hex.EncodeToString(sum[:])}, dir, cfg, false, nil)
	d := time.Since(start)
	if err != nil {
		return 0, err
	}
	if res.Invitations.Sent != int64(n) || res.Invitations.RelayError != nil {
		return 0, fmt.Errorf("%d of %d invitations sent (%v)", res.Invitations.Sent, n, res.Invitations.RelayError)
	}
	return d, nil
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
