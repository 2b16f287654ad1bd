// Package schedule reads the cron schedule of an ImportSchedule in its time
// zone and says when runs are due. Everything here is a pure function of
// its arguments, so that the controller's decisions can be table-tested.
//
// Schedules are read on the wall clock of their zone, with two rules for
// the days the clock changes (robfig/cron alone would skip a run when the
// clock goes forward and run twice when it goes back):
//
//   - A wall-clock time that does not exist, because the clock jumps
//     forward over it, runs the same length of time after the jump: with
//     Europe/Berlin, 02:30 on the last Sunday of March runs at 03:30 CEST
//     (the clock goes from 02:00 CET to 03:00 CEST). It is never skipped.
//   - A wall-clock time that happens twice, because the clock goes back,
//     runs once, at its first occurrence: 02:30 on the last Sunday of
//     October runs at 02:30 CEST, not again at 02:30 CET.
package schedule

import (
	"errors"
	"fmt"
	"strings"
	"time"

	// The zone database is compiled in: the operator's image has no
	// /usr/share/zoneinfo.
	_ "time/tzdata"

	"github.com/robfig/cron/v3"
)

// Schedule is a parsed cron expression in a time zone.
type Schedule struct {
	// spec is evaluated on wall-clock times written as UTC times (the
	// fields of the local time, with no offset), where no day has a
	// missing or repeated hour; resolve turns its answers into instants.
	spec cron.Schedule
	loc  *time.Location
}

// maxSteps bounds the wall-clock times Next looks at for one answer. Only
// the times of a repeated hour are passed over, so a few hundred would do.
const maxSteps = 10000

// Parse reads a five-field cron expression or one of the descriptors
// @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly, in
// the IANA time zone zone ("" is UTC). The error says what is wrong, for a
// person to read in a condition.
func Parse(expr, zone string) (*Schedule, error) {
	expr = strings.TrimSpace(expr)
	if expr == "" {
		return nil, errors.New("spec.schedule is empty")
	}
	if strings.HasPrefix(expr, "TZ=") || strings.HasPrefix(expr, "CRON_TZ=") {
		return nil, errors.New("spec.schedule must not name a time zone; use spec.timeZone")
	}
	if strings.HasPrefix(expr, "@") {
		// Descriptors are matched case-insensitively, as the API server does.
		expr = strings.ToLower(expr)
		if strings.HasPrefix(expr, "@every") {
			return nil, errors.New("spec.schedule: @every is not supported; use a cron expression")
		}
	}
	spec, err := cron.ParseStandard(expr)
	if err != nil {
		return nil, fmt.Errorf("spec.schedule %q: %v", expr, err)
	}
	loc, err := LoadZone(zone)
	if err != nil {
		return nil, err
	}
	return &Schedule{spec: spec, loc: loc}, nil
}

// LoadZone loads an IANA time zone; "" is UTC. "Local" is refused: the
// operator's local zone is not something a schedule can rely on.
func LoadZone(zone string) (*time.Location, error) {
	switch zone {
	case "", "UTC":
		return time.UTC, nil
	case "Local":
		return nil, errors.New("spec.timeZone must be an IANA time zone name such as \"Europe/Berlin\", not Local")
	}
	loc, err := time.LoadLocation(zone)
	if err != nil {
		return nil, fmt.Errorf("spec.timeZone %q is not a known IANA time zone", zone)
	}
	return loc, nil
}

// Location is the time zone of the schedule.
func (s *Schedule) Location() *time.Location { return s.loc }

// Next returns the first scheduled time strictly after after, or the zero
// time when the schedule never fires again (such as "0 0 30 2 *").
func (s *Schedule) Next(after time.Time) time.Time {
	after = after.In(s.loc)
	w := wall(after)
	// Wall-clock times the clock just jumped over run shifted forward by
	// the jump, after times that read earlier than after: right after a
	// jump, start looking that much earlier.
	_, offNow := after.Zone()
	if _, offDayBefore := after.Add(-24 * time.Hour).Zone(); offNow > offDayBefore {
		jump := time.Duration(offNow-offDayBefore) * time.Second
		if _, offJumpBefore := after.Add(-jump).Zone(); offJumpBefore < offNow {
			w = w.Add(-jump)
		}
	}
	for i := 0; i < maxSteps; i++ {
		w = s.nextWall(w)
		if w.IsZero() {
			return time.Time{}
		}
		// Wall-clock times of a repeated hour resolve to their first
		// occurrence, which may lie before after: pass over them.
		t := s.resolve(w)
		if !t.After(after) {
			continue
		}
		if wall(t).Equal(w) {
			return t
		}
		// w fell into a gap and runs shifted to t; a time after the gap
		// but before t may come first.
		return s.earliestBefore(w, t, after)
	}
	return time.Time{}
}

// earliestBefore returns the earliest scheduled instant after after among
// t (the shifted run of the wall-clock time w in a gap) and the runs of
// the wall-clock times between w and t's reading.
func (s *Schedule) earliestBefore(w, t, after time.Time) time.Time {
	best := t
	end := wall(t)
	for i := 0; i < maxSteps; i++ {
		w = s.nextWall(w)
		if w.IsZero() || !w.Before(end) {
			break
		}
		if c := s.resolve(w); c.After(after) && c.Before(best) {
			best = c
		}
	}
	return best
}

// ShiftedFrom tells whether the run at t stands for a wall-clock time of
// the schedule that did not exist, because the clock jumped over it, and
// returns that time in the schedule's zone (its fields; the offset is the
// one before the jump). With Europe/Berlin, "30 2 * * *" runs at 03:30 CEST
// on the last Sunday of March for 02:30; "0 * * * *" runs at 03:00 CEST
// once, for 02:00 and 03:00 alike.
func (s *Schedule) ShiftedFrom(t time.Time) (time.Time, bool) {
	t = t.In(s.loc)
	_, off := t.Zone()
	_, offDayBefore := t.Add(-24 * time.Hour).Zone()
	if off <= offDayBefore {
		return time.Time{}, false
	}
	jump := time.Duration(off-offDayBefore) * time.Second
	w := wall(t).Add(-jump)
	if !s.resolve(w).Equal(t) || wall(s.resolve(w)).Equal(w) {
		return time.Time{}, false // w exists, or runs at another instant
	}
	if !s.nextWall(w.Add(-time.Minute)).Equal(w) {
		return time.Time{}, false // not a time of the schedule
	}
	return time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), 0, 0, time.FixedZone("", offDayBefore)), true
}

// Due describes the scheduled times in a window.
type Due struct {
	// Count is the number of scheduled times in the window.
	Count int
	// Latest is the last of them; zero when Count is 0.
	Latest time.Time
	// Next is the first scheduled time after the window; zero when the
	// schedule never fires again.
	Next time.Time
}

// Due returns the scheduled times t with from <= t <= now. The controller
// keeps from (its cursor: the first scheduled time not yet decided on) in
// status.nextScheduleTime.
func (s *Schedule) Due(from, now time.Time) Due {
	var d Due
	t := s.Next(from.Add(-time.Nanosecond))
	for !t.IsZero() && !t.After(now) {
		d.Count++
		d.Latest = t
		t = s.Next(t)
	}
	d.Next = t
	return d
}

// nextWall returns the first wall-clock time of the schedule after the
// minute of w. Cron fires on whole minutes; asking robfig/cron from the
// last second of the minute spares it a loop over the seconds.
func (s *Schedule) nextWall(w time.Time) time.Time {
	return s.spec.Next(w.Truncate(time.Minute).Add(59 * time.Second))
}

// wall returns the wall-clock fields of t as a UTC time.
func wall(t time.Time) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.UTC)
}

// resolve returns the instant at which the wall-clock time w (fields
// written as UTC) happens in the schedule's zone: the first occurrence of
// a repeated time, and for a time the clock jumps over, the instant that
// far after the jump.
func (s *Schedule) resolve(w time.Time) time.Time {
	if s.loc == time.UTC {
		return w
	}
	// time.Date gives one of the instants showing w, or for a w in a gap,
	// an instant showing another time.
	t := time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), w.Second(), w.Nanosecond(), s.loc)
	_, off := t.Zone()
	_, offDayBefore := t.Add(-24 * time.Hour).Zone()
	_, offDayAfter := t.Add(24 * time.Hour).Zone()
	if off == offDayBefore && off == offDayAfter {
		return t // no change of the clock near w
	}
	// Every instant showing w is w minus the zone's offset at that instant;
	// the offsets in force around w are those a day either side (zones do
	// not change their offset twice within a day).
	var first, latest time.Time
	for _, o := range []int{offDayBefore, off, offDayAfter} {
		c := w.Add(-time.Duration(o) * time.Second).In(s.loc)
		if latest.IsZero() || c.After(latest) {
			latest = c
		}
		if wall(c).Equal(w) && (first.IsZero() || c.Before(first)) {
			first = c
		}
	}
	if !first.IsZero() {
		return first
	}
	// w falls into a gap: the offset before the jump is the smaller one,
	// and subtracting it gives the latest candidate, which shows w shifted
	// forward by the length of the gap.
	return latest
}
