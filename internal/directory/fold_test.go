package directory

import "testing"

// The folds give each spelling of an identity the key its directory
// gives it, and nothing else: LDAP ignores case and reads any run of
// space characters as one blank, Active Directory upper-cases and reads
// a run of spaces as one, SQLite's NOCASE lowers A to Z only, the
// C library one letter to one, ICU by the full Unicode mapping.
func TestFolds(t *testing.T) {
	for _, tc := range []struct {
		name     string
		fold     func(string) string
		in, want string
	}{
		{"case and blanks: plain", FoldCaseAndBlanks, "Ann.Lee", "ann.lee"},
		{"case and blanks: one blank", FoldCaseAndBlanks, "Ann Lee", "ann lee"},
		{"case and blanks: a run", FoldCaseAndBlanks, "Ann   Lee", "ann lee"},
		{"case and blanks: around", FoldCaseAndBlanks, " Ann Lee  ", "ann lee"},
		{"case and blanks: no-break spaces", FoldCaseAndBlanks, "Ann\u00a0\u202fLee", "ann lee"},
		{"case and blanks: a tab is no blank", FoldCaseAndBlanks, "Ann\tLee", "ann\tlee"},
		{"case and blanks: beyond ASCII", FoldCaseAndBlanks, "ZOË", "zoë"},
		{"case and blanks: a combining accent", FoldCaseAndBlanks, "JOSE\u0301", "jos\u00e9"},
		{"case and blanks: a ligature", FoldCaseAndBlanks, "\ufb01sh", "fish"},
		{"AD: plain", FoldUpperCaseAndSpaces, "Ann.Lee", "ANN.LEE"},
		{"AD: spaces", FoldUpperCaseAndSpaces, "  Ann   Lee ", "ANN LEE"},
		{"AD: a no-break space is no space", FoldUpperCaseAndSpaces, "Ann\u00a0Lee", "ANN\u00a0LEE"},
		{"AD: a combining accent stays", FoldUpperCaseAndSpaces, "jose\u0301", "JOSE\u0301"},
		{"AD: a final sigma", FoldUpperCaseAndSpaces, "οδος", "ΟΔΟΣ"},
		{"AD: nothing beyond ASCII into it", FoldUpperCaseAndSpaces, "ıan ſam", "ıAN ſAM"},
		{"AD: title case stays", FoldUpperCaseAndSpaces, "ǅ ǆ", "ǅ Ǆ"},
		{"AD: beyond the Basic Multilingual Plane", FoldUpperCaseAndSpaces, "\U00010428", "\U00010428"},
		{"case loosely: ASCII", FoldCaseLoosely, "Ann.Lee", "ann.lee"},
		{"case loosely: sigmas", FoldCaseLoosely, "ΟΔΟΣ οδος", "οδοσ οδοσ"},
		{"case loosely: a sharp s", FoldCaseLoosely, "straße", "strasse"},
		{"case loosely: a dotted I", FoldCaseLoosely, "İan i\u0307an", "ian ian"},
		{"case", FoldCase, "ZOË  X", "zoë  x"},
		{"case: one letter to one", FoldCase, "İLKER ΟΔΟΣ", "ilker οδοσ"},
		{"case fully: a dot above", FoldCaseFully, "İLKER", "i\u0307lker"},
		{"case fully: a final sigma", FoldCaseFully, "ΟΔΟΣ ΣΑ", "οδος σα"},
		{"ASCII case", FoldASCIICase, "ZOË Ab", "zoË ab"},
		{"ASCII case: lower already", FoldASCIICase, "zoë", "zoë"},
		{"trailing spaces", FoldTrailingSpaces, " ann  ", " ann"},
	} {
		if got := tc.fold(tc.in); got != tc.want {
			t.Errorf("%s: %q folds to %q, want %q", tc.name, tc.in, got, tc.want)
		}
	}
}
