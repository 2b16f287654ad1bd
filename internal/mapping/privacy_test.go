package mapping

import (
	"errors"
	"strings"
	"testing"

	"github.com/userimport/user-import-operator/api/v1alpha1"
)

// privacyMapping breaks a different rule on every column when fed
// distinctive values that are not e-mail addresses, booleans or dates.
var privacyMapping = []v1alpha1.AttributeMapping{
	{Attribute: "userName", Column: "c0", Identity: true, Check: "Email"},
	{Attribute: "active", Column: "c1", Check: "Boolean"},
	{Attribute: "hireDate", Column: "c2", Check: "Date"},
	{Attribute: "startDate", Column: "c3", Transforms: []v1alpha1.Transform{{Type: "DateFormat", FromLayout: "02.01.2006", ToLayout: "2006-01-02"}}},
	{Attribute: "emails", Column: "c4", Split: ",", Check: "Email"},
	{Attribute: "initial", Template: `{{index .c5 40}}`},
	{Attribute: "display", Template: `{{.c6}}{{.c6}}`},
	{Attribute: "mail2", Template: `{{.c7 | lower}}`, Check: "Email"},
	{Attribute: "flag", Template: `{{.c8 | trim}}`, Check: "Boolean", Required: true},
	{Attribute: "long", Column: "c9"},
}

// Row values are personal data: no error message may contain them, whatever
// rule they break.
func TestErrorsNeverContainValues(t *testing.T) {
	header := []string{"c0", "c1", "c2", "c3", "c4", "c5", "c6", "c7", "c8", "c9"}
	m, err := Compile(privacyMapping, header)
	if err != nil {
		t.Fatal(err)
	}
	secrets := []string{
		"Zelda Quux-Secretname <zq@corp.example>",
		"SECRETbool-4711",
		"1987-13-45-SECRETdate",
		"SECRET-31.02.1999",
		"ok@corp.example, SECRET-not-mail-0815",
		"SECRETshort",
		strings.Repeat("SECRETrepeat", MaxValueBytes/24+1),
		"SECRET Upper <Display@Name>",
		"SECRET-maybe",
		strings.Repeat("SECRETlong", MaxValueBytes/10+1),
	}
	_, err = m.Map(secrets)
	var re *FieldErrors
	if !errors.As(err, &re) {
		t.Fatalf("got %v, want a *RowError", err)
	}
	if len(re.Errors) != len(header) {
		t.Errorf("got %d field errors, want one per column (%d): %v", len(re.Errors), len(header), err)
	}
	msg := err.Error()
	if strings.Contains(msg, "SECRET") || strings.Contains(msg, "Zelda") || strings.Contains(msg, "4711") || strings.Contains(msg, "1987") || strings.Contains(msg, "1999") {
		t.Fatalf("error message contains a value: %s", msg)
	}
	assertRowError(t, err, privacyMapping)
	for _, fe := range re.Errors {
		for _, s := range secrets {
			if strings.Contains(fe.Msg, s) || strings.Contains(fe.Attribute, s) {
				t.Fatalf("field error %q contains a value", fe)
			}
		}
	}

	// A row of the wrong width says so without echoing it.
	_, err = m.Map(secrets[:3])
	if err == nil || strings.Contains(err.Error(), "SECRET") {
		t.Fatalf("short row: %v", err)
	}
}

// A mistake in the mapping may quote the mapping (it is not personal data),
// but Compile never sees rows; this asserts the header listing stays the
// header's names and nothing else.
func TestCompileErrorQuotesOnlyTheSpecAndHeader(t *testing.T) {
	_, err := Compile([]v1alpha1.AttributeMapping{{Attribute: "u", Column: "a", Identity: true}, {Attribute: "v", Column: "x"}}, []string{"a", "b"})
	if err == nil || err.Error() != `mapping[v]: column "x" is not in the file's header; columns are: "a", "b"` {
		t.Fatalf("got %v", err)
	}
}

// A file without a header line, read as if it had one, makes its first row
// the "header": a header that holds none of the mapped columns is never
// quoted, and the message says how to read such a file.
func TestCompileErrorNeverQuotesAFirstRowTakenForAHeader(t *testing.T) {
	firstRow := []string{"SECRET-ada@corp.example", "Ada", "Dept"}
	_, err := Compile([]v1alpha1.AttributeMapping{
		{Attribute: "userName", Column: "email", Identity: true},
		{Attribute: "department", Column: "dept"},
		{Attribute: "displayName", Template: "{{.first_name}}"},
	}, firstRow)
	if err == nil {
		t.Fatal("compiled against a first row")
	}
	for _, v := range firstRow {
		if strings.Contains(err.Error(), v) {
			t.Fatalf("error quotes %q of the first row: %v", v, err)
		}
	}
	if !strings.Contains(err.Error(), `mapping[userName]: column "email" is not in the file's header, which has 3 columns and none that the mapping names`) ||
		!strings.Contains(err.Error(), "spec.format.header to false") {
		t.Fatalf("got %v", err)
	}
}
