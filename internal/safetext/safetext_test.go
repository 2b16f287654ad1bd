package safetext_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/userimport/user-import-operator/internal/safetext"
)

const canary = "jane.canary@corp.example"

func TestOfWithholdsValuesQuotedByLibraries(t *testing.T) {
	_, numErr := strconv.Atoi(canary)
	_, timeErr := time.Parse(time.DateOnly, canary)

	for name, tc := range map[string]struct {
		err  error
		want string // a part of the message that must remain
	}{
		"PostgreSQL data exception": {
			fmt.Errorf("look up users: %w", &pgconn.PgError{Severity: "ERROR", Code: "22P02", Message: `invalid input syntax for type uuid: "` + canary + `"`}),
			"look up users: the database refused a value (SQLSTATE 22P02)"},
		"PostgreSQL unique violation": {
			&pgconn.PgError{Code: "23505", Message: `duplicate key value "` + canary + `"`, Detail: "Key (mail)=(" + canary + ") already exists.", ConstraintName: "staff_mail_key"},
			"by constraint staff_mail_key (SQLSTATE 23505)"},
		"LDAP diagnostic naming an entry": {
			fmt.Errorf("create: %w", ldap.NewError(ldap.LDAPResultEntryAlreadyExists, errors.New("entry cn="+canary+",ou=people already exists"))),
			"create: LDAP result 68 (Entry Already Exists): the server's diagnostic is withheld"},
		"SMTP reply quoting a recipient": {
			fmt.Errorf("send: %w", &textproto.Error{Code: 550, Msg: "<" + canary + ">: Recipient address rejected"}),
			"send: the server answered 550"},
		"a URL with a query": {
			&url.Error{Op: "Get", URL: "https://scim.example/Users?filter=userName%20eq%20%22" + url.QueryEscape(canary) + "%22", Err: errors.New("EOF")},
			"Get https://scim.example/Users?…: EOF"},
		"number parsing":  {fmt.Errorf("line 4, field age: %w", numErr), "line 4, field age: Atoi: invalid syntax"},
		"time parsing":    {fmt.Errorf("line 5: %w", timeErr), "line 5: not a time in the layout 2006-01-02"},
		"several, joined": {errors.Join(errors.New("first"), &pgconn.PgError{Code: "22001", Message: canary}), "first"},
	} {
		t.Run(name, func(t *testing.T) {
			if tc.err == nil {
				t.Fatal("the case built no error")
			}
			if !strings.Contains(tc.err.Error(), canary) && !strings.Contains(tc.err.Error(), url.QueryEscape(canary)) {
				t.Fatalf("the library's own text %q does not quote the value: the case tests nothing", tc.err)
			}
			got := safetext.Of(tc.err)
			if strings.Contains(got, "canary") {
				t.Fatalf("Of quotes the value: %q", got)
			}
			if !strings.Contains(got, tc.want) {
				t.Fatalf("Of = %q, want it to contain %q", got, tc.want)
			}
		})
	}
}

// A JSON decoder quotes the character it stumbled on, which may be the
// first of a value.
func TestOfGivesJSONSyntaxErrorsTheirOffsetOnly(t *testing.T) {
	var v any
	err := json.Unmarshal([]byte(`{"userName": jane}`), &v)
	if got := safetext.Of(fmt.Errorf("decode: %w", err)); got != "decode: invalid JSON at byte 14" {
		t.Fatalf("Of = %q (the decoder said %q)", got, err)
	}
}

// pgx's own errors name the server, not values: they stay, except the
// DSN that does not parse, which may hold a password.
func TestOfKeepsPgxConnectErrorsAndWithholdsDSNs(t *testing.T) {
	_, err := pgconn.Connect(context.Background(), "postgres://u:s3cret-pw@127.0.0.1:1/db?sslmode=disable&connect_timeout=1")
	if got := safetext.Of(err); !strings.Contains(got, "failed to connect") || !strings.Contains(got, "127.0.0.1") {
		t.Fatalf("Of(connect error) = %q (the error: %v)", got, err)
	}
	_, err = pgconn.ParseConfig("postgres://u:s3cret-pw@host:notaport/db")
	if got := safetext.Of(err); strings.Contains(got, "s3cret") || !strings.Contains(got, "does not parse") {
		t.Fatalf("Of(parse error) = %q", got)
	}
}

func TestOfKeepsTheModulesOwnText(t *testing.T) {
	err := fmt.Errorf("spec.ldap.usersBaseDN: %w", errors.New("line 12, field mail: not an address"))
	if got := safetext.Of(err); got != err.Error() {
		t.Fatalf("Of = %q, want %q", got, err.Error())
	}
	ldapRule := ldap.NewError(ldap.LDAPResultConstraintViolation, errors.New("mail: value #0 invalid per syntax"))
	if got, want := safetext.Of(ldapRule), "LDAP result 19 (Constraint Violation): mail: value #0 invalid per syntax"; got != want {
		t.Fatalf("Of = %q, want %q", got, want)
	}
}

// A text from a value-seeing package that a wrapper rewrote cannot be
// cut out of the message: nothing of it is shown.
func TestOfWithholdsAllWhenALibraryTextCannotBeFound(t *testing.T) {
	pg := &pgconn.PgError{Code: "22P02", Message: canary}
	err := &rewriter{msg: "failed: " + strings.ToUpper(canary), err: pg}
	got := safetext.Of(err)
	if strings.Contains(strings.ToLower(got), "canary") || !strings.Contains(got, "withheld") {
		t.Fatalf("Of = %q", got)
	}
}

type rewriter struct {
	msg string
	err error
}

func (r *rewriter) Error() string { return r.msg }
func (r *rewriter) Unwrap() error { return r.err }

func TestCleanRemovesControlCharactersAndBounds(t *testing.T) {
	got := safetext.Clean("one\ntwo\x1b[31m" + strings.Repeat("é", safetext.MaxLen))
	if strings.ContainsAny(got, "\n\x1b") || len(got) > safetext.MaxLen || !strings.HasSuffix(got, "...") {
		t.Fatalf("Clean = %q", got)
	}
}

func TestWrapKeepsTheChain(t *testing.T) {
	pg := &pgconn.PgError{Code: "23505", Message: canary}
	err := safetext.Wrap(fmt.Errorf("write: %w", pg))
	var back *pgconn.PgError
	if !errors.As(err, &back) || strings.Contains(err.Error(), "canary") {
		t.Fatalf("Wrap: %q, chain kept %v", err, back != nil)
	}
}
