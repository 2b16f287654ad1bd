package csvsafe

import (
	"bytes"
	"encoding/csv"
	"testing"
)

func TestFormulaCellsAreEscaped(t *testing.T) {
	in := [][]string{
		{"line", "identity", "message"},
		{"2", "=HYPERLINK(\"http://x\")", "+1"},
		{"3", "-2+3", "@SUM(A1)"},
		{"4", "\tcmd", "\rcmd"},
		{"5", "plain", "a=b"},
		{"6", "", "'quoted"},
	}
	var buf bytes.Buffer
	w := NewWriter(&buf)
	for _, r := range in {
		if err := w.Write(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	got, err := csv.NewReader(&buf).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	want := [][]string{
		{"line", "identity", "message"},
		{"2", "'=HYPERLINK(\"http://x\")", "'+1"},
		{"3", "'-2+3", "'@SUM(A1)"},
		{"4", "'\tcmd", "'\rcmd"},
		{"5", "plain", "a=b"},
		{"6", "", "'quoted"},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d records, want %d", len(got), len(want))
	}
	for i := range want {
		for j := range want[i] {
			if got[i][j] != want[i][j] {
				t.Errorf("record %d cell %d: got %q, want %q", i, j, got[i][j], want[i][j])
			}
		}
	}
	// Nothing read back starts a formula.
	for _, r := range got {
		for _, c := range r {
			if c != "" && bytes.ContainsRune([]byte("=+-@\t\r"), rune(c[0])) {
				t.Errorf("cell %q would run as a formula", c)
			}
		}
	}
}
