package csvread

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"reflect"
	"testing"
	"unicode/utf16"
)

// item is one result of Next with the reader's position after it.
type item struct {
	Start     int64 // Record.Offset or LineError.Offset
	StartLine int64 // Record.Line or LineError.Line
	Fields    []string
	Err       string // LineError.Msg; empty for a record
	Off       int64  // Offset() after
	Line      int64  // Line() after
}

func (it item) String() string {
	if it.Err != "" {
		return fmt.Sprintf("error at %d/line %d: %s (next %d/%d)", it.Start, it.StartLine, it.Err, it.Off, it.Line)
	}
	return fmt.Sprintf("record at %d/line %d %q (next %d/%d)", it.Start, it.StartLine, it.Fields, it.Off, it.Line)
}

// readAll reads r to the end. It fails the test on a fatal error and when
// a call does not move the reader forward.
func readAll(t testing.TB, r *Reader) []item {
	t.Helper()
	var items []item
	prevOff, prevLine := r.Offset(), r.Line()
	for {
		rec, err := r.Next()
		if err == io.EOF {
			return items
		}
		it := item{Start: rec.Offset, StartLine: rec.Line, Fields: rec.Fields, Off: r.Offset(), Line: r.Line()}
		if err != nil {
			var le *LineError
			if !errors.As(err, &le) {
				t.Fatalf("fatal error after %d items: %v", len(items), err)
			}
			it.Start, it.StartLine, it.Err = le.Offset, le.Line, le.Msg
		}
		if it.Start < prevOff || it.StartLine < prevLine {
			t.Fatalf("%v starts before the previous end %d/%d", it, prevOff, prevLine)
		}
		if it.Off <= prevOff || it.Line <= prevLine {
			t.Fatalf("Next did not move forward: %d/%d -> %d/%d", prevOff, prevLine, it.Off, it.Line)
		}
		prevOff, prevLine = it.Off, it.Line
		items = append(items, it)
	}
}

func open(t testing.TB, data []byte, opts Options) *Reader {
	t.Helper()
	r, err := NewReader(bytes.NewReader(data), opts)
	if err != nil {
		t.Fatalf("NewReader: %v", err)
	}
	return r
}

// checkResume resumes at the position before every item (and at every
// record's own offset), or at every step-th one, and checks that the rest
// is the same.
func checkResume(t testing.TB, data []byte, opts Options, start, startLine int64, items []item) {
	t.Helper()
	step := 1
	if len(items) > 60 {
		step = len(items) / 30
	}
	type pos struct{ off, line int64 }
	at := map[pos]int{{start, startLine}: 0}
	for k, it := range items {
		if k%step != 0 && k != len(items)-1 {
			continue
		}
		at[pos{it.Off, it.Line}] = k + 1
		at[pos{it.Start, it.StartLine}] = k
	}
	for p, k := range at {
		r, err := Resume(bytes.NewReader(data), opts, p.off, p.line)
		if err != nil {
			t.Fatalf("Resume(%d, %d): %v", p.off, p.line, err)
		}
		got := readAll(t, r)
		if want := items[k:]; !equalItems(got, want) {
			t.Fatalf("Resume(%d, %d):\n got  %v\n want %v", p.off, p.line, got, want)
		}
	}
}

func equalItems(a, b []item) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return reflect.DeepEqual(a, b)
}

// utf16Bytes encodes s as UTF-16 with a byte-order mark.
func utf16Bytes(s string, bigEndian bool) []byte {
	var b []byte
	put := func(u uint16) {
		if bigEndian {
			b = append(b, byte(u>>8), byte(u))
		} else {
			b = append(b, byte(u), byte(u>>8))
		}
	}
	put(0xfeff)
	for _, u := range utf16.Encode([]rune(s)) {
		put(u)
	}
	return b
}
