package docs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/userimport/user-import-operator/config/crd"
	"github.com/userimport/user-import-operator/internal/apidocs"
)

const root = "../.."

func pages(t *testing.T) []Page {
	t.Helper()
	ps, err := Pages(root)
	if err != nil {
		t.Fatal(err)
	}
	return ps
}

func page(t *testing.T, path string) Page {
	t.Helper()
	for _, p := range pages(t) {
		if p.Path == path {
			return p
		}
	}
	t.Fatalf("no page %s", path)
	return Page{}
}

func chartValues(t *testing.T) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, "charts/user-import-operator/values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := yaml.Unmarshal(data, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func report(t *testing.T, errs []error) {
	t.Helper()
	for _, err := range errs {
		t.Error(err)
	}
}

func TestEveryYAMLBlockIsValid(t *testing.T) {
	values := chartValues(t)
	checked := 0
	for _, p := range pages(t) {
		report(t, CheckYAML(p, values))
		for _, b := range Blocks(p.Text) {
			if b.Lang == "yaml" {
				checked++
			}
		}
	}
	// The pages hold dozens of examples; finding none means the blocks
	// were not found, not that they are valid.
	if checked < 15 {
		t.Errorf("checked %d YAML blocks; the pages hold more", checked)
	}
}

func TestTroubleshootingExplainsEveryReason(t *testing.T) {
	reasons, err := Reasons(filepath.Join(root, "api/v1alpha1"))
	if err != nil {
		t.Fatal(err)
	}
	if len(reasons) < 50 {
		t.Fatalf("found %d condition types and reasons in api/v1alpha1; the API declares more", len(reasons))
	}
	report(t, CheckReasons(page(t, "docs/troubleshooting.md"), reasons))
}

func TestEveryMakeTargetNamedExists(t *testing.T) {
	makefile, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	targets := MakeTargets(string(makefile))
	for _, p := range pages(t) {
		report(t, CheckMakeTargets(p, targets))
	}
}

func TestEveryLinkLeadsSomewhere(t *testing.T) {
	ps := pages(t)
	for _, p := range ps {
		report(t, CheckLinks(root, p, ps))
	}
}

func TestTheAPIReferenceIsCurrent(t *testing.T) {
	crds, err := crd.CRDs()
	if err != nil {
		t.Fatal(err)
	}
	want, err := apidocs.Render(crds)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(root, "docs/reference/api.md"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Error("docs/reference/api.md is stale: run make docs and commit it")
	}
}

func TestTheREADMEFitsOnAScreenOrTwo(t *testing.T) {
	readme := page(t, "README.md")
	if n := strings.Count(readme.Text, "\n"); n > 150 {
		t.Errorf("README.md has %d lines; keep it under 150 and put the rest in docs/", n)
	}
	for _, cmd := range []string{"make demo", "make test"} {
		if !strings.Contains(readme.Text, cmd) {
			t.Errorf("README.md does not give %q", cmd)
		}
	}
}

// The checks themselves: each finds what is wrong in a page made wrong on
// purpose.

func TestAWrongFieldFailsTheYAMLCheck(t *testing.T) {
	values := chartValues(t)
	for name, text := range map[string]string{
		"unknown field": "```yaml\napiVersion: userimport.dev/v1alpha1\nkind: UserImport\nmetadata: {name: x}\nspec:\n  directoryRef: {name: d}\n  source: {configMap: {name: c, key: k}}\n  batchSize: 10\n  mapping:\n  - {attribute: uid, column: id, identity: true}\n```\n",
		"bad enum":      "```yaml\napiVersion: userimport.dev/v1alpha1\nkind: UserImport\nmetadata: {name: x}\nspec:\n  directoryRef: {name: d}\n  source: {configMap: {name: c, key: k}}\n  mode: Sometimes\n  mapping:\n  - {attribute: uid, column: id, identity: true}\n```\n",
		"CEL rule":      "```yaml\napiVersion: userimport.dev/v1alpha1\nkind: UserDirectory\nmetadata: {name: x}\nspec:\n  identityAttribute: uid\n  scim: {url: https://a.example}\n  sql: {driver: sqlite, dsn: {name: s, key: k}, table: t}\n```\n",
		"fragment":      "<!-- fragment: UserImport spec -->\n```yaml\nsource: {sftp: {host: h, pattern: '*.csv', credentials: {name: s}, knownHosts: {name: k, key: k}, typo: 1}}\n```\n",
		"chart value":   "<!-- fragment: chart values -->\n```yaml\nworker: {replicas: 3}\n```\n",
		"no kind":       "```yaml\nspec: {mode: Full}\n```\n",
		"core kind":     "```yaml\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\nstringData: {a: b}\n```\n",
		"marker":        "<!-- fragment: UserImport status -->\n```yaml\nphase: Completed\n```\n",
	} {
		if errs := CheckYAML(Page{Path: "bad.md", Text: text}, values); len(errs) == 0 {
			t.Errorf("%s: the check found nothing wrong", name)
		} else if !strings.Contains(errs[0].Error(), "bad.md:") {
			t.Errorf("%s: %v does not name the page and line", name, errs[0])
		}
	}
	good := "<!-- fragment: UserImport spec -->\n```yaml\nmode: Delta\n```\n"
	report(t, CheckYAML(Page{Path: "good.md", Text: good}, values))
}

func TestAnUnknownReasonFailsTheReasonCheck(t *testing.T) {
	p := Page{Path: "troubleshooting.md", Text: "| `Connected` | fine |"}
	errs := CheckReasons(p, []string{"Connected", "BrandNewReason"})
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "BrandNewReason") {
		t.Errorf("errors %v, want one naming BrandNewReason", errs)
	}
}

func TestAMissingTargetFailsTheMakeCheck(t *testing.T) {
	targets := MakeTargets("test: x\n\tgo test\ndemo: ## d\n")
	p := Page{Path: "p.md", Text: "Run `make test` and `make demo DEMO_FLAGS=x`, then\n\n```sh\nmake tset\n```\n"}
	errs := CheckMakeTargets(p, targets)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "make tset") {
		t.Errorf("errors %v, want one naming make tset", errs)
	}
}

func TestABrokenLinkFailsTheLinkCheck(t *testing.T) {
	ps := []Page{
		{Path: "docs/a.md", Text: "# A page\n\n## Its part\n\n[ok](#its-part) [ok](b.md#b) [gone](c.md) [no heading](b.md#nope)\n"},
		{Path: "docs/b.md", Text: "# B\n"},
	}
	dir := t.TempDir()
	for _, p := range ps {
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(p.Path)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, p.Path), []byte(p.Text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	errs := CheckLinks(dir, ps[0], ps)
	if len(errs) != 2 || !strings.Contains(errs[0].Error(), "c.md") || !strings.Contains(errs[1].Error(), "nope") {
		t.Errorf("errors %v, want c.md missing and b.md#nope", errs)
	}
}
