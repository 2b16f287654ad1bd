// Package csvread is a streaming CSV reader for HR exports. It reads one
// record at a time with memory bounded by Options.MaxLineBytes and a read
// buffer, reports each bad record as a *LineError and goes on, and gives
// every record the source byte offset at which it starts, so that an
// interrupted import can Resume at a checkpoint.
//
// # Lines and records
//
// A physical line ends with LF or CRLF; the last line of a file may lack
// one. A record is one physical line, or several when a quoted field holds
// line breaks (a CRLF inside a quoted field becomes LF). Lines are numbered
// from 1 at the start of the file, counting the lines skipped by SkipRows,
// the header and blank lines, so the numbers match what an editor shows.
// Record.Line is the line where a record starts; the next record's number
// accounts for the line breaks inside quoted fields.
//
// Blank lines (nothing but the line ending) are skipped. A line of only
// delimiters (",,,") is a record of empty fields, not a blank line.
//
// A carriage return not followed by a line feed is not a line ending:
// files with CR-only line endings (classic Mac OS) are not supported, and
// such a CR outside quotes is an error that says so. Inside a quoted field
// it is kept as part of the value.
//
// # Offsets
//
// Offsets count bytes of the source file in its own encoding, byte-order
// mark included, so that a checkpoint can seek in the original file.
// The reader finds line endings in the raw bytes (in UTF-16, as whole
// code units) and decodes one physical line at a time, which keeps the
// source length of every line exact whatever the encoding. Record.Offset is
// where the record's first line starts. Reader.Offset is where reading will
// go on (just past the last record or bad record returned), and
// Reader.Line its line number: the pair a checkpoint stores and Resume
// takes. Resume after any returned offset yields exactly the records (and
// errors) that reading on would have yielded.
//
// # Quotes
//
// A field is quoted when its first character other than spaces is the
// quote character; inside it the delimiter and line breaks are data and a
// doubled quote is one quote. Spaces (and tabs, unless tab is the
// delimiter) before the opening and after the closing quote are ignored,
// since spreadsheets and hand edits produce `a, "b"`. Unquoted fields are
// kept exactly, spaces included. With Quote '\” a name like O'Brien must
// be quoted, as any field holding the quote character.
//
// # What is an error
//
// NewReader fails (no records can be read) when the options are invalid,
// a UTF-16 file has no byte-order mark, the byte-order mark contradicts
// the encoding, the file ends before the header (ErrNoHeader: an empty or
// blank file, or SkipRows beyond its end), or the header is malformed or
// has an empty or duplicate column name. Without a header the first record
// sets the column count, so a malformed first record fails NewReader too.
//
// Next returns a *LineError for a bad record and continues after it:
//
//   - Broken structure (a quote inside an unquoted field, text after a
//     closing quote, a quote not closed before the end of the file, a bare
//     CR, a record longer than MaxLineBytes): the record's end cannot be
//     trusted, so the error is reported at the line where it starts and
//     reading resumes on the next physical line. Lines that a broken
//     quote swallowed are read again, so no line is ever dropped without an
//     error: each is part of a good record or of a reported error. A quote
//     left open mid-file therefore costs at most MaxLineBytes of look-ahead.
//   - Sound structure but bad content (a field count other than the
//     header's, text that is not valid in the file's encoding, a NUL
//     byte): the whole record is skipped.
//
// Column names are kept exactly as written (not trimmed), and compared
// exactly when looking for duplicates; a name of only spaces is empty.
//
// Messages name the line, field number and column name and the rule
// broken, never a field's value, because values are personal data.
//
// # Encodings
//
// UTF-8 (a leading byte-order mark is skipped) is read without copying
// lines and checked with one utf8.Valid per line. ISO-8859-1 and
// Windows-1252 are decoded by table from golang.org/x/text/encoding/charmap;
// the five bytes Windows-1252 leaves undefined are errors. UTF-16 needs a
// byte-order mark (FF FE or FE FF) and is decoded per line with
// unicode/utf16, treating unpaired surrogates as errors rather than
// replacing them silently as x/text's transformer would.
//
// # Speed
//
// On UTF-8 input the reader is at least as fast as encoding/csv
// (BenchmarkReaderVsEncodingCSV reports the ratio). A line is found with
// one bytes.IndexByte in the buffer and not copied; quotes are searched
// once per line rather than once per field; a one-line record whose quoted
// fields hold no doubled quote (nearly all of them) becomes one string with
// the fields sliced from it, without copying field by field; the []string
// of up to 16 consecutive records comes from one allocation. Records with
// doubled quotes or quoted line breaks go through a general parser that
// copies, as encoding/csv does; fuzzing checks that both agree.
//
// A caller that handles records in batches and keeps none of their values
// past a batch (or copies what it keeps) can have them read into an Arena
// (Reader.SetArena) that it resets between batches: the records' text and
// Fields then reuse the same memory instead of being allocated, which
// spares the collector most of its work on a large file.
package csvread
