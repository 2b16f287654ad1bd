package mapping

import (
	"errors"
	"fmt"
	"net/mail"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/userimport/user-import-operator/api/v1alpha1"
)

// transform is one compiled Transform.
type transform struct {
	kind        v1alpha1.TransformType
	re          *regexp.Regexp
	replacement string
	from, to    string
	mismatchMsg string // DateFormat: the row error, computed once
}

func compileTransform(t v1alpha1.Transform) (transform, error) {
	tr := transform{kind: t.Type}
	regexFields := t.Pattern != "" || t.Replacement != ""
	dateFields := t.FromLayout != "" || t.ToLayout != ""
	switch t.Type {
	case v1alpha1.TransformTrim, v1alpha1.TransformLower, v1alpha1.TransformUpper:
		if regexFields || dateFields {
			return tr, errors.New("takes no pattern, replacement or layouts")
		}
	case v1alpha1.TransformRegexReplace:
		if dateFields {
			return tr, errors.New("takes no layouts")
		}
		re, err := regexp.Compile(t.Pattern)
		if err != nil {
			return tr, fmt.Errorf("pattern does not compile: %v", err)
		}
		if err := checkReplacement(re, t.Replacement); err != nil {
			return tr, err
		}
		tr.re, tr.replacement = re, t.Replacement
	case v1alpha1.TransformDateFormat:
		if regexFields {
			return tr, errors.New("takes no pattern or replacement")
		}
		if t.FromLayout == "" || t.ToLayout == "" {
			return tr, errors.New("needs fromLayout and toLayout")
		}
		if err := checkLayout(t.FromLayout, true); err != nil {
			return tr, fmt.Errorf("fromLayout %w", err)
		}
		if err := checkLayout(t.ToLayout, false); err != nil {
			return tr, fmt.Errorf("toLayout %w", err)
		}
		tr.from, tr.to = t.FromLayout, t.ToLayout
		tr.mismatchMsg = "does not match layout " + t.FromLayout
	default:
		return tr, fmt.Errorf("unknown transform type %q; types are Trim, Lower, Upper, RegexReplace, DateFormat", t.Type)
	}
	return tr, nil
}

// apply transforms v. A non-empty msg says why v could not be transformed;
// it never contains v.
func (t *transform) apply(v string) (string, string) {
	switch t.kind {
	case v1alpha1.TransformTrim:
		return strings.TrimSpace(v), ""
	case v1alpha1.TransformLower:
		return strings.ToLower(v), ""
	case v1alpha1.TransformUpper:
		return strings.ToUpper(v), ""
	case v1alpha1.TransformRegexReplace:
		return t.re.ReplaceAllString(v, t.replacement), ""
	case v1alpha1.TransformDateFormat:
		if v == "" {
			// Nothing to convert: leave it to default and required.
			return v, ""
		}
		d, err := time.Parse(t.from, v)
		if err != nil {
			return "", t.mismatchMsg
		}
		return d.Format(t.to), ""
	}
	return v, ""
}

// Two dates that differ in every field, used to test layouts.
var (
	layoutSample      = time.Date(2031, time.November, 28, 13, 45, 56, 0, time.UTC)
	layoutOtherSample = time.Date(2012, time.March, 4, 7, 8, 9, 0, time.UTC)
)

const layoutHint = `; layouts are written with Go's reference time Mon Jan 2 15:04:05 MST 2006, such as "02.01.2006" for DD.MM.YYYY or "2006-01-02" for YYYY-MM-DD`

// checkLayout verifies that a Go time layout round-trips: a date written
// with it parses back with it. A layout to parse (needDate) must also keep
// the year, month and day, or converting would lose them; a layout to
// write must at least depend on the date.
func checkLayout(layout string, needDate bool) error {
	s := layoutSample.Format(layout)
	d, err := time.Parse(layout, s)
	if err != nil {
		return fmt.Errorf("%q does not round-trip: it cannot parse the dates it writes%s", layout, layoutHint)
	}
	if needDate {
		y, mo, day := d.Date()
		if y != layoutSample.Year() || mo != layoutSample.Month() || day != layoutSample.Day() {
			return fmt.Errorf("%q does not round-trip: it does not hold a whole date (year, month and day)%s", layout, layoutHint)
		}
	} else if s == layoutOtherSample.Format(layout) {
		return fmt.Errorf("%q writes the same text for every date%s", layout, layoutHint)
	}
	return nil
}

// checkReplacement finds $name and ${name} references of a RegexReplace
// replacement that the pattern has no group for. regexp expands them to
// nothing, so "$1x" (group "1x", not group 1 then "x") would silently drop
// text on every row.
func checkReplacement(re *regexp.Regexp, repl string) error {
	for {
		_, after, ok := strings.Cut(repl, "$")
		if !ok {
			return nil
		}
		repl = after
		if strings.HasPrefix(repl, "$") {
			repl = repl[1:]
			continue
		}
		name, rest, ok := replacementRef(repl)
		if !ok {
			continue // regexp writes a lone "$" as is
		}
		repl = rest
		if n, isNum := groupNumber(name); isNum {
			if n > re.NumSubexp() {
				return fmt.Errorf("replacement refers to group %s; the pattern has %d groups (write ${1}x, not $1x, to follow a group with text)", name, re.NumSubexp())
			}
			continue
		}
		if re.SubexpIndex(name) < 0 {
			return fmt.Errorf("replacement refers to group %q, which the pattern does not name (write ${1}x, not $1x, to follow a group with text)", name)
		}
	}
}

// replacementRef reads a group reference after "$" the way regexp.Expand
// does: the longest run of letters, digits and underscores, or one in braces.
func replacementRef(s string) (name, rest string, ok bool) {
	brace := strings.HasPrefix(s, "{")
	if brace {
		s = s[1:]
	}
	i := 0
	for i < len(s) {
		r, size := utf8.DecodeRuneInString(s[i:])
		if !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '_' {
			break
		}
		i += size
	}
	if i == 0 {
		return "", "", false
	}
	name = s[:i]
	if brace {
		if i >= len(s) || s[i] != '}' {
			return "", "", false
		}
		i++
	}
	return name, s[i:], true
}

// groupNumber parses a group number as regexp.Expand does (no leading zeros).
func groupNumber(name string) (int, bool) {
	if len(name) > 1 && name[0] == '0' {
		return 0, false
	}
	n := 0
	for i := 0; i < len(name); i++ {
		if name[i] < '0' || name[i] > '9' || n >= 1e8 {
			return 0, false
		}
		n = n*10 + int(name[i]-'0')
	}
	return n, true
}

// check validates (and for Boolean, normalises) each value.
type check string

func compileCheck(c string) (check, error) {
	switch c {
	case "", v1alpha1.CheckEmail, v1alpha1.CheckBoolean, v1alpha1.CheckDate:
		return check(c), nil
	}
	return "", fmt.Errorf("check %q is not one of Email, Boolean, Date", c)
}

const (
	notEmailMsg   = "not an e-mail address"
	notBooleanMsg = "not a boolean (true/false, yes/no, 1/0)"
	notDateMsg    = "not a date (YYYY-MM-DD)"
)

// apply checks one non-empty value and returns it, normalised for Boolean.
func (c check) apply(v string) (string, string) {
	switch c {
	case v1alpha1.CheckEmail:
		// Only a bare address passes: ParseAddress also accepts
		// "Name <a@b>" and surrounding space, which a directory would
		// store verbatim.
		if !isEmail(v) {
			return "", notEmailMsg
		}
	case v1alpha1.CheckBoolean:
		switch {
		case v == "1" || asciiEqualFold(v, "true") || asciiEqualFold(v, "yes"):
			return "true", ""
		case v == "0" || asciiEqualFold(v, "false") || asciiEqualFold(v, "no"):
			return "false", ""
		}
		return "", notBooleanMsg
	case v1alpha1.CheckDate:
		if _, err := time.Parse(time.DateOnly, v); err != nil {
			return "", notDateMsg
		}
	}
	return v, ""
}

// isEmail reports whether v is a bare address as net/mail parses it. The
// common shape, ASCII dot-atom "@" ASCII dot-atom, is recognised without
// the parser (which costs more than the rest of a row's mapping);
// anything else (quoted local parts, domain literals, non-ASCII, spaces,
// comments) is left to net/mail. plainAddress accepts a subset of what
// net/mail accepts, so the set of accepted values is net/mail's
// (FuzzEmailCheck).
func isEmail(v string) bool {
	if plainAddress(v) {
		return true
	}
	a, err := mail.ParseAddress(v)
	return err == nil && a.Name == "" && a.Address == v
}

// plainAddress reports whether v is local@domain where both parts are
// non-empty RFC 5322 dot-atoms of ASCII atext: no leading, trailing or
// double dot.
func plainAddress(v string) bool {
	at := strings.IndexByte(v, '@')
	return at >= 0 && plainDotAtom(v[:at]) && plainDotAtom(v[at+1:])
}

func plainDotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '.' {
			if s[i-1] == '.' {
				return false
			}
			continue
		}
		if !atext[c] {
			return false
		}
	}
	return true
}

// atext marks the ASCII characters of RFC 5322 atext: visible characters
// except the specials (and '.', handled apart).
var atext = func() (t [256]bool) {
	for c := '!'; c <= '~'; c++ {
		t[c] = !strings.ContainsRune(`()<>[]:;@\,".`, c)
	}
	return t
}()

// asciiEqualFold compares v with a lower-case ASCII word, ignoring ASCII
// case only: unlike strings.EqualFold it does not take "yeſ" (long s) for
// "yes", and unlike strings.ToLower it does not allocate.
func asciiEqualFold(v, lower string) bool {
	if len(v) != len(lower) {
		return false
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lower[i] {
			return false
		}
	}
	return true
}
