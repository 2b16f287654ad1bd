package csvsafe

import (
	"bytes"
	"compress/gzip"
)

// GzipWriter writes a CSV through gzip into memory, up to a budget of
// compressed bytes: rows beyond it are counted, not kept, so a report of
// any size takes bounded memory and space.
type GzipWriter struct {
	buf    bytes.Buffer
	zw     *gzip.Writer
	cw     *Writer
	budget int
	// Rows counts the rows kept, Omitted those left out.
	Rows, Omitted int64
	// pending is the number of rows written since the last flush: the
	// compressed size is known only after one.
	pending int
	closed  bool
}

// flushEvery bounds how far the compressed size can lag behind the rows
// written, and budgetLag the bytes they can take compressed, so that a
// GzipWriter does not go past its budget.
const (
	flushEvery = 256
	budgetLag  = 64 << 10
)

// NewGzipWriter returns a GzipWriter of at most budget compressed bytes,
// which begins with header.
func NewGzipWriter(budget int, header []string) *GzipWriter {
	g := &GzipWriter{budget: budget}
	g.zw = gzip.NewWriter(&g.buf)
	g.cw = NewWriter(g.zw)
	_ = g.cw.Write(header)
	return g
}

// Write writes one record, or counts it as omitted once the budget is
// reached.
func (g *GzipWriter) Write(record []string) {
	if g.closed || g.buf.Len()+budgetLag > g.budget {
		g.Omitted++
		return
	}
	_ = g.cw.Write(record)
	g.Rows++
	if g.pending++; g.pending >= flushEvery {
		_ = g.cw.Flush()
		_ = g.zw.Flush()
		g.pending = 0
	}
}

// Close ends the CSV, with last when rows were omitted (a record that
// says how many, made by last), and returns the compressed bytes. Close
// again returns the same bytes.
func (g *GzipWriter) Close(last func(omitted int64) []string) []byte {
	if g.closed {
		return g.buf.Bytes()
	}
	g.closed = true
	if g.Omitted > 0 && last != nil {
		_ = g.cw.Write(last(g.Omitted))
	}
	_ = g.cw.Flush()
	_ = g.zw.Close()
	return g.buf.Bytes()
}
