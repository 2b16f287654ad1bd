package controllers

import (
	"context"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrl "sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/runcontract"
	"github.com/userimport/user-import-operator/internal/testenv"
)

// A reconcile that started the run of a change and lost its status write
// (the template was edited at that moment) is followed by one whose cache
// has not yet seen that run. The run it finds on the API server under the
// next change's name ran the template before the edit: the edit must run
// after it, not be taken as run.
func TestAChangeIsNotTakenAsRunByTheRunOfTheChangeBefore(t *testing.T) {
	_, c := testenv.Shared(t)
	ctx := context.Background()
	ns, cm, dir := readyTenant(t, c)
	tmpl := tenantImport(metav1.ObjectMeta{}, v1alpha1.ActionImport, cm, dir).Spec
	sched := &v1alpha1.ImportSchedule{ObjectMeta: metav1.ObjectMeta{Name: "follow", Namespace: ns.Name},
		Spec: v1alpha1.ImportScheduleSpec{
			Template: v1alpha1.UserImportTemplate{Spec: tmpl},
			Triggers: &v1alpha1.ScheduleTriggers{OnChange: true, DebounceSeconds: ptr.To[int32](0)},
		}}
	if err := c.Create(ctx, sched); err != nil {
		t.Fatal(err)
	}
	r := &ImportScheduleReconciler{Client: blindCache(c), APIReader: c, Recorder: events.NewFakeRecorder(100), Clock: clock.RealClock{}}
	r.polls = newSourcePolls(time.Now)
	reconcile := func() v1alpha1.ImportScheduleStatus {
		t.Helper()
		if _, err := r.Reconcile(ctx, ctrl.Request{NamespacedName: client.ObjectKeyFromObject(sched)}); err != nil {
			t.Fatal(err)
		}
		var got v1alpha1.ImportSchedule
		if err := c.Get(ctx, client.ObjectKeyFromObject(sched), &got); err != nil {
			t.Fatal(err)
		}
		return got.Status
	}
	children := func() []string {
		t.Helper()
		var list v1alpha1.UserImportList
		if err := c.List(ctx, &list, client.InNamespace(ns.Name)); err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, i := range list.Items {
			names = append(names, i.Name)
		}
		return names
	}

	reconcile() // the source's first read starts
	woken(t, r.polls, 1)
	st := reconcile()
	if st.ChangeRuns != 1 || st.LastChange == nil {
		t.Fatalf("after the first content: %d change runs, want 1", st.ChangeRuns)
	}
	first := st.LastChange.TemplateDigest

	// The status write of that run is lost, and the template is edited.
	var cur v1alpha1.ImportSchedule
	if err := c.Get(ctx, client.ObjectKeyFromObject(sched), &cur); err != nil {
		t.Fatal(err)
	}
	cur.Status.ChangeRuns, cur.Status.LastChange, cur.Status.PendingChange = 0, nil, nil
	if err := c.Status().Update(ctx, &cur); err != nil {
		t.Fatal(err)
	}
	cur.Spec.Template.Spec.Mapping[0].Check = "Email"
	if err := c.Update(ctx, &cur); err != nil {
		t.Fatal(err)
	}
	edited := runcontract.SpecDigest(cur.Spec.Template.Spec)

	// The cache has not seen follow-change-1.
	r.Client = blindCache(c, "follow-change-1")
	st = reconcile()
	if st.LastChange == nil || st.LastChange.ImportName != "follow-change-1" || st.LastChange.TemplateDigest != first {
		t.Fatalf("last change %+v, want follow-change-1's run of the first template", st.LastChange)
	}
	if st.PendingChange == nil || st.PendingChange.TemplateDigest != edited {
		t.Fatalf("pending change %+v, want the edited template", st.PendingChange)
	}
	if got := children(); len(got) != 1 {
		t.Fatalf("imports %v, want follow-change-1 alone", got)
	}

	// The cache catches up: the edit runs.
	r.Client = blindCache(c)
	st = reconcile()
	if got := children(); len(got) != 2 {
		t.Fatalf("imports %v, want follow-change-1 and follow-change-2", got)
	}
	if st.ChangeRuns != 2 || st.LastChange == nil || st.LastChange.ImportName != "follow-change-2" || st.LastChange.TemplateDigest != edited {
		t.Fatalf("status %d runs, last change %+v; want follow-change-2 to run the edited template", st.ChangeRuns, st.LastChange)
	}
}
