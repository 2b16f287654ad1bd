package runcontract

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/safetext"
)

// Kind is how a run ended.
type Kind string

const (
	// Completed: the stage ran to its end.
	Completed Kind = "Completed"
	// SafetyStopped: a full import stopped before writing; it waits for
	// approval (Outcome.Stop says what to approve).
	SafetyStopped Kind = "SafetyStop"
	// Rejected: the worker refused the import's spec or file before
	// writing anything; the import waits for an edit, or for its source.
	Rejected Kind = "Rejected"
	// SourceChanged: the source is not the file the preview was made of
	// (or the invitation templates changed); nothing was written.
	SourceChanged Kind = "SourceChanged"
	// Failed: any other end; the import fails.
	Failed Kind = "Failed"
)

// Outcome is how a run ended. A Job's worker writes it as its termination
// message (Encode) and the controller reads it from the pod (Decode); the
// in-process executor hands it over as it is. It holds no value of the
// file: it ends up in conditions and Events.
type Outcome struct {
	Kind Kind `json:"outcome"`
	// Reason is the condition reason of a Rejected run.
	Reason string `json:"reason,omitempty"`
	// Message is one line for a person.
	Message string `json:"message,omitempty"`
	// SHA256 identifies the file the run refused or found changed: the
	// sha256 of a copied file's content, the fingerprint of a file read in
	// place; empty when the run stopped before reading it.
	SHA256 string `json:"sha256,omitempty"`
	// Stop holds the counts of a SafetyStopped run.
	Stop *SafetyStop `json:"stop,omitempty"`
}

// Encode is the termination message of o: one line of JSON.
func (o Outcome) Encode() string {
	b, _ := json.Marshal(o)
	return string(b)
}

// Decode reads a termination message. A message that is no Outcome (a
// worker that crashed, a Job that failed without one) is a Failed outcome
// with that message.
func Decode(msg string) Outcome {
	msg = strings.TrimSpace(msg)
	var o Outcome
	if strings.HasPrefix(msg, "{") && json.Unmarshal([]byte(msg), &o) == nil {
		switch o.Kind {
		case Completed, Rejected, SourceChanged, Failed:
			return o
		case SafetyStopped:
			if o.Stop == nil {
				o.Stop = &SafetyStop{}
			}
			return o
		}
	}
	return Outcome{Kind: Failed, Message: msg}
}

// OutcomeOf is the outcome of a worker's run that returned stop and err:
// a *Rejection is Rejected, a *SourceChangedError SourceChanged, any
// other error Failed (its message made safe to show), a stop
// SafetyStopped.
func OutcomeOf(stop *SafetyStop, err error) Outcome {
	var (
		rej     *Rejection
		changed *SourceChangedError
	)
	switch {
	case errors.As(err, &rej):
		return Outcome{Kind: Rejected, Reason: rej.Reason, Message: rej.Message, SHA256: rej.SHA256}
	case errors.As(err, &changed):
		return Outcome{Kind: SourceChanged, Message: changed.Error(), SHA256: changed.Got}
	case err != nil:
		return Outcome{Kind: Failed, Message: safetext.Of(err)}
	case stop != nil:
		return Outcome{Kind: SafetyStopped, Stop: stop}
	}
	return Outcome{Kind: Completed}
}

// Rejection says that a worker refused the import's spec or file before
// writing anything: the import waits for an edit (or, for Reason
// SourceNotFound, for its source) instead of failing.
type Rejection struct {
	Reason  string
	Message string
	// SHA256 is the sha256 of the file refused; empty when the run
	// stopped before reading it.
	SHA256 string
}

func (r *Rejection) Error() string { return r.Message }

// SourceChangedError says that the source is not the file the preview
// (or --expect-sha256) named. Nothing was written.
type SourceChangedError struct {
	// Got identifies the file fetched, Want the one expected: the sha256
	// of a copied file's content, the fingerprint of a file read in place.
	Got, Want string
	// Templates says that the invitation templates, not the file, differ
	// from the preview's (Got and Want are their sha256).
	Templates bool
}

func (e *SourceChangedError) Error() string {
	if e.Templates {
		return fmt.Sprintf("SourceChanged: the invitation templates are %s, but the preview rendered %s; nothing was written", e.Got, e.Want)
	}
	return fmt.Sprintf("SourceChanged: the source is %s, but the preview was made of the file %s; nothing was written", e.Got, e.Want)
}

// SafetyStop holds the counts of a full import that stopped before
// writing because it would deprovision more users, or remove more
// memberships, than allowed, or replace recovery codes without approval.
type SafetyStop struct {
	Deprovisions int64 `json:"deprovisions"`
	ManagedUsers int64 `json:"managedUsers"`
	// DeprovisionStop and MembershipStop say which threshold stopped the
	// import; a message with neither is a deprovision stop.
	DeprovisionStop    bool  `json:"deprovisionStop,omitempty"`
	MembershipStop     bool  `json:"membershipStop,omitempty"`
	MembershipRemovals int64 `json:"membershipRemovals,omitempty"`
	ManagedMemberships int64 `json:"managedMemberships,omitempty"`
	// UnreadableLines is the number of lines of the file whose identity
	// could not be read: with any, a full import proves nobody absent
	// without approval, whatever the thresholds.
	UnreadableLines int64 `json:"unreadableLines,omitempty"`
	// CodeStop says that an import with recoveryCodes.generate All waits
	// for approvedRecoveryCodes to equal Codes, the codes its preview
	// counted (-1: there is no preview).
	CodeStop bool  `json:"codeStop,omitempty"`
	Codes    int64 `json:"codes,omitempty"`
}

// Sentence tells a person what the full import of spec would do and how
// to approve it: the UserImport's condition and the one-off worker say
// the same.
func (s SafetyStop) Sentence(spec v1alpha1.UserImportSpec) string {
	var parts []string
	if s.UnreadableLines > 0 {
		lines := fmt.Sprintf("%d lines of the file have", s.UnreadableLines)
		if s.UnreadableLines == 1 {
			lines = "1 line of the file has"
		}
		parts = append(parts, lines+" no readable identity (see the errors), so the import cannot tell whether their users are absent")
	}
	if s.DeprovisionStop || (!s.MembershipStop && !s.CodeStop) {
		parts = append(parts, s.deprovisionSentence(spec))
	}
	if s.CodeStop && s.Codes < 0 {
		parts = append(parts, "recoveryCodes.generate All replaces the code of every user of the file: a preview counts them first")
	} else if s.CodeStop {
		parts = append(parts, fmt.Sprintf("the import would give %d users new recovery codes (recoveryCodes.generate All), replacing the codes they have; set spec.safety.approvedRecoveryCodes: %d to approve", s.Codes, s.Codes))
	}
	if s.MembershipStop {
		parts = append(parts, s.membershipSentence(spec))
	}
	return strings.Join(parts, "; ")
}

func (s SafetyStop) membershipSentence(spec v1alpha1.UserImportSpec) string {
	pct := 0.0
	if s.ManagedMemberships > 0 {
		pct = float64(s.MembershipRemovals) * 100 / float64(s.ManagedMemberships)
	}
	var limits []string
	if m := spec.Safety.MaxMembershipRemovals; m != nil {
		limits = append(limits, fmt.Sprintf("%d memberships", *m))
	}
	if p := spec.Safety.MaxMembershipRemovalPercent; p != nil {
		limits = append(limits, fmt.Sprintf("%d %%", *p))
	}
	limit := strings.Join(limits, " or ")
	if limit == "" {
		limit = "the configured limit"
	}
	over := "over the threshold of " + limit
	if s.UnreadableLines > 0 {
		over = "which needs approval"
	}
	return fmt.Sprintf("the import would remove %d of %d memberships of managed groups (%.0f %%), %s; set spec.safety.approvedMembershipRemovals: %d to approve",
		s.MembershipRemovals, s.ManagedMemberships, pct, over, s.MembershipRemovals)
}

func (s SafetyStop) deprovisionSentence(spec v1alpha1.UserImportSpec) string {
	pct := 0.0
	if s.ManagedUsers > 0 {
		pct = float64(s.Deprovisions) * 100 / float64(s.ManagedUsers)
	}
	limit := ""
	if m := spec.Safety.MaxDeprovision; m != nil {
		limit = fmt.Sprintf("%d users", *m)
	}
	if p := spec.Safety.MaxDeprovisionPercent; p != nil {
		if limit != "" {
			limit += " or "
		}
		limit += fmt.Sprintf("%d %%", *p)
	}
	if limit == "" {
		limit = "the configured limit"
	}
	verb := "deactivate"
	if spec.MissingUsers == v1alpha1.MissingDelete {
		verb = "delete"
	}
	over := "over the threshold of " + limit
	if s.UnreadableLines > 0 {
		over = "which needs approval"
	}
	return fmt.Sprintf("a full import would %s %d of %d managed users (%.0f %%), %s; set spec.safety.approvedDeprovisions: %d to approve",
		verb, s.Deprovisions, s.ManagedUsers, pct, over, s.Deprovisions)
}
