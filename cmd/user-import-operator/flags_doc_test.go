package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// flagsOf runs a command with -h and returns the names of the flags its
// usage lists.
func flagsOf(t *testing.T, run func([]string) error) []string {
	t.Helper()
	f, err := os.CreateTemp(t.TempDir(), "usage")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// The flag sets print their usage to os.Stderr.
	saved := os.Stderr
	os.Stderr = f
	_ = run([]string{"-h"})
	os.Stderr = saved
	usage, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(string(usage), -1) {
		names = append(names, m[1])
	}
	if len(names) < 10 {
		t.Fatalf("found %d flags in the usage:\n%s", len(names), usage)
	}
	return names
}

// undocumented returns the flags the page does not name as `--flag`.
func undocumented(page string, flags []string) []string {
	var out []string
	for _, f := range flags {
		if !strings.Contains(page, "`--"+f+"`") {
			out = append(out, f)
		}
	}
	return out
}

// Every flag of the manager and the worker is in the operations page.
func TestOperationsPageNamesEveryFlag(t *testing.T) {
	page, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	for name, run := range map[string]func([]string) error{"manager": runManager, "worker": runWorker} {
		if missing := undocumented(string(page), flagsOf(t, run)); len(missing) > 0 {
			t.Errorf("docs/operations.md does not name these %s flags: --%s", name, strings.Join(missing, ", --"))
		}
	}
}

func TestAMissingFlagFailsTheCheck(t *testing.T) {
	page := "| `--executor` | job |\n| `--leader-elect` | |"
	got := undocumented(page, []string{"executor", "leader-elect", "brand-new-flag"})
	if len(got) != 1 || got[0] != "brand-new-flag" {
		t.Errorf("undocumented = %v, want [brand-new-flag]", got)
	}
}
