package runcontract

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/failure"
)

// Every kind of end survives the trip through a termination message.
func TestOutcomeRoundTrip(t *testing.T) {
	for _, o := range []Outcome{
		{Kind: Completed},
		{Kind: SafetyStopped, Stop: &SafetyStop{Deprovisions: 230, ManagedUsers: 1000, DeprovisionStop: true}},
		{Kind: Rejected, Reason: v1alpha1.ReasonInvalidMapping, Message: `mapping[mail]: the file has no column "email"`, SHA256: strings.Repeat("a", 64)},
		{Kind: SourceChanged, Message: "SourceChanged: the source is b, but the preview was made of the file a; nothing was written", SHA256: "b"},
		{Kind: Failed, Message: "writing to the directory: Unreachable: the database did not answer"},
	} {
		msg := o.Encode()
		if strings.Contains(msg, "\n") {
			t.Errorf("%s: the message has more than one line: %q", o.Kind, msg)
		}
		got := Decode("\n" + msg + "\n")
		if !reflect.DeepEqual(got, o) {
			t.Errorf("%s: decoded %+v from %s", o.Kind, got, msg)
		}
	}
}

// A message that is no outcome (a worker that crashed, a Job that failed
// before its worker wrote one) is a failure that says what there is.
func TestDecodeOfAnythingElseIsAFailure(t *testing.T) {
	for _, msg := range []string{"", "panic: runtime error", `{"outcome":"Exploded"}`, "{broken", `{"safetyStop":true}`} {
		got := Decode(msg)
		if got.Kind != Failed || got.Message != strings.TrimSpace(msg) {
			t.Errorf("%q decoded as %+v", msg, got)
		}
	}
	// A safety stop without counts still stops.
	if got := Decode(`{"outcome":"SafetyStop"}`); got.Kind != SafetyStopped || got.Stop == nil {
		t.Errorf("decoded %+v", got)
	}
}

// The worker's errors map to their outcomes, wrapped or not.
func TestOutcomeOf(t *testing.T) {
	rej := failure.Stalledf(v1alpha1.ReasonSourceNotFound, "ConfigMap hr not found")
	changed := failure.ChangedSincePreview(failure.SincePreview, "b", "a")
	templates := failure.ChangedSincePreview(failure.TemplatesSincePreview, "d", "c")
	stop := &SafetyStop{Deprovisions: 3}
	for _, c := range []struct {
		stop *SafetyStop
		err  error
		want Outcome
	}{
		{nil, nil, Outcome{Kind: Completed}},
		{stop, nil, Outcome{Kind: SafetyStopped, Stop: stop}},
		{nil, fmt.Errorf("preview: %w", rej), Outcome{Kind: Rejected, Reason: v1alpha1.ReasonSourceNotFound, Message: "preview: ConfigMap hr not found", SHA256: "f"}},
		{nil, fmt.Errorf("import: %w", changed), Outcome{Kind: SourceChanged, Message: "SourceChanged: import: the source is b, but the preview was made of the file a; nothing was written", SHA256: "b"}},
		{nil, templates, Outcome{Kind: SourceChanged, Message: "SourceChanged: the invitation templates are d, but the preview rendered c; nothing was written", SHA256: "d"}},
		// A file that changed while read, or since the checkpoint, fails
		// the import: something may have been written.
		{nil, failure.ErrChangedSinceCheckpoint, Outcome{Kind: Failed, Message: "SourceChanged: " + failure.ErrChangedSinceCheckpoint.Error()}},
		{nil, failure.Errorf(v1alpha1.ReasonUnreachable, "dial tcp: refused"), Outcome{Kind: Failed, Message: "Unreachable: dial tcp: refused"}},
		{nil, errors.New("the database went away"), Outcome{Kind: Failed, Message: "the database went away"}},
	} {
		if got := OutcomeOf(c.stop, "f", c.err); !reflect.DeepEqual(got, c.want) {
			t.Errorf("OutcomeOf(%v, %v) = %+v, want %+v", c.stop, c.err, got, c.want)
		}
	}
}

// Lines without a readable identity make any deprovision wait for
// approval: the sentence names them and the exact count to approve.
func TestSafetyStopNamesUnreadableLines(t *testing.T) {
	s := Decode(Outcome{Kind: SafetyStopped, Stop: &SafetyStop{Deprovisions: 2, ManagedUsers: 300, DeprovisionStop: true, UnreadableLines: 1}}.Encode()).Stop
	if s == nil || s.UnreadableLines != 1 {
		t.Fatalf("decoded %+v", s)
	}
	spec := v1alpha1.UserImportSpec{MissingUsers: v1alpha1.MissingDelete}
	got := s.Sentence(spec)
	for _, want := range []string{"1 line of the file has no readable identity", "delete 2 of 300", "approvedDeprovisions: 2"} {
		if !strings.Contains(got, want) {
			t.Errorf("sentence %q lacks %q", got, want)
		}
	}
}
