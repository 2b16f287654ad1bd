// Package docs checks the documentation against the code it describes: the
// YAML in the README and docs/ against the CRDs' schemas and CEL rules,
// the troubleshooting page against the condition types and reasons of the
// API, the make targets and links the pages name, and the generated API
// reference against the CRDs. Each check returns what is wrong, so that
// its tests can show it fails on a wrong page as well as pass on the
// right one.
package docs

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/apivalidate"
)

// Page is one Markdown file, by its path from the repository's root.
type Page struct {
	Path string
	Text string
}

// Pages reads the README and every page under docs/.
func Pages(root string) ([]Page, error) {
	paths := []string{"README.md"}
	err := filepath.WalkDir(filepath.Join(root, "docs"), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".md") {
			rel, err := filepath.Rel(root, p)
			if err != nil {
				return err
			}
			paths = append(paths, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var pages []Page
	for _, p := range paths {
		data, err := os.ReadFile(filepath.Join(root, p))
		if err != nil {
			return nil, err
		}
		pages = append(pages, Page{Path: p, Text: string(data)})
	}
	return pages, nil
}

// Block is a fenced code block: its language, its first line's number,
// its text without the fence's indentation, and the HTML comment on the
// line before it, if any ("fragment: UserImport spec").
type Block struct {
	Lang   string
	Line   int
	Text   string
	Marker string
}

var markerRE = regexp.MustCompile(`^<!--\s*(.*?)\s*-->$`)

// Blocks returns the fenced code blocks of a page.
func Blocks(text string) []Block {
	var out []Block
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		trimmed := strings.TrimLeft(lines[i], " ")
		if !strings.HasPrefix(trimmed, "```") {
			continue
		}
		indent := len(lines[i]) - len(trimmed)
		b := Block{Lang: strings.TrimSpace(strings.TrimPrefix(trimmed, "```")), Line: i + 2}
		if i > 0 {
			if m := markerRE.FindStringSubmatch(strings.TrimSpace(lines[i-1])); m != nil {
				b.Marker = m[1]
			}
		}
		var body []string
		for i++; i < len(lines) && !strings.HasPrefix(strings.TrimLeft(lines[i], " "), "```"); i++ {
			l := lines[i]
			if len(l) >= indent && strings.TrimSpace(l[:indent]) == "" {
				l = l[indent:]
			}
			body = append(body, l)
		}
		b.Text = strings.Join(body, "\n")
		out = append(out, b)
	}
	return out
}

// CheckYAML validates every YAML block of a page. A block is one or more
// objects with apiVersion and kind (the operator's kinds are checked with
// the CRDs' schemas and CEL rules, ConfigMaps and Secrets with their Go
// types, field by field), or, after a marker, a fragment: "fragment:
// <Kind> spec" is part of that kind's spec, checked within a complete
// object; "fragment: chart values" is part of the Helm chart's values,
// whose keys must exist in values.
func CheckYAML(page Page, values map[string]any) []error {
	var errs []error
	for _, b := range Blocks(page.Text) {
		if b.Lang != "yaml" && b.Lang != "yml" {
			continue
		}
		at := fmt.Sprintf("%s:%d", page.Path, b.Line)
		if err := checkBlock(b, values); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", at, err))
		}
	}
	return errs
}

func checkBlock(b Block, values map[string]any) error {
	if b.Marker != "" {
		fields := strings.Fields(b.Marker)
		switch {
		case len(fields) == 3 && fields[0] == "fragment:" && fields[1] == "chart" && fields[2] == "values":
			var frag map[string]any
			if err := yaml.UnmarshalStrict([]byte(b.Text), &frag); err != nil {
				return err
			}
			return knownKeys("", frag, values)
		case len(fields) == 3 && fields[0] == "fragment:" && fields[2] == "spec":
			var frag map[string]any
			if err := yaml.UnmarshalStrict([]byte(b.Text), &frag); err != nil {
				return err
			}
			return checkFragment(fields[1], frag)
		default:
			return fmt.Errorf("unknown marker %q: want <!-- fragment: Kind spec --> or <!-- fragment: chart values -->", b.Marker)
		}
	}
	docs := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(b.Text)))
	for n := 1; ; n++ {
		doc, err := docs.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		if err := checkObject(doc); err != nil {
			return fmt.Errorf("object %d: %w", n, err)
		}
	}
}

// checkObject checks one YAML document as the API server would.
func checkObject(doc []byte) error {
	data, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return err
	}
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return err
	}
	switch {
	case head.APIVersion == "" || head.Kind == "":
		return errors.New("a YAML block must hold objects with apiVersion and kind, or follow <!-- fragment: Kind spec --> or <!-- fragment: chart values -->")
	case head.APIVersion == v1alpha1.GroupVersion.String():
		out, err := newObject(head.Kind)
		if err != nil {
			return err
		}
		return apivalidate.Decode(head.Kind, data, out)
	case head.APIVersion == "v1" && head.Kind == "ConfigMap":
		return strictDecode(data, &corev1.ConfigMap{})
	case head.APIVersion == "v1" && head.Kind == "Secret":
		return strictDecode(data, &corev1.Secret{})
	case head.APIVersion == "kustomize.config.k8s.io/v1beta1" && head.Kind == "Kustomization":
		return nil // kustomize's own schema is not at hand; the YAML parsed
	}
	return fmt.Errorf("%s %s is not a kind the checks know", head.APIVersion, head.Kind)
}

func newObject(kind string) (any, error) {
	switch kind {
	case "UserDirectory":
		return &v1alpha1.UserDirectory{}, nil
	case "UserImport":
		return &v1alpha1.UserImport{}, nil
	case "ImportSchedule":
		return &v1alpha1.ImportSchedule{}, nil
	}
	return nil, fmt.Errorf("kind %q is not one of userimport.dev/v1alpha1", kind)
}

func strictDecode(data []byte, out any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(out)
}

// bases are complete specs that fragments are set into: the fragment's
// fields replace theirs.
var bases = map[string]map[string]any{
	"UserDirectory": {
		"identityAttribute": "userName",
		"scim":              map[string]any{"url": "https://idp.example.com/scim/v2"},
	},
	"UserImport": {
		"directoryRef": map[string]any{"name": "corp-idp"},
		"source":       map[string]any{"configMap": map[string]any{"name": "hr-export", "key": "employees.csv"}},
		"mapping":      []any{map[string]any{"attribute": "userName", "column": "email", "identity": true}},
	},
	"ImportSchedule": {
		"schedule": "30 3 * * *",
		"template": map[string]any{"spec": map[string]any{
			"directoryRef": map[string]any{"name": "corp-idp"},
			"source":       map[string]any{"configMap": map[string]any{"name": "hr-export", "key": "employees.csv"}},
			"mapping":      []any{map[string]any{"attribute": "userName", "column": "email", "identity": true}},
		}},
	},
}

// checkFragment checks part of a kind's spec within a complete object.
func checkFragment(kind string, frag map[string]any) error {
	base, ok := bases[kind]
	if !ok {
		return fmt.Errorf("fragment of kind %q: want UserDirectory, UserImport or ImportSchedule", kind)
	}
	spec := map[string]any{}
	for k, v := range base {
		spec[k] = v
	}
	// A directory fragment names its own kind of directory.
	if kind == "UserDirectory" && (frag["ldap"] != nil || frag["sql"] != nil) {
		delete(spec, "scim")
	}
	for k, v := range frag {
		spec[k] = v
	}
	data, err := json.Marshal(map[string]any{
		"apiVersion": v1alpha1.GroupVersion.String(), "kind": kind,
		"metadata": map[string]any{"name": "fragment"}, "spec": spec,
	})
	if err != nil {
		return err
	}
	out, err := newObject(kind)
	if err != nil {
		return err
	}
	return apivalidate.Decode(kind, data, out)
}

// knownKeys checks that every key of frag is a key of values. A map that
// values leaves empty ({}) takes any keys (resources, labels).
func knownKeys(path string, frag, values map[string]any) error {
	if len(values) == 0 {
		return nil
	}
	for k, v := range frag {
		dv, ok := values[k]
		if !ok {
			return fmt.Errorf("chart value %s%s does not exist", path, k)
		}
		sub, isMap := v.(map[string]any)
		dsub, defIsMap := dv.(map[string]any)
		if isMap && defIsMap {
			if err := knownKeys(path+k+".", sub, dsub); err != nil {
				return err
			}
		}
	}
	return nil
}

// Reasons returns the condition types and reasons the API declares: the
// string constants of api/v1alpha1 named Condition…, Reason… or Change….
func Reasons(apiDir string) ([]string, error) {
	fset := token.NewFileSet()
	files, err := filepath.Glob(filepath.Join(apiDir, "*.go"))
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") || strings.HasPrefix(filepath.Base(f), "zz_") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, 0)
		if err != nil {
			return nil, err
		}
		for _, decl := range file.Decls {
			gen, ok := decl.(*ast.GenDecl)
			if !ok || gen.Tok != token.CONST {
				continue
			}
			for _, spec := range gen.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if i >= len(vs.Values) || !isReasonName(name.Name) {
						continue
					}
					lit, ok := vs.Values[i].(*ast.BasicLit)
					if !ok || lit.Kind != token.STRING {
						continue
					}
					v, err := strconv.Unquote(lit.Value)
					if err != nil {
						return nil, err
					}
					if !seen[v] {
						seen[v] = true
						out = append(out, v)
					}
				}
			}
		}
	}
	slices.Sort(out)
	return out, nil
}

func isReasonName(name string) bool {
	for _, p := range []string{"Condition", "Reason", "Change"} {
		if strings.HasPrefix(name, p) && len(name) > len(p) {
			return true
		}
	}
	return false
}

// CheckReasons says which reasons the page does not explain: each must
// appear on it in backquotes.
func CheckReasons(page Page, reasons []string) []error {
	var errs []error
	for _, r := range reasons {
		if !strings.Contains(page.Text, "`"+r+"`") {
			errs = append(errs, fmt.Errorf("%s does not explain the condition type or reason %q", page.Path, r))
		}
	}
	return errs
}

var (
	inlineCodeRE = regexp.MustCompile("`([^`\n]+)`")
	targetRE     = regexp.MustCompile(`(?m)^([A-Za-z0-9][A-Za-z0-9_-]*):`)
)

// MakeTargets returns the targets a Makefile defines.
func MakeTargets(makefile string) map[string]bool {
	out := map[string]bool{}
	for _, m := range targetRE.FindAllStringSubmatch(makefile, -1) {
		out[m[1]] = true
	}
	return out
}

// CheckMakeTargets says which `make X` a page names that the Makefile
// lacks: in inline code and in shell blocks.
func CheckMakeTargets(page Page, targets map[string]bool) []error {
	var cmds []string
	for _, m := range inlineCodeRE.FindAllStringSubmatch(page.Text, -1) {
		cmds = append(cmds, m[1])
	}
	for _, b := range Blocks(page.Text) {
		if b.Lang == "sh" || b.Lang == "bash" || b.Lang == "" {
			cmds = append(cmds, strings.Split(b.Text, "\n")...)
		}
	}
	var errs []error
	for _, c := range cmds {
		f := strings.Fields(c)
		if len(f) < 2 || f[0] != "make" {
			continue
		}
		for _, t := range f[1:] {
			if strings.Contains(t, "=") || strings.HasPrefix(t, "#") {
				break
			}
			if !targets[t] {
				errs = append(errs, fmt.Errorf("%s names `make %s`, which the Makefile does not define", page.Path, t))
			}
		}
	}
	return errs
}

var linkRE = regexp.MustCompile(`\]\(([^)\s]+)\)`)

// CheckLinks says which links of a page lead nowhere: a file of the
// repository that does not exist, or a heading a page does not have.
func CheckLinks(root string, page Page, pages []Page) []error {
	byPath := map[string]Page{}
	for _, p := range pages {
		byPath[p.Path] = p
	}
	var errs []error
	for _, m := range linkRE.FindAllStringSubmatch(prose(page.Text), -1) {
		link := m[1]
		if strings.Contains(link, "://") || strings.HasPrefix(link, "mailto:") {
			continue
		}
		target, anchor, _ := strings.Cut(link, "#")
		path := page.Path
		if target != "" {
			path = filepath.ToSlash(filepath.Clean(filepath.Join(filepath.Dir(page.Path), target)))
			if _, err := os.Stat(filepath.Join(root, path)); err != nil {
				errs = append(errs, fmt.Errorf("%s links to %s, which does not exist", page.Path, link))
				continue
			}
		}
		if anchor == "" {
			continue
		}
		p, ok := byPath[path]
		if !ok {
			continue
		}
		if !slices.Contains(Anchors(p.Text), anchor) {
			errs = append(errs, fmt.Errorf("%s links to %s, and %s has no such heading", page.Path, link, path))
		}
	}
	return errs
}

// prose is a page without its code: what looks like a link in a code
// span or block is code.
func prose(text string) string {
	var b strings.Builder
	inCode := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimLeft(line, " "), "```") {
			inCode = !inCode
			continue
		}
		if !inCode {
			b.WriteString(inlineCodeRE.ReplaceAllString(line, "``") + "\n")
		}
	}
	return b.String()
}

var headingRE = regexp.MustCompile(`(?m)^#{1,6} +(.+?) *#*$`)

// Anchors returns the anchors of a page's headings, as GitHub makes them:
// lower case, punctuation dropped, spaces as dashes.
func Anchors(text string) []string {
	var out []string
	inCode := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimLeft(line, " "), "```") {
			inCode = !inCode
			continue
		}
		if inCode {
			continue
		}
		m := headingRE.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		var b strings.Builder
		for _, r := range strings.ToLower(m[1]) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127:
				b.WriteRune(r)
			}
		}
		out = append(out, b.String())
	}
	return out
}
