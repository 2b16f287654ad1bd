package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ConcurrencyPolicy says what a schedule does when a run is due while an
// import it started earlier is not final.
// +kubebuilder:validation:Enum=Allow;Forbid;Replace
type ConcurrencyPolicy string

const (
	// ConcurrencyAllow starts the new import; it queues behind the running
	// one on the directory.
	ConcurrencyAllow ConcurrencyPolicy = "Allow"
	// ConcurrencyForbid skips the run.
	ConcurrencyForbid ConcurrencyPolicy = "Forbid"
	// ConcurrencyReplace cancels the running import and starts the new one.
	ConcurrencyReplace ConcurrencyPolicy = "Replace"
)

// ImportScheduleSpec describes when imports run and what they import.
// +kubebuilder:validation:XValidation:rule="(has(self.schedule) && size(self.schedule) > 0) || (has(self.triggers) && has(self.triggers.onChange) && self.triggers.onChange)",message="spec: set schedule, triggers.onChange, or both"
// +kubebuilder:validation:XValidation:rule="!has(self.skipIfUnchanged) || !self.skipIfUnchanged || !has(self.successfulHistoryLimit) || self.successfulHistoryLimit > 0",message="spec.skipIfUnchanged compares the source with the last Completed import, which spec.successfulHistoryLimit: 0 deletes: keep at least 1"
// +kubebuilder:validation:XValidation:rule="!has(self.template.spec.source.persistentVolumeClaim) || ((!has(self.skipIfUnchanged) || !self.skipIfUnchanged) && (!has(self.triggers) || !has(self.triggers.onChange) || !self.triggers.onChange))",message="spec.skipIfUnchanged and spec.triggers.onChange compare the source before a run, and a PersistentVolumeClaim's file is read by the import's worker only: use a schedule that runs every time, or a source the manager reads (configMap, secret, http, sftp, s3)"
type ImportScheduleSpec struct {
	// schedule in cron form: five fields (minute hour day-of-month month
	// day-of-week, as in "0 2 * * *") or one of @yearly, @monthly, @weekly,
	// @daily, @hourly. Optional with triggers.onChange: without it the
	// schedule runs on change only.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=128
	// +kubebuilder:validation:XValidation:rule=`self.matches(r'^(?i)(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(\*|[0-5]?[0-9](-[0-5]?[0-9])?)(/[1-9][0-9]?)?(,(\*|[0-5]?[0-9](-[0-5]?[0-9])?)(/[1-9][0-9]?)?)* +(\*|(2[0-3]|[01]?[0-9])(-(2[0-3]|[01]?[0-9]))?)(/[1-9][0-9]?)?(,(\*|(2[0-3]|[01]?[0-9])(-(2[0-3]|[01]?[0-9]))?)(/[1-9][0-9]?)?)* +(\?|(\*|(3[01]|[12][0-9]|0?[1-9])(-(3[01]|[12][0-9]|0?[1-9]))?)(/[1-9][0-9]?)?)(,(\?|(\*|(3[01]|[12][0-9]|0?[1-9])(-(3[01]|[12][0-9]|0?[1-9]))?)(/[1-9][0-9]?)?))* +(\*|(1[0-2]|0?[1-9]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)(-(1[0-2]|0?[1-9]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC))?)(/[1-9][0-9]?)?(,(\*|(1[0-2]|0?[1-9]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)(-(1[0-2]|0?[1-9]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC))?)(/[1-9][0-9]?)?)* +(\?|(\*|([0-6]|SUN|MON|TUE|WED|THU|FRI|SAT)(-([0-6]|SUN|MON|TUE|WED|THU|FRI|SAT))?)(/[1-9][0-9]?)?)(,(\?|(\*|([0-6]|SUN|MON|TUE|WED|THU|FRI|SAT)(-([0-6]|SUN|MON|TUE|WED|THU|FRI|SAT))?)(/[1-9][0-9]?)?))*)$')`,message="spec.schedule must be a cron expression of five fields (minute hour day-of-month month day-of-week, e.g. \"0 2 * * *\") or one of @yearly, @monthly, @weekly, @daily, @hourly"
	// +optional
	Schedule string `json:"schedule,omitempty"`

	// triggers start runs on a change of what the imports read, beside (or
	// instead of) the clock.
	// +optional
	Triggers *ScheduleTriggers `json:"triggers,omitempty"`

	// timeZone is the IANA time zone the schedule is read in, such as
	// "Europe/Berlin". Defaults to UTC.
	// +kubebuilder:default=UTC
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule=`self.matches(r'^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$') && self != 'Local' && (self == 'UTC' || timestamp('2000-01-01T00:00:00Z').getHours(self) >= 0)`,message="spec.timeZone must be an IANA time zone name such as \"Europe/Berlin\" or \"UTC\""
	// +optional
	TimeZone string `json:"timeZone,omitempty"`

	// suspend stops new runs; imports already started go on.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// concurrencyPolicy says what happens when a run is due while an earlier
	// import of this schedule is not final: Allow (the default: it queues),
	// Forbid (the run is skipped) or Replace (the earlier one is cancelled).
	// +kubebuilder:default=Allow
	// +optional
	ConcurrencyPolicy ConcurrencyPolicy `json:"concurrencyPolicy,omitempty"`

	// startingDeadlineSeconds: a run that could not start within this many
	// seconds of its scheduled time is skipped and counted as missed.
	// +kubebuilder:validation:Minimum=0
	// +optional
	StartingDeadlineSeconds *int64 `json:"startingDeadlineSeconds,omitempty"`

	// successfulHistoryLimit is the number of Completed imports kept.
	// +kubebuilder:default=3
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	SuccessfulHistoryLimit *int32 `json:"successfulHistoryLimit,omitempty"`

	// failedHistoryLimit is the number of Failed or Cancelled imports kept.
	// +kubebuilder:default=1
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=100
	// +optional
	FailedHistoryLimit *int32 `json:"failedHistoryLimit,omitempty"`

	// skipIfUnchanged skips a run whose source file has the same ETag, size
	// and checksum as the file of the last Completed import of this schedule
	// (so successfulHistoryLimit must keep at least one).
	// +optional
	SkipIfUnchanged bool `json:"skipIfUnchanged,omitempty"`

	// template is the UserImport each run creates.
	Template UserImportTemplate `json:"template"`
}

// ScheduleTriggers start runs on a change. A GitOps repository that holds
// the HR export (a kustomize configMapGenerator) or the mapping then keeps
// the directory in step with it: each change that is applied runs one
// import, and nothing runs while nothing changes.
type ScheduleTriggers struct {
	// onChange starts a run when what an import would read changes: the
	// content of the template's ConfigMap or Secret key (its sha256), the
	// ETag an HTTP source gives, or the template itself (a new ConfigMap
	// name from a configMapGenerator counts). The first content seen runs
	// too; content already run is not run again.
	// +optional
	OnChange bool `json:"onChange,omitempty"`

	// debounceSeconds: a change runs once the source and the template have
	// stayed the same this long, so that a burst of edits makes one import.
	// +kubebuilder:default=30
	// +kubebuilder:validation:Minimum=0
	// +kubebuilder:validation:Maximum=86400
	// +optional
	DebounceSeconds *int32 `json:"debounceSeconds,omitempty"`

	// pollSeconds is how often the source is read to notice a change of
	// its content; a change of the template is noticed at once.
	// +kubebuilder:default=60
	// +kubebuilder:validation:Minimum=5
	// +kubebuilder:validation:Maximum=86400
	// +optional
	PollSeconds *int32 `json:"pollSeconds,omitempty"`
}

// Change is what a schedule on change saw of its source and template.
type Change struct {
	// sourceDigest identifies the source's content: "sha256:…" of a
	// ConfigMap or Secret key, "etag:…" of an HTTP source.
	SourceDigest string `json:"sourceDigest"`
	// templateDigest is the sha256 of the template's spec.
	TemplateDigest string `json:"templateDigest"`
	// reason says what changed: FirstContent, SourceChanged,
	// TemplateChanged or SourceAndTemplateChanged.
	Reason string `json:"reason"`
	// seenTime is when this content was first seen.
	SeenTime metav1.Time `json:"seenTime"`
	// importName is the import the change started (lastChange only; empty
	// when skipIfUnchanged skipped it).
	// +optional
	ImportName string `json:"importName,omitempty"`
}

// UserImportTemplate describes the UserImports a schedule creates.
type UserImportTemplate struct {
	// metadata: labels and annotations copied to each import.
	// +optional
	Metadata TemplateMetadata `json:"metadata,omitempty"`

	// spec of each import.
	Spec UserImportSpec `json:"spec"`
}

// TemplateMetadata holds the labels and annotations of created objects.
type TemplateMetadata struct {
	// labels added to each import.
	// +optional
	Labels map[string]string `json:"labels,omitempty"`
	// annotations added to each import.
	// +optional
	Annotations map[string]string `json:"annotations,omitempty"`
}

// LastImportSummary summarizes the most recent import of a schedule.
type LastImportSummary struct {
	// name of the UserImport.
	Name string `json:"name"`
	// phase of the UserImport.
	// +optional
	Phase ImportPhase `json:"phase,omitempty"`
	// counts of what the import did.
	// +optional
	Counts ChangeCounts `json:"counts,omitempty"`
}

// ImportScheduleStatus is the observed state of an ImportSchedule.
type ImportScheduleStatus struct {
	// observedGeneration is the generation of the spec last reconciled.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// conditions: Ready, Reconciling, Stalled.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// lastScheduleTime is the scheduled time of the last run started.
	// +optional
	LastScheduleTime *metav1.Time `json:"lastScheduleTime,omitempty"`

	// nextScheduleTime is the scheduled time of the next run.
	// +optional
	NextScheduleTime *metav1.Time `json:"nextScheduleTime,omitempty"`

	// lastSuccessfulTime is when an import of this schedule last completed.
	// +optional
	LastSuccessfulTime *metav1.Time `json:"lastSuccessfulTime,omitempty"`

	// active lists the imports of this schedule that are not final.
	// +listType=atomic
	// +optional
	Active []string `json:"active,omitempty"`

	// activeCount is the number of entries in active.
	// +optional
	ActiveCount int32 `json:"activeCount,omitempty"`

	// lastImport summarizes the most recent import.
	// +optional
	LastImport *LastImportSummary `json:"lastImport,omitempty"`

	// missedRuns counts runs skipped because they were missed by more than
	// startingDeadlineSeconds or while the operator was down.
	// +optional
	MissedRuns int64 `json:"missedRuns,omitempty"`

	// skippedRuns counts runs skipped by concurrencyPolicy Forbid or by
	// skipIfUnchanged.
	// +optional
	SkippedRuns int64 `json:"skippedRuns,omitempty"`

	// lastSkipReason says why the last skipped run was skipped.
	// +optional
	LastSkipReason string `json:"lastSkipReason,omitempty"`

	// lastChange is the change that started the last run on change: what
	// changed, when it was seen and the import it started. Content equal to
	// it does not run again.
	// +optional
	LastChange *Change `json:"lastChange,omitempty"`

	// pendingChange is a change seen but not run yet: it waits for the
	// debounce, for a running import (concurrencyPolicy Forbid) or for the
	// schedule to be resumed.
	// +optional
	PendingChange *Change `json:"pendingChange,omitempty"`

	// changeRuns counts the runs started on change.
	// +optional
	ChangeRuns int64 `json:"changeRuns,omitempty"`

	// lastRunNowToken is the value of the userimport.dev/run-now annotation
	// last acted on: setting the annotation to any other value starts a run.
	// +optional
	LastRunNowToken string `json:"lastRunNowToken,omitempty"`
}

// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=isched,categories=usersync
// +kubebuilder:printcolumn:name="Schedule",type=string,JSONPath=`.spec.schedule`
// +kubebuilder:printcolumn:name="Suspend",type=boolean,JSONPath=`.spec.suspend`
// +kubebuilder:printcolumn:name="Active",type=integer,JSONPath=`.status.activeCount`
// +kubebuilder:printcolumn:name="Last",type=date,JSONPath=`.status.lastScheduleTime`
// +kubebuilder:printcolumn:name="Next",type=string,JSONPath=`.status.nextScheduleTime`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`

// ImportSchedule creates a UserImport from its template on a cron
// schedule, like a CronJob creates Jobs.
type ImportSchedule struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard object metadata.
	// +optional
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// spec describes the schedule.
	// +required
	Spec ImportScheduleSpec `json:"spec"`

	// status is the state the controller observed.
	// +optional
	Status ImportScheduleStatus `json:"status,omitempty"`
}

// +kubebuilder:object:root=true

// ImportScheduleList is a list of ImportSchedules.
type ImportScheduleList struct {
	metav1.TypeMeta `json:",inline"`
	// metadata is the standard list metadata.
	// +optional
	metav1.ListMeta `json:"metadata,omitempty"`
	// items are the ImportSchedules.
	Items []ImportSchedule `json:"items"`
}

func init() {
	SchemeBuilder.Register(&ImportSchedule{}, &ImportScheduleList{})
}
