package controllers

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"slices"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/conditions"
	"github.com/userimport/user-import-operator/internal/keyread"
	"github.com/userimport/user-import-operator/internal/runcontract"
	"github.com/userimport/user-import-operator/internal/safetext"
	"github.com/userimport/user-import-operator/internal/schedule"
	"github.com/userimport/user-import-operator/internal/source"
)

// Why the source is polled rather than watched: a watch of Secrets would
// have the manager cache (and be allowed to list) every Secret of the
// cluster. ConfigMaps are watched for their metadata only
// (ConfigMapVersion): a poll reads one again only when its
// resourceVersion moved, so that a fleet of unchanged ConfigMaps costs the
// API server nothing. A change of the template (a configMapGenerator's new
// name) is an edit of the schedule, which wakes it at once.

func runsOnChange(sched *v1alpha1.ImportSchedule) bool {
	return sched.Spec.Triggers != nil && sched.Spec.Triggers.OnChange
}

// triggerSettings are the debounce and poll interval of a schedule on
// change, with the API's defaults.
func triggerSettings(sched *v1alpha1.ImportSchedule) (debounce, poll time.Duration) {
	t := sched.Spec.Triggers
	debounce, poll = 30*time.Second, time.Minute
	if t.DebounceSeconds != nil {
		debounce = time.Duration(*t.DebounceSeconds) * time.Second
	}
	if t.PollSeconds != nil {
		poll = time.Duration(*t.PollSeconds) * time.Second
	}
	return debounce, poll
}

// onChange starts a run when the source's content or the template differs
// from what the last run on change read, once the change has stayed for
// the debounce. Content already run never runs again.
func (run *scheduleRun) onChange(ctx context.Context) (verdict, error) {
	sched := run.sched
	st := &sched.Status
	debounce, poll := triggerSettings(sched)
	seen, known, err := run.fingerprint(poll)
	// A poll comes back a little later each time for each schedule, so
	// that schedules created together do not read together for ever.
	poll = jittered(poll, sched.UID)
	if !known {
		return verdict{state: conditions.Progressing, reason: v1alpha1.ReasonWaitingForSource,
			message: "on change: reading the source", requeueAfter: poll}, nil
	}
	run.recoverLostRuns()
	if errors.Is(err, keyread.ErrNotFound) {
		return verdict{state: conditions.Progressing, reason: v1alpha1.ReasonWaitingForSource,
			message: "on change: waiting for the source: " + safetext.Of(err), requeueAfter: poll}, nil
	}
	if err != nil {
		// Not knowing is no change: look again later.
		run.event(corev1.EventTypeWarning, v1alpha1.ReasonSourceCheckFailed, "Schedule", nil, "on change: %s", safetext.Of(err))
		return verdict{state: conditions.Ready, reason: v1alpha1.ReasonScheduled,
			message: "on change: could not read the source; looking again", requeueAfter: poll}, nil
	}
	if last := st.LastChange; last != nil && sameContent(*last, seen) {
		st.PendingChange = nil
		return verdict{state: conditions.Ready, reason: v1alpha1.ReasonScheduled,
			message: "on change: nothing changed since " + orNone(last.ImportName), requeueAfter: poll}, nil
	}
	pending := st.PendingChange
	if pending == nil || !sameContent(*pending, seen) {
		seen.Reason = changeReason(st.LastChange, seen)
		seen.SeenTime = metav1.NewTime(run.now)
		st.PendingChange = &seen
		pending = st.PendingChange
	}
	if sched.Spec.Suspend {
		return verdict{state: conditions.Ready, reason: v1alpha1.ReasonSuspended,
			message: "suspended: a change (" + pending.Reason + ") waits until the schedule is resumed"}, nil
	}
	if left := pending.SeenTime.Add(debounce).Sub(run.now); left > 0 {
		return verdict{state: conditions.Ready, reason: v1alpha1.ReasonScheduled,
			message: fmt.Sprintf("on change: %s at %s; it runs once nothing changed for %s", pending.Reason,
				pending.SeenTime.UTC().Format(time.RFC3339), debounce), requeueAfter: min(left+requeueMargin, poll)}, nil
	}
	active := run.active()
	// The run of this change, made by a reconcile whose status write was
	// lost, is adopted whatever the policy: it is this change's run.
	next := schedule.ChangeName(sched.Name, st.ChangeRuns+1)
	made := slices.ContainsFunc(run.children, func(c v1alpha1.UserImport) bool { return c.Name == next })
	if sched.Spec.ConcurrencyPolicy == v1alpha1.ConcurrencyForbid && len(active) > 0 && !made {
		return verdict{state: conditions.Ready, reason: v1alpha1.ReasonScheduled,
			message:      fmt.Sprintf("on change: %s waits for UserImport %s to end (concurrencyPolicy Forbid)", pending.Reason, active[0].Name),
			requeueAfter: poll}, nil
	}
	lookAgain, err := run.startOnChange(ctx, pending, active)
	if err != nil {
		return verdict{}, err
	}
	if lookAgain {
		return verdict{state: conditions.Ready, reason: v1alpha1.ReasonScheduled,
			message:      fmt.Sprintf("on change: %s waits: UserImport %s ran the change before it", pending.Reason, st.LastChange.ImportName),
			requeueAfter: requeueMargin}, nil
	}
	return verdict{state: conditions.Ready, reason: v1alpha1.ReasonScheduled,
		message: "on change: the last change (" + st.LastChange.Reason + ") ran as " + orNone(st.LastChange.ImportName), requeueAfter: poll}, nil
}

// recoverLostRuns counts the imports that changes started but whose
// status writes were lost (a conflict, a manager that stopped), as the
// imports' change annotations tell: the last of them is the last change.
// Adopted by name, an import that ran an earlier change would be taken
// for the run of the change now seen (a template edited just after a
// run started), and that change would never run.
func (run *scheduleRun) recoverLostRuns() {
	st := &run.sched.Status
	for {
		name := schedule.ChangeName(run.sched.Name, st.ChangeRuns+1)
		i := slices.IndexFunc(run.children, func(c v1alpha1.UserImport) bool { return c.Name == name })
		if i < 0 {
			return
		}
		ran, ok := changeOf(&run.children[i])
		if !ok {
			return // made before imports carried it: adopted as it was
		}
		st.ChangeRuns++
		st.LastChange = &ran
		if p := st.PendingChange; p != nil && sameContent(*p, ran) {
			st.PendingChange = nil
		}
	}
}

// changeOf is the change an import was made to run, named after the
// import; ok is false for an import that does not say (made by a version
// before imports carried it, or not for a change).
func changeOf(imp *v1alpha1.UserImport) (c v1alpha1.Change, ok bool) {
	a, found := imp.Annotations[v1alpha1.ScheduleChangeAnnotation]
	if !found || json.Unmarshal([]byte(a), &c) != nil {
		return v1alpha1.Change{}, false
	}
	c.ImportName = imp.Name
	return c, true
}

// startOnChange runs a pending change: it creates the import (or adopts
// the one a reconcile whose status write was lost created), or skips it by
// skipIfUnchanged; either way the change becomes the last one.
//
// The import is looked for on the API server, not in the cache: a cache
// that has not yet seen the run of an earlier change, made by a
// reconcile whose status write was lost, would have it adopted as the run
// of this one. Found there, that run is counted and lookAgain is true:
// the change waits for the next reconcile, which sees the run as active.
func (run *scheduleRun) startOnChange(ctx context.Context, pending *v1alpha1.Change, active []v1alpha1.UserImport) (lookAgain bool, err error) {
	st := &run.sched.Status
	change := *pending
	done := func() {
		st.LastChange = &change
		st.PendingChange = nil
	}
	name := schedule.ChangeName(run.sched.Name, st.ChangeRuns+1)
	existing, err := run.getChild(ctx, run.APIReader, name)
	if err != nil {
		return false, err
	}
	switch {
	case existing == nil:
		skipped, err := run.admit(ctx, active)
		if err != nil {
			return false, err
		}
		if skipped {
			done()
			return false, nil
		}
		if err := run.createChild(ctx, name, run.now, &change, v1alpha1.ReasonRunStarted, "on change: "+change.Reason); err != nil {
			return false, err
		}
	case !run.owns(existing):
		return false, fmt.Errorf("the UserImport %s exists and does not belong to this schedule", name)
	default:
		if ran, ok := changeOf(existing); ok && !sameContent(ran, change) {
			run.children = append(run.children, *existing)
			run.recoverLostRuns()
			return true, nil
		}
	}
	st.ChangeRuns++
	change.ImportName = name
	done()
	return false, nil
}

// fingerprint is what an import of the template would read: the digest of
// the template, and the last digest read of its source, shared with every
// schedule of the namespace on the same source (sourcePolls). known is
// false until the source's first read ends; that read wakes the schedule.
func (run *scheduleRun) fingerprint(poll time.Duration) (c v1alpha1.Change, known bool, err error) {
	tmpl := run.sched.Spec.Template.Spec
	c = v1alpha1.Change{TemplateDigest: runcontract.SpecDigest(tmpl)}
	namespace, src := run.sched.Namespace, tmpl.Source
	var watched *watchedSource
	if src.ConfigMap != nil && run.ConfigMapVersion != nil {
		name := src.ConfigMap.Name
		watched = &watchedSource{configMap: types.NamespacedName{Namespace: namespace, Name: name},
			version: func(ctx context.Context) string { return run.ConfigMapVersion(ctx, namespace, name) }}
	}
	c.SourceDigest, known, err = run.polls.look(client.ObjectKeyFromObject(run.sched), pollKey(namespace, src), poll,
		watched, func(ctx context.Context) (string, error) { return run.sourceDigest(ctx, namespace, src) })
	return c, known, err
}

// sourceDigest reads the fingerprint of a source as an import would find
// it now: the sha256 of a ConfigMap or Secret key, an HTTP ETag, or the
// identity of the newest file of an SFTP or S3 source.
func (r *ImportScheduleReconciler) sourceDigest(ctx context.Context, namespace string, src v1alpha1.ImportSource) (string, error) {
	switch {
	case src.ConfigMap != nil || src.Secret != nil:
		data, _, _, err := sourceKey(ctx, r.APIReader, r.SecretSelector, namespace, src)
		if err != nil {
			return "", err
		}
		return "sha256:" + sha256Hex(data), nil
	case src.HTTP != nil:
		if err := r.AllowedHosts.AllowURL(src.HTTP.URL); err != nil {
			return "", fmt.Errorf("not asking the source: %w", err)
		}
		hctx, cancel := context.WithTimeout(ctx, r.headTimeout())
		defer cancel()
		info, err := source.Head(hctx, src.HTTP, source.Options{HTTPClient: r.HTTPClient, Secrets: r.secretsOf(namespace), DialControl: r.AllowedHosts.Control})
		if err != nil {
			return "", err
		}
		if info.ETag == "" {
			return "", errors.New("the server gives the source no ETag, so a change cannot be seen")
		}
		return "etag:" + info.ETag, nil
	case inPlace(src):
		fp, _, err := inPlaceFile(ctx, r.AllowedHosts, r.AmbientS3, r.secretsOf(namespace), src)
		if err != nil {
			return "", err
		}
		return "file:" + fp, nil
	}
	return "", nil
}

// jittered is d and up to 5 % more, the same for one object each time.
func jittered(d time.Duration, uid types.UID) time.Duration {
	h := fnv.New32a()
	_, _ = h.Write([]byte(uid))
	return d + time.Duration(float64(d)*0.05*float64(h.Sum32())/float64(math.MaxUint32))
}

func sameContent(a, b v1alpha1.Change) bool {
	return a.SourceDigest == b.SourceDigest && a.TemplateDigest == b.TemplateDigest
}

// changeReason says what differs between the last change run and seen.
func changeReason(last *v1alpha1.Change, seen v1alpha1.Change) string {
	switch {
	case last == nil:
		return v1alpha1.ChangeFirstContent
	case last.SourceDigest != seen.SourceDigest && last.TemplateDigest != seen.TemplateDigest:
		return v1alpha1.ChangeSourceAndTemplateChanged
	case last.TemplateDigest != seen.TemplateDigest:
		return v1alpha1.ChangeTemplateChanged
	}
	return v1alpha1.ChangeSourceChanged
}

func orNone(name string) string {
	if name == "" {
		return "(skipped: unchanged)"
	}
	return "UserImport " + name
}
