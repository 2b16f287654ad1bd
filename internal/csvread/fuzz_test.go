package csvread

import (
	"bytes"
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

// fuzzOptions derives options from one fuzzed byte.
func fuzzOptions(mode uint8) Options {
	o := Options{
		Encoding: [...]string{"UTF-8", "UTF-16", "ISO-8859-1", "Windows-1252"}[mode&3],
		Header:   mode&4 == 0,
	}
	o.Delimiter = [...]rune{0, ',', ';', '\t'}[mode>>3&3]
	if mode&32 != 0 {
		o.Quote = '\''
	}
	if mode&64 != 0 {
		o.MaxLineBytes = 32 // exercises over-long records and quote look-ahead limits
	}
	if mode&128 != 0 {
		o.SkipRows = 1
	}
	return o
}

// modeFor is the fuzz mode closest to a corpus file's options.
func modeFor(o Options) uint8 {
	var m uint8
	switch strings.ToUpper(o.Encoding) {
	case "UTF-16":
		m |= 1
	case "ISO-8859-1":
		m |= 2
	case "WINDOWS-1252":
		m |= 3
	}
	if !o.Header {
		m |= 4
	}
	switch o.Delimiter {
	case ',':
		m |= 1 << 3
	case ';':
		m |= 2 << 3
	case '\t':
		m |= 3 << 3
	}
	if o.Quote == '\'' {
		m |= 32
	}
	return m
}

// FuzzReader checks that the reader never panics, that it always moves
// forward, that good records hold only valid text, and that resuming at
// any position it returned yields the same remaining records and errors.
func FuzzReader(f *testing.F) {
	for _, path := range corpusFiles(f) {
		data, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		e, err := parseExpectation(strings.TrimSuffix(path, ".csv") + ".expected")
		if err != nil {
			f.Fatal(err)
		}
		m := modeFor(e.opts)
		f.Add(data, m)
		f.Add(data, m|64)
		f.Add(data, m^4)
	}
	f.Fuzz(func(t *testing.T, data []byte, mode uint8) {
		opts := fuzzOptions(mode)
		r, err := NewReader(bytes.NewReader(data), opts)
		if err != nil {
			return
		}
		start, startLine := r.Offset(), r.Line()
		items := readAll(t, r) // fails on any step that does not move forward
		if r.Offset() != int64(len(data)) {
			t.Fatalf("Offset at the end = %d, want %d", r.Offset(), len(data))
		}
		for _, it := range items {
			if it.Err != "" {
				continue
			}
			if len(it.Fields) != len(r.Header()) {
				t.Fatalf("%v: %d fields, header has %d", it, len(it.Fields), len(r.Header()))
			}
			for _, f := range it.Fields {
				if !utf8.ValidString(f) || strings.IndexByte(f, 0) >= 0 {
					t.Fatalf("%v: field with invalid text", it)
				}
			}
		}
		checkResume(t, data, opts, start, startLine, items)

		// The fast path for simple lines must agree with the general parser.
		g, err := NewReader(bytes.NewReader(data), opts)
		if err != nil {
			t.Fatalf("second NewReader: %v", err)
		}
		g.generalOnly = true
		if got := readAll(t, g); !equalItems(got, items) {
			t.Fatalf("general parser:\n got  %v\n want %v", got, items)
		}
	})
}
