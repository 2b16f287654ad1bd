package csvread

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
	"unicode/utf8"
)

// Record is one CSV record.
type Record struct {
	Line   int64    // 1-based physical line where the record starts
	Offset int64    // source byte offset (original encoding) where it starts
	Fields []string // decoded to UTF-8; they share one backing string (and
	// their slice's backing array with a few neighbouring records), which
	// is reused after Arena.Reset when the Reader has an arena (SetArena)
}

// Reader reads records from a CSV source, one at a time.
type Reader struct {
	src       io.Reader
	opts      Options
	enc       encoding
	bigEndian bool // UTF-16 byte order, from the byte-order mark
	delim     byte
	delimSep  [1]byte // delim as a separator for bytes.Count
	quote     byte
	header    []string
	named     bool // the header came from the file

	// Source buffer; see source.go.
	buf    []byte
	r, w   int   // unread bytes are buf[r:w]
	mark   int   // buf[mark:] is kept when the buffer is refilled
	bufOff int64 // source offset of buf[0]
	maxBuf int
	srcErr error
	dec    []byte // decoded text of the current line (not UTF-8 sources)

	line int64 // physical line number at buf[r]

	recBuf    []byte   // the current record's field contents, concatenated
	fieldEnds []int    // end of each field in recBuf
	slab      []string // room for the Fields of the next records
	spans     []int    // field start and end offsets in a line (fast path)

	arena *Arena // where records' text and Fields go; nil: allocated

	generalOnly bool // tests: skip the fast path to compare it with the general parser
}

// NewReader reads the byte-order mark, SkipRows lines and the header (or,
// without a header, looks at the first record to learn the column count)
// and returns a Reader positioned at the first record. It fails when the
// options are invalid, on an I/O error, when there is no header (ErrNoHeader)
// and when the header is malformed or has an empty or duplicate column name.
func NewReader(src io.Reader, opts Options) (*Reader, error) {
	o, enc, err := opts.check()
	if err != nil {
		return nil, err
	}
	r := &Reader{
		src:    src,
		opts:   o,
		enc:    enc,
		quote:  byte(o.Quote),
		delim:  byte(o.Delimiter),
		line:   1,
		maxBuf: max(minBufSize, o.MaxLineBytes+8),
		buf:    make([]byte, minBufSize),
	}
	if err := r.start(); err != nil {
		return nil, err
	}
	return r, nil
}

// Resume returns a Reader that continues at a checkpoint: it reads the
// header from the start of rs, then seeks to offset (a value returned by
// Offset or Record.Offset) and numbers lines from line on. It refuses an
// offset before the first record, past the end of the file, or not at the
// start of a line, which catches most checkpoints that do not belong to
// this file.
func Resume(rs io.ReadSeeker, opts Options, offset, line int64) (*Reader, error) {
	if _, err := rs.Seek(0, io.SeekStart); err != nil {
		return nil, fmt.Errorf("csvread: resume: %w", err)
	}
	r, err := NewReader(rs, opts)
	if err != nil {
		return nil, err
	}
	first := r.Offset()
	size, err := rs.Seek(0, io.SeekEnd)
	if err != nil {
		return nil, fmt.Errorf("csvread: resume: %w", err)
	}
	switch {
	case line < 1:
		return nil, fmt.Errorf("csvread: resume: line %d is not a line number", line)
	case offset < first:
		return nil, fmt.Errorf("csvread: resume: offset %d is before the first record (offset %d)", offset, first)
	case offset > size:
		return nil, fmt.Errorf("csvread: resume: offset %d is past the end of the file (%d bytes; has the file changed?)", offset, size)
	case offset == first || offset == size:
	case offset%r.unitSize() != 0:
		return nil, fmt.Errorf("csvread: resume: offset %d splits a UTF-16 code unit", offset)
	default:
		if err := r.checkLineStart(rs, offset); err != nil {
			return nil, err
		}
	}
	if _, err := rs.Seek(offset, io.SeekStart); err != nil {
		return nil, fmt.Errorf("csvread: resume: %w", err)
	}
	r.r, r.w, r.mark = 0, 0, 0
	r.bufOff = offset
	r.srcErr = nil
	r.line = line
	return r, nil
}

// checkLineStart verifies that offset (inside the file) follows a line
// feed.
func (r *Reader) checkLineStart(rs io.ReadSeeker, offset int64) error {
	u := r.unitSize()
	if _, err := rs.Seek(offset-u, io.SeekStart); err != nil {
		return fmt.Errorf("csvread: resume: %w", err)
	}
	b := make([]byte, u)
	if _, err := io.ReadFull(rs, b); err != nil {
		return fmt.Errorf("csvread: resume: %w", err)
	}
	lf := b[0] == '\n'
	if u == 2 {
		lf = string(b) == "\n\x00"
		if r.bigEndian {
			lf = string(b) == "\x00\n"
		}
	}
	if !lf {
		return fmt.Errorf("csvread: resume: offset %d is not at the start of a line (has the file changed?)", offset)
	}
	return nil
}

// start reads everything before the first record.
func (r *Reader) start() error {
	if err := r.startSource(); err != nil {
		return err
	}
	for i := range r.opts.SkipRows {
		r.mark = r.r
		if err := r.skipLine(); err != nil {
			if err == io.EOF {
				return fmt.Errorf("%w: the file has %d lines and skipRows is %d", ErrNoHeader, i, r.opts.SkipRows)
			}
			return err
		}
		r.line++
	}
	r.mark = r.r
	if r.delim == 0 {
		d, err := r.detectDelimiter()
		if err != nil {
			return err
		}
		r.delim = d
	}
	r.delimSep[0] = r.delim
	rec, err := r.readRecord()
	if err == io.EOF {
		if r.opts.SkipRows > 0 {
			return fmt.Errorf("%w: nothing but blank lines after the %d skipped lines", ErrNoHeader, r.opts.SkipRows)
		}
		return fmt.Errorf("%w: the file is empty or blank", ErrNoHeader)
	}
	what := "header"
	if !r.opts.Header {
		what = "first record (it sets the column count)"
	}
	if err != nil {
		var le *LineError
		if errors.As(err, &le) {
			return fmt.Errorf("csvread: bad %s: %w", what, err)
		}
		return err
	}
	if !r.opts.Header {
		r.header = make([]string, len(rec.Fields))
		for i := range r.header {
			r.header[i] = strconv.Itoa(i + 1)
		}
		// Give the record back: its bytes are still buffered from r.mark.
		r.r = r.index(rec.Offset)
		r.line = rec.Line
		return nil
	}
	seen := make(map[string]int, len(rec.Fields))
	for i, name := range rec.Fields {
		if len(bytes.TrimSpace([]byte(name))) == 0 {
			hint := ""
			if i == len(rec.Fields)-1 {
				hint = " (does the line end with a delimiter?)"
			}
			return fmt.Errorf("csvread: bad header: line %d: column %d has no name%s", rec.Line, i+1, hint)
		}
		if j, dup := seen[name]; dup {
			// Not quoted: a file without a header line makes its first
			// row, personal data, the header.
			return fmt.Errorf("csvread: bad header: line %d: columns %d and %d have the same name", rec.Line, j+1, i+1)
		}
		seen[name] = i
	}
	r.header = rec.Fields
	r.named = true
	return nil
}

// detectDelimiter picks the candidate that occurs most often outside
// quotes on the first non-blank line, without consuming it.
func (r *Reader) detectDelimiter() (byte, error) {
	startOff, startLine := r.offset(r.r), r.line
	defer func() { r.r, r.line = r.index(startOff), startLine }()
	for {
		text, err := r.nextLine()
		if err == io.EOF || err == errTooLong {
			return ',', nil // the header read reports it
		}
		if err != nil {
			return 0, err
		}
		content, _ := splitEOL(text)
		if r.onlySpace(content) {
			continue
		}
		candidates := [...]byte{',', ';', '\t', '|'}
		var counts [len(candidates)]int
		inQuote := false
		for _, c := range content {
			if c == r.quote {
				inQuote = !inQuote
				continue
			}
			if inQuote {
				continue
			}
			for i, d := range candidates {
				if c == d {
					counts[i]++
				}
			}
		}
		best := 0
		for i := range candidates {
			if counts[i] > counts[best] {
				best = i
			}
		}
		return candidates[best], nil
	}
}

// Header returns the column names: the header line's, or "1", "2", ...
func (r *Reader) Header() []string { return r.header }

// Delimiter returns the field delimiter, given or detected.
func (r *Reader) Delimiter() rune { return rune(r.delim) }

// Offset returns the source byte offset just past the last record (or bad
// record) returned: where reading goes on. Checkpoints store it with Line.
func (r *Reader) Offset() int64 { return r.offset(r.r) }

// Line returns the physical line number at Offset.
func (r *Reader) Line() int64 { return r.line }

// Next returns the next record. A bad record is a *LineError, and the
// following call continues after it; io.EOF ends the file; any other error
// is fatal (reading the source failed).
func (r *Reader) Next() (Record, error) {
	return r.readRecord()
}

// splitEOL splits a decoded line into its content and line-ending length.
func splitEOL(t []byte) (content []byte, eol int) {
	n := len(t)
	if n > 0 && t[n-1] == '\n' {
		if n > 1 && t[n-2] == '\r' {
			return t[:n-2], 2
		}
		return t[:n-1], 1
	}
	return t, 0
}

// isSpace reports whether c is white space allowed around a quoted field.
func (r *Reader) isSpace(c byte) bool {
	return c == ' ' || (c == '\t' && r.delim != '\t')
}

func (r *Reader) onlySpace(b []byte) bool {
	for _, c := range b {
		if !r.isSpace(c) {
			return false
		}
	}
	return true
}

// field names field i (0-based) for messages: its number and, when the
// header came from the file, its column name (not personal data).
func (r *Reader) field(i int) string {
	if r.named && i < len(r.header) {
		return fmt.Sprintf("field %d (%q)", i+1, r.header[i])
	}
	return fmt.Sprintf("field %d", i+1)
}

// tooLong reports whether the record from startOff to the current
// position, less the line ending, exceeds MaxLineBytes.
func (r *Reader) tooLong(startOff int64, eol int) bool {
	return r.offset(r.r)-int64(eol)*r.unitSize()-startOff > int64(r.opts.MaxLineBytes)
}

// badSyntax reports a record whose end cannot be trusted and resynchronises
// at the line after the one where it starts, so that no line is silently
// lost: the lines after it are read again as records.
func (r *Reader) badSyntax(startOff, firstEnd, startLine int64, format string, args ...any) (Record, error) {
	r.r = r.index(firstEnd)
	r.line = startLine + 1
	return Record{}, &LineError{Line: startLine, Offset: startOff, Msg: fmt.Sprintf(format, args...)}
}

// readRecord parses the next record. It keeps the record's source bytes
// buffered (r.mark) until it is done.
func (r *Reader) readRecord() (Record, error) {
	var content []byte
	var eol int
	for {
		r.mark = r.r
		t, err := r.nextLine()
		if err == nil {
			// A line of nothing but spaces and tabs (common at the end of
			// hand-edited exports) is blank, like an empty one.
			if content, eol = splitEOL(t); r.onlySpace(content) {
				r.line++ // blank line
				continue
			}
			break
		}
		if err == errTooLong {
			le := &LineError{Line: r.line, Offset: r.offset(r.r),
				Msg: fmt.Sprintf("record longer than %d bytes", r.opts.MaxLineBytes)}
			if err := r.skipLine(); err != nil && err != io.EOF {
				return Record{}, err
			}
			r.line++
			return Record{}, le
		}
		return Record{}, err
	}
	startOff, startLine := r.offset(r.mark), r.line
	firstEnd := r.offset(r.r)
	lines := int64(1)
	if r.tooLong(startOff, eol) {
		return r.badSyntax(startOff, firstEnd, startLine, "record longer than %d bytes", r.opts.MaxLineBytes)
	}
	hasCR := bytes.IndexByte(content, '\r') >= 0
	// Text is checked per line, not per record: fields are pieces of the
	// lines cut at ASCII bytes, so valid lines mean valid fields, while
	// the concatenated fields could join two invalid fragments into a
	// valid sequence.
	badText := !validText(content)
	delim, quote := r.delim, r.quote
	// qAt is the index in content of the next quote, found once per line
	// rather than once per field; noQuote when there is none.
	qAt := bytes.IndexByte(content, quote)
	if qAt < 0 {
		qAt = noQuote
	}
	if !hasCR && !r.generalOnly && r.spanFields(content, qAt) {
		// Fast path: the fields are sliced from one string of the line.
		r.line = startLine + 1
		n := len(r.spans) / 2
		if err := r.checkRecord(startOff, startLine, n, badText, func() { r.copySpans(content) }); err != nil {
			return Record{}, err
		}
		s := r.text(content)
		fields := r.newFields(n)
		for i := range fields {
			fields[i] = s[r.spans[2*i]:r.spans[2*i+1]]
		}
		return Record{Line: startLine, Offset: startOff, Fields: fields}, nil
	}
	r.recBuf = r.recBuf[:0]
	r.fieldEnds = r.fieldEnds[:0]
parseField:
	for {
		field := content
		i := bytes.IndexByte(content, delim)
		if i >= 0 {
			field = content[:i]
		}
		if qAt >= len(field) {
			// Unquoted field, the common case.
			if hasCR && bytes.IndexByte(field, '\r') >= 0 {
				return r.badSyntax(startOff, firstEnd, startLine,
					"carriage return without line feed in %s (CR-only line endings are not supported; use LF or CRLF)", r.field(len(r.fieldEnds)))
			}
			r.recBuf = append(r.recBuf, field...)
			r.fieldEnds = append(r.fieldEnds, len(r.recBuf))
			if i < 0 {
				break parseField
			}
			content = content[i+1:]
			qAt -= i + 1
			continue
		}
		q := qAt
		if !r.onlySpace(field[:q]) {
			return r.badSyntax(startOff, firstEnd, startLine,
				"quote inside unquoted %s (a field holding quotes must be quoted, its quotes doubled)", r.field(len(r.fieldEnds)))
		}
		// Quoted field: white space before the opening quote is ignored.
		content = content[q+1:]
		for {
			j := bytes.IndexByte(content, quote)
			if j < 0 {
				// The field goes on over the line ending.
				r.recBuf = append(r.recBuf, content...)
				if eol == 0 {
					return r.badSyntax(startOff, firstEnd, startLine, "quote not closed before end of file (%s)", r.field(len(r.fieldEnds)))
				}
				r.recBuf = append(r.recBuf, '\n')
				t, err := r.nextLine()
				switch {
				case err == io.EOF:
					return r.badSyntax(startOff, firstEnd, startLine, "quote not closed before end of file (%s)", r.field(len(r.fieldEnds)))
				case err == errTooLong:
					return r.badSyntax(startOff, firstEnd, startLine, "record longer than %d bytes (is a quote in %s not closed?)", r.opts.MaxLineBytes, r.field(len(r.fieldEnds)))
				case err != nil:
					return Record{}, err
				}
				lines++
				content, eol = splitEOL(t)
				if r.tooLong(startOff, eol) {
					return r.badSyntax(startOff, firstEnd, startLine, "record longer than %d bytes (is a quote in %s not closed?)", r.opts.MaxLineBytes, r.field(len(r.fieldEnds)))
				}
				hasCR = bytes.IndexByte(content, '\r') >= 0
				badText = badText || !validText(content)
				continue
			}
			r.recBuf = append(r.recBuf, content[:j]...)
			content = content[j+1:]
			if len(content) > 0 && content[0] == quote {
				r.recBuf = append(r.recBuf, quote) // doubled quote
				content = content[1:]
				continue
			}
			// Closing quote: white space after it is ignored.
			k := 0
			for k < len(content) && r.isSpace(content[k]) {
				k++
			}
			content = content[k:]
			r.fieldEnds = append(r.fieldEnds, len(r.recBuf))
			if len(content) == 0 {
				break parseField
			}
			if content[0] == delim {
				content = content[1:]
				if qAt = bytes.IndexByte(content, quote); qAt < 0 {
					qAt = noQuote
				}
				continue parseField
			}
			return r.badSyntax(startOff, firstEnd, startLine,
				"text after the closing quote of %s", r.field(len(r.fieldEnds)-1))
		}
	}
	r.line = startLine + lines

	if err := r.checkRecord(startOff, startLine, len(r.fieldEnds), badText, nil); err != nil {
		return Record{}, err
	}
	s := r.text(r.recBuf)
	fields := r.newFields(len(r.fieldEnds))
	prev := 0
	for i, end := range r.fieldEnds {
		fields[i] = s[prev:end]
		prev = end
	}
	return Record{Line: startLine, Offset: startOff, Fields: fields}, nil
}

// slabRecords is how many records' Fields share one allocation. Sharing
// halves the allocations per record; the cost is that a caller keeping one
// record's Fields keeps up to this many records' values in memory.
const slabRecords = 16

// newFields returns a slice for n fields, capacity n, so that a caller's
// append never writes into the next record's fields.
func (r *Reader) newFields(n int) []string {
	if r.arena != nil {
		return r.arena.newFields(n)
	}
	if len(r.slab) < n {
		r.slab = make([]string, n*slabRecords)
	}
	f := r.slab[:n:n]
	r.slab = r.slab[n:]
	return f
}

// checkRecord checks a record whose extent is sound, so that an error
// skips it whole: its field count and its text. split, when not nil, fills
// recBuf and fieldEnds for badTextMsg (the fast path does not).
func (r *Reader) checkRecord(startOff, startLine int64, n int, badText bool, split func()) error {
	if h := len(r.header); h > 0 && n != h {
		msg := fmt.Sprintf("%d fields, the header has %d", n, h)
		if !r.named {
			msg = fmt.Sprintf("%d fields, the first record has %d", n, h)
		}
		return &LineError{Line: startLine, Offset: startOff, Msg: msg}
	}
	if badText {
		if split != nil {
			split()
		}
		return &LineError{Line: startLine, Offset: startOff, Msg: r.badTextMsg()}
	}
	return nil
}

// noQuote stands for "no quote further on the line" in quote positions.
const noQuote = int(^uint(0) >> 2)

// spanFields finds the fields of a one-line record whose every field is
// a contiguous piece of the line: unquoted, or quoted without a doubled
// quote. It fills r.spans with start and end offsets and reports whether
// the line qualified; lines that do not (doubled quotes, quoted line
// breaks, any syntax error) go through the general parser, which copies
// and reports errors. qAt is the index of the first quote or noQuote.
// This saves a copy per field on most lines.
func (r *Reader) spanFields(content []byte, qAt int) bool {
	delim, quote := r.delim, r.quote
	spans := r.spans[:0]
	pos := 0
	for {
		end := len(content)
		i := bytes.IndexByte(content[pos:], delim)
		if i >= 0 {
			end = pos + i
		}
		if qAt >= end {
			spans = append(spans, pos, end)
			if i < 0 {
				break
			}
			pos = end + 1
			continue
		}
		if !r.onlySpace(content[pos:qAt]) {
			return false
		}
		start := qAt + 1
		j := bytes.IndexByte(content[start:], quote)
		if j < 0 {
			return false
		}
		end = start + j
		k := end + 1
		if k < len(content) && content[k] == quote {
			return false
		}
		for k < len(content) && r.isSpace(content[k]) {
			k++
		}
		spans = append(spans, start, end)
		if k == len(content) {
			break
		}
		if content[k] != delim {
			return false
		}
		pos = k + 1
		if qAt = bytes.IndexByte(content[pos:], quote); qAt < 0 {
			qAt = noQuote
		} else {
			qAt += pos
		}
	}
	r.spans = spans
	return true
}

// copySpans fills recBuf and fieldEnds from r.spans, for badTextMsg.
func (r *Reader) copySpans(content []byte) {
	r.recBuf = r.recBuf[:0]
	r.fieldEnds = r.fieldEnds[:0]
	for i := 0; i < len(r.spans); i += 2 {
		r.recBuf = append(r.recBuf, content[r.spans[i]:r.spans[i+1]]...)
		r.fieldEnds = append(r.fieldEnds, len(r.recBuf))
	}
}

// validText reports whether a decoded line is valid UTF-8 without NUL.
func validText(b []byte) bool {
	return utf8.Valid(b) && bytes.IndexByte(b, 0) < 0
}

// badTextMsg names the first field of the current record holding text that
// is not valid in the file's encoding, or a NUL byte.
func (r *Reader) badTextMsg() string {
	prev := 0
	for i, end := range r.fieldEnds {
		f := r.recBuf[prev:end]
		prev = end
		if !utf8.Valid(f) {
			return fmt.Sprintf("invalid %s text in %s", r.enc, r.field(i))
		}
		if bytes.IndexByte(f, 0) >= 0 {
			return fmt.Sprintf("NUL byte in %s (is the file UTF-16 or binary?)", r.field(i))
		}
	}
	return "invalid text"
}
