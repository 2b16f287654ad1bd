// Package csvsafe writes CSV files that are safe to open in a
// spreadsheet. A cell that begins with =, +, -, @, a tab or a carriage
// return is run as a formula by Excel, LibreOffice and Google Sheets
// ("CSV injection"); every CSV the product writes goes through this
// package, which prefixes such cells with a single quote so that they are
// shown as text.
package csvsafe

import (
	"encoding/csv"
	"io"
)

// Cell returns s as it is safe to write into a CSV cell.
func Cell(s string) string {
	if s == "" {
		return s
	}
	switch s[0] {
	case '=', '+', '-', '@', '\t', '\r':
		return "'" + s
	}
	return s
}

// Writer is a csv.Writer that escapes formula cells.
type Writer struct {
	w   *csv.Writer
	buf []string
}

// NewWriter returns a Writer to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: csv.NewWriter(w)} }

// Write writes one record, escaping its cells.
func (w *Writer) Write(record []string) error {
	w.buf = w.buf[:0]
	for _, c := range record {
		w.buf = append(w.buf, Cell(c))
	}
	return w.w.Write(w.buf)
}

// Flush writes buffered data and returns the first error of any write.
func (w *Writer) Flush() error {
	w.w.Flush()
	return w.w.Error()
}
