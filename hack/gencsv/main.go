// Command gencsv writes a realistic HR export CSV file for tests and
// benchmarks, deterministic by seed:
//
//	go run ./hack/gencsv -rows 1000000 -seed 1 -o users.csv
//	go run ./hack/gencsv -seed 2 -changed-from users.csv -percent 5 -o users2.csv
//
// With -changed-from, the rows of FILE are copied with -percent of them
// changed (a new title, department or location), as a later export of
// the same HR system would be.
package main

import (
	"bufio"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/userimport/user-import-operator/internal/hrgen"
)

func main() {
	rows := flag.Int("rows", 1000, "number of data rows")
	seed := flag.Uint64("seed", 1, "seed; the same seed gives the same file")
	from := flag.String("changed-from", "", "copy this file, changing -percent of its rows")
	percent := flag.Float64("percent", 5, "percent of rows changed with -changed-from")
	out := flag.String("o", "-", "output file (- for stdout)")
	flag.Parse()
	if err := run(*rows, *seed, *from, *percent, *out); err != nil {
		fmt.Fprintln(os.Stderr, "gencsv:", err)
		os.Exit(1)
	}
}

func run(rows int, seed uint64, from string, percent float64, out string) error {
	var w io.Writer = os.Stdout
	if out != "-" {
		f, err := os.Create(out)
		if err != nil {
			return err
		}
		defer f.Close()
		w = f
	}
	bw := bufio.NewWriterSize(w, 1<<20)
	cw := csv.NewWriter(bw)
	if from == "" {
		if err := Write(cw, rows, seed); err != nil {
			return err
		}
	} else if err := copyChanged(cw, from, seed, percent); err != nil {
		return err
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return err
	}
	return bw.Flush()
}

// Write writes the header and rows rows of seed.
func Write(cw *csv.Writer, rows int, seed uint64) error {
	if err := cw.Write(hrgen.Header); err != nil {
		return err
	}
	for i := range rows {
		if err := cw.Write(hrgen.Row(seed, i)); err != nil {
			return err
		}
	}
	return nil
}

func copyChanged(cw *csv.Writer, from string, seed uint64, percent float64) error {
	f, err := os.Open(from)
	if err != nil {
		return err
	}
	defer f.Close()
	r := csv.NewReader(bufio.NewReaderSize(f, 1<<20))
	r.ReuseRecord = true
	header, err := r.Read()
	if err != nil {
		return fmt.Errorf("%s: reading the header: %w", from, err)
	}
	if len(header) < len(hrgen.Header) {
		return fmt.Errorf("%s: not a gencsv file (%d columns)", from, len(header))
	}
	if err := cw.Write(header); err != nil {
		return err
	}
	for i := 0; ; i++ {
		rec, err := r.Read()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		hrgen.Change(rec, seed, i, percent)
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
}
