package integration_test

import (
	"os"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	uiov1 "github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/jobs"
	"github.com/userimport/user-import-operator/internal/runcontract"
	"github.com/userimport/user-import-operator/internal/testpeer/s3server"
	"github.com/userimport/user-import-operator/internal/testpeer/sshd"
)

// inPlaceImport creates an import of src, ready to run.
func inPlaceImport(ns, name string, src uiov1.ImportSource) *uiov1.UserImport {
	imp := &uiov1.UserImport{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: uiov1.UserImportSpec{
			DirectoryRef: uiov1.LocalObjectReference{Name: "corp"},
			Source:       src,
			Mapping:      []uiov1.AttributeMapping{{Attribute: "userName", Column: "email", Identity: true}},
			Action:       uiov1.ActionImport,
		},
	}
	Expect(k8sClient.Create(ctx, imp)).To(Succeed())
	return imp
}

func secret(ns, name string, data map[string]string) {
	Expect(k8sClient.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}, StringData: data})).To(Succeed())
}

// workerFound records the file as the worker does when it starts.
func workerFound(imp *uiov1.UserImport, name string, size int64, mtime time.Time, etag string) {
	t := metav1.NewTime(mtime)
	workerPatch(imp, func(st *uiov1.UserImportStatus) {
		st.Source = &uiov1.SourceStatus{Name: name, Size: size, ModTime: &t, ETag: etag, SHA256: "0123"}
	})
}

var _ = Describe("Files read in place", func() {
	It("moves the SFTP file its import read into the archive once the import completed, once", func() {
		srv, stop, err := sshd.StartTemp()
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(stop)
		at := time.Now().Add(-time.Hour).Truncate(time.Second)
		data := []byte("email\nada@example.com\n")
		Expect(srv.WriteFile("out/employees_20261129.csv", data, at)).To(Succeed())

		ns := newNamespace()
		readyDirectory(ns, "corp")
		secret(ns, "sftp", map[string]string{"username": sshd.User, "password": sshd.Password})
		secret(ns, "sftp-host", map[string]string{"known_hosts": srv.KnownHosts})
		imp := inPlaceImport(ns, "nightly", uiov1.ImportSource{
			SFTP: &uiov1.SFTPSource{FileSelector: uiov1.FileSelector{Pattern: "out/employees_*.csv"}, Host: srv.Host, Port: int32(srv.Port),
				Credentials: uiov1.LocalObjectReference{Name: "sftp"}, KnownHosts: &uiov1.SecretKeyRef{Name: "sftp-host", Key: "known_hosts"}},
			AfterImport: &uiov1.AfterImport{Action: uiov1.AfterImportMove, To: "archive"},
		})
		expectPhase(imp, uiov1.PhaseImporting)
		Expect(condition(getImport(imp), uiov1.ConditionInsecureSource)).To(BeNil())
		workerFound(imp, "out/employees_20261129.csv", int64(len(data)), at, "")
		// Still Importing: nothing is archived before the import completed.
		Consistently(func() bool { _, err := os.Stat(srv.Path("out/employees_20261129.csv")); return err == nil }, time.Second).Should(BeTrue())
		finishJob(job(imp, runcontract.StageImport), true)
		expectPhase(imp, uiov1.PhaseCompleted)

		Eventually(func(g Gomega) {
			cur := getImport(imp)
			g.Expect(cur.Status.Source.AfterImport).To(Equal(&uiov1.AfterImportStatus{Result: uiov1.AfterImportMoved, To: "archive/employees_20261129.csv"}))
			c := condition(cur, uiov1.ConditionSourceArchived)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
			g.Expect(c.Reason).To(Equal(uiov1.ReasonMoved))
		}).Should(Succeed())
		got, err := os.ReadFile(srv.Path("archive/employees_20261129.csv"))
		Expect(err).NotTo(HaveOccurred())
		Expect(got).To(Equal(data))
		_, err = os.Stat(srv.Path("out/employees_20261129.csv"))
		Expect(os.IsNotExist(err)).To(BeTrue(), "the moved file is still in place")
		Expect(getImport(imp).Status.Phase).To(Equal(uiov1.PhaseCompleted))

		// Exactly once: a file of the same name sent again stays, however
		// often the import is reconciled.
		Expect(srv.WriteFile("out/employees_20261129.csv", data, at)).To(Succeed())
		setAnnotation(imp, "example.com/wake", "1")
		Consistently(func() bool { _, err := os.Stat(srv.Path("out/employees_20261129.csv")); return err == nil }, 2*time.Second).Should(BeTrue())
	})

	It("reports a failed afterImport without undoing the import, and leaves a replaced S3 object alone", func() {
		dir, err := os.MkdirTemp("", "uio-s3-*")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(os.RemoveAll, dir)
		srv, err := s3server.StartIn(dir, "127.0.0.1")
		Expect(err).NotTo(HaveOccurred())
		DeferCleanup(srv.Stop)
		Expect(srv.Bucket(ctx, "hr-exports", false)).To(Succeed())
		_, err = srv.Put(ctx, "hr-exports", "in/hr.csv", []byte("email\nada@example.com\n"))
		Expect(err).NotTo(HaveOccurred())
		head, err := srv.Client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("hr-exports"), Key: aws.String("in/hr.csv")})
		Expect(err).NotTo(HaveOccurred())

		ns := newNamespace()
		readyDirectory(ns, "corp")
		secret(ns, "s3", map[string]string{"accessKeyID": s3server.AccessKey, "secretAccessKey": s3server.SecretKey})
		imp := inPlaceImport(ns, "weekly", uiov1.ImportSource{
			S3:          &uiov1.S3Source{FileSelector: uiov1.FileSelector{Path: "in/hr.csv"}, Bucket: "hr-exports", Endpoint: srv.Endpoint, PathStyle: true, Credentials: &uiov1.LocalObjectReference{Name: "s3"}, Insecure: true},
			AfterImport: &uiov1.AfterImport{Action: uiov1.AfterImportDelete},
		})
		expectPhase(imp, uiov1.PhaseImporting)
		workerFound(imp, "in/hr.csv", aws.ToInt64(head.ContentLength), aws.ToTime(head.LastModified), aws.ToString(head.ETag))
		// Replaced while the import ran.
		_, err = srv.Put(ctx, "hr-exports", "in/hr.csv", []byte("email\nbob@example.com\ncy@example.com\n"))
		Expect(err).NotTo(HaveOccurred())
		finishJob(job(imp, runcontract.StageImport), true)
		expectPhase(imp, uiov1.PhaseCompleted)
		Eventually(func(g Gomega) {
			cur := getImport(imp)
			g.Expect(cur.Status.Source.AfterImport).NotTo(BeNil())
			g.Expect(cur.Status.Source.AfterImport.Result).To(Equal(uiov1.AfterImportFailed))
			g.Expect(cur.Status.Source.AfterImport.Message).To(ContainSubstring("changed since the import started"))
			c := condition(cur, uiov1.ConditionSourceArchived)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
			g.Expect(c.Reason).To(Equal(uiov1.ReasonArchiveFailed))
			g.Expect(condition(cur, uiov1.ConditionReady).Status).To(Equal(metav1.ConditionTrue))
		}).Should(Succeed())
		Expect(getImport(imp).Status.Phase).To(Equal(uiov1.PhaseCompleted))
		Expect(srv.Exists(ctx, "hr-exports", "in/hr.csv")).To(BeTrue(), "the replaced object was deleted")
		Eventually(func() []string { return eventsFor(ns, "weekly", uiov1.ReasonArchiveFailed) }).ShouldNot(BeEmpty())
	})

	It("marks an import that skips the SFTP host key check as insecure", func() {
		ns := newNamespace()
		readyDirectory(ns, "corp")
		imp := inPlaceImport(ns, "trusting", uiov1.ImportSource{SFTP: &uiov1.SFTPSource{
			FileSelector: uiov1.FileSelector{Path: "hr.csv"}, Host: "sftp.example.com",
			Credentials: uiov1.LocalObjectReference{Name: "sftp"}, InsecureSkipHostKeyVerification: true}})
		Eventually(func(g Gomega) {
			c := condition(getImport(imp), uiov1.ConditionInsecureSource)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue))
			g.Expect(c.Reason).To(Equal(uiov1.ReasonHostKeyNotVerified))
		}).Should(Succeed())
		// The Job reads the source's Secrets.
		Expect(jobs.SecretNames(getImport(imp), &uiov1.UserDirectory{})).To(ContainElement("sftp"))
	})
})
