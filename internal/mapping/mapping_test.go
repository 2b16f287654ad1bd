package mapping

import (
	"errors"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
)

func ptr(s string) *string { return &s }

// id is the identity entry most tests need beside the entry under test.
var id = v1alpha1.AttributeMapping{Attribute: "userName", Column: "id", Identity: true}

// mapOne compiles the identity plus entry over the header ["id", "in"] and
// maps the row ["u1", in]. It returns the values of entry.Attribute.
func mapOne(t *testing.T, entry v1alpha1.AttributeMapping, in string) ([]string, error) {
	t.Helper()
	m, err := Compile([]v1alpha1.AttributeMapping{id, entry}, []string{"id", "in"})
	if err != nil {
		t.Fatalf("Compile: %v", err)
	}
	attrs, err := m.Map([]string{"u1", in})
	if err != nil {
		return nil, err
	}
	vals, ok := attrs[entry.Attribute]
	if !ok {
		t.Fatalf("attribute %s missing from %v", entry.Attribute, attrs)
	}
	return vals, nil
}

type pipelineCase struct {
	name    string
	entry   v1alpha1.AttributeMapping // Attribute defaults to "a", source to column "in"
	in      string
	want    []string // nil: no values
	wantErr string   // the full row error message
}

func runPipelineCases(t *testing.T, cases []pipelineCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.entry
			if e.Attribute == "" {
				e.Attribute = "a"
			}
			if e.Column == "" && e.Template == "" && e.Value == nil {
				e.Column = "in"
			}
			got, err := mapOne(t, e, tc.in)
			if tc.wantErr != "" {
				var re *FieldErrors
				if !errors.As(err, &re) {
					t.Fatalf("got %q, %v; want *RowError %q", got, err, tc.wantErr)
				}
				if err.Error() != tc.wantErr {
					t.Fatalf("error %q, want %q", err.Error(), tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if got == nil {
				t.Fatalf("attribute present with a nil slice; want a non-nil slice")
			}
			if len(got) != len(tc.want) || (len(got) > 0 && !reflect.DeepEqual(got, tc.want)) {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func tr(typ string) v1alpha1.Transform { return v1alpha1.Transform{Type: v1alpha1.TransformType(typ)} }

func TestTransforms(t *testing.T) {
	dateFmt := func(from, to string) v1alpha1.Transform {
		return v1alpha1.Transform{Type: "DateFormat", FromLayout: from, ToLayout: to}
	}
	regex := func(p, r string) v1alpha1.Transform {
		return v1alpha1.Transform{Type: "RegexReplace", Pattern: p, Replacement: r}
	}
	runPipelineCases(t, []pipelineCase{
		{name: "no transform keeps spaces", in: "  Ab ", want: []string{"  Ab "}},
		{name: "Trim", entry: v1alpha1.AttributeMapping{Transforms: []v1alpha1.Transform{tr("Trim")}}, in: " \t Ab c\u00a0\n", want: []string{"Ab c"}},
		{name: "Lower", entry: v1alpha1.AttributeMapping{Transforms: []v1alpha1.Transform{tr("Lower")}}, in: "ÄBC-Def", want: []string{"äbc-def"}},
		{name: "Upper", entry: v1alpha1.AttributeMapping{Transforms: []v1alpha1.Transform{tr("Upper")}}, in: "ärger-straße", want: []string{"ÄRGER-STRAßE"}},
		{name: "Trim then Lower", entry: v1alpha1.AttributeMapping{Transforms: []v1alpha1.Transform{tr("Trim"), tr("Lower")}}, in: " Jane.Doe@Corp.Example ", want: []string{"jane.doe@corp.example"}},
		{name: "RegexReplace groups", entry: v1alpha1.AttributeMapping{Transforms: []v1alpha1.Transform{regex(`^(\w+), (\w+)$`, "$2 $1")}}, in: "Doe, Jane", want: []string{"Jane Doe"}},
		{name: "RegexReplace braces", entry: v1alpha1.AttributeMapping{Transforms: []v1alpha1.Transform{regex(`(\d+)`, "${1}x")}}, in: "a12b3", want: []string{"a12xb3x"}},
		{name: "RegexReplace named group", entry: v1alpha1.AttributeMapping{Transforms: []v1alpha1.Transform{regex(`(?P<cc>\+\d+) `, "${cc}-")}}, in: "+49 30", want: []string{"+49-30"}},
		{name: "RegexReplace dollar", entry: v1alpha1.AttributeMapping{Transforms: []v1alpha1.Transform{regex(`EUR`, "$$")}}, in: "5 EUR", want: []string{"5 $"}},
		{name: "RegexReplace removes all", entry: v1alpha1.AttributeMapping{Transforms: []v1alpha1.Transform{regex(`\D`, "")}}, in: "+49 (30) 123", want: []string{"4930123"}},
		{name: "RegexReplace to empty gives no values", entry: v1alpha1.AttributeMapping{Transforms: []v1alpha1.Transform{regex(`.*`, "")}}, in: "x", want: nil},
		{name: "DateFormat", entry: v1alpha1.AttributeMapping{Transforms: []v1alpha1.Transform{dateFmt("02.01.2006", "2006-01-02")}}, in: "28.02.2024", want: []string{"2024-02-28"}},
		{name: "DateFormat US", entry: v1alpha1.AttributeMapping{Transforms: []v1alpha1.Transform{dateFmt("1/2/2006", "2006-01-02")}}, in: "3/7/2021", want: []string{"2021-03-07"}},
		{name: "DateFormat with time", entry: v1alpha1.AttributeMapping{Transforms: []v1alpha1.Transform{dateFmt(time3339, "02.01.2006")}}, in: "2024-02-28T10:00:00+01:00", want: []string{"28.02.2024"}},
		{name: "DateFormat empty stays empty", entry: v1alpha1.AttributeMapping{Transforms: []v1alpha1.Transform{dateFmt("02.01.2006", "2006-01-02")}}, in: "", want: nil},
		{name: "DateFormat mismatch", entry: v1alpha1.AttributeMapping{Attribute: "startDate", Transforms: []v1alpha1.Transform{dateFmt("02.01.2006", "2006-01-02")}}, in: "2024-02-28", wantErr: "startDate: does not match layout 02.01.2006"},
		{name: "DateFormat impossible date", entry: v1alpha1.AttributeMapping{Attribute: "startDate", Transforms: []v1alpha1.Transform{dateFmt("02.01.2006", "2006-01-02")}}, in: "30.02.2024", wantErr: "startDate: does not match layout 02.01.2006"},
		{name: "value too long", in: strings.Repeat("x", MaxValueBytes+1), wantErr: "a: longer than 65536 bytes"},
		{name: "transform result too long", entry: v1alpha1.AttributeMapping{Transforms: []v1alpha1.Transform{regex(`x`, "xx")}}, in: strings.Repeat("x", MaxValueBytes/2+1), wantErr: "a: longer than 65536 bytes after transforms[0] (RegexReplace)"},
	})
}

const time3339 = "2006-01-02T15:04:05Z07:00"

func TestChecks(t *testing.T) {
	email := v1alpha1.AttributeMapping{Attribute: "mail", Check: "Email"}
	boolean := v1alpha1.AttributeMapping{Attribute: "active", Check: "Boolean"}
	date := v1alpha1.AttributeMapping{Attribute: "hireDate", Check: "Date"}
	const notEmail = "mail: not an e-mail address"
	const notBool = "active: not a boolean (true/false, yes/no, 1/0)"
	const notDate = "hireDate: not a date (YYYY-MM-DD)"
	runPipelineCases(t, []pipelineCase{
		{name: "email", entry: email, in: "jane.doe+hr@corp.example", want: []string{"jane.doe+hr@corp.example"}},
		{name: "email keeps case", entry: email, in: "Jane.Doe@Corp.Example", want: []string{"Jane.Doe@Corp.Example"}},
		{name: "email unicode", entry: email, in: "jörg@corp.example", want: []string{"jörg@corp.example"}},
		{name: "email display name", entry: email, in: "Jane <jane@corp.example>", wantErr: notEmail},
		{name: "email angle brackets", entry: email, in: "<jane@corp.example>", wantErr: notEmail},
		{name: "email spaces", entry: email, in: " jane@corp.example", wantErr: notEmail},
		{name: "email no at", entry: email, in: "jane.corp.example", wantErr: notEmail},
		{name: "email two addresses", entry: email, in: "a@corp.example, b@corp.example", wantErr: notEmail},
		{name: "email empty is no value", entry: email, in: "", want: nil},
		{name: "bool true", entry: boolean, in: "true", want: []string{"true"}},
		{name: "bool TRUE", entry: boolean, in: "TRUE", want: []string{"true"}},
		{name: "bool Yes", entry: boolean, in: "Yes", want: []string{"true"}},
		{name: "bool 1", entry: boolean, in: "1", want: []string{"true"}},
		{name: "bool False", entry: boolean, in: "False", want: []string{"false"}},
		{name: "bool no", entry: boolean, in: "no", want: []string{"false"}},
		{name: "bool 0", entry: boolean, in: "0", want: []string{"false"}},
		{name: "bool y", entry: boolean, in: "y", wantErr: notBool},
		{name: "bool 2", entry: boolean, in: "2", wantErr: notBool},
		{name: "bool long s", entry: boolean, in: "yeſ", wantErr: notBool},
		{name: "bool spaces", entry: boolean, in: " true", wantErr: notBool},
		{name: "date", entry: date, in: "2024-02-29", want: []string{"2024-02-29"}},
		{name: "date not leap", entry: date, in: "2023-02-29", wantErr: notDate},
		{name: "date short", entry: date, in: "2024-2-9", wantErr: notDate},
		{name: "date with time", entry: date, in: "2024-02-09T10:00:00Z", wantErr: notDate},
		{name: "date german", entry: date, in: "09.02.2024", wantErr: notDate},
	})
}

func TestDefaultSplitRequired(t *testing.T) {
	runPipelineCases(t, []pipelineCase{
		{name: "default when empty", entry: v1alpha1.AttributeMapping{Default: ptr("Staff")}, in: "", want: []string{"Staff"}},
		{name: "default not when set", entry: v1alpha1.AttributeMapping{Default: ptr("Staff")}, in: "Sales", want: []string{"Sales"}},
		{name: "default after transforms", entry: v1alpha1.AttributeMapping{Default: ptr("Staff"), Transforms: []v1alpha1.Transform{tr("Trim")}}, in: "   ", want: []string{"Staff"}},
		{name: "default is not transformed", entry: v1alpha1.AttributeMapping{Default: ptr("Staff"), Transforms: []v1alpha1.Transform{tr("Upper")}}, in: "", want: []string{"Staff"}},
		{name: "default is checked and normalised", entry: v1alpha1.AttributeMapping{Default: ptr("yes"), Check: "Boolean"}, in: "", want: []string{"true"}},
		{name: "default satisfies required", entry: v1alpha1.AttributeMapping{Default: ptr("x"), Required: true}, in: "", want: []string{"x"}},
		{name: "empty default", entry: v1alpha1.AttributeMapping{Default: ptr("")}, in: "", want: nil},
		{name: "split", entry: v1alpha1.AttributeMapping{Split: ";"}, in: "admins; staff ;;  ;sales", want: []string{"admins", "staff", "sales"}},
		{name: "split one", entry: v1alpha1.AttributeMapping{Split: ";"}, in: " admins ", want: []string{"admins"}},
		{name: "split all empty", entry: v1alpha1.AttributeMapping{Split: ";"}, in: " ; ;", want: nil},
		{name: "split multi-char separator", entry: v1alpha1.AttributeMapping{Split: "||"}, in: "a||b|c", want: []string{"a", "b|c"}},
		{name: "split default", entry: v1alpha1.AttributeMapping{Split: ",", Default: ptr("a, b")}, in: "", want: []string{"a", "b"}},
		{name: "split then check each", entry: v1alpha1.AttributeMapping{Attribute: "emails", Split: ",", Check: "Email"}, in: "a@x.example, b@y.example", want: []string{"a@x.example", "b@y.example"}},
		{name: "split check names value index", entry: v1alpha1.AttributeMapping{Attribute: "emails", Split: ",", Check: "Email"}, in: "a@x.example, nope", wantErr: "emails: not an e-mail address (value 2 of 2)"},
		{name: "split booleans normalised", entry: v1alpha1.AttributeMapping{Split: "|", Check: "Boolean"}, in: "Yes|0", want: []string{"true", "false"}},
		{name: "required empty", entry: v1alpha1.AttributeMapping{Attribute: "userName2", Required: true}, in: "", wantErr: "userName2: required but empty"},
		{name: "required spaces trimmed", entry: v1alpha1.AttributeMapping{Attribute: "r", Required: true, Transforms: []v1alpha1.Transform{tr("Trim")}}, in: "  ", wantErr: "r: required but empty"},
		{name: "required split empty", entry: v1alpha1.AttributeMapping{Attribute: "r", Required: true, Split: ","}, in: ",,", wantErr: "r: required but empty"},
		{name: "not required empty is no values", in: "", want: nil},
		{name: "value constant", entry: v1alpha1.AttributeMapping{Value: ptr("Employee")}, in: "ignored", want: []string{"Employee"}},
		{name: "value constant transformed", entry: v1alpha1.AttributeMapping{Value: ptr(" Employee "), Transforms: []v1alpha1.Transform{tr("Trim"), tr("Lower")}}, in: "", want: []string{"employee"}},
		{name: "value constant split", entry: v1alpha1.AttributeMapping{Value: ptr("a,b"), Split: ","}, in: "", want: []string{"a", "b"}},
		{name: "value empty clears", entry: v1alpha1.AttributeMapping{Value: ptr("")}, in: "x", want: nil},
	})
}

func TestIdentity(t *testing.T) {
	entries := []v1alpha1.AttributeMapping{
		{Attribute: "givenName", Column: "first"},
		{Attribute: "mail", Column: "email", Identity: true, Transforms: []v1alpha1.Transform{tr("Trim"), tr("Lower")}},
		{Attribute: "familyName", Column: "last"},
	}
	m, err := Compile(entries, []string{"email", "first", "last"})
	if err != nil {
		t.Fatal(err)
	}
	if m.Identity() != "mail" {
		t.Errorf("Identity() = %q", m.Identity())
	}
	if got, want := m.Attributes(), []string{"mail", "givenName", "familyName"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Attributes() = %q, want %q", got, want)
	}
	if got, want := m.Columns(), []string{"email", "first", "last"}; !reflect.DeepEqual(got, want) {
		t.Errorf("Columns() = %q, want %q", got, want)
	}

	_, err = m.Map([]string{"  ", "", "Doe"})
	if err == nil || err.Error() != "mail: identity is empty" {
		t.Fatalf("empty identity: got %v", err)
	}

	got, err := m.Map([]string{"J@X.EXAMPLE", "", "Doe"})
	if err != nil {
		t.Fatal(err)
	}
	want := directory.Attributes{"mail": {"j@x.example"}, "givenName": {}, "familyName": {"Doe"}}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("Map = %q, want %q", got, want)
	}
}

// Blanks around an identity are not part of it, even without a Trim
// transform, and its check sees it without them; other values keep
// theirs.
func TestIdentityWithoutBlanks(t *testing.T) {
	entries := []v1alpha1.AttributeMapping{
		{Attribute: "uid", Column: "id", Identity: true, Check: "Email"},
		{Attribute: "title", Column: "title"},
	}
	m, err := Compile(entries, []string{"id", "title"})
	if err != nil {
		t.Fatal(err)
	}
	var rec Record
	if err := m.MapRecord([]string{" \tj@x.example  ", " Dev "}, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Identity() != "j@x.example" || !reflect.DeepEqual(rec.Values, [][]string{{"j@x.example"}, {" Dev "}}) {
		t.Fatalf("identity %q, values %q", rec.Identity(), rec.Values)
	}
	// "zoë" with a combining diaeresis is the same identity as with "ë".
	if err := m.MapRecord([]string{"zoe\u0308@x.example", "Dev"}, &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Identity() != "zo\u00eb@x.example" {
		t.Fatalf("identity %+q, want it composed", rec.Identity())
	}
}

func TestMapReportsEveryErrorOfTheRow(t *testing.T) {
	m, err := Compile([]v1alpha1.AttributeMapping{
		{Attribute: "userName", Column: "id", Identity: true},
		{Attribute: "mail", Column: "mail", Check: "Email"},
		{Attribute: "givenName", Column: "first", Required: true},
		{Attribute: "active", Column: "active", Check: "Boolean"},
		{Attribute: "hireDate", Column: "hired", Check: "Date"},
	}, []string{"id", "mail", "first", "active", "hired"})
	if err != nil {
		t.Fatal(err)
	}
	_, err = m.Map([]string{"", "x", "", "maybe", "yesterday"})
	var re *FieldErrors
	if !errors.As(err, &re) {
		t.Fatalf("got %v, want *RowError", err)
	}
	want := []FieldError{
		{"userName", "identity is empty"},
		{"mail", "not an e-mail address"},
		{"givenName", "required but empty"},
		{"active", "not a boolean (true/false, yes/no, 1/0)"},
		{"hireDate", "not a date (YYYY-MM-DD)"},
	}
	if !reflect.DeepEqual(re.Errors, want) {
		t.Fatalf("errors %q, want %q", re.Errors, want)
	}
	if got := err.Error(); got != "userName: identity is empty; mail: not an e-mail address; givenName: required but empty; active: not a boolean (true/false, yes/no, 1/0); hireDate: not a date (YYYY-MM-DD)" {
		t.Fatalf("message %q", got)
	}
}

func TestMapFieldCount(t *testing.T) {
	m, err := Compile([]v1alpha1.AttributeMapping{id}, []string{"id", "x"})
	if err != nil {
		t.Fatal(err)
	}
	for _, fields := range [][]string{{"u1"}, {"u1", "a", "b"}, nil} {
		_, err := m.Map(fields)
		if err == nil || !strings.Contains(err.Error(), "the header has 2") {
			t.Errorf("Map(%d fields) = %v, want a field count error", len(fields), err)
		}
	}
}

// The slices of a result are the caller's: appending to one attribute must
// not change another, and constants must not change between rows.
func TestMapResultSlicesAreIndependent(t *testing.T) {
	m, err := Compile([]v1alpha1.AttributeMapping{
		id,
		{Attribute: "a", Column: "a"},
		{Attribute: "b", Column: "b"},
		{Attribute: "k", Value: ptr("const")},
	}, []string{"id", "a", "b"})
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.Map([]string{"u", "A", "B"})
	if err != nil {
		t.Fatal(err)
	}
	got["a"] = append(got["a"], "A2")
	got["userName"] = append(got["userName"], "X")
	got["k"][0] = "changed"
	if got["b"][0] != "B" || got["a"][0] != "A" {
		t.Fatalf("append to one attribute changed another: %q", got)
	}
	again, err := m.Map([]string{"u", "A", "B"})
	if err != nil {
		t.Fatal(err)
	}
	if again["k"][0] != "const" {
		t.Fatalf("a caller's change of a constant leaked into the next row: %q", again["k"])
	}
}

func TestMapConcurrent(t *testing.T) {
	m, err := Compile([]v1alpha1.AttributeMapping{
		id,
		{Attribute: "display", Template: `{{.first}} {{.last}}`},
		{Attribute: "short", Template: `{{.first | substr 0 1}}. {{.last | upper}}`},
	}, []string{"id", "first", "last"})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				first, last := strings.Repeat("f", g+1), strings.Repeat("l", i%7+1)
				got, err := m.Map([]string{"u", first, last})
				if err != nil {
					t.Error(err)
					return
				}
				if got["display"][0] != first+" "+last || got["short"][0] != "f. "+strings.ToUpper(last) {
					t.Errorf("row %d/%d mapped to %q", g, i, got)
					return
				}
			}
		}()
	}
	wg.Wait()
}

func TestCompileErrors(t *testing.T) {
	header := []string{"id", "email", "first name", "dup", "dup", "Dept"}
	cases := []struct {
		name  string
		entry v1alpha1.AttributeMapping
		want  []string // substrings of the error
	}{
		{"unknown column", v1alpha1.AttributeMapping{Attribute: "mail", Column: "e_mail"},
			[]string{`mapping[mail]: column "e_mail" is not in the file's header; columns are: "id", "email", "first name", "dup", "dup", "Dept"`}},
		{"column near miss", v1alpha1.AttributeMapping{Attribute: "department", Column: "dept"},
			[]string{`mapping[department]: column "dept" is not in the file's header (did you mean "Dept"?)`}},
		{"ambiguous column", v1alpha1.AttributeMapping{Attribute: "d", Column: "dup"},
			[]string{`mapping[d]: column "dup" appears more than once in the file's header`}},
		{"no source", v1alpha1.AttributeMapping{Attribute: "x"},
			[]string{"mapping[x]: set exactly one of column, template or value (0 are set)"}},
		{"two sources", v1alpha1.AttributeMapping{Attribute: "x", Column: "email", Value: ptr("v")},
			[]string{"mapping[x]: set exactly one of column, template or value (2 are set)"}},
		{"empty attribute", v1alpha1.AttributeMapping{Column: "email"},
			[]string{"mapping[#2]: attribute is empty"}},
		{"duplicate attribute", v1alpha1.AttributeMapping{Attribute: "userName", Column: "email"},
			[]string{"mapping[userName]: attribute is mapped more than once"}},
		{"template parse", v1alpha1.AttributeMapping{Attribute: "displayName", Template: "{{.first"},
			[]string{"mapping[displayName]: template does not parse: template: displayName:1:"}},
		{"template unknown function", v1alpha1.AttributeMapping{Attribute: "displayName", Template: "{{title .email}}"},
			[]string{"mapping[displayName]: template does not parse", `function "title" not defined`}},
		{"template unknown column", v1alpha1.AttributeMapping{Attribute: "displayName", Template: "{{.first_name}}"},
			[]string{`mapping[displayName]: template refers to column "first_name", which is not in the file's header; columns are: "id"`}},
		{"template unknown column via index", v1alpha1.AttributeMapping{Attribute: "displayName", Template: `{{index . "first  name"}}`},
			[]string{`mapping[displayName]: template refers to column "first  name"`}},
		{"template unknown column via $", v1alpha1.AttributeMapping{Attribute: "displayName", Template: `{{with .email}}{{$.nope}}{{end}}`},
			[]string{`mapping[displayName]: template refers to column "nope"`}},
		{"template range", v1alpha1.AttributeMapping{Attribute: "t", Template: "{{range 1000000000}}x{{end}}"},
			[]string{"mapping[t]: template uses range at line 1:", "loops are not allowed"}},
		{"template define", v1alpha1.AttributeMapping{Attribute: "t", Template: `{{define "x"}}a{{end}}{{.email}}`},
			[]string{`mapping[t]: template defines template "x"`}},
		{"template call", v1alpha1.AttributeMapping{Attribute: "t", Template: `{{template "t" .}}`},
			[]string{`mapping[t]: template calls template "t"`}},
		{"template printf", v1alpha1.AttributeMapping{Attribute: "t", Template: `{{printf "%0999999999d" 1}}`},
			[]string{"mapping[t]: template calls printf at line 1:", "the functions are lower, upper"}},
		{"template call builtin", v1alpha1.AttributeMapping{Attribute: "t", Template: `{{call .email}}`},
			[]string{"mapping[t]: template calls call"}},
		{"template bare row", v1alpha1.AttributeMapping{Attribute: "t", Template: `{{.}}`},
			[]string{`mapping[t]: template uses the row (.) at line 1:2 other than as {{index . "column"}}`}},
		{"template row in variable", v1alpha1.AttributeMapping{Attribute: "t", Template: `{{$r := .}}{{$r.email}}`},
			[]string{`mapping[t]: template uses the row (.)`}},
		{"template dynamic index", v1alpha1.AttributeMapping{Attribute: "t", Template: `{{index . .email}}`},
			[]string{`mapping[t]: template uses the row (.)`}},
		{"template field of a column", v1alpha1.AttributeMapping{Attribute: "t", Template: `{{.email.domain}}`},
			[]string{"mapping[t]: template uses .email.domain at line 1:", "have no fields"}},
		{"template field inside with", v1alpha1.AttributeMapping{Attribute: "t", Template: `{{with .email}}{{.email}}{{end}}`},
			[]string{"mapping[t]: template uses .email inside with", "write $.email"}},
		{"regex", v1alpha1.AttributeMapping{Attribute: "phone", Column: "email", Transforms: []v1alpha1.Transform{tr("Trim"), {Type: "RegexReplace", Pattern: "(a"}}},
			[]string{"mapping[phone]: transforms[1] (RegexReplace): pattern does not compile: error parsing regexp: missing closing )"}},
		{"regex replacement group", v1alpha1.AttributeMapping{Attribute: "phone", Column: "email", Transforms: []v1alpha1.Transform{{Type: "RegexReplace", Pattern: "(a)", Replacement: "$1x"}}},
			[]string{`mapping[phone]: transforms[0] (RegexReplace): replacement refers to group "1x"`}},
		{"regex replacement number", v1alpha1.AttributeMapping{Attribute: "phone", Column: "email", Transforms: []v1alpha1.Transform{{Type: "RegexReplace", Pattern: "(a)", Replacement: "${2}"}}},
			[]string{`mapping[phone]: transforms[0] (RegexReplace): replacement refers to group 2; the pattern has 1 groups`}},
		{"date layout java style", v1alpha1.AttributeMapping{Attribute: "hireDate", Column: "email", Transforms: []v1alpha1.Transform{{Type: "DateFormat", FromLayout: "dd.MM.yyyy", ToLayout: "2006-01-02"}}},
			[]string{`mapping[hireDate]: transforms[0] (DateFormat): fromLayout "dd.MM.yyyy" does not round-trip`, `"02.01.2006" for DD.MM.YYYY`}},
		{"date layout without year", v1alpha1.AttributeMapping{Attribute: "hireDate", Column: "email", Transforms: []v1alpha1.Transform{{Type: "DateFormat", FromLayout: "02.01.", ToLayout: "2006-01-02"}}},
			[]string{`fromLayout "02.01." does not round-trip: it does not hold a whole date`}},
		{"date to layout constant", v1alpha1.AttributeMapping{Attribute: "hireDate", Column: "email", Transforms: []v1alpha1.Transform{{Type: "DateFormat", FromLayout: "2006-01-02", ToLayout: "YYYY-MM-DD"}}},
			[]string{`mapping[hireDate]: transforms[0] (DateFormat): toLayout "YYYY-MM-DD" writes the same text for every date`}},
		{"date missing layout", v1alpha1.AttributeMapping{Attribute: "hireDate", Column: "email", Transforms: []v1alpha1.Transform{{Type: "DateFormat", FromLayout: "2006-01-02"}}},
			[]string{`mapping[hireDate]: transforms[0] (DateFormat): needs fromLayout and toLayout`}},
		{"unknown transform", v1alpha1.AttributeMapping{Attribute: "x", Column: "email", Transforms: []v1alpha1.Transform{tr("Title")}},
			[]string{`mapping[x]: transforms[0] (Title): unknown transform type "Title"`}},
		{"transform with stray field", v1alpha1.AttributeMapping{Attribute: "x", Column: "email", Transforms: []v1alpha1.Transform{{Type: "Lower", Pattern: "a"}}},
			[]string{`mapping[x]: transforms[0] (Lower): takes no pattern`}},
		{"unknown check", v1alpha1.AttributeMapping{Attribute: "x", Column: "email", Check: "Phone"},
			[]string{`mapping[x]: check "Phone" is not one of Email, Boolean, Date`}},
		{"default fails check", v1alpha1.AttributeMapping{Attribute: "active", Column: "email", Check: "Boolean", Default: ptr("sometimes")},
			[]string{"mapping[active]: default: not a boolean"}},
		{"value fails check", v1alpha1.AttributeMapping{Attribute: "mail", Value: ptr("not-mail"), Check: "Email"},
			[]string{"mapping[mail]: value: not an e-mail address"}},
		{"value required but empty", v1alpha1.AttributeMapping{Attribute: "k", Value: ptr(""), Required: true},
			[]string{"mapping[k]: value: required but empty"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Compile([]v1alpha1.AttributeMapping{id, tc.entry}, header)
			if err == nil {
				t.Fatalf("Compile succeeded: %v", m)
			}
			var ce *CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("got %T, want *CompileError", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error\n  %s\nlacks\n  %s", err, w)
				}
			}
		})
	}
}

func TestCompileIdentityRules(t *testing.T) {
	header := []string{"id", "mail"}
	_, err := Compile([]v1alpha1.AttributeMapping{{Attribute: "mail", Column: "mail"}}, header)
	if err == nil || !strings.Contains(err.Error(), "no entry is marked identity") {
		t.Errorf("no identity: %v", err)
	}
	_, err = Compile([]v1alpha1.AttributeMapping{
		{Attribute: "userName", Column: "id", Identity: true},
		{Attribute: "mail", Column: "mail", Identity: true},
	}, header)
	if err == nil || !strings.Contains(err.Error(), "2 entries are marked identity (userName, mail); mark exactly one") {
		t.Errorf("two identities: %v", err)
	}
	_, err = Compile([]v1alpha1.AttributeMapping{{Attribute: "userName", Column: "id", Identity: true, Split: ","}}, header)
	if err == nil || !strings.Contains(err.Error(), "mapping[userName]: the identity cannot be split") {
		t.Errorf("split identity: %v", err)
	}
	// Every problem is reported at once, not only the first.
	_, err = Compile([]v1alpha1.AttributeMapping{
		{Attribute: "a", Column: "nope"},
		{Attribute: "b", Template: "{{.nope}}"},
	}, header)
	var ce *CompileError
	if !errors.As(err, &ce) || len(ce.Problems) != 3 {
		t.Fatalf("want 3 problems (a, b, identity), got %v", err)
	}
}

// A long header is listed in part, so that the error stays readable.
func TestCompileErrorListsLongHeaderInPart(t *testing.T) {
	header := []string{"id"}
	for i := range 99 {
		header = append(header, "col"+strings.Repeat("x", i%3)+string(rune('a'+i%26)))
	}
	_, err := Compile([]v1alpha1.AttributeMapping{id, {Attribute: "m", Column: "missing"}}, header)
	if err == nil || !strings.Contains(err.Error(), "… (68 more)") {
		t.Fatalf("got %v", err)
	}
}

func TestMapRecordMatchesMap(t *testing.T) {
	m, err := Compile(benchMapping, benchHeader)
	if err != nil {
		t.Fatal(err)
	}
	var rec Record
	var kept []directory.Attributes
	rows := benchRows(50)
	for _, row := range rows {
		want, err := m.Map(row)
		if err != nil {
			t.Fatal(err)
		}
		if err := m.MapRecord(row, &rec); err != nil {
			t.Fatal(err)
		}
		got := m.AttributesOf(&rec)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("MapRecord gives %q, Map %q", got, want)
		}
		kept = append(kept, got)
	}
	// Copies taken with AttributesOf survive the reuse of the Record.
	for i, row := range rows {
		want, _ := m.Map(row)
		if !reflect.DeepEqual(kept[i], want) {
			t.Fatalf("row %d changed after the Record was reused: %q", i, kept[i])
		}
	}
	if err := m.MapRecord(rows[0][:3], &rec); err == nil {
		t.Fatal("MapRecord accepted a short row")
	}
}

// Map is called for millions of rows: a row whose values need no new
// strings costs the result's map and one backing array, and a reused Record
// costs nothing.
func TestMapAllocations(t *testing.T) {
	m, err := Compile([]v1alpha1.AttributeMapping{
		{Attribute: "userName", Column: "email", Identity: true, Transforms: []v1alpha1.Transform{tr("Trim"), tr("Lower")}},
		{Attribute: "givenName", Column: "first", Required: true},
		{Attribute: "active", Column: "active", Check: "Boolean"},
		{Attribute: "hireDate", Column: "hired", Check: "Date"},
		{Attribute: "type", Value: ptr("Employee")},
	}, []string{"email", "first", "active", "hired"})
	if err != nil {
		t.Fatal(err)
	}
	row := []string{"jane.doe@corp.example", "Jane", "YES", "2020-01-31"}
	var rec Record
	if n := testing.AllocsPerRun(100, func() { _ = m.MapRecord(row, &rec) }); n != 0 {
		t.Errorf("MapRecord: %v allocations per row, want 0", n)
	}
	if n := testing.AllocsPerRun(100, func() { _, _ = m.Map(row) }); n > 3 {
		t.Errorf("Map: %v allocations per row, want at most 3 (the map, its first group, the values array)", n)
	}
}

// IsIdentity, which a full import asks of every identity it lists, says
// what Identity would: whether reading v as an identity keeps it as is.
func TestIsIdentityAgreesWithIdentity(t *testing.T) {
	for _, v := range []string{"", "ann", " ann", "ann ", "a\tb", "jose\u0301", "josé", "ann\u00a0", "\u00a0ann", "ΟΔΟΣ", "x\n"} {
		if got, want := IsIdentity([]byte(v)), Identity(v) == v; got != want {
			t.Errorf("%q: IsIdentity %v, Identity(v) == v %v", v, got, want)
		}
	}
}
