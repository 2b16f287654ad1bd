package schedule

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

var dnsLabel = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)

func TestChildName(t *testing.T) {
	at := time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC)
	if got, want := ChildName("nightly", at), "nightly-29579130"; got != want {
		t.Fatalf("ChildName = %q, want %q", got, want)
	}
	// The same instant in another zone is the same run.
	berlin, _ := time.LoadLocation("Europe/Berlin")
	if ChildName("nightly", at.In(berlin)) != ChildName("nightly", at) {
		t.Fatal("the name depends on the zone of the time")
	}
	if ChildName("nightly", at) == ChildName("nightly", at.Add(time.Minute)) {
		t.Fatal("two runs a minute apart share a name")
	}
	// The two 02:30 of the day the clock goes back are different instants;
	// the schedule runs only the first, but were both asked for, they
	// would not collide.
	first, second := time.Date(2026, 10, 25, 0, 30, 0, 0, time.UTC), time.Date(2026, 10, 25, 1, 30, 0, 0, time.UTC)
	if ChildName("n", first) == ChildName("n", second) {
		t.Fatal("the two occurrences of 02:30 share a name")
	}
}

func TestNamesOfLongSchedules(t *testing.T) {
	at := time.Date(2026, 3, 29, 1, 30, 0, 0, time.UTC)
	long := strings.Repeat("hr-export-", 20) + "x" // 201 characters
	other := strings.Repeat("hr-export-", 20) + "y"
	for _, name := range []string{ChildName(long, at), RunNowName(long, "2026-11-25T10:00:00Z"), LabelValue(long)} {
		if len(name) > MaxNameLength || !dnsLabel.MatchString(name) {
			t.Errorf("%q is not a DNS label of at most %d characters", name, MaxNameLength)
		}
	}
	if ChildName(long, at) == ChildName(other, at) {
		t.Error("two long schedule names sharing a prefix give the same child name")
	}
	if LabelValue(long) == LabelValue(other) {
		t.Error("two long schedule names sharing a prefix give the same label value")
	}
	if LabelValue("nightly") != "nightly" {
		t.Error("a short name is not its own label value")
	}
}

func TestRunNowName(t *testing.T) {
	a := RunNowName("nightly", "2026-11-25T10:00:00Z")
	if a != RunNowName("nightly", "2026-11-25T10:00:00Z") {
		t.Fatal("the same token gives two names")
	}
	if a == RunNowName("nightly", "2026-11-25T10:00:01Z") {
		t.Fatal("two tokens give the same name")
	}
	if !strings.HasPrefix(a, "nightly-now-") || !dnsLabel.MatchString(a) {
		t.Fatalf("RunNowName = %q", a)
	}
}
