package mapping

import (
	"bytes"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"golang.org/x/text/unicode/norm"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/directory"
)

// MaxValueBytes is the longest value an entry accepts or produces: a longer
// column value, template output or transform result is an error on the row.
// It bounds the memory one row can claim, whatever the file holds.
const MaxValueBytes = 64 << 10

// FieldError is one problem of one attribute of a row. Msg names the rule
// broken ("not an e-mail address") and never contains the value.
type FieldError struct {
	// Attribute is the mapped attribute; empty for a problem of the whole
	// row (a wrong number of fields).
	Attribute string
	// Msg says what is wrong, without the value.
	Msg string
}

// Error returns "attribute: msg", such as "mail: not an e-mail address".
func (e FieldError) Error() string {
	if e.Attribute == "" {
		return e.Msg
	}
	return e.Attribute + ": " + e.Msg
}

// FieldErrors lists every field error of one row, in mapping order (identity
// first). Its message carries attribute names and rules, never values, so it
// may go to status, Events and logs.
type FieldErrors struct {
	Errors []FieldError
}

// Error joins the field errors with "; ".
func (e *FieldErrors) Error() string {
	msgs := make([]string, len(e.Errors))
	for i, fe := range e.Errors {
		msgs[i] = fe.Error()
	}
	return strings.Join(msgs, "; ")
}

// CompileError lists every problem Compile found in a mapping. Each problem
// starts with the entry it is about: "mapping[mail]: ...". A CompileError is
// a mistake in the spec: retrying does not help.
type CompileError struct {
	Problems []string
}

// Error joins the problems with "; ".
func (e *CompileError) Error() string { return strings.Join(e.Problems, "; ") }

// Mapper turns CSV records into directory attributes. It is built once per
// file by Compile and is safe for concurrent use by several goroutines.
type Mapper struct {
	header  []string
	entries []entry // identity first, then the others in mapping order
	attrs   []string

	// rowCols are the header indexes of the columns that general templates
	// read; rowPool recycles the map they read them from.
	rowCols []int
	rowPool sync.Pool
	// valsPool recycles Map's scratch slice of values.
	valsPool sync.Pool
}

type sourceKind int

const (
	fromColumn sourceKind = iota
	fromTemplate
	fromValue
)

// entry is one compiled AttributeMapping.
type entry struct {
	attr       string
	kind       sourceKind
	col        int      // fromColumn
	tmpl       *tmpl    // fromTemplate
	constVals  []string // fromValue: the final values, computed by Compile
	transforms []transform
	def        *string
	required   bool
	identity   bool
	split      string
	check      check
}

// Compile checks the mapping against the CSV header before any row is read
// and returns a Mapper for the rows of that file. Every problem found is
// reported at once in a *CompileError; each names its entry (by attribute)
// and what is wrong with it.
func Compile(entries []v1alpha1.AttributeMapping, header []string) (*Mapper, error) {
	m := &Mapper{header: slices.Clone(header)}
	cols := newColumns(m.header)
	cols.trustHeader(entries)
	var problems []string
	var identities []string
	seen := make(map[string]bool, len(entries))
	var rest []entry
	usedByTemplates := map[int]bool{}

	for i, spec := range entries {
		label := "mapping[" + spec.Attribute + "]"
		if spec.Attribute == "" {
			label = "mapping[#" + strconv.Itoa(i+1) + "]"
		}
		var errs []string
		fail := func(format string, args ...any) {
			errs = append(errs, label+": "+fmt.Sprintf(format, args...))
		}
		if spec.Attribute == "" {
			fail("attribute is empty")
		} else if seen[spec.Attribute] {
			fail("attribute is mapped more than once")
		}
		seen[spec.Attribute] = true

		e := entry{
			attr:     spec.Attribute,
			def:      spec.Default,
			required: spec.Required,
			identity: spec.Identity,
			split:    spec.Split,
		}
		if spec.Identity {
			identities = append(identities, spec.Attribute)
			if spec.Split != "" {
				fail("the identity cannot be split: it has exactly one value")
			}
		}

		sources := 0
		if spec.Column != "" {
			sources++
			e.kind = fromColumn
			idx, problem := cols.index(spec.Column)
			if problem != "" {
				fail("column %q %s", spec.Column, problem)
			}
			e.col = idx
		}
		if spec.Template != "" {
			sources++
			e.kind = fromTemplate
			t, err := compileTemplate(spec.Attribute, spec.Template, cols)
			if err != nil {
				fail("template %s", err)
			} else {
				e.tmpl = t
				if t.parts == nil {
					for _, c := range t.cols {
						usedByTemplates[c] = true
					}
				}
			}
		}
		if spec.Value != nil {
			sources++
			e.kind = fromValue
		}
		if sources != 1 {
			fail("set exactly one of column, template or value (%d are set)", sources)
		}

		for j, t := range spec.Transforms {
			tr, err := compileTransform(t)
			if err != nil {
				fail("transforms[%d] (%s): %s", j, t.Type, err)
				continue
			}
			e.transforms = append(e.transforms, tr)
		}

		c, err := compileCheck(spec.Check)
		if err != nil {
			fail("%s", err)
		}
		e.check = c

		if len(errs) == 0 && e.def != nil && *e.def != "" {
			// A default that fails the check would fail every row that
			// uses it; say so now rather than once per row.
			if _, msg := e.finish(*e.def, make([]string, 1)); msg != "" {
				fail("default: %s", msg)
			}
		}
		if len(errs) == 0 && e.kind == fromValue {
			// A constant gives the same values on every row: compute them
			// once, and report a constant that breaks a rule now.
			vals, msg := e.values(*spec.Value, make([]string, 1))
			if msg != "" {
				fail("value: %s", msg)
			}
			e.constVals = slices.Clone(vals)
		}

		problems = append(problems, errs...)
		if e.identity && len(identities) == 1 {
			m.entries = append(m.entries, e)
		} else {
			rest = append(rest, e)
		}
	}

	switch {
	case len(identities) == 0:
		problems = append(problems, "mapping: no entry is marked identity; mark the entry of the directory's identity attribute with identity: true")
	case len(identities) > 1:
		problems = append(problems, fmt.Sprintf("mapping: %d entries are marked identity (%s); mark exactly one", len(identities), strings.Join(identities, ", ")))
	}
	if len(problems) > 0 {
		return nil, &CompileError{Problems: problems}
	}

	m.entries = append(m.entries, rest...)
	for _, e := range m.entries {
		m.attrs = append(m.attrs, e.attr)
	}
	for c := range usedByTemplates {
		m.rowCols = append(m.rowCols, c)
	}
	slices.Sort(m.rowCols)
	m.rowPool.New = func() any { return make(map[string]string, len(m.rowCols)) }
	m.valsPool.New = func() any {
		vals := make([][]string, len(m.entries))
		return &vals
	}
	return m, nil
}

// Identity returns the attribute marked identity.
func (m *Mapper) Identity() string { return m.entries[0].attr }

// Attributes returns every mapped attribute: the identity first, then the
// others in the order of the mapping.
func (m *Mapper) Attributes() []string { return slices.Clone(m.attrs) }

// Columns returns the header the Mapper was compiled for.
func (m *Mapper) Columns() []string { return slices.Clone(m.header) }

// Map computes the attributes of one record, whose fields are aligned with
// the header. Every mapped attribute is in the result; one whose value is
// empty has no values (a zero-length slice), which means "clear it". On
// failure Map returns nil and a *FieldErrors listing every field error of the
// row; the messages never contain values.
//
// The result belongs to the caller: no two attributes share a slice, and
// nothing of it is reused by later calls.
func (m *Mapper) Map(fields []string) (directory.Attributes, error) {
	if err := m.checkWidth(fields); err != nil {
		return nil, err
	}
	// One backing array holds the single values of every attribute; each
	// attribute gets a capacity-limited window of it, so that appending to
	// one attribute never overwrites another.
	slots := make([]string, len(m.entries))
	vp := m.valsPool.Get().(*[][]string)
	defer m.valsPool.Put(vp)
	vals := *vp
	if errs := m.fill(fields, vals, slots); errs != nil {
		return nil, &FieldErrors{Errors: errs}
	}
	out := make(directory.Attributes, len(m.entries))
	for i, v := range vals {
		out[m.attrs[i]] = v
		vals[i] = nil
	}
	return out, nil
}

// Record holds the values of one record, index-aligned with Attributes():
// Values[i] are the values of attribute i, a zero-length slice when it has
// none. MapRecord refills a Record in place, so that a loop that reuses one
// Record allocates nothing per row but the strings a transform or template
// builds. Its contents are only valid until the Record is used again.
type Record struct {
	Values [][]string
	slots  []string
}

// Identity is the identity of the record (its first entry's value), or ""
// when it could not be read: empty, refused by its check or transform, or
// the row's width wrong. A row whose other entries fail still has one.
func (rec *Record) Identity() string {
	if len(rec.Values) == 0 || len(rec.Values[0]) == 0 {
		return ""
	}
	return rec.Values[0][0]
}

// MapRecord is Map into a reused Record, for loops over millions of rows
// that only keep some of them (a full sync in which most users are
// unchanged): Attributes copies the ones to keep. Errors are as for Map;
// on error an entry that failed has no values, and Identity still tells
// the row's identity when its own entry mapped.
func (m *Mapper) MapRecord(fields []string, rec *Record) error {
	if err := m.checkWidth(fields); err != nil {
		rec.Values = rec.Values[:0]
		return err
	}
	n := len(m.entries)
	if cap(rec.Values) < n || cap(rec.slots) < n {
		rec.Values, rec.slots = make([][]string, n), make([]string, n)
	}
	rec.Values, rec.slots = rec.Values[:n], rec.slots[:n]
	if errs := m.fill(fields, rec.Values, rec.slots); errs != nil {
		return &FieldErrors{Errors: errs}
	}
	return nil
}

// AttributesOf copies a Record that MapRecord filled into a new
// directory.Attributes, as Map would have returned it.
func (m *Mapper) AttributesOf(rec *Record) directory.Attributes {
	out := make(directory.Attributes, len(m.entries))
	// The values of all attributes share one array: a million rows make a
	// million allocations, not one per attribute and row.
	n := 0
	for _, v := range rec.Values {
		n += len(v)
	}
	all := make([]string, n)
	for i, v := range rec.Values {
		if v == nil {
			out[m.attrs[i]] = nil
			continue
		}
		k := copy(all, v)
		out[m.attrs[i]] = all[:k:k]
		all = all[k:]
	}
	return out
}

func (m *Mapper) checkWidth(fields []string) error {
	if len(fields) == len(m.header) {
		return nil
	}
	return &FieldErrors{Errors: []FieldError{{
		Msg: fmt.Sprintf("the row has %d fields, the header has %d", len(fields), len(m.header)),
	}}}
}

// fill computes the values of every entry into vals (index-aligned with
// m.entries), writing single values into slots.
func (m *Mapper) fill(fields []string, vals [][]string, slots []string) []FieldError {
	var row map[string]string
	var errs []FieldError
	for i := range m.entries {
		e := &m.entries[i]
		slot := slots[i : i+1 : i+1]
		var v []string
		var msg string
		switch e.kind {
		case fromColumn:
			v, msg = e.values(fields[e.col], slot)
		case fromTemplate:
			var out string
			if e.tmpl.parts != nil {
				out, msg = e.tmpl.concat(fields)
			} else {
				if row == nil {
					row = m.rowPool.Get().(map[string]string)
					for _, c := range m.rowCols {
						row[m.header[c]] = fields[c]
					}
				}
				out, msg = e.tmpl.execute(row)
			}
			if msg == "" {
				v, msg = e.values(out, slot)
			}
		case fromValue:
			if len(e.constVals) == 1 {
				slot[0] = e.constVals[0]
				v = slot
			} else {
				v = slices.Clone(e.constVals)
				if v == nil {
					v = slot[:0]
				}
			}
		}
		if msg != "" {
			errs = append(errs, FieldError{Attribute: e.attr, Msg: msg})
			vals[i] = nil
			continue
		}
		vals[i] = v
	}
	if row != nil {
		m.rowPool.Put(row)
	}
	return errs
}

// values runs the pipeline of an entry on its source value: transforms,
// default, split, check, required. A single value is written into slot (a
// one-element slice owned by the caller) to save an allocation per
// attribute. msg, when not empty, says what rule the value broke.
func (e *entry) values(v string, slot []string) ([]string, string) {
	if len(v) > MaxValueBytes {
		return nil, tooLongMsg
	}
	for i := range e.transforms {
		t := &e.transforms[i]
		var msg string
		if v, msg = t.apply(v); msg != "" {
			return nil, msg
		}
		if len(v) > MaxValueBytes {
			return nil, fmt.Sprintf("longer than %d bytes after transforms[%d] (%s)", MaxValueBytes, i, t.kind)
		}
	}
	if v == "" && e.def != nil {
		v = *e.def
	}
	return e.finish(v, slot)
}

// Identity is v as an identity: blanks around it are not part of it (a
// directory ignores them, or would keep a second user), and it is in
// Unicode's composed form (NFC), the one directories write, whatever
// form the export used ("ë" as one character, not "e" and a combining
// diaeresis). An identity of blanks names nobody: "".
func Identity(v string) string {
	return norm.NFC.String(strings.TrimSpace(v))
}

// IsIdentity tells whether v is spelled as Identity reads it, without a
// copy.
func IsIdentity(v []byte) bool {
	return len(bytes.TrimSpace(v)) == len(v) && norm.NFC.IsNormal(v)
}

// finish splits, checks and enforces required and identity.
func (e *entry) finish(v string, slot []string) ([]string, string) {
	var vals []string
	if e.identity {
		v = Identity(v)
	}
	if e.split == "" {
		if v != "" {
			slot[0] = v
			vals = slot
		} else {
			vals = slot[:0]
		}
	} else {
		vals = splitValues(v, e.split)
		if vals == nil {
			vals = slot[:0]
		}
	}
	for i, s := range vals {
		c, msg := e.check.apply(s)
		if msg != "" {
			if len(vals) > 1 {
				msg += fmt.Sprintf(" (value %d of %d)", i+1, len(vals))
			}
			return nil, msg
		}
		vals[i] = c
	}
	if len(vals) == 0 {
		switch {
		case e.identity:
			return nil, "identity is empty"
		case e.required:
			return nil, "required but empty"
		}
	}
	return vals, ""
}

// splitValues splits v at sep, trims every part and drops the empty ones.
// It returns nil when no value is left.
func splitValues(v, sep string) []string {
	if strings.TrimSpace(v) == "" {
		return nil
	}
	parts := strings.Split(v, sep)
	n := 0
	for _, p := range parts {
		if p = strings.TrimSpace(p); p != "" {
			parts[n] = p
			n++
		}
	}
	if n == 0 {
		return nil
	}
	return parts[:n:n]
}

var tooLongMsg = fmt.Sprintf("longer than %d bytes", MaxValueBytes)

// columns finds header names and explains a miss.
type columns struct {
	header []string
	index_ map[string]int // -1 when a name appears more than once
	// quotable says the header may be quoted in messages: at least one
	// column the mapping names is in it. A file without a header line read
	// as if it had one turns its first row, personal data, into the
	// "header"; such a header matches no mapped column and is never quoted.
	quotable bool
}

func newColumns(header []string) *columns {
	c := &columns{header: header, index_: make(map[string]int, len(header))}
	for i, h := range header {
		if _, dup := c.index_[h]; dup {
			c.index_[h] = -1
		} else {
			c.index_[h] = i
		}
	}
	return c
}

// trustHeader sets quotable when a column named by entries is in the header.
func (c *columns) trustHeader(entries []v1alpha1.AttributeMapping) {
	for _, e := range entries {
		if i, ok := c.index_[e.Column]; e.Column != "" && ok && i >= 0 {
			c.quotable = true
			return
		}
	}
}

// index returns the position of column name in the header, or a problem
// that completes "column NAME …": it lists a quotable header (column names
// are not personal data) and suggests a near miss.
func (c *columns) index(name string) (int, string) {
	i, ok := c.index_[name]
	if ok && i >= 0 {
		return i, ""
	}
	if ok {
		return -1, "appears more than once in the file's header"
	}
	if !c.quotable {
		return -1, fmt.Sprintf("is not in the file's header, which has %d columns and none that the mapping names "+
			"(if the file has no header line, set spec.format.header to false and name columns \"1\", \"2\", …)", len(c.header))
	}
	msg := "is not in the file's header"
	for _, h := range c.header {
		if strings.EqualFold(strings.TrimSpace(h), strings.TrimSpace(name)) {
			msg += fmt.Sprintf(" (did you mean %q?)", h)
			break
		}
	}
	return -1, msg + "; columns are: " + c.list()
}

// list quotes the header names, at most 32 of them, so that an error about
// a file with hundreds of columns stays readable.
func (c *columns) list() string {
	const most = 32
	if len(c.header) == 0 {
		return "(none)"
	}
	var b strings.Builder
	for i, h := range c.header {
		if i == most {
			fmt.Fprintf(&b, ", … (%d more)", len(c.header)-most)
			break
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(strconv.Quote(h))
	}
	return b.String()
}
