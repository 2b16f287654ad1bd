package csvread

import (
	"errors"
	"fmt"
)

// LineError is a bad record. Reading may go on: the next call to Next
// continues after it. Msg never quotes field values, which are personal
// data; it names the rule broken and the field number (and column name,
// which is not personal data).
type LineError struct {
	Line   int64 // 1-based physical line where the bad record starts
	Offset int64 // source byte offset where the bad record starts
	Msg    string
}

// Error returns "line N: Msg".
func (e *LineError) Error() string {
	return fmt.Sprintf("line %d: %s", e.Line, e.Msg)
}

// ErrNoHeader is wrapped by NewReader's error when there is no header line
// (or, without a header, no first record): an empty file, one holding only
// blank lines, or one that ends within SkipRows.
var ErrNoHeader = errors.New("csvread: no header line")

// errTooLong is nextLine's signal that no line ending was found within the
// buffer limit.
var errTooLong = errors.New("csvread: line too long")
