package csvread

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	"github.com/userimport/user-import-operator/api/v1alpha1"
)

// rec and bad build expected items; Off/Line (the position after) are
// checked separately where a case gives them.
func rec(line, off int64, fields ...string) item {
	return item{Start: off, StartLine: line, Fields: fields}
}

func bad(line, off int64, msg string) item {
	return item{Start: off, StartLine: line, Err: msg}
}

func TestRead(t *testing.T) {
	header := Options{Header: true}
	cases := []struct {
		name       string
		opts       Options
		in         string
		header     []string
		delim      rune
		want       []item // Err is a substring of the message
		end, lines int64  // Offset and Line at the end; 0 = len(in), not checked
	}{
		{name: "LF", opts: header, in: "a,b\n1,2\n3,4\n",
			header: []string{"a", "b"}, delim: ',',
			want: []item{rec(2, 4, "1", "2"), rec(3, 8, "3", "4")}, lines: 4},
		{name: "CRLF without final newline", opts: header, in: "a,b\r\n1,2\r\n3,4",
			want: []item{rec(2, 5, "1", "2"), rec(3, 10, "3", "4")}, lines: 4},
		{name: "UTF-8 BOM is skipped but counted in offsets", opts: header, in: "\xef\xbb\xbfa,b\n1,2\n",
			header: []string{"a", "b"},
			want:   []item{rec(2, 7, "1", "2")}, lines: 3},
		{name: "multi-line quoted field", opts: header, in: "a,b\n1,\"x\ny\"\n2,z\n",
			want: []item{rec(2, 4, "1", "x\ny"), rec(4, 12, "2", "z")}, lines: 5},
		{name: "CRLF inside quotes becomes LF", opts: header, in: "a,b\r\n1,\"x\r\ny\"\r\n2,z\r\n",
			want: []item{rec(2, 5, "1", "x\ny"), rec(4, 15, "2", "z")}, lines: 5},
		{name: "lone CR inside quotes is kept", opts: header, in: "a,b\n1,\"x\ry\"\n",
			want: []item{rec(2, 4, "1", "x\ry")}},
		{name: "blank lines are skipped and counted", opts: header, in: "a,b\n\n1,2\n\r\n\n3,4\n\n",
			want: []item{rec(3, 5, "1", "2"), rec(6, 12, "3", "4")}, lines: 8},
		{name: "whitespace-only lines are blank", opts: header, in: "a,b\n   \n1,2\n \t \r\n3,4\n  ",
			want: []item{rec(3, 8, "1", "2"), rec(5, 17, "3", "4")}, lines: 7},
		{name: "line of delimiters is a record", opts: header, in: "a,b\n,\n",
			want: []item{rec(2, 4, "", "")}},
		{name: "skipRows with detected delimiter", opts: Options{Header: true, SkipRows: 2},
			in: "title, exported\nmore;text\na;b\n1;2\n", header: []string{"a", "b"}, delim: ';',
			want: []item{rec(4, 30, "1", "2")}, lines: 5},
		{name: "skipRows ignores quotes", opts: Options{Header: true, SkipRows: 1},
			in: "\"unbalanced\na,b\n1,2\n", header: []string{"a", "b"},
			want: []item{rec(3, 16, "1", "2")}},
		{name: "no header", opts: Options{}, in: "1,2\n3,4\n", header: []string{"1", "2"},
			want: []item{rec(1, 0, "1", "2"), rec(2, 4, "3", "4")}},
		{name: "no header, field count from first record", opts: Options{}, in: "1,2\n3\n4,5\n",
			want: []item{rec(1, 0, "1", "2"), bad(2, 4, "1 fields, the first record has 2"), rec(3, 6, "4", "5")}},
		{name: "single quote as quote", opts: Options{Header: true, Quote: '\''}, in: "a,b\n'x,y',\"z\"\n",
			want: []item{rec(2, 4, "x,y", `"z"`)}},
		{name: "doubled quotes", opts: header, in: "a,b\n\"say \"\"hi\"\"\",\"\"\n",
			want: []item{rec(2, 4, `say "hi"`, "")}},
		{name: "spaces around quotes are ignored, unquoted spaces kept", opts: header,
			in:   "a,b,c\n \"x\" , \t\"y\"\t, z \n",
			want: []item{rec(2, 6, "x", "y", " z ")}},
		{name: "tab delimiter: tabs are not spaces", opts: Options{Header: true, Delimiter: '\t'},
			in: "a\tb\n \"x\" \ty \n", delim: '\t',
			want: []item{rec(2, 4, "x", "y ")}},
		{name: "pipe delimiter", opts: Options{Header: true, Delimiter: '|'}, in: "a|b\n1|\"2|3\"\n",
			want: []item{rec(2, 4, "1", "2|3")}},
		{name: "Windows-1252", opts: Options{Header: true, Encoding: "Windows-1252"},
			in: "name;sum\nJ\xfcrgen \x84Z\x93;5 \x80\n", delim: ';',
			want: []item{rec(2, 9, "Jürgen „Z“", "5 €")}},
		{name: "Windows-1252 undefined byte", opts: Options{Header: true, Encoding: "windows-1252"},
			in:   "a;b\nx;y\x81\nz;w\n",
			want: []item{bad(2, 4, `invalid Windows-1252 text in field 2 ("b")`), rec(3, 9, "z", "w")}},
		{name: "ISO-8859-1", opts: Options{Header: true, Encoding: "ISO-8859-1"},
			in: "a,b\n\xe4\xdf,\x80\xff\n", want: []item{rec(2, 4, "äß", "\u0080ÿ")}},
		{name: "wrong field counts", opts: header, in: "a,b,c\n1,2\n1,2,3,4\n1,2,3\n",
			want: []item{bad(2, 6, "2 fields, the header has 3"), bad(3, 10, "4 fields, the header has 3"), rec(4, 18, "1", "2", "3")}},
		{name: "trailing delimiter", opts: header, in: "a,b\n1,2,\n",
			want: []item{bad(2, 4, "3 fields, the header has 2")}},
		{name: "bare quote", opts: header, in: "a,b\n1,x\"y\n2,z\n",
			want: []item{bad(2, 4, `quote inside unquoted field 2 ("b")`), rec(3, 10, "2", "z")}},
		{name: "text after closing quote", opts: header, in: "a,b\n\"x\"y,1\n2,z\n",
			want: []item{bad(2, 4, `text after the closing quote of field 1 ("a")`), rec(3, 11, "2", "z")}},
		{name: "unclosed quote at EOF resyncs at next line", opts: header, in: "a,b\n1,\"x\n2,y\n3,z\n",
			want: []item{bad(2, 4, "quote not closed before end of file"), rec(3, 9, "2", "y"), rec(4, 13, "3", "z")}},
		{name: "unclosed quote closed by a later quote", opts: header, in: "a,b\n1,\"x\n2,y\n3,\"z\"\n",
			want: []item{bad(2, 4, "text after the closing quote"), rec(3, 9, "2", "y"), rec(4, 13, "3", "z")}},
		{name: "unclosed quote mid-file stops at MaxLineBytes", opts: Options{Header: true, MaxLineBytes: 20},
			in: "a,b\n1,\"x\n2,y\n3,z\n4,w\n5,v\n6,u\n",
			want: []item{bad(2, 4, "record longer than 20 bytes (is a quote in field 2 (\"b\") not closed?)"),
				rec(3, 9, "2", "y"), rec(4, 13, "3", "z"), rec(5, 17, "4", "w"), rec(6, 21, "5", "v"), rec(7, 25, "6", "u")}},
		{name: "over-long line", opts: Options{Header: true, MaxLineBytes: 10},
			in:   "a,b\n1,0123456789\n1,01234567\n2,y\n",
			want: []item{bad(2, 4, "record longer than 10 bytes"), rec(3, 17, "1", "01234567"), rec(4, 28, "2", "y")}},
		{name: "line ending does not count toward the limit", opts: Options{Header: true, MaxLineBytes: 3},
			in: "a,b\r\n1,2\r\n", want: []item{rec(2, 5, "1", "2")}},
		{name: "invalid UTF-8", opts: header, in: "a,b\n1,\xc3(\n2,z\n",
			want: []item{bad(2, 4, `invalid UTF-8 text in field 2 ("b")`), rec(3, 9, "2", "z")}},
		{name: "NUL byte", opts: header, in: "a,b\n1\x00,x\n2,z\n",
			want: []item{bad(2, 4, `NUL byte in field 1 ("a")`), rec(3, 9, "2", "z")}},
		{name: "bare CR", opts: header, in: "a,b\n1,x\ry\n2,z\n",
			want: []item{bad(2, 4, "carriage return without line feed in field 2"), rec(3, 10, "2", "z")}},
		{name: "UTF-16LE", opts: Options{Header: true, Encoding: "UTF-16"},
			in: string(utf16Bytes("a;b\r\n1;ü😀\r\n\"x\ny\";2\n", false)), delim: ';', header: []string{"a", "b"},
			want: []item{rec(2, 12, "1", "ü😀"), rec(3, 12+14, "x\ny", "2")}, lines: 5},
		{name: "UTF-16BE", opts: Options{Header: true, Encoding: "utf-16"},
			in: string(utf16Bytes("a,b\n1,ü\n2,z", true)), header: []string{"a", "b"},
			want: []item{rec(2, 10, "1", "ü"), rec(3, 18, "2", "z")}, lines: 4},
		{name: "UTF-16 lone surrogate", opts: Options{Header: true, Encoding: "UTF-16"},
			in:   string(utf16Bytes("a,b\n1,x\n2,z\n", false)[:14]) + "\x00\xd8" + string(utf16Bytes("a,b\n1,x\n2,z\n", false)[16:]),
			want: []item{bad(2, 10, "invalid UTF-16 text in field 2"), rec(3, 18, "2", "z")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte(tc.in)
			r := open(t, data, tc.opts)
			if tc.header != nil && !reflect.DeepEqual(r.Header(), tc.header) {
				t.Errorf("Header() = %q, want %q", r.Header(), tc.header)
			}
			if tc.delim != 0 && r.Delimiter() != tc.delim {
				t.Errorf("Delimiter() = %q, want %q", r.Delimiter(), tc.delim)
			}
			start, startLine := r.Offset(), r.Line()
			got := readAll(t, r)
			if len(got) != len(tc.want) {
				t.Fatalf("got %d items, want %d:\n%v", len(got), len(tc.want), got)
			}
			for i, w := range tc.want {
				g := got[i]
				if g.Start != w.Start || g.StartLine != w.StartLine || !reflect.DeepEqual(g.Fields, w.Fields) ||
					(w.Err == "") != (g.Err == "") || !strings.Contains(g.Err, w.Err) {
					t.Errorf("item %d:\n got  %v\n want %v", i, g, w)
				}
			}
			end := tc.end
			if end == 0 {
				end = int64(len(data))
			}
			if r.Offset() != end {
				t.Errorf("Offset() at the end = %d, want %d", r.Offset(), end)
			}
			if tc.lines != 0 && r.Line() != tc.lines {
				t.Errorf("Line() at the end = %d, want %d", r.Line(), tc.lines)
			}
			checkResume(t, data, tc.opts, start, startLine, got)
		})
	}
}

func TestDetectDelimiter(t *testing.T) {
	cases := []struct {
		line string
		want rune
	}{
		{"a,b,c", ','},
		{"a;b;c", ';'},
		{"a\tb\tc", '\t'},
		{"a|b|c", '|'},
		{`"x;y;z",b`, ','},
		{`"a,b";"c,d";e`, ';'},
		{"single", ','},
		{"a,b;c", ','},   // tie: ',' first
		{"a;b|c|d", '|'}, // most wins
		{"a|b\tc|d\te", '\t'},
	}
	for _, tc := range cases {
		r := open(t, []byte(tc.line+"\n1\n"), Options{Header: true})
		if r.Delimiter() != tc.want {
			t.Errorf("%q: detected %q, want %q", tc.line, r.Delimiter(), tc.want)
		}
	}
	// Detection looks at the first non-blank line after SkipRows.
	r := open(t, []byte("x,y,z\n\n\na;b\n"), Options{Header: true, SkipRows: 1})
	if r.Delimiter() != ';' || !reflect.DeepEqual(r.Header(), []string{"a", "b"}) {
		t.Errorf("after skipRows and blank lines: delimiter %q header %q", r.Delimiter(), r.Header())
	}
}

func TestNewReaderErrors(t *testing.T) {
	cases := []struct {
		name string
		opts Options
		in   string
		want string
		is   error
	}{
		{"empty file", Options{Header: true}, "", "file is empty", ErrNoHeader},
		{"blank file", Options{Header: true}, "\n\r\n\n", "file is empty or blank", ErrNoHeader},
		{"whitespace-only file", Options{Header: true}, "  \n\t\r\n \n", "file is empty or blank", ErrNoHeader},
		{"empty file without header", Options{}, "", "empty", ErrNoHeader},
		{"BOM only", Options{Header: true}, "\xef\xbb\xbf", "empty", ErrNoHeader},
		{"skipRows beyond EOF", Options{Header: true, SkipRows: 5}, "a\nb\n", "the file has 2 lines and skipRows is 5", ErrNoHeader},
		{"empty column name", Options{Header: true}, "a,,c\n", "column 2 has no name", nil},
		{"blank column name", Options{Header: true}, "a, ,c\n", "column 2 has no name", nil},
		{"trailing delimiter in header", Options{Header: true}, "a,b,\n", "column 3 has no name (does the line end with a delimiter?)", nil},
		{"duplicate column", Options{Header: true}, "id,mail,name,mail\n", `columns 2 and 4 have the same name`, nil},
		{"malformed header", Options{Header: true}, "a,\"b\n", "bad header: line 1: quote not closed", nil},
		{"malformed first record without header", Options{}, "a,b\"\n", "bad first record", nil},
		{"CR-only header", Options{Header: true}, "a,b\r1,2\r", "CR-only line endings are not supported", nil},
		{"UTF-16 without BOM", Options{Header: true, Encoding: "UTF-16"}, "a\x00,\x00b\x00\n\x00", "no byte-order mark", nil},
		{"UTF-16 BOM in UTF-8 mode", Options{Header: true}, "\xff\xfea\x00", "set the encoding to UTF-16", nil},
		{"UTF-8 BOM in Windows-1252 mode", Options{Header: true, Encoding: "Windows-1252"}, "\xef\xbb\xbfa\n", "set the encoding to UTF-8", nil},
		{"unknown encoding", Options{Encoding: "EBCDIC"}, "a\n", "unsupported encoding", nil},
		{"bad delimiter", Options{Delimiter: ':'}, "a\n", "unsupported delimiter", nil},
		{"bad quote", Options{Quote: '`'}, "a\n", "unsupported quote", nil},
		{"negative skipRows", Options{SkipRows: -1}, "a\n", "negative", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := NewReader(strings.NewReader(tc.in), tc.opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want one containing %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("err = %v, want errors.Is %v", err, tc.is)
			}
		})
	}
}

func TestHeaderOnly(t *testing.T) {
	for _, in := range []string{"a,b", "a,b\n", "a,b\r\n\r\n"} {
		r := open(t, []byte(in), Options{Header: true})
		if _, err := r.Next(); err != io.EOF {
			t.Errorf("%q: Next = %v, want io.EOF", in, err)
		}
		if r.Offset() != int64(len(in)) {
			t.Errorf("%q: Offset = %d, want %d", in, r.Offset(), len(in))
		}
	}
}

func TestOptionsFromFormat(t *testing.T) {
	no := false
	cases := []struct {
		f    v1alpha1.CSVFormat
		want Options
	}{
		{v1alpha1.CSVFormat{}, Options{Header: true}},
		{v1alpha1.CSVFormat{Delimiter: ";", Quote: "'", Encoding: "Windows-1252", Header: &no, SkipRows: 3, MaxLineBytes: 1024},
			Options{Delimiter: ';', Quote: '\'', Encoding: "Windows-1252", SkipRows: 3, MaxLineBytes: 1024}},
		{v1alpha1.CSVFormat{Delimiter: "\t"}, Options{Delimiter: '\t', Header: true}},
		{v1alpha1.CSVFormat{Delimiter: `\t`}, Options{Delimiter: '\t', Header: true}},
		{v1alpha1.CSVFormat{Delimiter: "|", Quote: `"`}, Options{Delimiter: '|', Quote: '"', Header: true}},
	}
	for _, tc := range cases {
		if got := OptionsFromFormat(tc.f); got != tc.want {
			t.Errorf("OptionsFromFormat(%+v) = %+v, want %+v", tc.f, got, tc.want)
		}
	}
	// A multi-character delimiter must not be silently truncated.
	if _, err := NewReader(strings.NewReader("a\n"), OptionsFromFormat(v1alpha1.CSVFormat{Delimiter: ";;"})); err == nil {
		t.Error(`delimiter ";;" accepted`)
	}
}

// genFile builds a file of n records whose fields sometimes hold quotes,
// delimiters and line breaks, with blank lines and CRLF mixed in.
func genFile(rng *rand.Rand, n int) []byte {
	var b bytes.Buffer
	b.WriteString("id,name,note\r\n")
	for i := range n {
		note := "plain"
		switch rng.IntN(6) {
		case 0:
			note = "\"multi\nline, \"\"quoted\"\"\r\ntext\""
		case 1:
			note = "\"" + strings.Repeat("x", rng.IntN(3000)) + "\""
		case 2:
			note = "Zoë Ærø"
		}
		fmt.Fprintf(&b, "id%d,name %d,%s", i, i, note)
		if rng.IntN(2) == 0 {
			b.WriteString("\r\n")
		} else {
			b.WriteString("\n")
		}
		if rng.IntN(20) == 0 {
			b.WriteString("\n")
		}
	}
	return b.Bytes()
}

// TestOffsetsAcrossBuffers checks offsets and line numbers of many records
// spanning buffer refills against the file itself.
func TestOffsetsAcrossBuffers(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	data := genFile(rng, 3000)
	r := open(t, data, Options{Header: true})
	items := readAll(t, r)
	if len(items) != 3000 {
		t.Fatalf("read %d items, want 3000", len(items))
	}
	for i, it := range items {
		if it.Err != "" {
			t.Fatalf("item %d: %v", i, it)
		}
		prefix := fmt.Sprintf("id%d,", i)
		if !bytes.HasPrefix(data[it.Start:], []byte(prefix)) {
			t.Fatalf("record %d: offset %d does not start with %q", i, it.Start, prefix)
		}
		if want := int64(bytes.Count(data[:it.Start], []byte("\n"))) + 1; it.StartLine != want {
			t.Fatalf("record %d: line %d, want %d", i, it.StartLine, want)
		}
	}
	// Resume from a sample of positions.
	for range 40 {
		k := rng.IntN(len(items))
		r, err := Resume(bytes.NewReader(data), Options{Header: true}, items[k].Start, items[k].StartLine)
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, r); !equalItems(got, items[k:]) {
			t.Fatalf("Resume at item %d: %d items, want %d", k, len(got), len(items)-k)
		}
	}
}

// TestMemoryBounded feeds a 20 MB line and many records through a reader
// and checks that its buffer stays within the limit.
func TestMemoryBounded(t *testing.T) {
	long := io.MultiReader(
		strings.NewReader("a,b\n1,"),
		io.LimitReader(repeatReader('x'), 20<<20),
		strings.NewReader("\n2,y\n"),
	)
	r, err := NewReader(long, Options{Header: true, MaxLineBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	items := readAll(t, r)
	want := []item{bad(2, 4, "record longer than 1000 bytes"), rec(3, 4+2+20<<20+1, "2", "y")}
	if len(items) != 2 || items[0].Err == "" || items[1].Start != want[1].Start || items[1].StartLine != 3 {
		t.Fatalf("got %v", items)
	}
	if len(r.buf) > minBufSize {
		t.Errorf("buffer grew to %d bytes reading an over-long line", len(r.buf))
	}
	// A long but allowed record grows the buffer only to the limit.
	big := "a\n\"" + strings.Repeat("y\n", 100_000) + "\"\n"
	r = open(t, []byte(big), Options{Header: true, MaxLineBytes: 300_000})
	items = readAll(t, r)
	if len(items) != 1 || items[0].Err != "" || len(items[0].Fields[0]) != 200_000 {
		t.Fatalf("big record: %d items", len(items))
	}
	if len(r.buf) > 300_000+8 {
		t.Errorf("buffer grew to %d bytes, limit %d", len(r.buf), 300_000+8)
	}
}

type repeatReader byte

func (c repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(c)
	}
	return len(p), nil
}

func TestResumeRejects(t *testing.T) {
	data := []byte("a,b\n1,2\n3,4")
	cases := []struct {
		name      string
		opts      Options
		data      []byte
		off, line int64
		want      string
	}{
		{"before first record", Options{Header: true}, data, 2, 1, "before the first record"},
		{"mid-line", Options{Header: true}, data, 6, 2, "not at the start of a line"},
		{"past EOF", Options{Header: true}, data, 100, 9, "past the end"},
		{"bad line", Options{Header: true}, data, 4, 0, "not a line number"},
		{"odd UTF-16 offset", Options{Header: true, Encoding: "UTF-16"}, utf16Bytes("a,b\n1,2\n", false), 11, 2, "splits a UTF-16 code unit"},
		{"mid-line UTF-16", Options{Header: true, Encoding: "UTF-16"}, utf16Bytes("a,b\n1,2\n", false), 12, 2, "not at the start of a line"},
	}
	for _, tc := range cases {
		_, err := Resume(bytes.NewReader(tc.data), tc.opts, tc.off, tc.line)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
	// The end of a file without a final newline is a valid position.
	r, err := Resume(bytes.NewReader(data), Options{Header: true}, int64(len(data)), 4)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Errorf("Next at the end = %v, want io.EOF", err)
	}
}

// TestNoPersonalDataInErrors checks that no message quotes a value.
func TestNoPersonalDataInErrors(t *testing.T) {
	secret := "SECRETVALUE"
	inputs := []string{
		"a,b\n" + secret + "\"x,1\n",
		"a,b\n\"" + secret + "\"x,1\n",
		"a,b\n1,\"" + secret + "\n",
		"a,b\n" + secret + ",1,2\n",
		"a,b\n" + secret + "\xff,1\n",
		"a,b\n" + secret + "\x00,1\n",
		"a,b\n" + secret + "\r,1\n",
		"a,b\n" + strings.Repeat(secret, 10) + ",1\n",
	}
	for _, in := range inputs {
		r := open(t, []byte(in), Options{Header: true, MaxLineBytes: 100})
		_, err := r.Next()
		if err == nil {
			t.Errorf("%q: no error", in)
			continue
		}
		if strings.Contains(err.Error(), "SECRET") {
			t.Errorf("error quotes a value: %v", err)
		}
	}
}
