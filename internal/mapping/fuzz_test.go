package mapping

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/userimport/user-import-operator/api/v1alpha1"
)

// FuzzTemplate: whatever the template text and the row, Compile and Map
// do not panic, a template that compiles never produces more than
// MaxValueBytes, and a row error only carries messages of a closed set
// (so never a value).
//
//	go test -run '^$' -fuzz FuzzTemplate ./internal/mapping
func FuzzTemplate(f *testing.F) {
	seeds := []string{
		"{{.a}}.{{.b}}@corp.example",
		`{{index . "c d"}}`,
		`{{.a | replace "" "0123456789" | replace "" "0123456789" | replace "" "0123456789"}}`,
		`{{if eq .a "x"}}{{.b | upper}}{{else}}{{.a | substr 0 1}}{{end}}`,
		`{{with .a}}{{.}}{{$.b}}{{end}}`,
		`{{$x := .a}}{{$x = lower $x}}{{$x}}{{len $x}}`,
		`{{range 100000000}}{{end}}`,
		`{{define "x"}}{{template "x"}}{{end}}{{template "x"}}`,
		`{{printf "%0999999999d" 1}}`,
		`{{index .a 3}}`,
		`{{or .a .b | trim}}`,
		`{{(.a).b}}`,
	}
	for _, s := range seeds {
		f.Add(s, "Jane", "Doe", "J D")
	}
	f.Add(`{{.a}}{{.a}}{{.a}}`, strings.Repeat("x", 30000), "", "")
	f.Fuzz(func(t *testing.T, text, a, b, cd string) {
		m, err := Compile([]v1alpha1.AttributeMapping{
			{Attribute: "id", Column: "id", Identity: true},
			{Attribute: "t", Template: text},
		}, []string{"id", "a", "b", "c d"})
		if err != nil {
			var ce *CompileError
			if !errors.As(err, &ce) {
				t.Fatalf("Compile error of type %T", err)
			}
			return
		}
		entries := []v1alpha1.AttributeMapping{{Attribute: "id"}, {Attribute: "t"}}
		attrs, err := m.Map([]string{"u", a, b, cd})
		if err != nil {
			assertRowError(t, err, entries)
			return
		}
		for _, v := range attrs["t"] {
			if len(v) > MaxValueBytes {
				t.Fatalf("template output of %d bytes", len(v))
			}
		}
	})
}

// fuzzMapping uses every kind of rule.
var fuzzMapping = []v1alpha1.AttributeMapping{
	{Attribute: "userName", Column: "email", Identity: true, Transforms: []v1alpha1.Transform{{Type: "Trim"}, {Type: "Lower"}}, Check: "Email"},
	{Attribute: "displayName", Template: "{{.first}} {{.last}}", Required: true},
	{Attribute: "initials", Template: "{{.first | substr 0 1 | upper}}{{.last | substr 0 1 | upper}}"},
	{Attribute: "active", Column: "active", Check: "Boolean", Default: ptr("true")},
	{Attribute: "hireDate", Column: "hired", Transforms: []v1alpha1.Transform{{Type: "DateFormat", FromLayout: "02.01.2006", ToLayout: "2006-01-02"}}, Check: "Date"},
	{Attribute: "groups", Column: "groups", Split: ";"},
	{Attribute: "phone", Column: "phone", Transforms: []v1alpha1.Transform{{Type: "RegexReplace", Pattern: `[^+\d]`, Replacement: ""}}},
}

// FuzzMap: arbitrary fields never panic; a mapped row has every attribute,
// a single non-empty identity, normalised booleans, trimmed non-empty split
// values and no value over the limit; a row error only carries messages of
// a closed set.
//
//	go test -run '^$' -fuzz FuzzMap ./internal/mapping
func FuzzMap(f *testing.F) {
	f.Add(" Jane.Doe@Corp.Example ", "Jane", "Doe", "yes", "01.02.2020", "a; b;;c", "+49 (30) 1234")
	f.Add("", "", "", "", "", "", "")
	f.Add("a@b", "ß", "Ölund", "0", "29.02.2023", ";", "x")
	f.Add("not mail", "\xff\xfe", "\x00", "TRUE", "31.12.9999", " ; ", "++")
	f.Fuzz(func(t *testing.T, email, first, last, active, hired, groups, phone string) {
		m, err := Compile(fuzzMapping, []string{"email", "first", "last", "active", "hired", "groups", "phone"})
		if err != nil {
			t.Fatal(err)
		}
		fields := []string{email, first, last, active, hired, groups, phone}
		attrs, err := m.Map(fields)
		if err != nil {
			assertRowError(t, err, fuzzMapping)
			return
		}
		if len(attrs) != len(fuzzMapping) {
			t.Fatalf("%d attributes, want %d", len(attrs), len(fuzzMapping))
		}
		if id := attrs["userName"]; len(id) != 1 || id[0] == "" {
			t.Fatalf("identity %q", id)
		}
		if a := attrs["active"]; len(a) != 1 || (a[0] != "true" && a[0] != "false") {
			t.Fatalf("active %q", a)
		}
		for _, g := range attrs["groups"] {
			if g == "" || g != strings.TrimSpace(g) {
				t.Fatalf("group value %q", g)
			}
		}
		for name, vals := range attrs {
			if vals == nil {
				t.Fatalf("%s: nil slice", name)
			}
			for _, v := range vals {
				if len(v) > MaxValueBytes {
					t.Fatalf("%s: %d bytes", name, len(v))
				}
			}
		}
	})
}

// rowMessage matches every message a row error may carry. Messages come
// from this closed set, so none can carry a value; a layout is part of the
// mapping, not of the row.
var rowMessage = regexp.MustCompile(`^(not an e-mail address|not a boolean \(true/false, yes/no, 1/0\)|not a date \(YYYY-MM-DD\)|required but empty|identity is empty|does not match layout \S+|longer than 65536 bytes( after transforms\[\d+\] \(\w+\))?|template output longer than 65536 bytes|template failed( at \d+:\d+)?|the row has \d+ fields, the header has \d+)( \(value \d+ of \d+\))?$`)

// assertRowError fails unless err is a *FieldErrors whose every field error
// names a mapped attribute (or none, for the whole row) and carries a
// message of the closed set.
func assertRowError(t *testing.T, err error, entries []v1alpha1.AttributeMapping) {
	t.Helper()
	var re *FieldErrors
	if !errors.As(err, &re) || len(re.Errors) == 0 {
		t.Fatalf("error %v is not a *RowError with errors", err)
	}
	attrs := map[string]bool{"": true}
	for _, e := range entries {
		attrs[e.Attribute] = true
	}
	for _, fe := range re.Errors {
		if !attrs[fe.Attribute] || !rowMessage.MatchString(fe.Msg) {
			t.Fatalf("field error %q is not an attribute with a message of the known set", fe)
		}
	}
}
