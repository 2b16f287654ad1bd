package schedule

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"time"

	"github.com/userimport/user-import-operator/internal/dnsname"
)

// MaxNameLength is the longest child name made: a DNS label, so that the
// name fits wherever Kubernetes wants one (Job names, label values).
const MaxNameLength = dnsname.MaxLength

// ChildName is the name of the UserImport of the run scheduled at t: the
// schedule's name and t in minutes since the Unix epoch, as the CronJob
// controller names Jobs. The same run always gets the same name, which is
// how the controller never creates a run twice.
func ChildName(schedule string, t time.Time) string {
	return withSuffix(schedule, strconv.FormatInt(t.Unix()/60, 10))
}

// RunNowName is the name of the UserImport started by the run-now
// annotation with value token: the same token always gives the same name.
func RunNowName(schedule, token string) string {
	return withSuffix(schedule, "now-"+hash(token))
}

// ChangeName is the name of the UserImport of the n-th run on change. The
// count, kept in the schedule's status, makes the same run get the same
// name, and content that comes back after another (A, B, A) a new one.
func ChangeName(schedule string, n int64) string {
	return withSuffix(schedule, "change-"+strconv.FormatInt(n, 10))
}

// LabelValue is the value of the label naming the schedule on its
// imports: the name itself when it fits a label value (63 characters),
// else a prefix of it and a hash.
func LabelValue(schedule string) string {
	if len(schedule) <= MaxNameLength {
		return schedule
	}
	return shorten(schedule, MaxNameLength)
}

// withSuffix returns "<schedule>-<suffix>", shortening the schedule's
// name (a prefix and a hash of the whole) when the result would be longer
// than MaxNameLength.
func withSuffix(schedule, suffix string) string {
	if room := MaxNameLength - len(suffix) - 1; len(schedule) > room {
		schedule = shorten(schedule, room)
	}
	return schedule + "-" + suffix
}

// shorten returns a prefix of name and the hash of name, n characters at
// most, starting and ending with an alphanumeric character.
func shorten(name string, n int) string {
	return dnsname.Join(name, hash(name), n)
}

func hash(s string) string {
	f := fnv.New32a()
	f.Write([]byte(s))
	return fmt.Sprintf("%08x", f.Sum32())
}
