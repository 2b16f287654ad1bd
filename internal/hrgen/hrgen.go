// Package hrgen generates realistic, deterministic HR export rows for
// tests and benchmarks: row i of seed s is always the same, and can be
// computed on its own (a benchmark directory generates users on the fly
// instead of holding them in memory).
package hrgen

import (
	"fmt"
	"math/rand/v2"
	"strings"
)

// Header is the column names of a generated file.
var Header = []string{"employee_id", "email", "first_name", "last_name", "department", "title", "manager_email", "hire_date", "location", "cost_center", "status"}

// Column indexes into a row.
const (
	ColEmployeeID = iota
	ColEmail
	ColFirstName
	ColLastName
	ColDepartment
	ColTitle
	ColManagerEmail
	ColHireDate
	ColLocation
	ColCostCenter
	ColStatus
)

type name struct{ display, ascii string }

var firstNames = []name{
	{"Anna", "anna"}, {"José", "jose"}, {"Zoë", "zoe"}, {"Łukasz", "lukasz"}, {"Søren", "soren"},
	{"Çağla", "cagla"}, {"Noah", "noah"}, {"Émilie", "emilie"}, {"Jürgen", "juergen"}, {"Mia", "mia"},
	{"Björn", "bjorn"}, {"Ana", "ana"}, {"Oliver", "oliver"}, {"Fatma", "fatma"}, {"Hiroshi", "hiroshi"},
	{"Siobhán", "siobhan"}, {"Luca", "luca"}, {"Nguyễn", "nguyen"}, {"Grace", "grace"}, {"Mateusz", "mateusz"},
	{"Ingrid", "ingrid"}, {"Raúl", "raul"}, {"Chloé", "chloe"}, {"Ahmed", "ahmed"}, {"Elif", "elif"},
}

var lastNames = []name{
	{"García", "garcia"}, {"Müller", "mueller"}, {"Smith", "smith"}, {"Kowalski", "kowalski"}, {"Øvergaard", "overgaard"},
	{"Yılmaz", "yilmaz"}, {"Dubois", "dubois"}, {"Rossi", "rossi"}, {"Tanaka", "tanaka"}, {"O'Brien", "obrien"},
	{"Nowak", "nowak"}, {"Fernández", "fernandez"}, {"Schröder", "schroeder"}, {"Larsson", "larsson"}, {"Nguyen", "nguyen"},
	{"Papadopoulos", "papadopoulos"}, {"Novák", "novak"}, {"Johnson", "johnson"}, {"Šimić", "simic"}, {"Weiß", "weiss"},
}

var departments = []string{"Engineering", "Sales", "Marketing", "Finance", "Human Resources", "Operations", "Legal", "Customer Success", "Research", "IT"}
var titles = []string{"Software Engineer", "Senior Software Engineer", "Account Executive", "Analyst", "Manager", "Director", "Specialist", "Consultant", "Coordinator", "Team Lead"}
var locations = []string{"Berlin", "München", "Zürich", "Paris", "London", "New York", "São Paulo", "Kraków", "Tokyo", "Köln", "Wien", "Madrid"}

// rng returns the random stream of row i; stream picks one of several
// independent streams of the same row.
func rng(seed uint64, i int, stream uint64) *rand.Rand {
	return rand.New(rand.NewPCG(seed^stream*0x9e3779b97f4a7c15, uint64(i)))
}

func names(seed uint64, i int) (name, name) {
	r := rng(seed, i, 1)
	return firstNames[r.IntN(len(firstNames))], lastNames[r.IntN(len(lastNames))]
}

// EmployeeID is the identity of row i.
func EmployeeID(i int) string { return fmt.Sprintf("E%07d", i+1) }

// Index is the row index of an EmployeeID, or -1.
func Index(employeeID string) int {
	var n int
	if _, err := fmt.Sscanf(employeeID, "E%d", &n); err != nil || n < 1 {
		return -1
	}
	return n - 1
}

// Email is the email address of row i.
func Email(seed uint64, i int) string {
	f, l := names(seed, i)
	return fmt.Sprintf("%s.%s.%d@example.com", f.ascii, l.ascii, i+1)
}

// Row returns the fields of row i (0-based) of seed.
func Row(seed uint64, i int) []string {
	f, l := names(seed, i)
	r := rng(seed, i, 2)
	mgr := ""
	if i > 0 {
		mgr = Email(seed, i/8)
	}
	status := "active"
	if r.IntN(50) == 0 {
		status = "inactive"
	}
	return []string{
		EmployeeID(i),
		fmt.Sprintf("%s.%s.%d@example.com", f.ascii, l.ascii, i+1),
		f.display,
		l.display,
		departments[r.IntN(len(departments))],
		titles[r.IntN(len(titles))],
		mgr,
		fmt.Sprintf("%04d-%02d-%02d", 2000+r.IntN(25), 1+r.IntN(12), 1+r.IntN(28)),
		locations[r.IntN(len(locations))],
		fmt.Sprintf("CC-%04d", 1000+r.IntN(440)),
		status,
	}
}

// Change changes, in place, the fields of row i with probability
// percent/100, as a later export would (a new title, department or
// location), and reports whether it did. The choice depends on seed and i
// only.
func Change(fields []string, seed uint64, i int, percent float64) bool {
	r := rng(seed, i, 3)
	if r.Float64()*100 >= percent {
		return false
	}
	switch r.IntN(3) {
	case 0:
		fields[ColTitle] = next(titles, fields[ColTitle])
	case 1:
		fields[ColDepartment] = next(departments, fields[ColDepartment])
	default:
		fields[ColLocation] = next(locations, fields[ColLocation])
	}
	return true
}

// next returns the value after cur in values, so that a change always
// differs from the old value.
func next(values []string, cur string) string {
	for i, v := range values {
		if strings.EqualFold(v, cur) {
			return values[(i+1)%len(values)]
		}
	}
	return values[0]
}
