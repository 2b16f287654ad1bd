package mapping

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/userimport/user-import-operator/api/v1alpha1"
)

var tmplHeader = []string{"id", "first_name", "last_name", "first name", "country", "phone", "1"}

// runTemplate maps one row through a single template entry "t".
func runTemplate(t *testing.T, text string, row map[string]string) ([]string, error) {
	t.Helper()
	m, err := Compile([]v1alpha1.AttributeMapping{
		{Attribute: "userName", Column: "id", Identity: true},
		{Attribute: "t", Template: text},
	}, tmplHeader)
	if err != nil {
		t.Fatalf("Compile(%q): %v", text, err)
	}
	fields := make([]string, len(tmplHeader))
	fields[0] = "u1"
	for i, h := range tmplHeader[1:] {
		fields[i+1] = row[h]
	}
	attrs, err := m.Map(fields)
	if err != nil {
		return nil, err
	}
	return attrs["t"], nil
}

func TestTemplates(t *testing.T) {
	jane := map[string]string{"first_name": "Jane", "last_name": "Doe", "first name": "J A N E", "country": "DE", "phone": "+49 30 1234", "1": "one"}
	cases := []struct {
		name, text string
		row        map[string]string
		want       string // "" means no values
	}{
		{"fields", "{{.first_name}}.{{.last_name}}@corp.example", jane, "Jane.Doe@corp.example"},
		{"dollar fields", "{{$.first_name}}", jane, "Jane"},
		{"index non-identifier", `{{index . "first name"}}`, jane, "J A N E"},
		{"index digit column", `{{index . "1"}}-{{index $ "1"}}`, jane, "one-one"},
		{"only text", "Employee", jane, "Employee"},
		{"comment", "{{/* initial */}}{{.first_name}}", jane, "Jane"},
		{"empty output is no value", "{{.last_name}}", map[string]string{}, ""},
		{"lower", "{{.first_name | lower}}", jane, "jane"},
		{"upper", "{{upper .last_name}}", jane, "DOE"},
		{"trim", `{{index . "first name" | trim}}|`, map[string]string{"first name": "  x  "}, "x|"},
		{"replace", `{{.phone | replace " " ""}}`, jane, "+49301234"},
		{"replace empty old", `{{.country | replace "" "-"}}`, jane, "-D-E-"},
		{"substr initial", "{{.first_name | substr 0 1}}. {{.last_name}}", jane, "J. Doe"},
		{"substr runes", "{{.first_name | substr 0 2}}", map[string]string{"first_name": "Ölund"}, "Öl"},
		{"substr middle", "{{.first_name | substr 1 3}}", jane, "an"},
		{"substr past end", "{{.first_name | substr 2 99}}", jane, "ne"},
		{"substr start past end", "{{.first_name | substr 7 9}}", jane, ""},
		{"substr negative start", "{{.first_name | substr -3 1}}", jane, "J"},
		{"substr end before start", "{{.first_name | substr 3 1}}", jane, ""},
		{"substr of empty", "{{.first_name | substr 0 1}}x", map[string]string{}, "x"},
		{"if eq", `{{if eq .country "DE"}}+49 {{else}}+1 {{end}}{{.last_name}}`, jane, "+49 Doe"},
		{"if else", `{{if eq .country "DE"}}+49{{else}}+1{{end}}`, map[string]string{"country": "US"}, "+1"},
		{"ne and not", `{{if and (ne .country "US") (not .phone)}}no phone{{end}}`, map[string]string{"country": "DE"}, "no phone"},
		{"or takes first non-empty", `{{or .first_name .last_name}}`, map[string]string{"last_name": "Doe"}, "Doe"},
		{"with and dollar", `{{with .first_name}}{{.}} {{$.last_name}}{{else}}{{$.last_name}}{{end}}`, jane, "Jane Doe"},
		{"with else", `{{with .first_name}}{{.}}{{else}}none{{end}}`, map[string]string{}, "none"},
		{"variables", `{{$f := .first_name | lower}}{{$l := .last_name | lower}}{{$f}}.{{$l}}`, jane, "jane.doe"},
		{"len", `{{len .last_name}}`, jane, "3"},
		{"index into a value", `{{index .first_name 0}}`, jane, "74"},
		{"nested parentheses", `{{upper (substr 0 1 (lower .first_name))}}`, jane, "J"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := runTemplate(t, tc.text, tc.row)
			if err != nil {
				t.Fatalf("error: %v", err)
			}
			var want []string
			if tc.want != "" {
				want = []string{tc.want}
			}
			if len(got) != len(want) || (len(want) > 0 && !reflect.DeepEqual(got, want)) {
				t.Fatalf("got %q, want %q", got, want)
			}
		})
	}
}

// Templates made only of text and columns are concatenated without
// text/template; the result must be what text/template gives.
func TestSimpleTemplatesMatchTextTemplate(t *testing.T) {
	texts := []string{
		"{{.first_name}}.{{.last_name}}@corp.example",
		`{{index . "first name"}} {{$.last_name}}{{index $ "1"}}`,
		"plain text",
		"{{/* c */}}{{.first_name}}{{- .last_name -}} x",
		"{{.first_name}}{{.first_name}}",
	}
	cols := newColumns(tmplHeader)
	fields := []string{"u1", "Jöhn", "Ünal", "J O", "DE", "", "1"}
	row := map[string]string{}
	for i, h := range tmplHeader {
		row[h] = fields[i]
	}
	for _, text := range texts {
		tp, err := compileTemplate("t", text, cols)
		if err != nil {
			t.Fatal(err)
		}
		if tp.parts == nil {
			t.Fatalf("%q: not recognised as simple", text)
		}
		fast, msg := tp.concat(fields)
		slow, msg2 := tp.execute(row)
		if msg != "" || msg2 != "" || fast != slow {
			t.Errorf("%q: concat %q (%s), text/template %q (%s)", text, fast, msg, slow, msg2)
		}
	}
	for _, text := range []string{"{{.first_name | lower}}", "{{if .id}}x{{end}}", "{{$x := .id}}"} {
		tp, err := compileTemplate("t", text, cols)
		if err != nil {
			t.Fatal(err)
		}
		if tp.parts != nil {
			t.Errorf("%q: taken as simple", text)
		}
	}
}

func TestTemplateRowErrors(t *testing.T) {
	big := strings.Repeat("x", MaxValueBytes/2+1)
	cases := []struct {
		name, text string
		row        map[string]string
		want       string
	}{
		{"simple output too long", "{{.first_name}}{{.last_name}}", map[string]string{"first_name": big, "last_name": big}, "t: template output longer than 65536 bytes"},
		{"general output too long", "{{.first_name | lower}}{{.last_name}}", map[string]string{"first_name": big, "last_name": big}, "t: template output longer than 65536 bytes"},
		{"replace growth", `{{.first_name | replace "" "0123456789"}}`, map[string]string{"first_name": strings.Repeat("x", 6000)}, "t: template output longer than 65536 bytes"},
		{"replace chain growth", `{{.first_name | replace "" "abcd" | replace "" "abcd" | replace "" "abcd" | replace "" "abcd" | replace "" "abcd" | replace "" "abcd" | replace "" "abcd" | replace "" "abcd"}}`, map[string]string{"first_name": "xy"}, "t: template output longer than 65536 bytes"},
		{"index out of range", `{{index .first_name 5}}`, map[string]string{"first_name": "Jane"}, "t: template failed at 1:2"},
		{"wrong type", `{{lower (len .first_name)}}`, map[string]string{"first_name": "Jane"}, "t: template failed at 1:"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := runTemplate(t, tc.text, tc.row)
			var re *FieldErrors
			if !errors.As(err, &re) || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
}

func TestTemplateFuncsBoundOutput(t *testing.T) {
	big := strings.Repeat("ⱥ", MaxValueBytes/3) // 3 bytes each, 2 in upper case
	if _, err := tmplUpper(big); err != nil {
		t.Errorf("upper of %d bytes: %v", len(big), err)
	}
	up, _ := tmplUpper(big)
	if _, err := tmplLower(up + up[:len(up)/2]); !errors.Is(err, errTooLong) {
		t.Errorf("lower growing past the limit: %v", err)
	}
	if _, err := tmplReplace("a", "bb", strings.Repeat("a", MaxValueBytes/2+1)); !errors.Is(err, errTooLong) {
		t.Errorf("replace growing past the limit: %v", err)
	}
	if s, err := tmplReplace("aa", "", strings.Repeat("a", MaxValueBytes)); err != nil || s != "" {
		t.Errorf("replace shrinking: %q, %v", s, err)
	}
}
