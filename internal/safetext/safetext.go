// Package safetext is the one boundary every error message crosses on
// its way out of the operator: into a condition, an Event, a worker's
// termination message, a log line or a report mail.
//
// Row values from a CSV file are personal data, and the clients that
// carry them (PostgreSQL, LDAP, SMTP, JSON decoding, number and time
// parsing) quote what they were given: "invalid input syntax for type
// uuid: \"jane@corp.example\"", "550 <jane@corp.example>: unknown user".
// Text is safe when it was written by this module (its messages name
// lines, fields and rules, never values) or by a package that never sees
// a row value (the Kubernetes client, TLS, the network, the file
// system). An error from a package that does see values shows only what
// its describer picks out of it (a SQLSTATE, an LDAP result code, an SMTP
// status); one without a describer shows a generic text that names its
// type.
package safetext

import (
	"encoding/json"
	"fmt"
	"net/textproto"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-ldap/ldap/v3"
	"github.com/jackc/pgx/v5/pgconn"
	gomail "github.com/wneessen/go-mail"

	"github.com/userimport/user-import-operator/internal/egress"
)

// MaxLen bounds a message: a condition message is read on one screen.
const MaxLen = 1024

// valueSeers are the packages whose errors may quote a value they were
// given. Their errors show only what describe picks out.
//
// pgx is not one: its client errors name the server, user and database;
// only its PgError (the server's message) and its ParseConfigError (the
// DSN, with a password) are described.
var valueSeers = []string{
	"github.com/go-ldap/ldap/",
	"github.com/wneessen/go-mail",
	"modernc.org/sqlite",
	"encoding/json",
	"encoding/xml",
	"net/textproto",
	"net/smtp",
	"net/mail",
	"strconv",
	"time",
	"text/template",
	"html/template",
}

// Of is err's message as it may leave the process: values withheld,
// control characters replaced, at most MaxLen bytes. Of(nil) is "".
func Of(err error) string {
	if err == nil {
		return ""
	}
	msg, ok := scrub(err, err.Error())
	if !ok {
		msg = withheld(err)
	}
	return Clean(msg)
}

// Wrap returns an error whose message is Of(err) and whose chain is
// err's, for errors handed to code that logs them (controller-runtime
// logs a reconcile's error).
func Wrap(err error) error {
	if err == nil {
		return nil
	}
	return &wrapped{err}
}

type wrapped struct{ err error }

func (w *wrapped) Error() string { return Of(w.err) }
func (w *wrapped) Unwrap() error { return w.err }

// Clean replaces control characters (a newline in a condition message
// breaks `kubectl get` and forges log lines) and bounds s to MaxLen.
func Clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == utf8.RuneError || unicode.IsControl(r) {
			return ' '
		}
		return r
	}, strings.ToValidUTF8(s, "?"))
	if len(s) <= MaxLen {
		return s
	}
	// Cutting may split a multi-byte character; drop the broken tail.
	return strings.ToValidUTF8(s[:MaxLen-3], "") + "..."
}

// scrub replaces, in msg, the text of every error of err's tree that may
// quote a value with its description. It reports false when such a text
// cannot be found in msg (a wrapper rewrote it): then nothing of msg is
// safe to show.
func scrub(err error, msg string) (string, bool) {
	if d, ok := describe(err); ok {
		text := err.Error()
		if !strings.Contains(msg, text) {
			return msg, false
		}
		return strings.Replace(msg, text, d, 1), true
	}
	switch u := err.(type) {
	case interface{ Unwrap() []error }:
		for _, e := range u.Unwrap() {
			if e == nil {
				continue
			}
			var ok bool
			if msg, ok = scrub(e, msg); !ok {
				return msg, false
			}
		}
	case interface{ Unwrap() error }:
		if e := u.Unwrap(); e != nil {
			return scrub(e, msg)
		}
	}
	return msg, true
}

// describe returns what may be shown of err's own text, and false when
// its text is safe as it is (its children are looked at on their own).
func describe(err error) (string, bool) {
	switch e := err.(type) {
	case *url.Error:
		return fmt.Sprintf("%s %s: %s", e.Op, egress.RedactURL(e.URL), Of(e.Err)), true
	case *pgconn.PgError:
		return pgText(e), true
	case *pgconn.ParseConfigError:
		return "the connection string (DSN) does not parse (its text is withheld: it may hold a password)", true
	case *ldap.Error:
		return ldapText(e), true
	case *gomail.SendError:
		return sendText(e), true
	case *textproto.Error:
		// The server's text may quote a recipient's address.
		return fmt.Sprintf("the server answered %d", e.Code), true
	case *json.SyntaxError:
		return fmt.Sprintf("invalid JSON at byte %d", e.Offset), true
	case *json.UnmarshalTypeError:
		return fmt.Sprintf("JSON %s where %s was expected (field %s)", e.Value, e.Type, e.Field), true
	case *strconv.NumError:
		return fmt.Sprintf("%s: %v", e.Func, e.Err), true
	case *time.ParseError:
		return fmt.Sprintf("not a time in the layout %s", e.Layout), true
	}
	if p := pkgOf(err); p != "" {
		for _, s := range valueSeers {
			if strings.HasPrefix(p, s) {
				return withheld(err), true
			}
		}
	}
	return "", false
}

func withheld(err error) string {
	return fmt.Sprintf("an error of type %T (its text is withheld: it may quote personal data)", err)
}

// pkgOf is the import path of err's type, "" for a type without one.
func pkgOf(err error) string {
	t := reflect.TypeOf(err)
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t.PkgPath()
}

func pgText(e *pgconn.PgError) string {
	switch {
	// Data exceptions and constraint violations quote the value
	// ("invalid input syntax for type uuid: \"…\"", Detail "Key (uid)=(…)").
	case strings.HasPrefix(e.Code, "22"), strings.HasPrefix(e.Code, "23"), e.Code == "21000":
		where := ""
		if e.ColumnName != "" {
			where = " in column " + e.ColumnName
		} else if e.ConstraintName != "" {
			where = " by constraint " + e.ConstraintName
		}
		return fmt.Sprintf("the database refused a value%s (SQLSTATE %s)", where, e.Code)
	}
	return fmt.Sprintf("%s (SQLSTATE %s)", e.Message, e.Code)
}

func ldapText(e *ldap.Error) string {
	if e.ResultCode >= ldap.ErrorNetwork {
		// Errors of the client itself (network, TLS, decoding) wrap the
		// cause: it is looked at on its own.
		return "LDAP: " + Of(e.Err)
	}
	s := fmt.Sprintf("LDAP result %d (%s)", e.ResultCode, ldap.LDAPResultCodeMap[e.ResultCode])
	if e.Err == nil {
		return s
	}
	// The server's diagnostic names rules ("mail: value #0 invalid per
	// syntax"); one that names an entry or a value (a DN, an address, a
	// quoted string) is withheld.
	diag := e.Err.Error()
	if diag == "" {
		return s
	}
	if strings.ContainsAny(diag, "=@\"'<>") {
		return s + ": the server's diagnostic is withheld (it names an entry or a value)"
	}
	return s + ": " + diag
}

func sendText(e *gomail.SendError) string {
	s := e.Reason.String()
	if c := e.ErrorCode(); c != 0 {
		s += " (SMTP " + strconv.Itoa(c)
		if x := e.EnhancedStatusCode(); x != "" {
			s += " " + x
		}
		s += ")"
	}
	if e.IsTemp() {
		s += ", temporary"
	}
	return s
}
