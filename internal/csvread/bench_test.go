package csvread

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user+system CPU time. The benchmarks report
// MB per CPU-second as well as per wall-second, because on a shared
// two-core machine the wall-clock figure mostly measures the neighbours.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func reportCPU(b *testing.B, start time.Duration, bytesPerOp int) {
	if d := cpuTime() - start; d > 0 {
		b.ReportMetric(float64(bytesPerOp)*float64(b.N)/1e6/d.Seconds(), "MB/cpu-s")
	}
}

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
	start := cpuTime()
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
	reportCPU(b, start, len(data))
}

func BenchmarkEncodingCSV(b *testing.B) {
	data := benchData(benchRows)
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	start := cpuTime()
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
	reportCPU(b, start, len(data))
}

// BenchmarkReaderVsEncodingCSV alternates the two readers over the same
// data in small rounds, so that load from other processes falls on both
// alike, and reports speed/encoding-csv-speed (above 1: csvread is faster)
// from the fastest round of each.
func BenchmarkReaderVsEncodingCSV(b *testing.B) {
	data := benchData(benchRows / 10)
	best := [2]time.Duration{1 << 62, 1 << 62}
	for b.Loop() {
		for k := range 2 {
			start := time.Now()
			n := 0
			if k == 0 {
				r, err := NewReader(bytes.NewReader(data), Options{Header: true, Delimiter: ','})
				if err != nil {
					b.Fatal(err)
				}
				for _, err := r.Next(); err != io.EOF; _, err = r.Next() {
					n++
				}
			} else {
				r := csv.NewReader(bytes.NewReader(data))
				for _, err := r.Read(); err != io.EOF; _, err = r.Read() {
					n++
				}
			}
			if d := time.Since(start); d < best[k] {
				best[k] = d
			}
			if n < benchRows/10 {
				b.Fatalf("read %d records", n)
			}
		}
	}
	b.ReportMetric(float64(best[1])/float64(best[0]), "speed-ratio")
	b.ReportMetric(float64(len(data))/1e6/best[0].Seconds(), "csvread-MB/s")
	b.ReportMetric(float64(len(data))/1e6/best[1].Seconds(), "encoding/csv-MB/s")
}
