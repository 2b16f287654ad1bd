package mail

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	netmail "net/mail"
	"slices"
	"strings"
	"time"

	gomail "github.com/wneessen/go-mail"
	"golang.org/x/time/rate"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/failure"
	"github.com/userimport/user-import-operator/internal/keyread"
	"github.com/userimport/user-import-operator/internal/retry"
)

// Message is one mail.
type Message struct {
	To      []string
	Subject string
	Text    string
	// HTML, when set, is the alternative HTML body.
	HTML string
	// ID, when set, is the Message-ID (without angle brackets), or its
	// part before the "@" (the sender's domain is added). A message sent
	// again after a crash with the same ID can be recognised by the
	// receiving systems as the same message.
	ID string
	// Attachments are files attached to the message.
	Attachments []Attachment
}

// Attachment is a file attached to a message.
type Attachment struct {
	Name        string
	ContentType string
	Data        []byte
	// Fit, when set, cuts Data down to at most max bytes: a message larger
	// than the relay takes (its SIZE) is sent with its attachments cut,
	// rather than refused.
	Fit func(max int) []byte
}

// RefusedError is a message the relay refused for good (a 5xx reply to
// its recipient or content): sending it again would not help. It names
// the reply, never the address, which is personal data.
type RefusedError struct {
	Code int
	Err  error
}

func (e *RefusedError) Error() string {
	if e.Code == 0 {
		return e.Err.Error()
	}
	return fmt.Sprintf("the mail relay refused the message (%d)", e.Code)
}
func (e *RefusedError) Unwrap() error { return e.Err }

// Sender sends messages through one connection to a relay, reconnecting
// when it drops, at most spec.rateLimit messages per second. A transient
// failure (a 4xx reply, a dropped connection) is retried with backoff; a
// refusal for good fails that message alone (*RefusedError).
type Sender struct {
	spec    *v1alpha1.MailRelay
	secrets keyread.KeyReader
	timeout time.Duration
	limiter *rate.Limiter
	// Retries bounds the attempts of a transiently failing message
	// (default 5); Backoff is the first wait between them (1 s), doubled
	// each time, with jitter (retry.Backoff).
	Retries int
	Backoff time.Duration
	// DialControl, when set, checks the relay's address at connect time.
	DialControl Control

	conn *Conn
}

// NewSender returns a Sender for the relay of spec; it connects at the
// first message.
func NewSender(spec *v1alpha1.MailRelay, secrets keyread.KeyReader, timeout time.Duration) *Sender {
	limit := rate.Inf
	if spec.RateLimit > 0 {
		limit = rate.Limit(spec.RateLimit)
	}
	return &Sender{spec: spec, secrets: secrets, timeout: timeout, limiter: rate.NewLimiter(limit, 1), Retries: 5, Backoff: time.Second}
}

// Send sends m.
func (s *Sender) Send(ctx context.Context, m Message) error {
	if err := s.limiter.Wait(ctx); err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		err := s.sendOnce(ctx, m)
		if err == nil {
			return nil
		}
		var refused *RefusedError
		var relay *failure.Error
		if errors.As(err, &refused) || (errors.As(err, &relay) && relay.Reason != v1alpha1.ReasonMailUnreachable) || attempt >= s.Retries {
			return err
		}
		if err := retry.Sleep(ctx, retry.Backoff(attempt, s.Backoff, s.Backoff<<s.Retries)); err != nil {
			return err
		}
	}
}

// sendOnce sends msg on the open connection, opening one first when
// there is none; a failure that is not the message's own closes it.
func (s *Sender) sendOnce(ctx context.Context, m Message) error {
	if s.conn == nil {
		c, err := Dial(ctx, s.spec, s.secrets, s.timeout, s.DialControl)
		if err != nil {
			return err
		}
		s.conn = c
	}
	msg, err := s.fit(m, s.conn.MaxSize())
	if err != nil {
		return err
	}
	err = s.conn.Send(msg)
	if err == nil {
		return nil
	}
	var se *gomail.SendError
	if errors.As(err, &se) && !se.IsTemp() && se.ErrorCode() >= 500 {
		// The connection stays usable: only this message was refused.
		return &RefusedError{Code: se.ErrorCode(), Err: errors.New(se.Reason.String())}
	}
	s.drop()
	if errors.As(err, &se) {
		return fmt.Errorf("sending through the mail relay: %s (%d)", se.Reason, se.ErrorCode())
	}
	return fmt.Errorf("sending through the mail relay: %w", err)
}

// fit builds m, within limit bytes when limit is not 0: attachments that
// can be cut (Attachment.Fit) are cut by what the message is over, with
// room for base64, which takes 4 bytes for every 3, and its line breaks.
func (s *Sender) fit(m Message, limit int64) (*gomail.Msg, error) {
	msg, err := s.build(m)
	if err != nil || limit <= 0 {
		return msg, err
	}
	size, err := msg.WriteTo(io.Discard)
	if err != nil || size <= limit {
		return msg, err
	}
	over := int((size-limit)*3/4*105/100) + 4<<10
	cut := m
	cut.Attachments = slices.Clone(m.Attachments)
	for i, a := range cut.Attachments {
		if a.Fit == nil || over <= 0 {
			continue
		}
		keep := max(len(a.Data)-over, 0)
		cut.Attachments[i].Data = a.Fit(keep)
		over -= len(a.Data) - len(cut.Attachments[i].Data)
	}
	return s.build(cut)
}

func (s *Sender) build(m Message) (*gomail.Msg, error) {
	msg := gomail.NewMsg()
	if err := msg.From(s.spec.From); err != nil {
		return nil, &failure.Error{Reason: v1alpha1.ReasonMailInvalidConfig, Err: fmt.Errorf("spec.mail.from: %w", err)}
	}
	if s.spec.ReplyTo != "" {
		if err := msg.ReplyTo(s.spec.ReplyTo); err != nil {
			return nil, &failure.Error{Reason: v1alpha1.ReasonMailInvalidConfig, Err: fmt.Errorf("spec.mail.replyTo: %w", err)}
		}
	}
	if err := msg.To(m.To...); err != nil {
		// The address is personal data: the error names the problem only.
		return nil, &RefusedError{Code: 0, Err: errors.New("a recipient is not a valid address")}
	}
	msg.Subject(m.Subject)
	msg.SetBodyString(gomail.TypeTextPlain, m.Text)
	if m.HTML != "" {
		msg.AddAlternativeString(gomail.TypeTextHTML, m.HTML)
	}
	msg.SetMessageIDWithValue(messageID(m.ID, s.spec.From))
	// Every mail the product sends is automatic: out-of-office replies
	// and other auto-responders leave it alone (RFC 3834).
	msg.SetGenHeader(gomail.Header("Auto-Submitted"), "auto-generated")
	for _, a := range m.Attachments {
		opts := []gomail.FileOption{}
		if a.ContentType != "" {
			opts = append(opts, gomail.WithFileContentType(gomail.ContentType(a.ContentType)))
		}
		msg.AttachReadSeeker(a.Name, bytes.NewReader(a.Data), opts...)
	}
	return msg, nil
}

// messageID is the Message-ID of a message: id, or a random one, in the
// domain of the sender's address (not the host name of the pod that sends).
func messageID(id, from string) string {
	if strings.Contains(id, "@") {
		return id
	}
	if id == "" {
		var b [16]byte
		_, _ = rand.Read(b[:])
		id = hex.EncodeToString(b[:])
	}
	domain := "user-import-operator.invalid"
	if a, err := netmail.ParseAddress(from); err == nil {
		if _, d, ok := strings.Cut(a.Address, "@"); ok && d != "" {
			domain = d
		}
	}
	return id + "@" + domain
}

func (s *Sender) drop() {
	if s.conn != nil {
		_ = s.conn.Close()
		s.conn = nil
	}
}

// Close closes the connection.
func (s *Sender) Close() error {
	if s.conn == nil {
		return nil
	}
	err := s.conn.Close()
	s.conn = nil
	return err
}
