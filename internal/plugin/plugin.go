// Package plugin is `kubectl usersync`: the verbs a person uses on
// UserImports and ImportSchedules from a terminal — status, report,
// approve, import, cancel, run-now and codes — over the Kubernetes API
// only. Every verb reads the object fresh, refuses what makes no sense in
// its phase with a sentence that says why, and turns a Forbidden answer
// into the permission that is missing.
package plugin

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/userimport/user-import-operator/api/v1alpha1"
)

// Plugin runs the verbs against one cluster.
type Plugin struct {
	Client client.Client
	// Namespace is the namespace of -n, or of the kubeconfig's context.
	Namespace string
	// AllNamespaces is -A: status without a name lists every namespace.
	AllNamespaces bool
	In            io.Reader
	Out           io.Writer
	// Terminal says Out is a terminal: codes are not printed there
	// without --show.
	Terminal bool
}

// out is Out with control characters escaped: identities, file names and
// messages come from files and servers, and an escape sequence in one
// must not reach the terminal as one.
func (p *Plugin) out() io.Writer { return escaper{p.Out} }

// escaper writes what it is given with control characters other than
// newline and tab written as \xNN (\u{NN} for C1 controls).
type escaper struct{ w io.Writer }

func (e escaper) Write(b []byte) (int, error) {
	clean := true
	for _, r := range string(b) {
		if isControl(r) {
			clean = false
			break
		}
	}
	if clean {
		return e.w.Write(b)
	}
	var sb strings.Builder
	for _, r := range string(b) {
		switch {
		case r < 0x80 && isControl(r):
			fmt.Fprintf(&sb, "\\x%02x", r)
		case isControl(r):
			fmt.Fprintf(&sb, "\\u{%x}", r)
		default:
			sb.WriteRune(r)
		}
	}
	if _, err := io.WriteString(e.w, sb.String()); err != nil {
		return 0, err
	}
	return len(b), nil
}

func isControl(r rune) bool {
	return (r < 0x20 && r != '\n' && r != '\t') || (r >= 0x7f && r < 0xa0)
}

// Error is a refusal: the verb makes no sense for the object as it is.
type Error struct{ Msg string }

func (e *Error) Error() string { return e.Msg }

func refuse(format string, args ...any) error { return &Error{Msg: fmt.Sprintf(format, args...)} }

// apiError says in words what a failed API call means for the user.
func (p *Plugin) apiError(err error, verb, resource, name string) error {
	switch {
	case err == nil:
		return nil
	case apierrors.IsNotFound(err):
		kind := map[string]string{"userimports": "UserImport", "importschedules": "ImportSchedule", "secrets": "Secret"}[resource]
		return refuse("%s %q not found in namespace %q", kind, name, p.Namespace)
	case apierrors.IsForbidden(err):
		return refuse("you may not %s %s in namespace %q: ask for a Role that allows it (the API answered Forbidden)", verb, resource, p.Namespace)
	}
	return err
}

func (p *Plugin) getImport(ctx context.Context, name string) (*v1alpha1.UserImport, error) {
	var imp v1alpha1.UserImport
	err := p.Client.Get(ctx, types.NamespacedName{Namespace: p.Namespace, Name: name}, &imp)
	return &imp, p.apiError(err, "get", "userimports", name)
}

// patchImport merge-patches the import's spec from what edit changes,
// guarded by the resourceVersion read: an import that changed meanwhile
// is refused, not overwritten.
func (p *Plugin) patchImport(ctx context.Context, imp *v1alpha1.UserImport, edit func(*v1alpha1.UserImportSpec)) error {
	base := imp.DeepCopy()
	edit(&imp.Spec)
	err := p.Client.Patch(ctx, imp, client.MergeFromWithOptions(base, client.MergeFromWithOptimisticLock{}))
	if apierrors.IsConflict(err) {
		return refuse("UserImport %q changed while this command ran; run it again", imp.Name)
	}
	return p.apiError(err, "patch", "userimports", imp.Name)
}

// Import moves an import on to write: its action becomes Import. When
// its preview plans deprovisions or membership removals, it asks first
// (unless yes).
func (p *Plugin) Import(ctx context.Context, name string, yes bool) error {
	imp, err := p.getImport(ctx, name)
	if err != nil {
		return err
	}
	if final(imp.Status.Phase) {
		return refuse("UserImport %q is %s, a final phase: it cannot run again; create a new import", name, imp.Status.Phase)
	}
	if imp.Spec.Action == v1alpha1.ActionImport {
		return refuse("UserImport %q already has action Import (it is %s)", name, phaseOf(imp))
	}
	if pv := imp.Status.Preview; pv != nil && !yes {
		n := pv.Counts.Deactivated + pv.Counts.Deleted
		var removals int64
		if pv.Groups != nil {
			removals = pv.Groups.MembershipsRemoved
		}
		if n > 0 || removals > 0 {
			fmt.Fprintf(p.out(), "UserImport %s: its preview plans to deactivate %d and delete %d users, and to remove %d memberships.\n",
				name, pv.Counts.Deactivated, pv.Counts.Deleted, removals)
			fmt.Fprint(p.out(), "Import? [y/N] ")
			line, _ := bufio.NewReader(p.In).ReadString('\n')
			if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
				return refuse("not imported")
			}
		}
	}
	was := actionOf(imp)
	if err := p.patchImport(ctx, imp, func(s *v1alpha1.UserImportSpec) { s.Action = v1alpha1.ActionImport }); err != nil {
		return err
	}
	fmt.Fprintf(p.out(), "UserImport %s: action Import (it was %s); it previews if it has no fresh preview, then writes\n", name, was)
	return nil
}

// Cancel stops an import that has not finished.
func (p *Plugin) Cancel(ctx context.Context, name string) error {
	imp, err := p.getImport(ctx, name)
	if err != nil {
		return err
	}
	if final(imp.Status.Phase) {
		return refuse("UserImport %q is %s, a final phase: there is nothing to cancel", name, imp.Status.Phase)
	}
	if imp.Spec.Action == v1alpha1.ActionCancel {
		return refuse("UserImport %q is already being cancelled", name)
	}
	if err := p.patchImport(ctx, imp, func(s *v1alpha1.UserImportSpec) { s.Action = v1alpha1.ActionCancel }); err != nil {
		return err
	}
	fmt.Fprintf(p.out(), "UserImport %s: action Cancel (it was %s)\n", name, phaseOf(imp))
	return nil
}

// Approve sets the approval of an import stopped, or to be stopped, by
// the safety threshold to exactly the deprovisions its preview counted,
// after the user confirms (or with yes).
func (p *Plugin) Approve(ctx context.Context, name string, yes bool) error {
	imp, err := p.getImport(ctx, name)
	if err != nil {
		return err
	}
	pv := imp.Status.Preview
	if imp.Status.Phase != v1alpha1.PhasePreviewReady || pv == nil {
		return refuse("UserImport %q is %s: approve needs a preview (PreviewReady) that counts the users the import would deactivate or delete", name, phaseOf(imp))
	}
	n := pv.Counts.Deactivated + pv.Counts.Deleted
	var removals int64
	if pv.Groups != nil {
		removals = pv.Groups.MembershipsRemoved
	}
	var rotations int64
	if imp.Spec.RecoveryCodes.Generate == v1alpha1.CodesAll {
		rotations = pv.RecoveryCodes
	}
	if n == 0 && removals == 0 && rotations == 0 {
		return refuse("UserImport %q plans no deactivations, deletions, removals from groups or code rotations: there is nothing to approve", name)
	}
	if rotations > 0 {
		fmt.Fprintf(p.out(), "UserImport %s would give %d users new recovery codes, replacing the codes they have.\n", name, rotations)
	}
	if n > 0 {
		fmt.Fprintf(p.out(), "UserImport %s would deactivate %d and delete %d of %d managed users (%d in all).\n",
			name, pv.Counts.Deactivated, pv.Counts.Deleted, pv.ManagedUsers, n)
	}
	if removals > 0 {
		fmt.Fprintf(p.out(), "UserImport %s would remove %d memberships from managed groups.\n", name, removals)
	}
	if !yes {
		fmt.Fprint(p.out(), "Approve exactly these? [y/N] ")
		line, _ := bufio.NewReader(p.In).ReadString('\n')
		if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
			return refuse("not approved")
		}
	}
	count := int32(min(n, 1<<31-1))
	removed := int32(min(removals, 1<<31-1))
	if err := p.patchImport(ctx, imp, func(s *v1alpha1.UserImportSpec) {
		if n > 0 {
			s.Safety.ApprovedDeprovisions = &count
		}
		if removals > 0 {
			s.Safety.ApprovedMembershipRemovals = &removed
		}
		if rotations > 0 {
			s.Safety.ApprovedRecoveryCodes = &rotations
		}
	}); err != nil {
		return err
	}
	next := "run `kubectl usersync import " + name + "` to write"
	if imp.Spec.Action == v1alpha1.ActionImport {
		next = "it goes on with the import"
	}
	var approved []string
	if n > 0 {
		approved = append(approved, fmt.Sprintf("spec.safety.approvedDeprovisions=%d", count))
	}
	if removals > 0 {
		approved = append(approved, fmt.Sprintf("spec.safety.approvedMembershipRemovals=%d", removed))
	}
	if rotations > 0 {
		approved = append(approved, fmt.Sprintf("spec.safety.approvedRecoveryCodes=%d", rotations))
	}
	fmt.Fprintf(p.out(), "approved: %s; %s\n", strings.Join(approved, ", "), next)
	return nil
}

// RunNow asks a schedule for one import now.
func (p *Plugin) RunNow(ctx context.Context, name string, token string) error {
	var s v1alpha1.ImportSchedule
	err := p.Client.Get(ctx, types.NamespacedName{Namespace: p.Namespace, Name: name}, &s)
	if err != nil {
		return p.apiError(err, "get", "importschedules", name)
	}
	base := s.DeepCopy()
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	s.Annotations[v1alpha1.RunNowAnnotation] = token
	if err := p.Client.Patch(ctx, &s, client.MergeFrom(base)); err != nil {
		return p.apiError(err, "patch", "importschedules", name)
	}
	fmt.Fprintf(p.out(), "ImportSchedule %s: run-now %s; the import it creates is listed by `kubectl get uimp -l %s=%s`\n", name, token, v1alpha1.ScheduleLabel, name)
	return nil
}

func final(ph v1alpha1.ImportPhase) bool {
	return ph == v1alpha1.PhaseCompleted || ph == v1alpha1.PhaseCancelled || ph == v1alpha1.PhaseFailed
}

func phaseOf(imp *v1alpha1.UserImport) string {
	if imp.Status.Phase == "" {
		return "new (no phase yet)"
	}
	return string(imp.Status.Phase)
}

func actionOf(imp *v1alpha1.UserImport) string {
	if imp.Spec.Action == "" {
		return "unset"
	}
	return string(imp.Spec.Action)
}

// IsRefusal tells whether err is a refusal, which the command prints
// without a stack of causes.
func IsRefusal(err error) bool {
	var e *Error
	return errors.As(err, &e)
}
