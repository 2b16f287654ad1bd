package invite

import (
	"strings"
	"testing"
)

// Invitation templates get the mapping's sandbox: what could run without
// bound is refused when they are parsed, with the template and the line.
func TestTemplatesAreSandboxed(t *testing.T) {
	for text, want := range map[string]string{
		"Hello\n{{range 100000000000}}x{{end}}":  "template text: line 2 uses range",
		`{{printf "%999999999d" 1}}`:             "template text: line 1 calls printf",
		`{{define "x"}}a{{end}}{{template "x"}}`: "defines templates",
		`{{template "text"}}`:                    "calls a template",
		`{{range .Attributes}}{{.}}{{end}}`:      "uses range",
		"{{with .GivenName}}{{call .}}{{end}}":   "calls call",
		`{{(print .Identity) | len}}`:            "calls print",
	} {
		if _, err := Parse(DefaultSubject, text, DefaultHTML); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want an error with %q", text, err, want)
		}
	}
	ok := `Hello {{with .GivenName}}{{.}}{{else}}{{index .Attributes "name.givenName"}}{{end}}, {{len .Identity}} {{if and .SignInURL (ne .Organization "")}}{{.SignInURL | urlquery}}{{end}}`
	if _, err := Parse(DefaultSubject, ok, DefaultHTML); err != nil {
		t.Fatalf("a template within the sandbox: %v", err)
	}
}

// A render is bounded, and its errors give the template and the position,
// never a value.
func TestRenderIsBoundedAndQuotesNoValue(t *testing.T) {
	const secret = "Zoë-Ångström-7731"
	big, err := Parse(DefaultSubject, `{{.Identity}}{{.Identity}}{{.Identity}}{{.Identity}}`, DefaultHTML)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := big.Render(Data{Identity: strings.Repeat("x", MaxOutputBytes/3)}); err == nil || !strings.Contains(err.Error(), "exceeds") {
		t.Fatalf("an output over the bound: %v", err)
	}
	missing, err := Parse(DefaultSubject, "{{.Identity}}\n{{.Attributes.nosuch}}", DefaultHTML)
	if err != nil {
		t.Fatal(err)
	}
	_, err = missing.Render(Data{Identity: secret, Attributes: map[string]string{}})
	if err == nil || strings.Contains(err.Error(), secret) || !strings.Contains(err.Error(), "template text:2:") {
		t.Fatalf("an execution error: %v", err)
	}
	a, _ := Parse(DefaultSubject, DefaultText, DefaultHTML)
	b, _ := Parse(DefaultSubject, DefaultText+" ", DefaultHTML)
	if a.SHA256 == "" || a.SHA256 == b.SHA256 {
		t.Fatal("templates that differ have the same sha256")
	}
}
