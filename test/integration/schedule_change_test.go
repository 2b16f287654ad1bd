package integration_test

import (
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uiov1 "github.com/userimport/user-import-operator/api/v1alpha1"
)

var _ = Describe("an ImportSchedule on change", Label(labelSchedulesAlone), func() {
	// poll is the schedules' poll interval: a source is read again once
	// the last read is that old.
	const poll = 5 * time.Second
	// onChangeSchedule runs on change only, with a debounce of a minute.
	onChangeSchedule := func(ns string, edit func(*uiov1.ImportSchedule)) *uiov1.ImportSchedule {
		return newSchedule(ns, "follow", "", func(s *uiov1.ImportSchedule) {
			s.Spec.Triggers = &uiov1.ScheduleTriggers{OnChange: true, DebounceSeconds: ptr.To[int32](60), PollSeconds: ptr.To[int32](5)}
			if edit != nil {
				edit(s)
			}
		})
	}
	setCSV := func(ns, content string) {
		GinkgoHelper()
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "hr-export", Namespace: ns}}
		err := k8sClient.Get(ctx, client.ObjectKeyFromObject(cm), cm)
		if err != nil {
			cm.Data = map[string]string{"export.csv": content}
			Expect(k8sClient.Create(ctx, cm)).To(Succeed())
			return
		}
		cm.Data["export.csv"] = content
		Expect(k8sClient.Update(ctx, cm)).To(Succeed())
	}
	// after moves the clock on by d and wakes the controller.
	after := func(s *uiov1.ImportSchedule, d time.Duration) {
		GinkgoHelper()
		advance(s, scheduleClock.Now().Add(d))
	}
	// pendingSince waits until the schedule has seen a change it has not
	// run yet.
	pending := func(s *uiov1.ImportSchedule, reason string) {
		GinkgoHelper()
		Eventually(func(g Gomega) {
			p := getSchedule(s).Status.PendingChange
			g.Expect(p).NotTo(BeNil())
			g.Expect(p.Reason).To(Equal(reason))
		}, 10*time.Second, 50*time.Millisecond).Should(Succeed())
	}

	// firstRun creates a schedule on change of a CSV in ns and waits until
	// the first content ran, once the debounce passed.
	firstRun := func(ns string) *uiov1.ImportSchedule {
		GinkgoHelper()
		setCSV(ns, "email\na@x.example\n")
		s := onChangeSchedule(ns, nil)
		pending(s, uiov1.ChangeFirstContent)
		after(s, 61*time.Second)
		expectChildren(s, 1)
		return s
	}

	It("imports the first content, then each changed content once, debounced", func() {
		ns := newScheduleNamespace()
		setCSV(ns, "email\na@x.example\n")
		s := onChangeSchedule(ns, nil)
		pending(s, uiov1.ChangeFirstContent)
		keepsChildren(s, 0) // the debounce
		after(s, 61*time.Second)
		first := expectChildren(s, 1)
		Expect(first[0].Name).To(Equal("follow-change-1"))
		var got *uiov1.ImportSchedule
		Eventually(func(g Gomega) {
			got = getSchedule(s)
			g.Expect(got.Status.LastChange).NotTo(BeNil())
			g.Expect(got.Status.LastChange.Reason).To(Equal(uiov1.ChangeFirstContent))
			g.Expect(got.Status.LastChange.ImportName).To(Equal("follow-change-1"))
		}, 10*time.Second).Should(Succeed())
		Expect(got.Status.NextScheduleTime).To(BeNil(), "no cron schedule")
		Expect(readyReason(got)).To(Equal(uiov1.ReasonScheduled))

		// Change 1: new content.
		setCSV(ns, "email\na@x.example\nb@x.example\n")
		after(s, poll) // the next poll reads the source
		pending(s, uiov1.ChangeSourceChanged)
		// Change 2, within the debounce: the same content again (a re-apply).
		after(s, 30*time.Second)
		setCSV(ns, "email\na@x.example\nb@x.example\n")
		after(s, poll) // the next poll reads the source
		keepsChildren(s, 1)
		after(s, 31*time.Second)
		second := expectChildren(s, 2)
		Expect(second[1].Name).To(Equal("follow-change-2"))
		expectEvent(s, uiov1.ReasonRunStarted, "on change: SourceChanged")

		// Change 3: the same content written again after it ran: nothing.
		setCSV(ns, "email\na@x.example\nb@x.example\n")
		after(s, 2*time.Minute)
		keepsChildren(s, 2)
		Expect(getSchedule(s).Status.PendingChange).To(BeNil())
		Expect(getSchedule(s).Status.ChangeRuns).To(BeEquivalentTo(2))
	})

	It("makes one import of a burst of changes: the debounce restarts at each", func() {
		ns := newScheduleNamespace()
		s := firstRun(ns)
		// Three changes 40 seconds apart: each is seen at the next poll
		// and restarts the debounce of a minute.
		for i, content := range []string{"email\nb@x.example\n", "email\nc@x.example\n", "email\nd@x.example\n"} {
			setCSV(ns, content)
			after(s, poll) // the next poll reads the source
			Eventually(func() string {
				if p := getSchedule(s).Status.PendingChange; p != nil {
					return p.SeenTime.UTC().Format(time.RFC3339)
				}
				return ""
			}, 10*time.Second).Should(Equal(scheduleClock.Now().UTC().Format(time.RFC3339)), "change %d restarts the debounce", i)
			after(s, 40*time.Second)
		}
		keepsChildren(s, 1)
		after(s, 21*time.Second)
		expectChildren(s, 2)
		keepsChildren(s, 2)
	})

	It("runs once on a change of the template, as a configMapGenerator's new name makes it", func() {
		ns := newScheduleNamespace()
		setCSV(ns, "email\na@x.example\n")
		s := onChangeSchedule(ns, func(s *uiov1.ImportSchedule) { s.Spec.Triggers.DebounceSeconds = ptr.To[int32](0) })
		expectChildren(s, 1)
		// The same content under a new name: kustomize's hash suffix.
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "hr-export-7g2k9", Namespace: ns},
			Data: map[string]string{"export.csv": "email\na@x.example\nb@x.example\n"}}
		Expect(k8sClient.Create(ctx, cm)).To(Succeed())
		editSchedule(s, func(s *uiov1.ImportSchedule) { s.Spec.Template.Spec.Source.ConfigMap.Name = "hr-export-7g2k9" })
		expectChildren(s, 2)
		Eventually(func() string { return getSchedule(s).Status.LastChange.Reason }, 10*time.Second).
			Should(Equal(uiov1.ChangeSourceAndTemplateChanged))
		keepsChildren(s, 2)
	})

	It("runs a change of the template made while the status write of the run before it was lost", func() {
		ns := newScheduleNamespace()
		setCSV(ns, "email\na@x.example\n")
		s := onChangeSchedule(ns, func(s *uiov1.ImportSchedule) { s.Spec.Triggers.DebounceSeconds = ptr.To[int32](0) })
		expectChildren(s, 1)
		Eventually(func() int64 { return getSchedule(s).Status.ChangeRuns }, 10*time.Second).Should(BeEquivalentTo(1))

		// The manager stops after it created follow-change-1, before its
		// status write; the template is edited meanwhile.
		stopManager()
		cur := getSchedule(s)
		cur.Status.ChangeRuns, cur.Status.LastChange, cur.Status.PendingChange = 0, nil, nil
		Expect(k8sClient.Status().Update(ctx, cur)).To(Succeed())
		editSchedule(s, func(s *uiov1.ImportSchedule) { s.Spec.Template.Spec.Mapping[0].Check = "Email" })
		stopManager = startScheduleManager()

		// follow-change-1 ran the first content, not the edited template:
		// the edit runs as follow-change-2.
		children := expectChildren(s, 2)
		Expect(children[1].Name).To(Equal("follow-change-2"))
		Eventually(func(g Gomega) {
			st := getSchedule(s).Status
			g.Expect(st.ChangeRuns).To(BeEquivalentTo(2))
			g.Expect(st.LastChange).NotTo(BeNil())
			g.Expect(st.LastChange.Reason).To(Equal(uiov1.ChangeTemplateChanged))
			g.Expect(st.LastChange.ImportName).To(Equal("follow-change-2"))
		}, 10*time.Second).Should(Succeed())
		keepsChildren(s, 2)
	})

	It("runs nothing while nothing changes, for an hour of the clock", func() {
		ns := newScheduleNamespace()
		s := firstRun(ns)
		for range 6 {
			after(s, 10*time.Minute)
		}
		keepsChildren(s, 1)
		Expect(getSchedule(s).Status.ChangeRuns).To(BeEquivalentTo(1))
	})

	It("waits for a source that is not there yet, and runs when it arrives", func() {
		ns := newScheduleNamespace()
		s := onChangeSchedule(ns, func(s *uiov1.ImportSchedule) { s.Spec.Triggers.DebounceSeconds = ptr.To[int32](0) })
		Eventually(func(g Gomega) {
			c := scheduleCondition(getSchedule(s), uiov1.ConditionReady)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Reason).To(Equal(uiov1.ReasonWaitingForSource))
		}, 10*time.Second).Should(Succeed())
		keepsChildren(s, 0)
		setCSV(ns, "email\na@x.example\n")
		after(s, poll) // the next poll reads the source
		expectChildren(s, 1)
	})

	It("keeps a change waiting while an import runs with concurrencyPolicy Forbid", func() {
		ns := newScheduleNamespace()
		setCSV(ns, "email\na@x.example\n")
		s := onChangeSchedule(ns, func(s *uiov1.ImportSchedule) {
			s.Spec.Triggers.DebounceSeconds = ptr.To[int32](0)
			s.Spec.ConcurrencyPolicy = uiov1.ConcurrencyForbid
		})
		first := expectChildren(s, 1)
		playPhase(&first[0], uiov1.PhaseImporting)
		setCSV(ns, "email\nb@x.example\n")
		after(s, poll) // the next poll reads the source
		pending(s, uiov1.ChangeSourceChanged)
		keepsChildren(s, 1)
		playPhase(&first[0], uiov1.PhaseCompleted)
		tick(s)
		expectChildren(s, 2)
	})

	It("follows the ETag of an http source", func() {
		ns := newScheduleNamespace()
		var etag atomic.Value
		etag.Store(`"v1"`)
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("ETag", etag.Load().(string))
			if r.Method == http.MethodGet {
				_, _ = w.Write([]byte("email\na@x.example\n"))
			}
		}))
		defer srv.Close()
		s := onChangeSchedule(ns, func(s *uiov1.ImportSchedule) {
			s.Spec.Triggers.DebounceSeconds = ptr.To[int32](0)
			s.Spec.Template.Spec.Source = uiov1.ImportSource{HTTP: &uiov1.HTTPSource{URL: srv.URL + "/export.csv", Insecure: true}}
		})
		expectChildren(s, 1)
		after(s, 10*time.Minute)
		keepsChildren(s, 1)
		etag.Store(`"v2"`)
		after(s, poll) // the next poll reads the source
		expectChildren(s, 2)
		Eventually(func(g Gomega) {
			last := getSchedule(s).Status.LastChange
			g.Expect(last.Reason).To(Equal(uiov1.ChangeSourceChanged))
			g.Expect(last.SourceDigest).To(Equal(`etag:"v2"`))
		}, 10*time.Second).Should(Succeed())
	})

	It("runs on change beside a cron schedule", func() {
		ns := newScheduleNamespace()
		setCSV(ns, "email\na@x.example\n")
		scheduleClock.SetTime(at("2025-06-01T09:00:00Z"))
		s := newSchedule(ns, "both", "0 * * * *", func(s *uiov1.ImportSchedule) {
			s.Spec.Triggers = &uiov1.ScheduleTriggers{OnChange: true, DebounceSeconds: ptr.To[int32](0)}
		})
		waitNext(s, at("2025-06-01T10:00:00Z"))
		expectChildren(s, 1) // the first content
		advance(s, at("2025-06-01T10:00:30Z"))
		expectChildren(s, 2) // the clock
		keepsChildren(s, 2)
	})
})

func scheduleCondition(s *uiov1.ImportSchedule, t string) *metav1.Condition {
	for i := range s.Status.Conditions {
		if s.Status.Conditions[i].Type == t {
			return &s.Status.Conditions[i]
		}
	}
	return nil
}
