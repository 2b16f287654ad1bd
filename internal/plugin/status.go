package plugin

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/userimport/user-import-operator/api/v1alpha1"
)

// Status prints one import in words: phase, progress with rate and ETA,
// counts, queue position, preview, codes and conditions. Without a name
// it lists the imports of the namespace (every namespace with -A).
func (p *Plugin) Status(ctx context.Context, name string) error {
	if name == "" {
		return p.list(ctx)
	}
	imp, err := p.getImport(ctx, name)
	if err != nil {
		return err
	}
	writeStatus(p.out(), imp, time.Now())
	return nil
}

func (p *Plugin) list(ctx context.Context) error {
	var l v1alpha1.UserImportList
	var opts []client.ListOption
	if !p.AllNamespaces {
		opts = append(opts, client.InNamespace(p.Namespace))
	}
	if err := p.Client.List(ctx, &l, opts...); err != nil {
		return p.apiError(err, "list", "userimports", "")
	}
	if len(l.Items) == 0 {
		fmt.Fprintln(p.out(), "no UserImports")
		return nil
	}
	tw := tabwriter.NewWriter(p.out(), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tNAME\tPHASE\tPROGRESS\tCREATED\tUPDATED\tFAILED\tDIRECTORY")
	for _, imp := range l.Items {
		pr := imp.Status.Progress
		if pr == nil {
			pr = &v1alpha1.ProgressStatus{}
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d%%\t%d\t%d\t%d\t%s\n", imp.Namespace, imp.Name, phaseOf(&imp), pr.Percent, pr.Created, pr.Updated, pr.Failed, imp.Spec.DirectoryRef.Name)
	}
	return tw.Flush()
}

// writeStatus renders imp as of now.
func writeStatus(w io.Writer, imp *v1alpha1.UserImport, now time.Time) {
	st := imp.Status
	fmt.Fprintf(w, "UserImport %s/%s: %s\n", imp.Namespace, imp.Name, phaseOf(imp))
	fmt.Fprintf(w, "  directory %s, mode %s, action %s\n", imp.Spec.DirectoryRef.Name, imp.Spec.Mode, actionOf(imp))
	if src := st.Source; src != nil && src.Name != "" {
		line := fmt.Sprintf("  source    %s, %d bytes", src.Name, src.Size)
		if src.ModTime != nil {
			line += ", modified " + src.ModTime.UTC().Format(time.RFC3339)
		}
		if a := src.AfterImport; a != nil {
			switch a.Result {
			case v1alpha1.AfterImportMoved:
				line += "; moved to " + a.To
			case v1alpha1.AfterImportDeleted:
				line += "; deleted"
			default:
				what := "afterImport"
				if ai := imp.Spec.Source.AfterImport; ai != nil {
					what = strings.ToLower(string(ai.Action))
				}
				line += "; " + what + " failed: " + a.Message
			}
		}
		fmt.Fprintln(w, line)
	}
	if st.Phase == v1alpha1.PhaseImportPending && st.QueuePosition > 0 {
		fmt.Fprintf(w, "  queue     position %d in the directory's queue (1 runs next)\n", st.QueuePosition)
	}
	if pr := st.Progress; pr != nil {
		total := pr.RowsTotal
		if total == 0 && st.Source != nil {
			total = st.Source.Rows
		}
		line := fmt.Sprintf("  progress  %s %3d%%  %d", bar(pr.Percent, 30), pr.Percent, pr.RowsProcessed)
		if total > 0 {
			line += fmt.Sprintf(" of %d", total)
		}
		line += " rows"
		if st.Phase == v1alpha1.PhaseImporting {
			if pr.RowsPerSecond > 0 {
				line += fmt.Sprintf(", %d rows/s", pr.RowsPerSecond)
			}
			// From the rows left at the current rate, or, when the file's
			// rows are not counted yet, from the share of its bytes read.
			var eta time.Duration
			switch {
			case pr.RowsPerSecond > 0 && total > pr.RowsProcessed:
				eta = time.Duration(float64(total-pr.RowsProcessed) / float64(pr.RowsPerSecond) * float64(time.Second))
			case total == 0 && pr.Percent > 0 && pr.Percent < 100 && st.StartTime != nil:
				eta = time.Duration(float64(now.Sub(st.StartTime.Time)) * float64(100-pr.Percent) / float64(pr.Percent))
			}
			if eta > 0 {
				line += ", ETA " + eta.Round(time.Second).String()
			}
			if pr.UpdateTime != nil {
				line += fmt.Sprintf(" (reported %s ago)", now.Sub(pr.UpdateTime.Time).Round(time.Second))
			}
		}
		fmt.Fprintln(w, line)
		// Before the import, progress is how far the preview read; its
		// planned changes are the preview's line below.
		if st.Phase == v1alpha1.PhaseImporting || final(st.Phase) {
			c := pr.ChangeCounts
			fmt.Fprintf(w, "  changes   created %d, updated %d, unchanged %d, deactivated %d, deleted %d, failed %d\n",
				c.Created, c.Updated, c.Unchanged, c.Deactivated, c.Deleted, c.Failed)
			if g := pr.Groups; g != nil {
				fmt.Fprintf(w, "  groups    %s\n", groupLine(*g))
			}
		}
		if pr.Resumes > 0 {
			fmt.Fprintf(w, "  resumed   %d times, from its last checkpoint\n", pr.Resumes)
		}
	}
	if pv := st.Preview; pv != nil {
		c := pv.Counts
		fmt.Fprintf(w, "  preview   create %d, update %d, unchanged %d, deactivate %d, delete %d, errors %d (of %d managed users)\n",
			c.Created, c.Updated, c.Unchanged, c.Deactivated, c.Deleted, c.Failed, pv.ManagedUsers)
		if pv.RecoveryCodes > 0 {
			fmt.Fprintf(w, "            %d recovery codes to give\n", pv.RecoveryCodes)
		}
		if g := pv.Groups; g != nil {
			fmt.Fprintf(w, "            %s\n", groupLine(*g))
		}
	}
	if rc := st.RecoveryCodes; rc != nil {
		fmt.Fprintf(w, "  codes     %d recovery codes in %s (kubectl usersync codes %s)\n", rc.Issued, strings.Join(rc.Secrets, ", "), imp.Name)
	}
	if inv := st.Invitations; inv != nil {
		fmt.Fprintf(w, "  invited   %d sent, %d not sent, %d without an address\n", inv.Sent, inv.Failed, inv.NoAddress)
	}
	if st.StartTime != nil {
		end := now
		if st.CompletionTime != nil {
			end = st.CompletionTime.Time
		}
		fmt.Fprintf(w, "  started   %s, %s ago", st.StartTime.UTC().Format(time.RFC3339), now.Sub(st.StartTime.Time).Round(time.Second))
		if st.CompletionTime != nil {
			fmt.Fprintf(w, "; took %s", end.Sub(st.StartTime.Time).Round(time.Second))
		}
		fmt.Fprintln(w)
	}
	if len(st.Conditions) > 0 {
		fmt.Fprintln(w, "  conditions")
		conds := slices.Clone(st.Conditions)
		slices.SortStableFunc(conds, func(a, b metav1.Condition) int { return order(a.Type) - order(b.Type) })
		for _, c := range conds {
			fmt.Fprintf(w, "    %s\n", sentence(c))
		}
	}
	if c := meta.FindStatusCondition(st.Conditions, v1alpha1.ConditionSafetyThreshold); c != nil && c.Status == metav1.ConditionTrue {
		fmt.Fprintf(w, "  next      kubectl usersync approve %s\n", imp.Name)
	}
}

// order puts Ready first, then the other summary conditions.
func order(t string) int {
	switch t {
	case v1alpha1.ConditionReady:
		return 0
	case "Stalled", "Reconciling":
		return 1
	}
	return 2
}

// sentence is a condition in words: "Ready: no — Importing: …".
func sentence(c metav1.Condition) string {
	state := map[metav1.ConditionStatus]string{metav1.ConditionTrue: "yes", metav1.ConditionFalse: "no"}[c.Status]
	if state == "" {
		state = "unknown"
	}
	s := fmt.Sprintf("%-18s %-3s", c.Type+":", state)
	if c.Reason != "" {
		s += "  " + c.Reason
	}
	if c.Message != "" {
		s += ": " + c.Message
	}
	return s
}

// bar is a progress bar of width cells.
func bar(percent int32, width int) string {
	n := int(min(max(percent, 0), 100)) * width / 100
	return "[" + strings.Repeat("#", n) + strings.Repeat("-", width-n) + "]"
}

// groupLine says what an import did, or plans, to groups and managers.
func groupLine(g v1alpha1.GroupCounts) string {
	return fmt.Sprintf("%d groups created, %d memberships added, %d removed; %d managers set, %d not found",
		g.GroupsCreated, g.MembershipsAdded, g.MembershipsRemoved, g.ManagersSet, g.ManagersMissing)
}
