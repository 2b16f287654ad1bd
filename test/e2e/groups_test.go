//go:build e2e

package e2e

import (
	"path/filepath"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uiov1 "github.com/userimport/user-import-operator/api/v1alpha1"
	sqldir "github.com/userimport/user-import-operator/internal/directory/sql"
	"github.com/userimport/user-import-operator/internal/testpeer/postgres"
)

var _ = Describe("Groups and managers at a million users", Ordered, SpecPriority(80), func() {
	var pg *postgres.Server
	BeforeAll(func() {
		pg = startPostgres()
	})

	It("imports 1,000,000 users, each in two groups and with a manager, into PostgreSQL with a worker of the default resources", func(ctx SpecContext) {
		const n = 1_000_000
		work := GinkgoT().TempDir()
		path := filepath.Join(work, "employees_20261206.csv")
		size := writeExport(path, 0, n)
		source := s3Export(ctx, work, "million-groups-keys", path)

		const table, members = "people_groups", "people_groups_members"
		Expect(sqldir.CreateTable(ctx, uiov1.SQLDriverPostgres, pg.DSN, sqldir.TableSpec{
			Table: table, IdentityColumn: "email", Columns: []string{"first_name", "last_name", "department", "manager", markerColumn},
			Groups: &uiov1.SQLGroups{Table: members},
		})).To(Succeed())
		secret(ctx, "million-groups-dsn", map[string]string{"dsn": pg.DSN})
		dir := &uiov1.UserDirectory{
			ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "million-groups"},
			Spec: uiov1.UserDirectorySpec{
				SQL: &uiov1.SQLDirectory{
					Driver: uiov1.SQLDriverPostgres,
					DSN:    uiov1.SecretKeyRef{Name: "million-groups-dsn", Key: "dsn"},
					Table:  table,
					Groups: &uiov1.SQLGroups{Table: members},
					// The test server speaks without TLS.
					Insecure: true,
				},
				IdentityAttribute: "email",
				// The worker gets the default resources: a limit of 512Mi.
			},
		}
		Expect(k8s.Create(ctx, dir)).To(Succeed())
		Eventually(func(g Gomega) {
			g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(dir), dir)).To(Succeed())
			c := apimeta.FindStatusCondition(dir.Status.Conditions, uiov1.ConditionReady)
			g.Expect(c).NotTo(BeNil())
			g.Expect(c.Status).To(Equal(metav1.ConditionTrue), "Ready: %s: %s", c.Reason, c.Message)
		}).WithContext(ctx).WithTimeout(2 * time.Minute).Should(Succeed())

		spec := uiov1.UserImportSpec{
			DirectoryRef: uiov1.LocalObjectReference{Name: dir.Name},
			Source:       source,
			Format:       uiov1.CSVFormat{Delimiter: ","},
			Mapping: []uiov1.AttributeMapping{
				{Attribute: "email", Column: "email", Identity: true, Required: true},
				{Attribute: "first_name", Column: "first_name"},
				{Attribute: "last_name", Column: "last_name", Required: true},
				{Attribute: "department", Column: "department"},
				// 440 cost centers, and 10 departments by 10 titles: 540 groups.
				{Attribute: "groups", Template: "{{.cost_center}}|{{.department}} {{.title}}", Split: "|", Target: uiov1.TargetGroups},
				{Attribute: "manager", Column: "manager_email", Target: uiov1.TargetManager},
			},
			Mode:   uiov1.ModeFull,
			Action: uiov1.ActionImport,
		}
		start := time.Now()
		imp := newImport(ctx, "million-groups", spec)
		waitPhase(ctx, imp, uiov1.PhaseCompleted, 15*time.Minute)
		took := time.Since(start)

		p := imp.Status.Progress
		Expect(p).NotTo(BeNil())
		Expect(p.Created).To(BeEquivalentTo(n))
		Expect(p.Failed).To(BeZero())
		Expect(p.Groups).NotTo(BeNil())
		Expect(p.Groups.MembershipsAdded).To(BeEquivalentTo(2 * n))
		var memberships, groups, managed int64
		conn := (&sqlTable{pg: pg, name: table}).conn(ctx)
		Expect(conn.QueryRow(ctx, "SELECT count(*), count(DISTINCT group_name) FROM "+members).Scan(&memberships, &groups)).To(Succeed())
		Expect(memberships).To(BeEquivalentTo(2 * n))
		Expect(conn.QueryRow(ctx, "SELECT count(*) FROM "+table+" WHERE manager IS NOT NULL").Scan(&managed)).To(Succeed())
		Expect(managed).To(BeEquivalentTo(p.Groups.ManagersSet))
		Expect(managed).To(BeNumerically(">=", n-1))

		pods := jobPods(ctx, imp.Status.JobName)
		Expect(pods).NotTo(BeEmpty())
		var last *corev1.Pod
		for i := range pods {
			Expect(pods[i].Status.ContainerStatuses).NotTo(BeEmpty())
			Expect(pods[i].Status.ContainerStatuses[0].RestartCount).To(BeZero(), "the worker was not restarted (OOM-killed)")
			if pods[i].Status.Phase == corev1.PodSucceeded {
				last = &pods[i]
			}
		}
		Expect(pods).To(HaveLen(1), "one pod did the whole import")
		Expect(last).NotTo(BeNil())
		peak := logNumber(peakMemoryLine, podLog(ctx, last), 1)
		Expect(peak).To(BeNumerically("<", 512))
		report("million-groups", "%d users (%d bytes) with %d memberships in %d groups and %d managers into PostgreSQL in %.0fs, one worker of the default resources, peak %d MiB",
			n, size, memberships, groups, managed, took.Seconds(), peak)
	}, SpecTimeout(20*time.Minute))
})
