package schedule

import (
	"strings"
	"testing"
	"time"
)

func mustParse(t *testing.T, expr, zone string) *Schedule {
	t.Helper()
	s, err := Parse(expr, zone)
	if err != nil {
		t.Fatalf("Parse(%q, %q): %v", expr, zone, err)
	}
	return s
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestParseRefuses(t *testing.T) {
	for _, tc := range []struct {
		expr, zone, want string
	}{
		{"", "UTC", "empty"},
		{"61 * * * *", "UTC", "spec.schedule"},
		{"* * * *", "UTC", "spec.schedule"},
		{"0 2 * * * *", "UTC", "spec.schedule"},
		{"@every 1h", "UTC", "@every"},
		{"@fortnightly", "UTC", "spec.schedule"},
		{"CRON_TZ=Europe/Berlin 0 2 * * *", "UTC", "spec.timeZone"},
		{"TZ=UTC 0 2 * * *", "", "spec.timeZone"},
		{"0 2 * * *", "Mars/Olympus", "spec.timeZone"},
		{"0 2 * * *", "Local", "not Local"},
	} {
		_, err := Parse(tc.expr, tc.zone)
		if err == nil {
			t.Errorf("Parse(%q, %q) accepted", tc.expr, tc.zone)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q, %q) = %v, want a message with %q", tc.expr, tc.zone, err, tc.want)
		}
	}
}

func TestParseAccepts(t *testing.T) {
	for _, tc := range []struct{ expr, zone string }{
		{"0 2 * * *", ""},
		{"*/5 * * * *", "UTC"},
		{"@daily", "Europe/Berlin"},
		{"@Hourly", "America/New_York"},
		{"0 2 * * MON-FRI", "Asia/Kolkata"},
		{"0 0 1 jan *", "Australia/Lord_Howe"},
	} {
		if _, err := Parse(tc.expr, tc.zone); err != nil {
			t.Errorf("Parse(%q, %q): %v", tc.expr, tc.zone, err)
		}
	}
}

func TestNext(t *testing.T) {
	for _, tc := range []struct {
		name, expr, zone, after string
		want                    []string // the next scheduled times, in UTC
	}{
		{"every five minutes", "*/5 * * * *", "UTC", "2026-01-01T10:02:30Z",
			[]string{"2026-01-01T10:05:00Z", "2026-01-01T10:10:00Z"}},
		{"strictly after a scheduled time", "0 * * * *", "UTC", "2026-01-01T10:00:00Z",
			[]string{"2026-01-01T11:00:00Z"}},
		{"daily in Berlin winter", "0 2 * * *", "Europe/Berlin", "2026-01-10T00:00:00Z",
			[]string{"2026-01-10T01:00:00Z", "2026-01-11T01:00:00Z"}},
		{"daily in Berlin summer", "@daily", "Europe/Berlin", "2026-07-10T12:00:00Z",
			[]string{"2026-07-10T22:00:00Z"}},
		{"weekdays in New York", "30 9 * * 1-5", "America/New_York", "2026-01-09T15:00:00Z", // a Friday, after 09:30 EST
			[]string{"2026-01-12T14:30:00Z"}},
		{"half-hour zone", "0 8 * * *", "Asia/Kolkata", "2026-01-01T00:00:00Z",
			[]string{"2026-01-01T02:30:00Z"}},

		// Europe/Berlin goes forward at 2026-03-29 01:00Z (02:00 CET → 03:00 CEST).
		{"forward: 02:30 runs at 03:30 CEST", "30 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z",
			[]string{"2026-03-29T01:30:00Z", "2026-03-30T00:30:00Z"}},
		{"forward: 02:00 runs at 03:00 CEST", "0 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z",
			[]string{"2026-03-29T01:00:00Z", "2026-03-30T00:00:00Z"}},
		{"forward: 03:00 runs once", "0 3 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z",
			[]string{"2026-03-29T01:00:00Z", "2026-03-30T01:00:00Z"}},
		{"forward: hourly has no 02:00", "0 * * * *", "Europe/Berlin", "2026-03-29T00:30:00Z",
			[]string{"2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"}},
		{"forward: every 20 minutes in the gap", "*/20 2 * * *", "Europe/Berlin", "2026-03-28T12:00:00Z",
			[]string{"2026-03-29T01:00:00Z", "2026-03-29T01:20:00Z", "2026-03-29T01:40:00Z", "2026-03-30T00:00:00Z"}},

		// Europe/Berlin goes back at 2026-10-25 01:00Z (03:00 CEST → 02:00 CET).
		{"back: 02:30 runs once, at 02:30 CEST", "30 2 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z",
			[]string{"2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"}},
		{"back: asked during the second 02:xx", "30 2 * * *", "Europe/Berlin", "2026-10-25T01:15:00Z",
			[]string{"2026-10-26T01:30:00Z"}},
		{"back: hourly runs each wall-clock hour once", "0 * * * *", "Europe/Berlin", "2026-10-24T23:30:00Z",
			[]string{"2026-10-25T00:00:00Z", "2026-10-25T02:00:00Z", "2026-10-25T03:00:00Z"}},
		{"back: 01:30 is not repeated", "30 1 * * *", "Europe/Berlin", "2026-10-24T12:00:00Z",
			[]string{"2026-10-24T23:30:00Z", "2026-10-26T00:30:00Z"}},

		// Lord Howe moves by 30 minutes: 02:00 → 02:30 on 2026-10-04.
		{"half-hour shift forward", "15 2 * * *", "Australia/Lord_Howe", "2026-10-03T12:00:00Z",
			[]string{"2026-10-03T15:45:00Z", "2026-10-04T15:15:00Z"}},
		{"half-hour shift: a shifted run comes after a later time", "15,30 2 * * *", "Australia/Lord_Howe", "2026-10-03T12:00:00Z",
			// 02:15 does not exist; 02:30 comes first, then 02:15 shifted to 02:45.
			[]string{"2026-10-03T15:30:00Z", "2026-10-03T15:45:00Z", "2026-10-04T15:15:00Z"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustParse(t, tc.expr, tc.zone)
			at := utc(tc.after)
			for i, w := range tc.want {
				got := s.Next(at)
				if !got.Equal(utc(w)) {
					t.Fatalf("run %d: Next(%s) = %s (%s), want %s (%s)", i+1,
						at.In(s.loc).Format(time.RFC3339), got.UTC().Format(time.RFC3339), got.Format(time.RFC3339),
						w, utc(w).In(s.loc).Format(time.RFC3339))
				}
				at = got
			}
		})
	}
}

// TestDSTDays walks through a whole day of each change, minute by minute
// as a controller woken at random would, and counts the runs.
func TestDSTDays(t *testing.T) {
	for _, tc := range []struct {
		name, expr, day string
		want            int
	}{
		{"forward day, 02:30", "30 2 * * *", "2026-03-29", 1},
		{"back day, 02:30", "30 2 * * *", "2026-10-25", 1},
		{"forward day, hourly", "0 * * * *", "2026-03-29", 23},
		{"back day, hourly", "0 * * * *", "2026-10-25", 24},
		{"back day, every minute", "* * * * *", "2026-10-25", 24 * 60},
		{"forward day, every minute", "* * * * *", "2026-03-29", 23 * 60},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mustParse(t, tc.expr, "Europe/Berlin")
			day, _ := time.ParseInLocation("2006-01-02", tc.day, s.loc)
			end := day.AddDate(0, 0, 1)
			seen := map[time.Time]bool{}
			cursor := s.Next(day.Add(-time.Second))
			for now := day; now.Before(end); now = now.Add(37 * time.Second) {
				d := s.Due(cursor, now)
				for t0 := s.Next(cursor.Add(-time.Nanosecond)); d.Count > 0 && !t0.After(d.Latest); t0 = s.Next(t0) {
					if seen[t0] {
						t.Fatalf("%s ran twice", t0)
					}
					seen[t0] = true
				}
				if d.Count > 0 {
					cursor = d.Next
				}
			}
			if len(seen) != tc.want {
				t.Fatalf("%d runs, want %d", len(seen), tc.want)
			}
		})
	}
}

func TestDue(t *testing.T) {
	s := mustParse(t, "0 * * * *", "UTC")
	for _, tc := range []struct {
		name, from, now string
		count           int
		latest, next    string
	}{
		{"nothing due yet", "2026-01-01T11:00:00Z", "2026-01-01T10:59:59Z", 0, "", "2026-01-01T11:00:00Z"},
		{"due on the second", "2026-01-01T11:00:00Z", "2026-01-01T11:00:00Z", 1, "2026-01-01T11:00:00Z", "2026-01-01T12:00:00Z"},
		{"due a bit later", "2026-01-01T11:00:00Z", "2026-01-01T11:00:42Z", 1, "2026-01-01T11:00:00Z", "2026-01-01T12:00:00Z"},
		{"five hours down", "2026-01-01T11:00:00Z", "2026-01-01T15:30:00Z", 5, "2026-01-01T15:00:00Z", "2026-01-01T16:00:00Z"},
		{"a week down", "2026-01-01T11:00:00Z", "2026-01-08T11:30:00Z", 7*24 + 1, "2026-01-08T11:00:00Z", "2026-01-08T12:00:00Z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := s.Due(utc(tc.from), utc(tc.now))
			if d.Count != tc.count {
				t.Errorf("Count = %d, want %d", d.Count, tc.count)
			}
			if tc.latest == "" && !d.Latest.IsZero() || tc.latest != "" && !d.Latest.Equal(utc(tc.latest)) {
				t.Errorf("Latest = %s, want %q", d.Latest, tc.latest)
			}
			if !d.Next.Equal(utc(tc.next)) {
				t.Errorf("Next = %s, want %s", d.Next, tc.next)
			}
		})
	}
}

func TestNeverFires(t *testing.T) {
	s := mustParse(t, "0 0 30 2 *", "UTC")
	if n := s.Next(utc("2026-01-01T00:00:00Z")); !n.IsZero() {
		t.Fatalf("Next = %s for 30 February", n)
	}
	if d := s.Due(utc("2026-01-01T00:00:00Z"), utc("2027-01-01T00:00:00Z")); d.Count != 0 || !d.Next.IsZero() {
		t.Fatalf("Due = %+v for 30 February", d)
	}
}

// A run on the day the clock goes forward says which skipped wall-clock
// time it stands for; no other run does.
func TestShiftedFrom(t *testing.T) {
	cases := []struct {
		expr, zone, at string
		want           string // "" when the run stands for no skipped time
	}{
		{"30 2 * * *", "Europe/Berlin", "2026-03-29T01:30:00Z", "02:30"},
		{"0 * * * *", "Europe/Berlin", "2026-03-29T01:00:00Z", "02:00"}, // 03:00 CEST is also 02:00
		{"*/20 2 * * *", "Europe/Berlin", "2026-03-29T01:20:00Z", "02:20"},
		{"0 * * * *", "Europe/Berlin", "2026-03-29T02:00:00Z", ""},  // 04:00 CEST
		{"30 2 * * *", "Europe/Berlin", "2026-03-30T00:30:00Z", ""}, // the next day
		{"30 2 * * *", "Europe/Berlin", "2026-10-25T00:30:00Z", ""}, // the clock goes back
		{"0 3 * * *", "Europe/Berlin", "2026-03-29T01:00:00Z", ""},  // 03:00 exists
		{"15 2 * * *", "Australia/Lord_Howe", "2026-10-03T15:45:00Z", "02:15"},
		{"30 2 * * *", "UTC", "2026-03-29T02:30:00Z", ""},
	}
	for _, c := range cases {
		s, err := Parse(c.expr, c.zone)
		if err != nil {
			t.Fatal(err)
		}
		at, _ := time.Parse(time.RFC3339, c.at)
		w, ok := s.ShiftedFrom(at)
		got := ""
		if ok {
			got = w.Format("15:04")
		}
		if got != c.want {
			t.Errorf("%q in %s at %s: shifted from %q, want %q", c.expr, c.zone, c.at, got, c.want)
		}
	}
}
