package mapping

import (
	"bytes"
	"encoding/csv"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/userimport/user-import-operator/api/v1alpha1"
)

var benchHeader = []string{"employee_id", "email", "first_name", "last_name", "department", "title", "manager_email", "active", "hire_date", "cost_center", "location", "phone"}

// benchMapping is a typical HR mapping.
var benchMapping = []v1alpha1.AttributeMapping{
	{Attribute: "userName", Column: "email", Identity: true, Transforms: []v1alpha1.Transform{{Type: "Trim"}, {Type: "Lower"}}},
	{Attribute: "name.givenName", Column: "first_name", Transforms: []v1alpha1.Transform{{Type: "Trim"}}},
	{Attribute: "name.familyName", Column: "last_name", Transforms: []v1alpha1.Transform{{Type: "Trim"}}, Required: true},
	{Attribute: "displayName", Template: "{{.first_name}} {{.last_name}}"},
	{Attribute: "department", Column: "department"},
	{Attribute: "title", Column: "title"},
	{Attribute: "employeeNumber", Column: "employee_id", Required: true},
	{Attribute: "active", Column: "active", Check: "Boolean", Default: ptr("true")},
	{Attribute: "manager", Column: "manager_email", Transforms: []v1alpha1.Transform{{Type: "Trim"}, {Type: "Lower"}}},
	{Attribute: "hireDate", Column: "hire_date", Transforms: []v1alpha1.Transform{{Type: "DateFormat", FromLayout: "02.01.2006", ToLayout: "2006-01-02"}}},
}

// benchRows returns n deterministic HR rows: mixed-case e-mail addresses
// (so Lower has work), non-ASCII names, some empty fields.
func benchRows(n int) [][]string {
	first := []string{"Jane", "Jörg", "Ana", "Łukasz", "Mei", "Olusegun", "Søren", "Zoë"}
	last := []string{"Doe", "Müller", "García", "Nowak", "Chen", "Adeyemi", "Ørsted", "O'Neil"}
	// Addresses are transliterated, as HR systems do.
	mailFirst := []string{"Jane", "Joerg", "Ana", "Lukasz", "Mei", "Olusegun", "Soeren", "Zoe"}
	mailLast := []string{"Doe", "Mueller", "Garcia", "Nowak", "Chen", "Adeyemi", "Oersted", "ONeil"}
	dept := []string{"Sales", "Engineering", "Finance", "People & Culture", ""}
	title := []string{"Engineer", "Senior Engineer", "Account Executive", "Controller"}
	active := []string{"true", "yes", "1", "FALSE", ""}
	rows := make([][]string, n)
	for i := range rows {
		fi, li := i%len(first), (i/len(first))%len(last)
		f, l := first[fi], last[li]
		rows[i] = []string{
			fmt.Sprintf("E%06d", i),
			fmt.Sprintf("%s.%s%d@Corp.Example", mailFirst[fi], mailLast[li], i),
			f, l,
			dept[i%len(dept)],
			title[i%len(title)],
			fmt.Sprintf("boss%d@corp.example", i%97),
			active[i%len(active)],
			fmt.Sprintf("%02d.%02d.%d", i%28+1, i%12+1, 1990+i%35),
			fmt.Sprintf("CC-%04d", i%500),
			"Berlin",
			"+49 30 1234567",
		}
	}
	return rows
}

func benchMapper(b *testing.B) *Mapper {
	m, err := Compile(benchMapping, benchHeader)
	if err != nil {
		b.Fatal(err)
	}
	return m
}

// reportPerRow reports wall and CPU nanoseconds per row of a benchmark
// that reads benchFileRows rows per operation. CPU time (of the whole
// process, the garbage collector included) is the figure to compare on a
// machine shared with other work.
func reportPerRow(b *testing.B, cpuAtStart time.Duration) {
	rows := float64(b.N * benchFileRows)
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/rows, "ns/row")
	b.ReportMetric(float64((cpuTime()-cpuAtStart).Nanoseconds())/rows, "cpu-ns/row")
}

// BenchmarkMap maps one row per operation.
//
//	go test -run '^$' -bench . -benchmem ./internal/mapping
func BenchmarkMap(b *testing.B) {
	m := benchMapper(b)
	rows := benchRows(4096)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := m.Map(rows[i%len(rows)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkMapRecord maps one row per operation into a reused Record.
func BenchmarkMapRecord(b *testing.B) {
	m := benchMapper(b)
	rows := benchRows(4096)
	var rec Record
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if err := m.MapRecord(rows[i%len(rows)], &rec); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// benchCSV is the rows of benchRows as a CSV file.
func benchCSV(b *testing.B, n int) []byte {
	var buf bytes.Buffer
	w := csv.NewWriter(&buf)
	if err := w.Write(benchHeader); err != nil {
		b.Fatal(err)
	}
	if err := w.WriteAll(benchRows(n)); err != nil {
		b.Fatal(err)
	}
	return buf.Bytes()
}

const benchFileRows = 20000

// readCSV reads a whole file with encoding/csv, calling fn for every row.
func readCSV(b *testing.B, data []byte, fn func([]string)) {
	r := csv.NewReader(bytes.NewReader(data))
	if _, err := r.Read(); err != nil {
		b.Fatal(err)
	}
	for {
		rec, err := r.Read()
		if err == io.EOF {
			return
		}
		if err != nil {
			b.Fatal(err)
		}
		fn(rec)
	}
}

// BenchmarkCSVRead is the baseline: a bare encoding/csv read of the file.
func BenchmarkCSVRead(b *testing.B) {
	data := benchCSV(b, benchFileRows)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	cpu := cpuTime()
	for b.Loop() {
		readCSV(b, data, func([]string) {})
	}
	reportPerRow(b, cpu)
}

// BenchmarkCSVReadMap reads the same file and maps every row, to compare
// with BenchmarkCSVRead.
func BenchmarkCSVReadMap(b *testing.B) {
	data := benchCSV(b, benchFileRows)
	m := benchMapper(b)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	cpu := cpuTime()
	for b.Loop() {
		readCSV(b, data, func(rec []string) {
			if _, err := m.Map(rec); err != nil {
				b.Fatal(err)
			}
		})
	}
	reportPerRow(b, cpu)
}

// BenchmarkCSVReadMapRecord is BenchmarkCSVReadMap with a reused Record.
func BenchmarkCSVReadMapRecord(b *testing.B) {
	data := benchCSV(b, benchFileRows)
	m := benchMapper(b)
	var rec Record
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	cpu := cpuTime()
	for b.Loop() {
		readCSV(b, data, func(fields []string) {
			if err := m.MapRecord(fields, &rec); err != nil {
				b.Fatal(err)
			}
		})
	}
	reportPerRow(b, cpu)
}

// BenchmarkMapGeneralTemplate maps a row whose template needs
// text/template (functions), the slow path.
func BenchmarkMapGeneralTemplate(b *testing.B) {
	entries := append([]v1alpha1.AttributeMapping(nil), benchMapping...)
	entries[3] = v1alpha1.AttributeMapping{Attribute: "displayName", Template: "{{.first_name | substr 0 1}}. {{.last_name | upper}}"}
	m, err := Compile(entries, benchHeader)
	if err != nil {
		b.Fatal(err)
	}
	rows := benchRows(4096)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		if _, err := m.Map(rows[i%len(rows)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}
