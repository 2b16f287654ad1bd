package runcontract

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/failure"
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

// OutcomeOf is the outcome of a worker's run that returned stop and err,
// having read the file sha256 ("" when it did not): a file or templates
// changed since the preview are SourceChanged, a stalled *failure.Error
// (the spec or file refused before anything was written) Rejected, any
// other error Failed, a stop SafetyStopped. Messages are made safe to
// show; a Failed one starts with its reason, when it has one.
func OutcomeOf(stop *SafetyStop, sha256 string, err error) Outcome {
	if err == nil {
		if stop != nil {
			return Outcome{Kind: SafetyStopped, Stop: stop}
		}
		return Outcome{Kind: Completed}
	}
	msg := safetext.Of(err)
	if c := failure.ChangedOf(err); c != nil && (c.Since == failure.SincePreview || c.Since == failure.TemplatesSincePreview) {
		return Outcome{Kind: SourceChanged, Message: failure.Titled(err, msg), SHA256: c.Got}
	}
	if failure.IsStalled(err) {
		return Outcome{Kind: Rejected, Reason: failure.ReasonOf(err, ""), Message: msg, SHA256: sha256}
	}
	return Outcome{Kind: Failed, Message: failure.Titled(err, msg)}
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
