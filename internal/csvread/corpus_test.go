package csvread

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// expectation is a testdata/malformed/NAME.expected file:
//
//	# comment
//	options: encoding=UTF-16 delimiter=; quote=' header=false skipRows=2 maxLineBytes=300
//	open error: <substring of NewReader's error>
//	header: a|b|c
//	line N: <substring of a LineError message>   (in order, one per error)
//	records: <count of good records>
//	record I line L: "<Go-quoted fields joined by |>"   (I counts good records from 1)
type expectation struct {
	opts      Options
	openError string
	header    []string
	errors    []lineMsg
	records   int
	samples   map[int]sample
}

type lineMsg struct {
	line int64
	msg  string
}

type sample struct {
	line   int64
	fields string
}

func parseExpectation(path string) (expectation, error) {
	e := expectation{opts: Options{Header: true}, records: -1, samples: map[int]sample{}}
	f, err := os.Open(path)
	if err != nil {
		return e, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		l := sc.Text()
		key, val, _ := strings.Cut(l, ": ")
		switch {
		case l == "" || strings.HasPrefix(l, "#"):
		case key == "options":
			for _, kv := range strings.Fields(val) {
				k, v, _ := strings.Cut(kv, "=")
				switch k {
				case "encoding":
					e.opts.Encoding = v
				case "delimiter":
					e.opts.Delimiter = []rune(v)[0]
				case "quote":
					e.opts.Quote = []rune(v)[0]
				case "header":
					e.opts.Header = v == "true"
				case "skipRows":
					e.opts.SkipRows, err = strconv.Atoi(v)
				case "maxLineBytes":
					e.opts.MaxLineBytes, err = strconv.Atoi(v)
				default:
					return e, fmt.Errorf("unknown option %q", k)
				}
				if err != nil {
					return e, err
				}
			}
		case key == "open error":
			e.openError = val
		case key == "header":
			e.header = strings.Split(val, "|")
		case key == "records":
			if e.records, err = strconv.Atoi(val); err != nil {
				return e, err
			}
		case strings.HasPrefix(key, "line "):
			n, err := strconv.ParseInt(strings.TrimPrefix(key, "line "), 10, 64)
			if err != nil {
				return e, err
			}
			e.errors = append(e.errors, lineMsg{n, val})
		case strings.HasPrefix(key, "record "):
			var i int
			var line int64
			if _, err := fmt.Sscanf(key, "record %d line %d", &i, &line); err != nil {
				return e, fmt.Errorf("%q: %v", l, err)
			}
			fields, err := strconv.Unquote(val)
			if err != nil {
				return e, fmt.Errorf("%q: %v", l, err)
			}
			e.samples[i] = sample{line, fields}
		default:
			return e, fmt.Errorf("cannot parse %q", l)
		}
	}
	if e.openError == "" && e.records < 0 {
		return e, fmt.Errorf("neither open error nor records given")
	}
	return e, sc.Err()
}

func corpusFiles(t testing.TB) []string {
	files, err := filepath.Glob("testdata/malformed/*.csv")
	if err != nil {
		t.Fatal(err)
	}
	if len(files) < 30 {
		t.Fatalf("corpus has %d files, want at least 30", len(files))
	}
	return files
}

func TestMalformedCorpus(t *testing.T) {
	for _, path := range corpusFiles(t) {
		name := strings.TrimSuffix(filepath.Base(path), ".csv")
		t.Run(name, func(t *testing.T) {
			want, err := parseExpectation(strings.TrimSuffix(path, ".csv") + ".expected")
			if err != nil {
				t.Fatalf("expected file: %v", err)
			}
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			r, err := NewReader(bytes.NewReader(data), want.opts)
			if want.openError != "" {
				if err == nil || !strings.Contains(err.Error(), want.openError) {
					t.Fatalf("NewReader error = %v, want one containing %q", err, want.openError)
				}
				return
			}
			if err != nil {
				t.Fatalf("NewReader: %v", err)
			}
			if want.header != nil && !reflect.DeepEqual(r.Header(), want.header) {
				t.Errorf("header %q, want %q", r.Header(), want.header)
			}
			start, startLine := r.Offset(), r.Line()
			items := readAll(t, r)
			var errs []item
			var recs []item
			for _, it := range items {
				if it.Err != "" {
					errs = append(errs, it)
				} else {
					recs = append(recs, it)
				}
			}
			if len(errs) != len(want.errors) {
				t.Errorf("%d errors, want %d: %v", len(errs), len(want.errors), errs)
			}
			for i := range min(len(errs), len(want.errors)) {
				g, w := errs[i], want.errors[i]
				if g.StartLine != w.line || !strings.Contains(g.Err, w.msg) {
					t.Errorf("error %d: line %d: %s; want line %d: ...%s...", i+1, g.StartLine, g.Err, w.line, w.msg)
				}
			}
			if len(recs) != want.records {
				t.Errorf("%d good records, want %d", len(recs), want.records)
			}
			for i, s := range want.samples {
				if i < 1 || i > len(recs) {
					t.Errorf("record %d: there are %d", i, len(recs))
					continue
				}
				g := recs[i-1]
				if got := strings.Join(g.Fields, "|"); g.StartLine != s.line || got != s.fields {
					t.Errorf("record %d: line %d %q, want line %d %q", i, g.StartLine, got, s.line, s.fields)
				}
			}
			if r.Offset() != int64(len(data)) {
				t.Errorf("Offset at the end = %d, want the file size %d", r.Offset(), len(data))
			}
			checkResume(t, data, want.opts, start, startLine, items)
		})
	}
}
