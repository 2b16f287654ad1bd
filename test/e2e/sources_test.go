//go:build e2e

package e2e

import (
	"bufio"
	"context"
	"encoding/csv"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uiov1 "github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/hrgen"
	"github.com/userimport/user-import-operator/internal/testpeer/postgres"
	"github.com/userimport/user-import-operator/internal/testpeer/s3server"
)

// writeExport writes n rows of the HR generator with all its columns
// (about 144 bytes a row) and records a sample of their values for the
// log scan.
func writeExport(path string, from, n int) int64 {
	f, err := os.Create(path)
	Expect(err).NotTo(HaveOccurred())
	bw := bufio.NewWriterSize(f, 1<<20)
	w := csv.NewWriter(bw)
	Expect(w.Write(hrgen.Header)).To(Succeed())
	rowValues.Lock()
	for i := from; i < from+n; i++ {
		row := hrgen.Row(csvSeed, i)
		Expect(w.Write(row)).To(Succeed())
		if i%10000 == 0 {
			for _, c := range csvIndex {
				rowValues.set[row[c]] = struct{}{}
			}
		}
	}
	rowValues.Unlock()
	w.Flush()
	Expect(w.Error()).NotTo(HaveOccurred())
	Expect(bw.Flush()).To(Succeed())
	Expect(f.Close()).To(Succeed())
	st, err := os.Stat(path)
	Expect(err).NotTo(HaveOccurred())
	return st.Size()
}

// s3Export serves the file at path from a versitygw of its own, under
// workday/ in bucket hr-exports, with its keys in Secret keys, and returns
// the source that reads the newest such file.
func s3Export(ctx context.Context, work, keys, path string) uiov1.ImportSource {
	srv, err := s3server.StartIn(filepath.Join(work, "s3"), podsAddress())
	Expect(err).NotTo(HaveOccurred(), "starting versitygw (hack/peers/install-s3.sh)")
	DeferCleanup(srv.Stop)
	Expect(srv.Bucket(ctx, "hr-exports", false)).To(Succeed())
	f, err := os.Open(path)
	Expect(err).NotTo(HaveOccurred())
	_, err = srv.Client.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("hr-exports"), Key: aws.String("workday/" + filepath.Base(path)), Body: f})
	f.Close()
	Expect(err).NotTo(HaveOccurred())
	secret(ctx, keys, map[string]string{"accessKeyID": s3server.AccessKey, "secretAccessKey": s3server.SecretKey})
	return uiov1.ImportSource{S3: &uiov1.S3Source{
		FileSelector: uiov1.FileSelector{Pattern: "workday/employees_*.csv"},
		Bucket:       "hr-exports", Endpoint: srv.Endpoint, PathStyle: true,
		Credentials: &uiov1.LocalObjectReference{Name: keys},
		// The test server speaks http.
		Insecure: true,
	}}
}

// podLog reads the log of a worker pod.
func podLog(ctx context.Context, p *corev1.Pod) string {
	b, err := clientset.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
	Expect(err).NotTo(HaveOccurred(), "logs of %s", p.Name)
	return string(b)
}

// holdLock is the advisory lock that holds a worker at a chosen row.
const holdLock = 4242

var (
	sourceReadLine = regexp.MustCompile(`source: read (\d+) bytes in (\d+) requests`)
	peakMemoryLine = regexp.MustCompile(`worker: peak memory (\d+) MiB`)
)

func logNumber(re *regexp.Regexp, log string, group int) int64 {
	m := re.FindStringSubmatch(log)
	Expect(m).NotTo(BeNil(), "the worker's log has no line matching %s:\n%s", re, tail(log, 2000))
	n, err := strconv.ParseInt(m[group], 10, 64)
	Expect(err).NotTo(HaveOccurred())
	return n
}

var _ = Describe("Imports of files read in place", Ordered, SpecPriority(70), func() {
	var pg *postgres.Server
	BeforeAll(func() {
		pg = startPostgres()
	})

	It("imports 1,000,000 rows from S3 with a 128 MiB worker, resuming with a range request after its pod is deleted", func(ctx SpecContext) {
		const n = 1_000_000
		work := GinkgoT().TempDir()
		path := filepath.Join(work, "employees_20261129.csv")
		size := writeExport(path, 0, n)

		source := s3Export(ctx, work, "s3-million-keys", path)

		table := newTable(ctx, pg, "people_s3")
		// The worker is held at the middle of the file, so that its pod is
		// deleted mid-import however fast the machine: a row trigger waits
		// on an advisory lock that this connection holds until the pod is
		// gone.
		hold := table.conn(ctx)
		_, err := hold.Exec(ctx, "SELECT pg_advisory_lock($1)", holdLock)
		Expect(err).NotTo(HaveOccurred())
		held := hrgen.Row(csvSeed, n/2)[hrgen.ColEmployeeID]
		table.exec(ctx, fmt.Sprintf(`CREATE FUNCTION hold_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_advisory_xact_lock_shared(%d); RETURN NEW; END $$`, holdLock))
		table.exec(ctx, "CREATE TRIGGER hold BEFORE INSERT ON people_s3 FOR EACH ROW WHEN (NEW.employee_id = '"+held+"') EXECUTE FUNCTION hold_row()")
		limit := resource.MustParse("128Mi")
		sqlDirectory(ctx, "s3-million", table, "", uiov1.ExecutionSettings{Concurrency: 4, BatchSize: 1000,
			Resources: &corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: limit},
				Limits:   corev1.ResourceList{corev1.ResourceMemory: limit},
			}})
		spec := importSpec("s3-million", "", uiov1.ModeDelta, uiov1.ActionImport)
		spec.Source = source
		start := time.Now()
		imp := newImport(ctx, "s3-million", spec)

		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(imp), imp)).To(Succeed())
			if imp.Status.Phase.IsFinal() {
				StopTrying(fmt.Sprintf("the import ended %s before it could be interrupted: %s", imp.Status.Phase, describeConditions(imp.Status.Conditions))).Now()
			}
			g.Expect(imp.Status.Progress).NotTo(BeNil())
			g.Expect(imp.Status.Progress.Checkpoint).NotTo(BeNil())
			g.Expect(imp.Status.Progress.Checkpoint.Line).To(BeNumerically(">", n/4))
			var waiting int
			g.Expect(hold.QueryRow(ctx, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid::bigint = $1 AND NOT granted", holdLock).Scan(&waiting)).To(Succeed())
			g.Expect(waiting).To(BeNumerically(">", 0), "the worker waits at the held row")
		}).WithContext(ctx).WithTimeout(15 * time.Minute).WithPolling(200 * time.Millisecond).Should(Succeed())
		cp := *imp.Status.Progress.Checkpoint
		Expect(cp.DuplicatesKnown).To(BeTrue(), "the checkpoint carries the duplicates ahead")
		Expect(imp.Status.Source.Name).To(Equal("workday/employees_20261129.csv"))
		pods := jobPods(ctx, imp.Status.JobName)
		Expect(pods).To(HaveLen(1))
		first := pods[0]
		keepLogs(ctx, &first)
		Expect(k8s.Delete(ctx, &first)).To(Succeed())
		killed := time.Now()
		Eventually(func() bool {
			return apierrors.IsNotFound(k8s.Get(ctx, client.ObjectKeyFromObject(&first), &corev1.Pod{}))
		}).WithContext(ctx).WithTimeout(2*time.Minute).Should(BeTrue(), "the deleted pod is gone")
		_, err = hold.Exec(ctx, "SELECT pg_advisory_unlock($1)", holdLock)
		Expect(err).NotTo(HaveOccurred())

		waitPhase(ctx, imp, uiov1.PhaseCompleted, 20*time.Minute)
		took := time.Since(start)
		Expect(imp.Status.Progress.Resumes).To(BeNumerically(">=", 1))
		var count int64
		Expect(table.conn(ctx).QueryRow(ctx, "SELECT count(*) FROM people_s3").Scan(&count)).To(Succeed())
		Expect(count).To(BeEquivalentTo(n))

		var last *corev1.Pod
		for _, p := range jobPods(ctx, imp.Status.JobName) {
			if p.Name != first.Name && p.Status.Phase == corev1.PodSucceeded {
				last = &p
			}
		}
		Expect(last).NotTo(BeNil(), "the pod that resumed")
		log := podLog(ctx, last)
		read := logNumber(sourceReadLine, log, 1)
		peak := logNumber(peakMemoryLine, log, 1)
		Expect(read).To(BeNumerically("<", size), "the resumed pod read the rest of the file, not all of it")
		Expect(read).To(BeNumerically("<=", size-cp.Offset+2*64<<10+1))
		Expect(peak).To(BeNumerically("<=", 128))
		Expect(last.Status.ContainerStatuses[0].RestartCount).To(BeZero())
		report("s3-million", "%d rows (%d bytes) from S3 into PostgreSQL in %.0fs with a 128 MiB worker; pod deleted at line %d (byte %d); the resumed pod read %d bytes (the rest after the checkpoint: %d) with a peak of %d MiB, and Completed %.0fs after the deletion",
			n, size, took.Seconds(), cp.Line, cp.Offset, read, size-cp.Offset, peak, time.Since(killed).Seconds())
	}, SpecTimeout(30*time.Minute))

	It("imports the newest matching file of a PersistentVolumeClaim, mounted read-only", func(ctx SpecContext) {
		host, err := os.MkdirTemp("", "uio-e2e-pv-*")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(os.RemoveAll, host)
		Expect(os.Chmod(host, 0o755)).To(Succeed())
		want := people(300000, 500)
		old := filepath.Join(host, "employees_1.csv")
		Expect(os.WriteFile(old, csvFile(people(310000, 20)), 0o644)).To(Succeed())
		Expect(os.Chtimes(old, time.Now().Add(-time.Hour), time.Now().Add(-time.Hour))).To(Succeed())
		Expect(os.WriteFile(filepath.Join(host, "employees_2.csv"), csvFile(want), 0o644)).To(Succeed())

		pv := &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: "uio-e2e-" + testNamespace},
			Spec: corev1.PersistentVolumeSpec{
				Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
				AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadOnlyMany},
				PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
				StorageClassName:              "uio-e2e-manual",
				PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: host}},
			},
		}
		Expect(k8s.Create(ctx, pv)).To(Succeed())
		DeferCleanup(func(ctx context.Context) { _ = k8s.Delete(ctx, pv) })
		pvc := &corev1.PersistentVolumeClaim{
			ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "hr-exports"},
			Spec: corev1.PersistentVolumeClaimSpec{
				AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadOnlyMany},
				StorageClassName: aws.String("uio-e2e-manual"),
				VolumeName:       pv.Name,
				Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
			},
		}
		Expect(k8s.Create(ctx, pvc)).To(Succeed())

		table := newTable(ctx, pg, "people_pvc")
		sqlDirectory(ctx, "pvc", table, "", uiov1.ExecutionSettings{})
		spec := importSpec("pvc", "", uiov1.ModeFull, uiov1.ActionImport)
		spec.Source = uiov1.ImportSource{PersistentVolumeClaim: &uiov1.PVCSource{ClaimName: "hr-exports", FileSelector: uiov1.FileSelector{Pattern: "employees_*.csv"}}}
		imp := newImport(ctx, "pvc", spec)
		waitPhase(ctx, imp, uiov1.PhaseCompleted, 5*time.Minute)
		Expect(imp.Status.Source.Name).To(Equal("employees_2.csv"))
		table.expectUsers(ctx, want)
	}, SpecTimeout(8*time.Minute))
})
