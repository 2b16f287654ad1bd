package csvsafe

import (
	"bytes"
	"compress/gzip"
	"encoding/csv"
	"fmt"
	"io"
	"testing"
)

// A compressed CSV stays within its budget whatever is written to it,
// escapes formula cells, and ends with the count of the rows left out.
func TestGzipWriterKeepsItsBudget(t *testing.T) {
	for _, rows := range []int{10, 300000} {
		const budget = 200 << 10
		w := NewGzipWriter(budget, []string{"line", "identity"})
		for i := range rows {
			w.Write([]string{fmt.Sprint(i), fmt.Sprintf("=cmd|%x", uint64(i)*0x9E3779B97F4A7C15)})
		}
		z := w.Close(func(n int64) []string { return []string{"", fmt.Sprintf("%d more", n)} })
		if len(z) > budget {
			t.Fatalf("%d rows: %d compressed bytes, over the budget of %d", rows, len(z), budget)
		}
		zr, err := gzip.NewReader(bytes.NewReader(z))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(zr)
		recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if recs[1][1][0] != '\'' {
			t.Fatalf("a formula cell is written as %q", recs[1][1])
		}
		if w.Omitted == 0 {
			if len(recs) != rows+1 {
				t.Fatalf("%d rows within the budget, %d read back", rows, len(recs)-1)
			}
			continue
		}
		if last := recs[len(recs)-1][1]; last != fmt.Sprintf("%d more", w.Omitted) || int(w.Rows+w.Omitted) != rows || len(recs) != int(w.Rows)+2 {
			t.Fatalf("%d rows: kept %d, omitted %d, last line %q", rows, w.Rows, w.Omitted, last)
		}
	}
}
