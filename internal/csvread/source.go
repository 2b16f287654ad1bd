package csvread

import (
	"bytes"
	"errors"
	"io"
	"unicode/utf16"
	"unicode/utf8"

	"golang.org/x/text/encoding/charmap"
)

// The source layer: a byte buffer over the raw file that hands out physical
// lines decoded to UTF-8 while keeping track of source offsets.
//
// Everything from r.mark (the start of the record being parsed) on stays in
// the buffer, so that a bad record can be re-read from its second line and
// a peeked line can be read again. Because a record is at most MaxLineBytes
// long, the buffer never needs to grow beyond that plus a line ending.

const minBufSize = 64 << 10

// invalidText is written into the decoded text in place of source bytes
// that are not valid in the file's encoding. It is itself never valid
// UTF-8, so one utf8.Valid check per record finds every kind of bad text.
const invalidText = 0xff

// highHalf maps bytes 0x80-0xFF of a single-byte charset to UTF-8, built
// from golang.org/x/text's tables so that per-byte decoding is an index,
// not a call through the transform interface.
type highHalf [128]string

func newHighHalf(cm *charmap.Charmap) *highHalf {
	var t highHalf
	for i := range t {
		r := cm.DecodeByte(byte(0x80 + i))
		if r == utf8.RuneError {
			// x/text maps bytes the charset leaves undefined (0x81, 0x8D,
			// 0x8F, 0x90, 0x9D in Windows-1252) to U+FFFD; they are errors.
			t[i] = string([]byte{invalidText})
			continue
		}
		t[i] = string(r)
	}
	return &t
}

var (
	latin1High      = newHighHalf(charmap.ISO8859_1)
	windows1252High = newHighHalf(charmap.Windows1252)
)

// offset is the source offset of buf[i].
func (r *Reader) offset(i int) int64 { return r.bufOff + int64(i) }

// index is the buffer index of source offset off (which must be buffered).
func (r *Reader) index(off int64) int { return int(off - r.bufOff) }

// fill reads more source bytes into the buffer, first dropping bytes before
// r.mark and growing the buffer up to r.maxBuf. It returns errTooLong when
// the buffer is full of bytes that must be kept, and the source's error
// (io.EOF included) once it has one.
func (r *Reader) fill() error {
	if r.srcErr != nil {
		return r.srcErr
	}
	if r.mark > 0 {
		n := copy(r.buf, r.buf[r.mark:r.w])
		r.bufOff += int64(r.mark)
		r.r -= r.mark
		r.w = n
		r.mark = 0
	}
	if r.w == len(r.buf) {
		if len(r.buf) >= r.maxBuf {
			return errTooLong
		}
		nb := make([]byte, min(max(2*len(r.buf), minBufSize), r.maxBuf))
		copy(nb, r.buf[:r.w])
		r.buf = nb
	}
	for range 100 {
		n, err := r.src.Read(r.buf[r.w:])
		r.w += n
		if err != nil {
			r.srcErr = err
			if n > 0 {
				return nil
			}
			return err
		}
		if n > 0 {
			return nil
		}
	}
	r.srcErr = io.ErrNoProgress
	return r.srcErr
}

// findLineEnd returns the index just past the first line ending in
// buf[from:r.w], or -1 and the index from which a later search must start.
// A line ends with LF (CRLF is LF preceded by a CR that belongs to the
// line ending). In UTF-16 the LF is a whole code unit at an even offset.
func (r *Reader) findLineEnd(from int) (end, next int) {
	switch {
	case r.enc != encUTF16:
		if i := bytes.IndexByte(r.buf[from:r.w], '\n'); i >= 0 {
			return from + i + 1, 0
		}
		return -1, r.w
	case r.bigEndian:
		for j := from; ; {
			i := bytes.IndexByte(r.buf[j:r.w], '\n')
			if i < 0 {
				return -1, max(from, r.w-1)
			}
			p := j + i
			if r.offset(p)%2 == 1 && p > r.r && r.buf[p-1] == 0 {
				return p + 1, 0
			}
			j = p + 1
		}
	default:
		for j := from; ; {
			i := bytes.IndexByte(r.buf[j:r.w], '\n')
			if i < 0 {
				return -1, max(from, r.w-1)
			}
			p := j + i
			if r.offset(p)%2 == 0 {
				if p+1 >= r.w {
					return -1, p
				}
				if r.buf[p+1] == 0 {
					return p + 2, 0
				}
			}
			j = p + 1
		}
	}
}

// nextLine returns the next physical line decoded to UTF-8, with its line
// ending (absent only on the file's last line), and moves past it. The
// text is valid until the next call. At the end of the source it returns
// io.EOF; errTooLong when the line does not end within the buffer limit
// (nothing is consumed then).
func (r *Reader) nextLine() ([]byte, error) {
	if r.enc == encUTF8 {
		// The common case, kept short: a whole line already buffered.
		if i := bytes.IndexByte(r.buf[r.r:r.w], '\n'); i >= 0 {
			raw := r.buf[r.r : r.r+i+1]
			r.r += i + 1
			return raw, nil
		}
	}
	from := r.r
	for {
		end, next := r.findLineEnd(from)
		if end >= 0 {
			raw := r.buf[r.r:end]
			r.r = end
			return r.decode(raw), nil
		}
		if r.srcErr != nil {
			if r.srcErr != io.EOF {
				return nil, r.srcErr
			}
			if r.r == r.w {
				return nil, io.EOF
			}
			raw := r.buf[r.r:r.w]
			r.r = r.w
			return r.decode(raw), nil
		}
		next -= r.r // fill may move the buffer's contents
		if err := r.fill(); err != nil && err != io.EOF {
			return nil, err
		}
		from = r.r + next
	}
}

// skipLine moves past the next physical line however long it is, reading
// and dropping the source as it goes. It returns io.EOF when no byte was
// left.
func (r *Reader) skipLine() error {
	from := r.r
	for {
		end, next := r.findLineEnd(from)
		if end >= 0 {
			r.r = end
			return nil
		}
		if r.srcErr != nil {
			if r.srcErr != io.EOF {
				return r.srcErr
			}
			if r.r == r.w {
				return io.EOF
			}
			r.r = r.w
			return nil
		}
		// Bytes before next hold no line ending: drop them (keeping at
		// least one byte so that r.r == r.w still means "nothing read").
		keep := min(next, r.w-1)
		if keep > r.r {
			r.r = keep
		}
		r.mark = r.r
		if err := r.fill(); err != nil && err != io.EOF {
			return err
		}
		from = r.r
	}
}

// decode returns raw as UTF-8 text. UTF-8 is returned as it is (checked
// later, per record); other encodings are decoded into r.dec.
func (r *Reader) decode(raw []byte) []byte {
	switch r.enc {
	case encUTF8:
		return raw
	case encUTF16:
		return r.decodeUTF16(raw)
	}
	high := latin1High
	if r.enc == encWindows1252 {
		high = windows1252High
	}
	d := r.dec[:0]
	for len(raw) > 0 {
		// Copy the ASCII run in one go; structure bytes are all ASCII.
		i := 0
		for i < len(raw) && raw[i] < utf8.RuneSelf {
			i++
		}
		d = append(d, raw[:i]...)
		if i == len(raw) {
			break
		}
		d = append(d, high[raw[i]-0x80]...)
		raw = raw[i+1:]
	}
	r.dec = d
	return d
}

// decodeUTF16 decodes with the standard library rather than x/text's
// transformer: that one replaces unpaired surrogates with U+FFFD silently,
// which would turn corrupt text into valid-looking values.
func (r *Reader) decodeUTF16(raw []byte) []byte {
	d := r.dec[:0]
	unit := func(i int) rune {
		if r.bigEndian {
			return rune(raw[i])<<8 | rune(raw[i+1])
		}
		return rune(raw[i+1])<<8 | rune(raw[i])
	}
	i := 0
	for ; i+1 < len(raw); i += 2 {
		u := unit(i)
		switch {
		case u < utf8.RuneSelf:
			d = append(d, byte(u))
		case !utf16.IsSurrogate(u):
			d = utf8.AppendRune(d, u)
		case u < 0xdc00 && i+3 < len(raw):
			if rn := utf16.DecodeRune(u, unit(i+2)); rn != utf8.RuneError {
				d = utf8.AppendRune(d, rn)
				i += 2
				continue
			}
			d = append(d, invalidText)
		default:
			d = append(d, invalidText)
		}
	}
	if i < len(raw) {
		d = append(d, invalidText) // half a code unit at the end of the file
	}
	r.dec = d
	return d
}

// unitSize is the number of source bytes per ASCII character.
func (r *Reader) unitSize() int64 {
	if r.enc == encUTF16 {
		return 2
	}
	return 1
}

// startSource handles the byte-order mark at the start of the file.
func (r *Reader) startSource() error {
	for r.w < 3 && r.srcErr == nil {
		if err := r.fill(); err != nil && err != io.EOF {
			return err
		}
	}
	b := r.buf[:r.w]
	utf16LE := bytes.HasPrefix(b, []byte{0xff, 0xfe})
	utf16BE := bytes.HasPrefix(b, []byte{0xfe, 0xff})
	utf8BOM := bytes.HasPrefix(b, []byte{0xef, 0xbb, 0xbf})
	switch r.enc {
	case encUTF16:
		switch {
		case utf16LE:
			r.bigEndian = false
		case utf16BE:
			r.bigEndian = true
		default:
			return errors.New("csvread: UTF-16 file has no byte-order mark (FF FE or FE FF), so its byte order is unknown; save it with one, or as UTF-8")
		}
		r.r = 2
	default:
		switch {
		case utf16LE || utf16BE:
			return errors.New("csvread: file starts with a UTF-16 byte-order mark; set the encoding to UTF-16")
		case utf8BOM && r.enc == encUTF8:
			r.r = 3
		case utf8BOM:
			return errors.New("csvread: file starts with a UTF-8 byte-order mark but the encoding is " + r.enc.String() + "; set the encoding to UTF-8")
		}
	}
	r.mark = r.r
	return nil
}
