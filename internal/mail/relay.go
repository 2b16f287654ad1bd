// Package mail talks to the SMTP relay of a UserDirectory (spec.mail)
// through github.com/wneessen/go-mail.
package mail

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/textproto"
	"strconv"
	"strings"
	"syscall"
	"time"

	gomail "github.com/wneessen/go-mail"
	"github.com/wneessen/go-mail/smtp"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/credentials"
	"github.com/userimport/user-import-operator/internal/failure"
	"github.com/userimport/user-import-operator/internal/keyread"
)

// Failures of the relay are *failure.Error with a reason of the MailReady
// condition (v1alpha1.ReasonMail*); one without is unreachable.

// Control checks a connection's address (a net.Dialer's Control).
type Control = func(network, address string, c syscall.RawConn) error

// Conn is a connection to a relay, signed in.
type Conn struct {
	client *gomail.Client
	smtp   *smtp.Client
}

// Dial connects to the relay of spec as it asks: TLS or STARTTLS (or, only
// when marked insecure, neither), EHLO, and AUTH when a user is named.
//
// control, when set, checks the address the connection goes to after the
// name was resolved (egress.Policy.Control).
func Dial(ctx context.Context, spec *v1alpha1.MailRelay, secrets keyread.KeyReader, timeout time.Duration, control Control) (*Conn, error) {
	opts, err := options(ctx, spec, secrets, timeout)
	if err != nil {
		return nil, err
	}
	if control != nil {
		opts = append(opts, gomail.WithDialContextFunc((&net.Dialer{Timeout: timeout, Control: control}).DialContext))
	}
	c, err := gomail.NewClient(spec.Host, opts...)
	if err != nil {
		return nil, &failure.Error{Reason: v1alpha1.ReasonMailInvalidConfig, Err: fmt.Errorf("spec.mail: %w", err)}
	}
	sc, err := c.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return nil, classify(spec, err)
	}
	return &Conn{client: c, smtp: sc}, nil
}

// MaxSize is the largest message the relay takes, as its EHLO reply
// advertises it (SIZE, RFC 1870); 0 when it names none.
func (c *Conn) MaxSize() int64 {
	ok, v := c.smtp.Extension("SIZE")
	if !ok {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// Send sends msg.
func (c *Conn) Send(msg *gomail.Msg) error { return c.client.SendWithSMTPClient(c.smtp, msg) }

// Close says QUIT and closes the connection.
func (c *Conn) Close() error { return c.client.CloseWithSMTPClient(c.smtp) }

// Check connects to the relay, signs in and disconnects: no message is
// sent.
func Check(ctx context.Context, spec *v1alpha1.MailRelay, secrets keyread.KeyReader, timeout time.Duration, control Control) error {
	c, err := Dial(ctx, spec, secrets, timeout, control)
	if err != nil {
		return err
	}
	return c.Close()
}

func options(ctx context.Context, spec *v1alpha1.MailRelay, secrets keyread.KeyReader, timeout time.Duration) ([]gomail.Option, error) {
	tlsConfig := &tls.Config{ServerName: spec.Host, MinVersion: tls.VersionTLS12}
	if ref := spec.CABundle; ref != nil {
		pool, err := credentials.CertPool(ctx, secrets, "spec.mail.caBundle", *ref)
		if err != nil {
			return nil, &failure.Error{Reason: v1alpha1.ReasonMailInvalidConfig, Err: err}
		}
		tlsConfig.RootCAs = pool
	}
	opts := []gomail.Option{gomail.WithPort(port(spec)), gomail.WithTimeout(timeout), gomail.WithTLSConfig(tlsConfig)}
	switch spec.TLS {
	case v1alpha1.MailImplicitTLS:
		opts = append(opts, gomail.WithSSL())
	case v1alpha1.MailNoTLS:
		if !spec.Insecure {
			return nil, &failure.Error{Reason: v1alpha1.ReasonMailInvalidConfig, Err: errors.New("spec.mail.tls None needs spec.mail.insecure: true")}
		}
		opts = append(opts, gomail.WithTLSPolicy(gomail.NoTLS))
	default:
		opts = append(opts, gomail.WithTLSPolicy(gomail.TLSMandatory))
	}
	if spec.AuthUsername == "" {
		return append(opts, gomail.WithSMTPAuth(gomail.SMTPAuthNoAuth)), nil
	}
	if spec.AuthPassword == nil {
		return nil, &failure.Error{Reason: v1alpha1.ReasonMailInvalidConfig, Err: errors.New("spec.mail.authPassword is required with authUsername")}
	}
	pw, err := credentials.SecretValue(ctx, secrets, "spec.mail.authPassword", *spec.AuthPassword)
	if err != nil {
		return nil, &failure.Error{Reason: v1alpha1.ReasonMailInvalidConfig, Err: err}
	}
	auth := gomail.SMTPAuthAutoDiscover
	if spec.TLS == v1alpha1.MailNoTLS {
		// Marked insecure: the password may go in clear.
		auth = gomail.SMTPAuthPlainNoEnc
	}
	return append(opts, gomail.WithSMTPAuth(auth), gomail.WithUsername(spec.AuthUsername),
		gomail.WithPassword(strings.TrimRight(string(pw), "\r\n"))), nil
}

// classify gives a failure to connect the reason a person acts on. The
// message names the relay and the step, never a password.
func classify(spec *v1alpha1.MailRelay, err error) error {
	where := fmt.Sprintf("mail relay %s:%d", spec.Host, port(spec))
	var proto *textproto.Error
	switch {
	case errors.As(err, &proto) && (proto.Code == 530 || proto.Code == 534 || proto.Code == 535 || proto.Code == 538 || proto.Code == 454):
		return &failure.Error{Reason: v1alpha1.ReasonMailAuthenticationFailed, Err: fmt.Errorf("%s refused the credentials of %s: %d %s", where, spec.AuthUsername, proto.Code, proto.Msg)}
	case isAuthMechanismError(err):
		return &failure.Error{Reason: v1alpha1.ReasonMailAuthenticationFailed, Err: fmt.Errorf("%s: %w", where, err)}
	case credentials.IsTLSError(err) || strings.Contains(err.Error(), "STARTTLS"):
		return &failure.Error{Reason: v1alpha1.ReasonMailTLSError, Err: fmt.Errorf("%s: %w", where, err)}
	}
	return &failure.Error{Reason: v1alpha1.ReasonMailUnreachable, Err: fmt.Errorf("%s: %w", where, err)}
}

func isAuthMechanismError(err error) bool {
	for _, e := range []error{gomail.ErrNoSupportedAuthDiscovered, gomail.ErrPlainAuthNotSupported, gomail.ErrLoginAuthNotSupported} {
		if errors.Is(err, e) {
			return true
		}
	}
	return strings.Contains(err.Error(), "does not support SMTP AUTH")
}

// port is the relay's port: spec.mail.port, or 587 (submission).
func port(spec *v1alpha1.MailRelay) int {
	if spec.Port == 0 {
		return 587
	}
	return int(spec.Port)
}
