package integration_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uiov1 "github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/schedule"
	"github.com/userimport/user-import-operator/internal/source"
	"github.com/userimport/user-import-operator/internal/testpeer/sshd"
)

var _ = Describe("ImportSchedule", Label(labelSchedulesAlone), func() {
	var ns string
	BeforeEach(func() {
		ns = newScheduleNamespace()
	})

	It("creates one import per scheduled time, named by it, owned, labelled and annotated", func() {
		scheduleClock.SetTime(at("2025-06-01T09:59:30Z"))
		s := newSchedule(ns, "nightly", "0 * * * *", nil)
		st := waitNext(s, at("2025-06-01T10:00:00Z"))
		Expect(readyReason(st)).To(Equal(uiov1.ReasonScheduled))
		Expect(st.Status.ObservedGeneration).To(Equal(st.Generation))
		keepsChildren(s, 0)

		advance(s, at("2025-06-01T10:00:07Z"))
		st = waitNext(s, at("2025-06-01T11:00:00Z"))
		imps := expectChildren(s, 1)
		imp := imps[0]
		Expect(imp.Name).To(Equal(schedule.ChildName("nightly", at("2025-06-01T10:00:00Z"))))
		Expect(imp.Name).To(Equal(fmt.Sprintf("nightly-%d", at("2025-06-01T10:00:00Z").Unix()/60)))
		Expect(imp.Annotations).To(HaveKeyWithValue(uiov1.ScheduledAtAnnotation, "2025-06-01T10:00:00Z"))
		Expect(imp.Labels).To(HaveKeyWithValue(uiov1.ScheduleLabel, "nightly"))
		Expect(imp.Labels).To(HaveKeyWithValue("team", "hr"))
		ref := metav1.GetControllerOf(&imp)
		Expect(ref).NotTo(BeNil())
		Expect(ref.UID).To(Equal(st.UID))
		Expect(imp.Spec.DirectoryRef.Name).To(Equal("hr-dir"))

		Expect(st.Status.LastScheduleTime.Time).To(BeTemporally("==", at("2025-06-01T10:00:00Z")))
		Eventually(func() []string { return getSchedule(s).Status.Active }).Should(Equal([]string{imp.Name}))
		Expect(getSchedule(s).Status.ActiveCount).To(Equal(int32(1)))
		expectEvent(s, uiov1.ReasonRunStarted, imp.Name)

		By("the import completes: the summary and the last success follow")
		playPhase(&imp, uiov1.PhaseCompleted, func(st *uiov1.UserImportStatus) {
			st.Progress = &uiov1.ProgressStatus{ChangeCounts: uiov1.ChangeCounts{Created: 7, Updated: 3, Unchanged: 90, Failed: 1}}
		})
		Eventually(func(g Gomega) {
			st := getSchedule(s)
			g.Expect(st.Status.Active).To(BeEmpty())
			g.Expect(st.Status.ActiveCount).To(BeZero())
			g.Expect(st.Status.LastImport).NotTo(BeNil())
			g.Expect(*st.Status.LastImport).To(Equal(uiov1.LastImportSummary{
				Name: imp.Name, Phase: uiov1.PhaseCompleted,
				Counts: uiov1.ChangeCounts{Created: 7, Updated: 3, Unchanged: 90, Failed: 1},
			}))
			g.Expect(st.Status.LastSuccessfulTime).NotTo(BeNil())
		}, 10*time.Second, 50*time.Millisecond).Should(Succeed())

		By("a reconcile in the same minute starts nothing more")
		advance(s, at("2025-06-01T10:00:50Z"))
		keepsChildren(s, 1)
	})

	Context("concurrencyPolicy", func() {
		It("Allow starts the next run while the last one is not final", func() {
			scheduleClock.SetTime(at("2025-06-01T09:59:30Z"))
			s := newSchedule(ns, "allow", "0 * * * *", nil)
			waitNext(s, at("2025-06-01T10:00:00Z"))
			advance(s, at("2025-06-01T10:00:05Z"))
			first := expectChildren(s, 1)[0]
			playPhase(&first, uiov1.PhaseImporting)
			advance(s, at("2025-06-01T11:00:05Z"))
			imps := expectChildren(s, 2)
			Expect(imps[0].Name).To(Equal(first.Name))
			Expect(imps[0].Spec.Action).To(Equal(uiov1.ActionImport), "Allow leaves the running import alone")
			Eventually(func() int32 { return getSchedule(s).Status.ActiveCount }).Should(Equal(int32(2)))
		})

		It("Forbid skips a run while the last one is not final, with an Event, and runs again once it is", func() {
			scheduleClock.SetTime(at("2025-06-01T09:59:30Z"))
			s := newSchedule(ns, "forbid", "0 * * * *", func(s *uiov1.ImportSchedule) {
				s.Spec.ConcurrencyPolicy = uiov1.ConcurrencyForbid
			})
			waitNext(s, at("2025-06-01T10:00:00Z"))
			advance(s, at("2025-06-01T10:00:05Z"))
			first := expectChildren(s, 1)[0]
			playPhase(&first, uiov1.PhaseImporting)

			advance(s, at("2025-06-01T11:00:05Z"))
			st := waitNext(s, at("2025-06-01T12:00:00Z"))
			Expect(st.Status.SkippedRuns).To(Equal(int64(1)))
			Expect(st.Status.LastSkipReason).To(ContainSubstring("Forbid"))
			Expect(st.Status.LastSkipReason).To(ContainSubstring(first.Name))
			Expect(st.Status.LastScheduleTime.Time).To(BeTemporally("==", at("2025-06-01T10:00:00Z")))
			keepsChildren(s, 1)
			expectEvent(s, uiov1.ReasonRunSkipped, "Forbid")

			playPhase(&first, uiov1.PhaseCompleted)
			// The controller has seen it complete before 12:00.
			Eventually(func() []string { return getSchedule(s).Status.Active }).Should(BeEmpty())
			advance(s, at("2025-06-01T12:00:05Z"))
			imps := expectChildren(s, 2)
			Expect(imps[1].Name).To(Equal(schedule.ChildName("forbid", at("2025-06-01T12:00:00Z"))))
			Expect(getSchedule(s).Status.SkippedRuns).To(Equal(int64(1)))
		})

		It("Replace cancels the running import and starts the new one", func() {
			scheduleClock.SetTime(at("2025-06-01T09:59:30Z"))
			s := newSchedule(ns, "replace", "0 * * * *", func(s *uiov1.ImportSchedule) {
				s.Spec.ConcurrencyPolicy = uiov1.ConcurrencyReplace
			})
			waitNext(s, at("2025-06-01T10:00:00Z"))
			advance(s, at("2025-06-01T10:00:05Z"))
			first := expectChildren(s, 1)[0]
			playPhase(&first, uiov1.PhaseImporting)

			advance(s, at("2025-06-01T11:00:05Z"))
			imps := expectChildren(s, 2)
			Expect(imps[0].Name).To(Equal(first.Name))
			Expect(imps[0].Spec.Action).To(Equal(uiov1.ActionCancel))
			Expect(imps[1].Spec.Action).To(Equal(uiov1.ActionImport))
			expectEvent(s, "Replacing", first.Name)
		})
	})

	It("starts nothing while suspended, goes on running imports, and on resume does not replay runs beyond the deadline", func() {
		scheduleClock.SetTime(at("2025-06-01T09:59:30Z"))
		s := newSchedule(ns, "suspended", "0 * * * *", func(s *uiov1.ImportSchedule) {
			s.Spec.StartingDeadlineSeconds = ptr.To(int64(600))
		})
		waitNext(s, at("2025-06-01T10:00:00Z"))
		advance(s, at("2025-06-01T10:00:05Z"))
		first := expectChildren(s, 1)[0]
		playPhase(&first, uiov1.PhaseImporting)

		setSuspend(s, true)
		Eventually(func() string { return readyReason(getSchedule(s)) }).Should(Equal(uiov1.ReasonSuspended))
		advance(s, at("2025-06-01T12:30:00Z"))
		keepsChildren(s, 1)
		Expect(getSchedule(s).Status.Active).To(Equal([]string{first.Name}), "the running import goes on")

		By("resuming at 12:30: 11:00 and 12:00 are beyond the 600s deadline")
		setSuspend(s, false)
		st := waitNext(s, at("2025-06-01T13:00:00Z"))
		Expect(st.Status.MissedRuns).To(Equal(int64(2)))
		keepsChildren(s, 1)
		Expect(readyReason(st)).To(Equal(uiov1.ReasonScheduled))

		By("the next run starts as usual")
		advance(s, at("2025-06-01T13:00:30Z"))
		expectChildren(s, 2)
	})

	It("resumed within the deadline, starts the last run missed while suspended", func() {
		scheduleClock.SetTime(at("2025-06-01T09:59:30Z"))
		s := newSchedule(ns, "resumed", "0 * * * *", func(s *uiov1.ImportSchedule) {
			s.Spec.Suspend = true
			s.Spec.StartingDeadlineSeconds = ptr.To(int64(600))
		})
		Eventually(func() string { return readyReason(getSchedule(s)) }).Should(Equal(uiov1.ReasonSuspended))
		scheduleClock.SetTime(at("2025-06-01T12:05:00Z"))
		setSuspend(s, false)
		waitNext(s, at("2025-06-01T13:00:00Z"))
		imps := expectChildren(s, 1)
		Expect(imps[0].Annotations[uiov1.ScheduledAtAnnotation]).To(Equal("2025-06-01T12:00:00Z"))
	})

	Context("after downtime", func() {
		It("without a deadline, starts only the most recent missed run and says how many were missed", func() {
			scheduleClock.SetTime(at("2025-06-01T09:59:30Z"))
			s := newSchedule(ns, "downtime", "0 * * * *", nil)
			waitNext(s, at("2025-06-01T10:00:00Z"))
			advance(s, at("2025-06-01T15:30:00Z"))
			st := waitNext(s, at("2025-06-01T16:00:00Z"))
			imps := keepsChildren(s, 1)
			Expect(imps[0].Annotations[uiov1.ScheduledAtAnnotation]).To(Equal("2025-06-01T15:00:00Z"))
			Expect(st.Status.MissedRuns).To(Equal(int64(5)))
			Expect(st.Status.LastScheduleTime.Time).To(BeTemporally("==", at("2025-06-01T15:00:00Z")))
			expectEvent(s, uiov1.ReasonMissedRuns, "5 runs were missed")
		})

		It("with a deadline, starts the most recent run only when it is within the deadline", func() {
			scheduleClock.SetTime(at("2025-06-01T09:59:30Z"))
			late := newSchedule(ns, "late", "0 * * * *", func(s *uiov1.ImportSchedule) {
				s.Spec.StartingDeadlineSeconds = ptr.To(int64(300))
			})
			inTime := newSchedule(ns, "in-time", "0 * * * *", func(s *uiov1.ImportSchedule) {
				s.Spec.StartingDeadlineSeconds = ptr.To(int64(300))
			})
			waitNext(late, at("2025-06-01T10:00:00Z"))
			waitNext(inTime, at("2025-06-01T10:00:00Z"))

			advance(late, at("2025-06-01T15:30:00Z"))
			st := waitNext(late, at("2025-06-01T16:00:00Z"))
			Expect(st.Status.MissedRuns).To(Equal(int64(6)))
			Expect(st.Status.LastScheduleTime).To(BeNil())
			keepsChildren(late, 0)
			expectEvent(late, uiov1.ReasonMissedRuns, "6 runs were missed")

			advance(inTime, at("2025-06-01T15:03:00Z"))
			st = waitNext(inTime, at("2025-06-01T16:00:00Z"))
			Expect(st.Status.MissedRuns).To(Equal(int64(5)))
			imps := expectChildren(inTime, 1)
			Expect(imps[0].Annotations[uiov1.ScheduledAtAnnotation]).To(Equal("2025-06-01T15:00:00Z"))
		})
	})

	Context("in Europe/Berlin", func() {
		It("runs 02:30 once on the day the clock goes forward, at 03:30 CEST", func() {
			scheduleClock.SetTime(at("2026-03-28T23:00:00Z")) // 00:00 CET
			s := newSchedule(ns, "spring", "30 2 * * *", func(s *uiov1.ImportSchedule) { s.Spec.TimeZone = "Europe/Berlin" })
			waitNext(s, at("2026-03-29T01:30:00Z")) // 03:30 CEST
			advance(s, at("2026-03-29T00:59:00Z"))  // 01:59 CET
			keepsChildren(s, 0)
			advance(s, at("2026-03-29T01:31:00Z")) // 03:31 CEST
			waitNext(s, at("2026-03-30T00:30:00Z"))
			imps := expectChildren(s, 1)
			Expect(imps[0].Annotations[uiov1.ScheduledAtAnnotation]).To(Equal("2026-03-29T01:30:00Z"))
			Expect(getSchedule(s).Status.MissedRuns).To(BeZero())
			expectEvent(s, uiov1.ReasonClockChange, "02:30 does not exist on 2026-03-29 in Europe/Berlin (the clock jumps forward); its run is the one at 03:30 CEST")
		})

		It("runs an hourly schedule once for 02:00 and 03:00 on the day the clock goes forward, and says so", func() {
			scheduleClock.SetTime(at("2026-03-29T00:30:00Z")) // 01:30 CET
			s := newSchedule(ns, "spring-hourly", "0 * * * *", func(s *uiov1.ImportSchedule) { s.Spec.TimeZone = "Europe/Berlin" })
			waitNext(s, at("2026-03-29T01:00:00Z")) // 03:00 CEST
			advance(s, at("2026-03-29T01:00:30Z"))
			waitNext(s, at("2026-03-29T02:00:00Z")) // 04:00 CEST
			expectChildren(s, 1)
			expectEvent(s, uiov1.ReasonClockChange, "02:00 does not exist on 2026-03-29 in Europe/Berlin (the clock jumps forward); its run is the one at 03:00 CEST")
			Expect(getSchedule(s).Status.MissedRuns).To(BeZero())
		})

		It("runs 02:30 once on the day the clock goes back, at the first 02:30", func() {
			scheduleClock.SetTime(at("2026-10-24T22:00:00Z")) // 00:00 CEST
			s := newSchedule(ns, "autumn", "30 2 * * *", func(s *uiov1.ImportSchedule) { s.Spec.TimeZone = "Europe/Berlin" })
			waitNext(s, at("2026-10-25T00:30:00Z")) // 02:30 CEST
			advance(s, at("2026-10-25T00:31:00Z"))
			waitNext(s, at("2026-10-26T01:30:00Z")) // 02:30 CET the next day
			expectChildren(s, 1)
			advance(s, at("2026-10-25T01:31:00Z")) // 02:31 CET: the second 02:30 has passed
			imps := keepsChildren(s, 1)
			Expect(imps[0].Annotations[uiov1.ScheduledAtAnnotation]).To(Equal("2026-10-25T00:30:00Z"))
			Expect(getSchedule(s).Status.NextScheduleTime.Time).To(BeTemporally("==", at("2026-10-26T01:30:00Z")))
		})
	})

	It("deletes the oldest final imports beyond the history limits", func() {
		scheduleClock.SetTime(at("2025-06-01T09:59:30Z"))
		s := newSchedule(ns, "history", "0 * * * *", func(s *uiov1.ImportSchedule) {
			s.Spec.SuccessfulHistoryLimit = ptr.To(int32(2))
			s.Spec.FailedHistoryLimit = ptr.To(int32(1))
		})
		waitNext(s, at("2025-06-01T10:00:00Z"))
		phases := []uiov1.ImportPhase{uiov1.PhaseCompleted, uiov1.PhaseFailed, uiov1.PhaseCompleted, uiov1.PhaseCancelled, uiov1.PhaseCompleted}
		var names []string
		for i, phase := range phases {
			due := at("2025-06-01T10:00:00Z").Add(time.Duration(i) * time.Hour)
			advance(s, due.Add(10*time.Second))
			name := schedule.ChildName("history", due)
			names = append(names, name)
			Eventually(func() []string { return childNames(s) }, 10*time.Second, 50*time.Millisecond).Should(ContainElement(name))
			playPhase(&uiov1.UserImport{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}}, phase)
		}
		// The last phase change wakes the controller through the watch.
		Eventually(func() []string { return childNames(s) }, 10*time.Second, 50*time.Millisecond).
			Should(ConsistOf(names[2], names[3], names[4]))
		expectEvent(s, uiov1.ReasonHistoryDeleted, names[0])
		Expect(getSchedule(s).Status.LastImport.Name).To(Equal(names[4]))
	})

	Context("skipIfUnchanged", func() {
		csvA := "email\nada@example.com\n"
		csvB := "email\nbob@example.com\n"
		sum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }

		It("skips a run whose ConfigMap source is unchanged since the last completed import, and runs once it changed", func() {
			cm := &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: "hr-export", Namespace: ns},
				Data:       map[string]string{"export.csv": csvA},
			}
			Expect(k8sClient.Create(ctx, cm)).To(Succeed())
			scheduleClock.SetTime(at("2025-06-01T09:59:30Z"))
			s := newSchedule(ns, "unchanged", "0 * * * *", func(s *uiov1.ImportSchedule) { s.Spec.SkipIfUnchanged = true })
			waitNext(s, at("2025-06-01T10:00:00Z"))
			advance(s, at("2025-06-01T10:00:05Z"))
			first := expectChildren(s, 1)[0]
			playPhase(&first, uiov1.PhaseCompleted, func(st *uiov1.UserImportStatus) {
				st.Source = &uiov1.SourceStatus{SHA256: sum(csvA), Size: int64(len(csvA)), Rows: 1}
			})
			// The schedule has seen the import complete before the clock moves.
			Eventually(func() []string { return getSchedule(s).Status.Active }).Should(BeEmpty())

			By("the file is the same at 11:00")
			advance(s, at("2025-06-01T11:00:05Z"))
			st := waitNext(s, at("2025-06-01T12:00:00Z"))
			Expect(st.Status.SkippedRuns).To(Equal(int64(1)))
			Expect(st.Status.LastSkipReason).To(ContainSubstring("skipIfUnchanged"))
			Expect(st.Status.LastSkipReason).To(ContainSubstring(first.Name))
			keepsChildren(s, 1)
			expectEvent(s, uiov1.ReasonRunSkipped, "skipIfUnchanged")

			By("HR exported a new file before 12:00")
			cm.Data["export.csv"] = csvB
			Expect(k8sClient.Update(ctx, cm)).To(Succeed())
			advance(s, at("2025-06-01T12:00:05Z"))
			st = waitNext(s, at("2025-06-01T13:00:00Z"))
			imps := expectChildren(s, 2)
			Expect(imps[1].Annotations[uiov1.ScheduledAtAnnotation]).To(Equal("2025-06-01T12:00:00Z"))
			Expect(st.Status.SkippedRuns).To(Equal(int64(1)))
		})

		It("asks an http source for its ETag with the source's credentials, skips when it is the same, runs when it changed or the server fails", func() {
			var mu sync.Mutex
			etag, status, heads := `"v1"`, http.StatusOK, 0
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				mu.Lock()
				defer mu.Unlock()
				if r.Header.Get("Authorization") != "Bearer s3cret" {
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				if r.Method == http.MethodHead {
					heads++
				}
				w.Header().Set("ETag", etag)
				w.Header().Set("Content-Length", fmt.Sprint(len(csvA)))
				w.WriteHeader(status)
			}))
			DeferCleanup(srv.Close)
			set := func(e string, code int) { mu.Lock(); etag, status = e, code; mu.Unlock() }
			Expect(k8sClient.Create(ctx, &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: "hr-token", Namespace: ns},
				Data:       map[string][]byte{"token": []byte("s3cret")},
			})).To(Succeed())

			scheduleClock.SetTime(at("2025-06-01T09:59:30Z"))
			s := newSchedule(ns, "over-http", "0 * * * *", func(s *uiov1.ImportSchedule) {
				s.Spec.SkipIfUnchanged = true
				s.Spec.Template.Spec.Source = uiov1.ImportSource{HTTP: &uiov1.HTTPSource{
					URL: srv.URL + "/export.csv", BearerToken: &uiov1.SecretKeyRef{Name: "hr-token", Key: "token"},
					Insecure: true,
				}}
			})
			waitNext(s, at("2025-06-01T10:00:00Z"))
			advance(s, at("2025-06-01T10:00:05Z"))
			first := expectChildren(s, 1)[0]
			playPhase(&first, uiov1.PhaseCompleted, func(st *uiov1.UserImportStatus) {
				st.Source = &uiov1.SourceStatus{ETag: `"v1"`, Size: int64(len(csvA)), SHA256: sum(csvA)}
			})
			Eventually(func() []string { return getSchedule(s).Status.Active }).Should(BeEmpty())

			By("the same ETag at 11:00")
			advance(s, at("2025-06-01T11:00:05Z"))
			st := waitNext(s, at("2025-06-01T12:00:00Z"))
			Expect(st.Status.SkippedRuns).To(Equal(int64(1)))
			Expect(st.Status.LastSkipReason).To(ContainSubstring(`ETag "v1"`))
			keepsChildren(s, 1)
			mu.Lock()
			Expect(heads).To(Equal(1))
			mu.Unlock()

			By("the server fails at 12:00: not knowing is no reason to skip")
			set(`"v1"`, http.StatusInternalServerError)
			advance(s, at("2025-06-01T12:00:05Z"))
			waitNext(s, at("2025-06-01T13:00:00Z"))
			expectChildren(s, 2)
			expectEvent(s, uiov1.ReasonSourceCheckFailed, "500")

			By("a new ETag at 13:00")
			set(`"v2"`, http.StatusOK)
			advance(s, at("2025-06-01T13:00:05Z"))
			waitNext(s, at("2025-06-01T14:00:00Z"))
			expectChildren(s, 3)
			Expect(getSchedule(s).Status.SkippedRuns).To(Equal(int64(1)))
		})

		It("lists an SFTP folder for the newest export, skips when it is the file the last import completed, runs once a newer one arrives", func() {
			srv, stop, err := sshd.StartTemp()
			Expect(err).NotTo(HaveOccurred())
			DeferCleanup(stop)
			keys := map[string]string{"username": sshd.User, "password": sshd.Password, "known_hosts": srv.KnownHosts}
			Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "hr-sftp", Namespace: ns}, StringData: keys})).To(Succeed())
			src := uiov1.ImportSource{SFTP: &uiov1.SFTPSource{FileSelector: uiov1.FileSelector{Pattern: "out/employees_*.csv"},
				Host: srv.Host, Port: int32(srv.Port), Credentials: uiov1.LocalObjectReference{Name: "hr-sftp"},
				KnownHosts: &uiov1.SecretKeyRef{Name: "hr-sftp", Key: "known_hosts"}}}
			day := time.Now().Add(-48 * time.Hour).Truncate(time.Second)
			Expect(srv.WriteFile("out/employees_20261128.csv", []byte(csvA), day)).To(Succeed())

			scheduleClock.SetTime(at("2025-06-01T09:59:30Z"))
			s := newSchedule(ns, "over-sftp", "0 * * * *", func(s *uiov1.ImportSchedule) {
				s.Spec.SkipIfUnchanged = true
				s.Spec.Template.Spec.Source = src
			})
			waitNext(s, at("2025-06-01T10:00:00Z"))
			advance(s, at("2025-06-01T10:00:05Z"))
			first := expectChildren(s, 1)[0]
			// What the worker recorded of the file it read.
			read, err := source.Fetch(ctx, src, source.Options{Secrets: func(_ context.Context, _, key string) ([]byte, error) { return []byte(keys[key]), nil }})
			Expect(err).NotTo(HaveOccurred())
			read.Remove()
			playPhase(&first, uiov1.PhaseCompleted, func(st *uiov1.UserImportStatus) {
				t := metav1.NewTime(read.ModTime)
				st.Source = &uiov1.SourceStatus{Name: read.Name, Size: read.Size, ModTime: &t, Fingerprint: read.Fingerprint}
			})
			Eventually(func() []string { return getSchedule(s).Status.Active }).Should(BeEmpty())

			By("the same newest file at 11:00")
			advance(s, at("2025-06-01T11:00:05Z"))
			st := waitNext(s, at("2025-06-01T12:00:00Z"))
			Expect(st.Status.SkippedRuns).To(Equal(int64(1)))
			Expect(st.Status.LastSkipReason).To(ContainSubstring("out/employees_20261128.csv"))
			keepsChildren(s, 1)

			By("the next export arrives before 12:00")
			Expect(srv.WriteFile("out/employees_20261129.csv", []byte(csvB), day.Add(24*time.Hour))).To(Succeed())
			advance(s, at("2025-06-01T12:00:05Z"))
			waitNext(s, at("2025-06-01T13:00:00Z"))
			expectChildren(s, 2)
			Expect(getSchedule(s).Status.SkippedRuns).To(Equal(int64(1)))
		})

		It("runs when the template changed, even if the file did not", func() {
			Expect(k8sClient.Create(ctx, &corev1.ConfigMap{
				ObjectMeta: metav1.ObjectMeta{Name: "hr-export", Namespace: ns},
				Data:       map[string]string{"export.csv": csvA},
			})).To(Succeed())
			scheduleClock.SetTime(at("2025-06-01T09:59:30Z"))
			s := newSchedule(ns, "retemplated", "0 * * * *", func(s *uiov1.ImportSchedule) { s.Spec.SkipIfUnchanged = true })
			waitNext(s, at("2025-06-01T10:00:00Z"))
			advance(s, at("2025-06-01T10:00:05Z"))
			first := expectChildren(s, 1)[0]
			playPhase(&first, uiov1.PhaseCompleted, func(st *uiov1.UserImportStatus) {
				st.Source = &uiov1.SourceStatus{SHA256: sum(csvA), Size: int64(len(csvA))}
			})
			editSchedule(s, func(s *uiov1.ImportSchedule) { s.Spec.Template.Spec.Mode = uiov1.ModeFull })
			advance(s, at("2025-06-01T11:00:05Z"))
			expectChildren(s, 2)
			Expect(getSchedule(s).Status.SkippedRuns).To(BeZero())
		})
	})

	It("starts a run now when the run-now annotation gets a new value, once per value, even while suspended", func() {
		scheduleClock.SetTime(at("2025-06-01T10:20:00Z"))
		s := newSchedule(ns, "manual", "0 2 * * *", func(s *uiov1.ImportSchedule) { s.Spec.Suspend = true })
		Eventually(func() string { return readyReason(getSchedule(s)) }).Should(Equal(uiov1.ReasonSuspended))
		keepsChildren(s, 0)

		annotateSchedule(s, uiov1.RunNowAnnotation, "2025-06-01T10:20:00Z")
		imps := expectChildren(s, 1)
		Expect(imps[0].Name).To(Equal(schedule.RunNowName("manual", "2025-06-01T10:20:00Z")))
		Expect(imps[0].Annotations[uiov1.ScheduledAtAnnotation]).To(Equal("2025-06-01T10:20:00Z"))
		Expect(metav1.GetControllerOf(&imps[0])).NotTo(BeNil())
		Eventually(func() string { return getSchedule(s).Status.LastRunNowToken }).Should(Equal("2025-06-01T10:20:00Z"))
		expectEvent(s, uiov1.ReasonRunNow, imps[0].Name)

		tick(s)
		keepsChildren(s, 1)

		scheduleClock.SetTime(at("2025-06-01T10:25:00Z"))
		annotateSchedule(s, uiov1.RunNowAnnotation, "2025-06-01T10:25:00Z")
		expectChildren(s, 2)
		Expect(getSchedule(s).Status.LastScheduleTime).To(BeNil(), "a run now is not a scheduled run")
	})

	It("applies template edits to later runs only", func() {
		scheduleClock.SetTime(at("2025-06-01T09:59:30Z"))
		s := newSchedule(ns, "edited", "0 * * * *", nil)
		waitNext(s, at("2025-06-01T10:00:00Z"))
		advance(s, at("2025-06-01T10:00:05Z"))
		first := expectChildren(s, 1)[0]
		playPhase(&first, uiov1.PhaseImporting)

		editSchedule(s, func(s *uiov1.ImportSchedule) {
			s.Spec.Template.Spec.DirectoryRef.Name = "new-dir"
			s.Spec.Template.Metadata.Labels["team"] = "it"
		})
		Eventually(func() int64 { return getSchedule(s).Status.ObservedGeneration }).Should(Equal(int64(2)))
		imps := keepsChildren(s, 1)
		Expect(imps[0].Spec.DirectoryRef.Name).To(Equal("hr-dir"))
		Expect(imps[0].Labels["team"]).To(Equal("hr"))
		Expect(getSchedule(s).Status.NextScheduleTime.Time).To(BeTemporally("==", at("2025-06-01T11:00:00Z")),
			"a template edit does not move the schedule")

		advance(s, at("2025-06-01T11:00:05Z"))
		imps = expectChildren(s, 2)
		Expect(imps[0].Spec.DirectoryRef.Name).To(Equal("hr-dir"))
		Expect(imps[1].Spec.DirectoryRef.Name).To(Equal("new-dir"))
		Expect(imps[1].Labels["team"]).To(Equal("it"))
	})

	It("reports a schedule that never fires as Stalled, without a loop", func() {
		scheduleClock.SetTime(at("2025-06-01T09:59:30Z"))
		s := newSchedule(ns, "never", "0 0 30 2 *", nil)
		Eventually(func(g Gomega) {
			st := getSchedule(s)
			c := meta.FindStatusCondition(st.Status.Conditions, uiov1.ConditionStalled)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
			g.Expect(c.Reason).To(Equal(uiov1.ReasonNeverFires))
			g.Expect(st.Status.NextScheduleTime).To(BeNil())
		}, 10*time.Second, 50*time.Millisecond).Should(Succeed())
		rv := getSchedule(s).ResourceVersion
		Consistently(func() string { return getSchedule(s).ResourceVersion }, time.Second, 100*time.Millisecond).Should(Equal(rv))
	})

	It("reports a schedule the API server let through but the parser refuses as Stalled, with the parser's reason", func() {
		scheduleClock.SetTime(at("2025-06-01T09:59:30Z"))
		// A backwards range passes the CRD's pattern; robfig/cron refuses it.
		s := newSchedule(ns, "backwards", "5-3 * * * *", nil)
		Eventually(func(g Gomega) {
			st := getSchedule(s)
			c := meta.FindStatusCondition(st.Status.Conditions, uiov1.ConditionStalled)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
			g.Expect(c.Reason).To(Equal(uiov1.ReasonInvalidSchedule))
			g.Expect(c.Message).To(ContainSubstring("beyond end of range"))
			g.Expect(st.Status.NextScheduleTime).To(BeNil())
		}, 10*time.Second, 50*time.Millisecond).Should(Succeed())
		// Past the times it would have fired: nothing runs and nothing
		// is written again.
		advance(s, at("2025-06-01T11:00:05Z"))
		rv := getSchedule(s).ResourceVersion
		keepsChildren(s, 0)
		Expect(getSchedule(s).ResourceVersion).To(Equal(rv))

		// Fixing the spec schedules it again.
		cur := getSchedule(s)
		cur.Spec.Schedule = "3-5 * * * *"
		Expect(k8sClient.Update(ctx, cur)).To(Succeed())
		Eventually(func(g Gomega) {
			st := getSchedule(s)
			g.Expect(st.Status.NextScheduleTime).NotTo(BeNil())
			g.Expect(meta.IsStatusConditionTrue(st.Status.Conditions, uiov1.ConditionReady)).To(BeTrue())
		}, 10*time.Second, 50*time.Millisecond).Should(Succeed())
	})

	It("fires 100 schedules due in the same minute exactly once each", func() {
		scheduleClock.SetTime(at("2025-06-02T10:04:30Z"))
		var all []*uiov1.ImportSchedule
		for i := 0; i < 100; i++ {
			all = append(all, newSchedule(ns, fmt.Sprintf("batch-%03d", i), "5 10 * * *", nil))
		}
		start := time.Now()
		for _, s := range all {
			waitNext(s, at("2025-06-02T10:05:00Z"))
		}
		AddReportEntry("100 schedules created and first reconciled", time.Since(start).String())
		scheduleClock.SetTime(at("2025-06-02T10:05:20Z"))
		start = time.Now()
		for _, s := range all {
			tick(s)
		}
		countAll := func() int {
			var list uiov1.UserImportList
			Expect(k8sClient.List(ctx, &list, client.InNamespace(ns))).To(Succeed())
			return len(list.Items)
		}
		Eventually(countAll, 30*time.Second, 100*time.Millisecond).Should(Equal(100))
		AddReportEntry("100 due schedules woken until 100 imports exist", time.Since(start).String())
		for _, s := range all {
			waitNext(s, at("2025-06-03T10:05:00Z"))
		}
		By("a second wave of reconciles in the same minute starts nothing")
		scheduleClock.SetTime(at("2025-06-02T10:05:40Z"))
		for _, s := range all {
			tick(s)
		}
		Consistently(countAll, 2*time.Second, 200*time.Millisecond).Should(Equal(100))
		for _, s := range all {
			Expect(childNames(s)).To(Equal([]string{schedule.ChildName(s.Name, at("2025-06-02T10:05:00Z"))}))
		}
	})
})

var _ = Describe("ImportSchedule across a manager restart", Label(labelSchedulesAlone), func() {
	It("fires exactly once when the due time passes while the manager is down", func() {
		ns := newScheduleNamespace()
		scheduleClock.SetTime(at("2025-07-01T09:59:00Z"))
		s := newSchedule(ns, "restart", "0 * * * *", nil)
		waitNext(s, at("2025-07-01T10:00:00Z"))

		stopManager()
		scheduleClock.SetTime(at("2025-07-01T10:00:30Z"))
		stopManager = startScheduleManager()
		// The new manager reconciles every schedule when it starts.
		imps := expectChildren(s, 1)
		Expect(imps[0].Name).To(Equal(schedule.ChildName("restart", at("2025-07-01T10:00:00Z"))))
		waitNext(s, at("2025-07-01T11:00:00Z"))
		tick(s)
		keepsChildren(s, 1)
		Expect(getSchedule(s).Status.MissedRuns).To(BeZero())
	})

	It("adopts the import a manager created just before it stopped, without a second one", func() {
		ns := newScheduleNamespace()
		scheduleClock.SetTime(at("2025-07-01T09:59:00Z"))
		s := newSchedule(ns, "crashed", "0 * * * *", func(s *uiov1.ImportSchedule) {
			s.Spec.ConcurrencyPolicy = uiov1.ConcurrencyForbid
		})
		st := waitNext(s, at("2025-07-01T10:00:00Z"))

		stopManager()
		// What the old manager did before its status write was lost: the
		// import of the 10:00 run exists, the schedule's status does not
		// know it.
		name := schedule.ChildName("crashed", at("2025-07-01T10:00:00Z"))
		imp := &uiov1.UserImport{
			ObjectMeta: metav1.ObjectMeta{
				Name: name, Namespace: ns,
				Labels:      map[string]string{uiov1.ScheduleLabel: "crashed"},
				Annotations: map[string]string{uiov1.ScheduledAtAnnotation: "2025-07-01T10:00:00Z"},
				OwnerReferences: []metav1.OwnerReference{{
					APIVersion: uiov1.GroupVersion.String(), Kind: "ImportSchedule", Name: st.Name, UID: st.UID,
					Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true),
				}},
			},
			Spec: st.Spec.Template.Spec,
		}
		Expect(k8sClient.Create(ctx, imp)).To(Succeed())
		scheduleClock.SetTime(at("2025-07-01T10:00:40Z"))
		stopManager = startScheduleManager()

		st = waitNext(s, at("2025-07-01T11:00:00Z"))
		Expect(st.Status.LastScheduleTime.Time).To(BeTemporally("==", at("2025-07-01T10:00:00Z")))
		Expect(st.Status.SkippedRuns).To(BeZero(), "its own import of the run does not make Forbid skip it")
		Expect(st.Status.Active).To(Equal([]string{name}))
		keepsChildren(s, 1)
	})
})

func setSuspend(s *uiov1.ImportSchedule, suspend bool) {
	GinkgoHelper()
	editSchedule(s, func(s *uiov1.ImportSchedule) { s.Spec.Suspend = suspend })
}

// editSchedule changes the spec of s on the API server.
func editSchedule(s *uiov1.ImportSchedule, edit func(*uiov1.ImportSchedule)) {
	GinkgoHelper()
	Eventually(func() error {
		cur := getSchedule(s)
		edit(cur)
		return k8sClient.Update(ctx, cur)
	}, 5*time.Second, 50*time.Millisecond).Should(Succeed())
}

func annotateSchedule(s *uiov1.ImportSchedule, key, value string) {
	GinkgoHelper()
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%q}}}`, key, value)
	Expect(k8sClient.Patch(ctx, &uiov1.ImportSchedule{ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: s.Namespace}},
		client.RawPatch(types.MergePatchType, []byte(patch)))).To(Succeed())
}
