package csvread

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/userimport/user-import-operator/api/v1alpha1"
)

// DefaultMaxLineBytes is the longest record accepted when
// Options.MaxLineBytes is zero.
const DefaultMaxLineBytes = 65536

// Options describe the layout of a CSV file. The zero value reads a
// UTF-8 file without a header, with '"' quotes and a detected delimiter.
type Options struct {
	// Delimiter is ',', ';', '\t' or '|'; 0 detects it from the first
	// line: the candidate that occurs most often outside quotes wins (ties
	// in the order just given; ',' when none occurs).
	Delimiter rune
	// Quote encloses fields holding delimiters, quotes or line breaks:
	// '"' (the default when 0) or '\''.
	Quote rune
	// Encoding is "UTF-8" (the default when empty; a byte-order mark is
	// skipped), "UTF-16" (byte-order mark required, little or big endian),
	// "ISO-8859-1" or "Windows-1252". Names are matched ignoring case.
	Encoding string
	// Header says the first record after SkipRows names the columns.
	// Without it columns are named "1", "2", ... and the first record sets
	// the column count.
	Header bool
	// SkipRows physical lines are skipped (without looking at quotes)
	// before the header or the first record.
	SkipRows int
	// MaxLineBytes is the longest record accepted, in source bytes without
	// its final line ending (DefaultMaxLineBytes when 0). A longer record
	// is a LineError and reading goes on at the next line.
	MaxLineBytes int
}

// OptionsFromFormat turns the API's CSVFormat into Options, applying the
// API defaults (header on, '"' quote, UTF-8) for unset fields.
func OptionsFromFormat(f v1alpha1.CSVFormat) Options {
	o := Options{
		Encoding:     string(f.Encoding),
		Header:       f.Header == nil || *f.Header,
		SkipRows:     int(f.SkipRows),
		MaxLineBytes: int(f.MaxLineBytes),
	}
	switch f.Delimiter {
	case "":
	case `\t`, "tab", "TAB":
		// Hand-written manifests sometimes spell the tab out.
		o.Delimiter = '\t'
	default:
		o.Delimiter, _ = utf8.DecodeRuneInString(f.Delimiter)
		if utf8.RuneCountInString(f.Delimiter) != 1 {
			o.Delimiter = utf8.RuneError // rejected by NewReader
		}
	}
	if f.Quote != "" {
		o.Quote, _ = utf8.DecodeRuneInString(f.Quote)
		if utf8.RuneCountInString(f.Quote) != 1 {
			o.Quote = utf8.RuneError
		}
	}
	return o
}

// encoding identifies how source bytes become UTF-8 text.
type encoding int

const (
	encUTF8  encoding = iota
	encUTF16          // endianness from the byte-order mark
	encLatin1
	encWindows1252
)

func (e encoding) String() string {
	switch e {
	case encUTF16:
		return "UTF-16"
	case encLatin1:
		return "ISO-8859-1"
	case encWindows1252:
		return "Windows-1252"
	}
	return "UTF-8"
}

func parseEncoding(name string) (encoding, error) {
	switch strings.ToUpper(strings.TrimSpace(name)) {
	case "", "UTF-8", "UTF8":
		return encUTF8, nil
	case "UTF-16", "UTF16":
		return encUTF16, nil
	case "ISO-8859-1", "ISO8859-1", "LATIN1", "LATIN-1":
		return encLatin1, nil
	case "WINDOWS-1252", "CP1252":
		return encWindows1252, nil
	}
	return 0, fmt.Errorf("csvread: unsupported encoding %q (want UTF-8, UTF-16, ISO-8859-1 or Windows-1252)", name)
}

// check validates the options and fills in defaults.
func (o Options) check() (Options, encoding, error) {
	enc, err := parseEncoding(o.Encoding)
	if err != nil {
		return o, 0, err
	}
	switch o.Delimiter {
	case 0, ',', ';', '\t', '|':
	default:
		return o, 0, fmt.Errorf("csvread: unsupported delimiter %q (want ',', ';', tab or '|')", o.Delimiter)
	}
	if o.Quote == 0 {
		o.Quote = '"'
	}
	if o.Quote != '"' && o.Quote != '\'' {
		return o, 0, fmt.Errorf("csvread: unsupported quote %q (want '\"' or '\\'')", o.Quote)
	}
	if o.SkipRows < 0 {
		return o, 0, fmt.Errorf("csvread: skipRows %d is negative", o.SkipRows)
	}
	if o.MaxLineBytes < 0 {
		return o, 0, fmt.Errorf("csvread: maxLineBytes %d is negative", o.MaxLineBytes)
	}
	if o.MaxLineBytes == 0 {
		o.MaxLineBytes = DefaultMaxLineBytes
	}
	return o, enc, nil
}
