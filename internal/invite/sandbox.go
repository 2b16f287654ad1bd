package invite

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"text/template/parse"
)

// Invitation templates are written by whoever may edit a ConfigMap in the
// namespace and run once for every user invited. They get the sandbox of
// mapping templates: no loops, no template calls, no printf (a width
// allocates before any limit), only functions that cannot build large
// values, and an output of at most MaxOutputBytes.

// MaxOutputBytes bounds one rendered template.
const MaxOutputBytes = 256 << 10

// allowedFuncs are the functions a template may call.
var allowedFuncs = map[string]bool{
	"and": true, "or": true, "not": true, "eq": true, "ne": true, "lt": true, "le": true, "gt": true, "ge": true,
	"index": true, "len": true, "html": true, "urlquery": true, "js": true,
}

// checkTree refuses what may run unbounded in a template's parse tree.
func checkTree(name, src string, root *parse.ListNode) error {
	var walk func(n parse.Node) error
	list := func(l *parse.ListNode) error {
		if l == nil {
			return nil
		}
		for _, n := range l.Nodes {
			if err := walk(n); err != nil {
				return err
			}
		}
		return nil
	}
	pipe := func(p *parse.PipeNode) error {
		if p == nil {
			return nil
		}
		for _, c := range p.Cmds {
			for _, a := range c.Args {
				switch a := a.(type) {
				case *parse.IdentifierNode:
					if !allowedFuncs[a.Ident] {
						return fmt.Errorf("template %s: %s calls %s, which is not allowed", name, position(a.Position(), src), a.Ident)
					}
				case *parse.PipeNode:
					for _, c := range a.Cmds {
						for _, x := range c.Args {
							if id, ok := x.(*parse.IdentifierNode); ok && !allowedFuncs[id.Ident] {
								return fmt.Errorf("template %s: %s calls %s, which is not allowed", name, position(id.Position(), src), id.Ident)
							}
						}
					}
				}
			}
		}
		return nil
	}
	walk = func(n parse.Node) error {
		switch n := n.(type) {
		case *parse.TextNode, *parse.CommentNode:
			return nil
		case *parse.ActionNode:
			return pipe(n.Pipe)
		case *parse.IfNode:
			if err := pipe(n.Pipe); err != nil {
				return err
			}
			if err := list(n.List); err != nil {
				return err
			}
			return list(n.ElseList)
		case *parse.WithNode:
			if err := pipe(n.Pipe); err != nil {
				return err
			}
			if err := list(n.List); err != nil {
				return err
			}
			return list(n.ElseList)
		case *parse.RangeNode:
			return fmt.Errorf("template %s: %s uses range; loops are not allowed", name, position(n.Position(), src))
		case *parse.TemplateNode:
			return fmt.Errorf("template %s: %s calls a template; template and block are not allowed", name, position(n.Position(), src))
		case *parse.BreakNode, *parse.ContinueNode:
			return fmt.Errorf("template %s: %s uses break or continue; loops are not allowed", name, position(n.Position(), src))
		}
		return fmt.Errorf("template %s: %s uses a construct that is not allowed", name, position(n.Position(), src))
	}
	return list(root)
}

// position is the line of pos in the template's source.
func position(pos parse.Pos, src string) string {
	if int(pos) > len(src) {
		pos = parse.Pos(len(src))
	}
	return fmt.Sprintf("line %d", 1+strings.Count(src[:pos], "\n"))
}

// errOutputTooLong is a rendered template over MaxOutputBytes.
var errOutputTooLong = fmt.Errorf("its output exceeds %d bytes", MaxOutputBytes)

// boundedWriter fails a write that would take it past MaxOutputBytes.
type boundedWriter struct {
	w io.Writer
	n int
}

func (b *boundedWriter) Write(p []byte) (int, error) {
	if b.n+len(p) > MaxOutputBytes {
		return 0, errOutputTooLong
	}
	b.n += len(p)
	return b.w.Write(p)
}

// execPosition finds "name:line:col" in a text/template execution error;
// missingKey the key of a missingkey=error failure, which the template
// itself names.
var (
	execPosition = regexp.MustCompile(`template: ([^:\s]+):(\d+):(\d+)`)
	missingKey   = regexp.MustCompile(`map has no entry for key ("[^"]*")`)
)

// execError is an execution error of template name that names the
// template and the position (and a key the template named) only: the
// error text of text/template may quote a value the template was given,
// which is personal data.
func execError(name string, err error) error {
	if errors.Is(err, errOutputTooLong) {
		return fmt.Errorf("template %s: %w", name, errOutputTooLong)
	}
	where := name
	if m := execPosition.FindStringSubmatch(err.Error()); m != nil {
		where = fmt.Sprintf("%s:%s:%s", name, m[2], m[3])
	}
	if m := missingKey.FindStringSubmatch(err.Error()); m != nil {
		return fmt.Errorf("template %s: no attribute %s", where, m[1])
	}
	return fmt.Errorf("template %s fails", where)
}
