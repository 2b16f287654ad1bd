package mapping

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"text/template"
	"text/template/parse"
	"unicode/utf8"
)

// templateFuncs are the functions a template may call besides the
// allowed builtins. Each bounds its output by MaxValueBytes, so that no
// chain of calls can build a value larger than a row may produce.
var templateFuncs = template.FuncMap{
	"lower":   tmplLower,
	"upper":   tmplUpper,
	"trim":    strings.TrimSpace,
	"replace": tmplReplace,
	"substr":  tmplSubstr,
}

// allowedFuncs are the identifiers a template may use: templateFuncs and
// the text/template builtins that cannot build large values. printf,
// print and println are left out (a width such as %999999999d allocates
// before any limit applies); call, html, js, urlquery and slice have no use
// on a row of strings.
var allowedFuncs = map[string]bool{
	"lower": true, "upper": true, "trim": true, "replace": true, "substr": true,
	"and": true, "or": true, "not": true, "eq": true, "ne": true, "index": true, "len": true,
}

var errTooLong = fmt.Errorf("output longer than %d bytes", MaxValueBytes)

func tmplLower(s string) (string, error) { return bounded(strings.ToLower(s)) }
func tmplUpper(s string) (string, error) { return bounded(strings.ToUpper(s)) }

func bounded(s string) (string, error) {
	if len(s) > MaxValueBytes {
		return "", errTooLong
	}
	return s, nil
}

// tmplReplace replaces every old in s with new; arguments are ordered for
// pipelines: {{.phone | replace " " ""}}. It computes the size of the
// result first, so that replacing "" (which matches between every
// character) with a long text cannot allocate beyond the limit.
func tmplReplace(old, new, s string) (string, error) {
	n := strings.Count(s, old)
	if n > 0 && len(s)+n*(len(new)-len(old)) > MaxValueBytes {
		return "", errTooLong
	}
	return strings.ReplaceAll(s, old, new), nil
}

// tmplSubstr returns the characters (not bytes, so that "Ölund" keeps its
// first letter whole) from start up to end of s. start and end are clamped
// to the string, so {{.first_name | substr 0 1}} gives "" for an empty name
// instead of failing the row.
func tmplSubstr(start, end int, s string) string {
	if start < 0 {
		start = 0
	}
	if end <= start {
		return ""
	}
	from, i, n := len(s), 0, 0
	for i < len(s) {
		if n == start {
			from = i
		}
		if n == end {
			return s[from:i]
		}
		_, size := utf8.DecodeRuneInString(s[i:])
		i += size
		n++
	}
	return s[from:]
}

// tmpl is a compiled template entry.
type tmpl struct {
	name string
	t    *template.Template
	// cols are the header indexes of the columns the template reads.
	cols []int
	// parts is the template as a list of texts and columns when it has
	// nothing else ({{.a}} {{index . "b c"}}); nil otherwise. Such a
	// template is concatenated directly, without text/template's
	// reflection, which matters at millions of rows.
	parts []part
}

type part struct {
	text string
	col  int // >= 0: the column's value instead of text
}

// compileTemplate parses text and checks that it only reads columns of the
// header, and only through constructs that run in time and memory bounded
// by the template itself: no range, no template calls, no printf.
// Its errors complete the phrase "template …".
func compileTemplate(name, text string, cols *columns) (*tmpl, error) {
	t, err := template.New(name).Option("missingkey=error").Funcs(templateFuncs).Parse(text)
	if err != nil {
		return nil, fmt.Errorf("does not parse: %v", err)
	}
	for _, other := range t.Templates() {
		if other.Name() != name {
			return nil, fmt.Errorf("defines template %q; define and block are not allowed", other.Name())
		}
	}
	if t.Tree == nil || t.Tree.Root == nil {
		return nil, errors.New("is empty")
	}
	a := &analyzer{tree: t.Tree, cols: cols, used: map[int]bool{}}
	if err := a.list(t.Tree.Root, true); err != nil {
		return nil, err
	}
	tp := &tmpl{name: name, t: t}
	for c := range a.used {
		tp.cols = append(tp.cols, c)
	}
	tp.parts = simpleParts(t.Tree.Root, cols)
	return tp, nil
}

// analyzer walks a template's parse tree. dotIsRow tells whether "." is the
// row (it is not inside {{with}}).
type analyzer struct {
	tree *parse.Tree
	cols *columns
	used map[int]bool
}

func (a *analyzer) column(name string) error {
	i, problem := a.cols.index(name)
	if problem != "" {
		return fmt.Errorf("refers to column %q, which %s", name, problem)
	}
	a.used[i] = true
	return nil
}

func (a *analyzer) list(l *parse.ListNode, dotIsRow bool) error {
	if l == nil {
		return nil
	}
	for _, n := range l.Nodes {
		if err := a.node(n, dotIsRow); err != nil {
			return err
		}
	}
	return nil
}

func (a *analyzer) node(n parse.Node, dotIsRow bool) error {
	switch n := n.(type) {
	case *parse.TextNode, *parse.CommentNode:
		return nil
	case *parse.ActionNode:
		return a.pipe(n.Pipe, dotIsRow)
	case *parse.IfNode:
		if err := a.pipe(n.Pipe, dotIsRow); err != nil {
			return err
		}
		if err := a.list(n.List, dotIsRow); err != nil {
			return err
		}
		return a.list(n.ElseList, dotIsRow)
	case *parse.WithNode:
		if err := a.pipe(n.Pipe, dotIsRow); err != nil {
			return err
		}
		if err := a.list(n.List, false); err != nil {
			return err
		}
		return a.list(n.ElseList, dotIsRow)
	case *parse.RangeNode:
		return fmt.Errorf("uses range at %s; loops are not allowed", a.pos(n))
	case *parse.TemplateNode:
		return fmt.Errorf("calls template %q at %s; template and block are not allowed", n.Name, a.pos(n))
	case *parse.BreakNode, *parse.ContinueNode:
		return fmt.Errorf("uses break or continue at %s; loops are not allowed", a.pos(n))
	}
	return fmt.Errorf("uses %s at %s, which is not allowed", n, a.pos(n))
}

func (a *analyzer) pipe(p *parse.PipeNode, dotIsRow bool) error {
	if p == nil {
		return nil
	}
	for _, c := range p.Cmds {
		for k, arg := range c.Args {
			if err := a.arg(arg, c, k, dotIsRow); err != nil {
				return err
			}
		}
	}
	return nil
}

// arg checks argument k of command c.
func (a *analyzer) arg(n parse.Node, c *parse.CommandNode, k int, dotIsRow bool) error {
	switch n := n.(type) {
	case *parse.FieldNode:
		if !dotIsRow {
			return fmt.Errorf("uses %s inside with, where . is a value and has no fields; write $%s for the column", n, n)
		}
		if len(n.Ident) != 1 {
			return fmt.Errorf("uses %s at %s; column values are text and have no fields", n, a.pos(n))
		}
		return a.column(n.Ident[0])
	case *parse.VariableNode:
		if n.Ident[0] == "$" {
			switch {
			case len(n.Ident) == 2:
				return a.column(n.Ident[1])
			case len(n.Ident) > 2:
				return fmt.Errorf("uses %s at %s; column values are text and have no fields", n, a.pos(n))
			}
			return a.rowArg(c, k, n)
		}
		if len(n.Ident) > 1 {
			return fmt.Errorf("uses %s at %s; variables hold text, which has no fields", n, a.pos(n))
		}
		return nil
	case *parse.DotNode:
		if dotIsRow {
			return a.rowArg(c, k, n)
		}
		return nil
	case *parse.IdentifierNode:
		if !allowedFuncs[n.Ident] {
			return fmt.Errorf("calls %s at %s; the functions are lower, upper, trim, replace, substr, and, or, not, eq, ne, index, len", n.Ident, a.pos(n))
		}
		return nil
	case *parse.PipeNode:
		return a.pipe(n, dotIsRow)
	case *parse.ChainNode:
		return fmt.Errorf("uses %s at %s; values are text and have no fields", n, a.pos(n))
	case *parse.StringNode, *parse.NumberNode, *parse.BoolNode, *parse.NilNode:
		return nil
	}
	return fmt.Errorf("uses %s at %s, which is not allowed", n, a.pos(n))
}

// rowArg allows the whole row (. or $) only as {{index . "column"}}: that
// way every column a template reads is known, and checked, before the file
// is read.
func (a *analyzer) rowArg(c *parse.CommandNode, k int, n parse.Node) error {
	if k == 1 && len(c.Args) == 3 && isIdent(c.Args[0], "index") {
		if s, ok := c.Args[2].(*parse.StringNode); ok {
			return a.column(s.Text)
		}
	}
	return fmt.Errorf(`uses the row (%s) at %s other than as {{index %s "column"}}`, n, a.pos(n), n)
}

func isIdent(n parse.Node, name string) bool {
	id, ok := n.(*parse.IdentifierNode)
	return ok && id.Ident == name
}

// pos is "line LINE:COL" of a node in the template text, for errors.
func (a *analyzer) pos(n parse.Node) string {
	loc, _ := a.tree.ErrorContext(n)
	return "line " + strings.TrimPrefix(loc, a.tree.ParseName+":")
}

// simpleParts returns the template as texts and columns if that is all it
// has, or nil.
func simpleParts(root *parse.ListNode, cols *columns) []part {
	parts := []part{}
	for _, n := range root.Nodes {
		switch n := n.(type) {
		case *parse.TextNode:
			parts = append(parts, part{text: string(n.Text), col: -1})
		case *parse.CommentNode:
		case *parse.ActionNode:
			name, ok := simpleColumn(n.Pipe)
			if !ok {
				return nil
			}
			i, problem := cols.index(name)
			if problem != "" {
				return nil
			}
			parts = append(parts, part{col: i})
		default:
			return nil
		}
	}
	return parts
}

// simpleColumn recognises {{.a}}, {{$.a}}, {{index . "a"}} and
// {{index $ "a"}} at the top level of a template.
func simpleColumn(p *parse.PipeNode) (string, bool) {
	if len(p.Decl) > 0 || len(p.Cmds) != 1 {
		return "", false
	}
	args := p.Cmds[0].Args
	switch len(args) {
	case 1:
		switch n := args[0].(type) {
		case *parse.FieldNode:
			if len(n.Ident) == 1 {
				return n.Ident[0], true
			}
		case *parse.VariableNode:
			if len(n.Ident) == 2 && n.Ident[0] == "$" {
				return n.Ident[1], true
			}
		}
	case 3:
		if !isIdent(args[0], "index") {
			return "", false
		}
		switch n := args[1].(type) {
		case *parse.DotNode:
		case *parse.VariableNode:
			if len(n.Ident) != 1 || n.Ident[0] != "$" {
				return "", false
			}
		default:
			return "", false
		}
		if s, ok := args[2].(*parse.StringNode); ok {
			return s.Text, true
		}
	}
	return "", false
}

// concat runs a simple template.
func (t *tmpl) concat(fields []string) (string, string) {
	n := 0
	for _, p := range t.parts {
		if p.col >= 0 {
			n += len(fields[p.col])
		} else {
			n += len(p.text)
		}
	}
	if n > MaxValueBytes {
		return "", "template " + errTooLong.Error()
	}
	var b strings.Builder
	b.Grow(n)
	for _, p := range t.parts {
		if p.col >= 0 {
			b.WriteString(fields[p.col])
		} else {
			b.WriteString(p.text)
		}
	}
	return b.String(), ""
}

// limitedBuffer refuses writes past MaxValueBytes; text/template stops at
// the first failed write.
type limitedBuffer struct{ bytes.Buffer }

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if b.Len()+len(p) > MaxValueBytes {
		return 0, errTooLong
	}
	return b.Buffer.Write(p)
}

var bufferPool = sync.Pool{New: func() any { return new(limitedBuffer) }}

// execute runs a general template over the row's columns (keyed by header
// name). The message of a failure names where in the template it failed,
// never a value: text/template's own messages may quote data.
func (t *tmpl) execute(row map[string]string) (string, string) {
	buf := bufferPool.Get().(*limitedBuffer)
	defer bufferPool.Put(buf)
	buf.Reset()
	if err := t.t.Execute(buf, row); err != nil {
		if errors.Is(err, errTooLong) {
			return "", "template " + errTooLong.Error()
		}
		return "", "template failed" + t.where(err)
	}
	return buf.String(), ""
}

// where extracts " at line:col" from a text/template execution error,
// whose text is "template: NAME:LINE:COL: executing …".
func (t *tmpl) where(err error) string {
	prefix := "template: " + t.name + ":"
	msg := err.Error()
	if !strings.HasPrefix(msg, prefix) {
		return ""
	}
	rest := msg[len(prefix):]
	end := strings.IndexFunc(rest, func(r rune) bool { return (r < '0' || r > '9') && r != ':' })
	if end <= 0 {
		return ""
	}
	return " at " + strings.TrimSuffix(rest[:end], ":")
}
