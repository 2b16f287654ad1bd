package csvread

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"testing"
)

// benchData is an HR-export-like file: benchRows rows of about 130 bytes,
// some quoted fields, some non-ASCII names.
func benchData(rows int) []byte {
	var b bytes.Buffer
	b.WriteString("employeeId,givenName,familyName,email,department,title,manager,location,startDate,status\n")
	names := []string{"Anna", "Jürgen", "Zoë", "Mohammed", "Siobhán", "Li"}
	for i := range rows {
		fmt.Fprintf(&b, "E%07d,%s,Family%d,user%d@example.com,\"Research, Development\",Senior Engineer,E%07d,Berlin,2021-03-%02d,active\n",
			i, names[i%len(names)], i, i, i/10, i%28+1)
	}
	return b.Bytes()
}

const benchRows = 100_000

func BenchmarkReader(b *testing.B) {
	data := benchData(benchRows)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		r, err := NewReader(bytes.NewReader(data), Options{Header: true, Delimiter: ','})
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for {
			_, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != benchRows {
			b.Fatalf("read %d records, want %d", n, benchRows)
		}
	}
}

func BenchmarkEncodingCSV(b *testing.B) {
	data := benchData(benchRows)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		r := csv.NewReader(bytes.NewReader(data))
		n := 0
		for {
			_, err := r.Read()
			if err == io.EOF {
				break
			}
			if err != nil {
				b.Fatal(err)
			}
			n++
		}
		if n != benchRows+1 {
			b.Fatalf("read %d records, want %d", n, benchRows+1)
		}
	}
}
