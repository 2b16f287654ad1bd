//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	goldap "github.com/go-ldap/ldap/v3"
	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	apimeta "k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uiov1 "github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/internal/testpeer/scimserver"
	"github.com/userimport/user-import-operator/internal/testpeer/slapd"
)

// Imports into the SCIM server and slapd, both listening on the address
// pods reach, through real worker Jobs: the directory ends holding exactly
// the file's users, wrong credentials are reported on the directory and
// on an import against it, and no CSV value reaches the logs.
var _ = Describe("Imports into SCIM and LDAP directories", Ordered, func() {
	const rows = 2000

	It("imports a file into the SCIM server and reports a wrong token", func(ctx SpecContext) {
		const token = "e2e-scim-token"
		srv, err := scimserver.StartProcess(scimserver.Options{Token: token, Host: podsAddress(), Stderr: GinkgoWriter})
		Expect(err).NotTo(HaveOccurred(), "starting the SCIM server (hack/peers/install-scim.sh installs it)")
		DeferCleanup(srv.Stop)

		secret(ctx, "scim-token", map[string]string{"token": token})
		secret(ctx, "scim-wrong-token", map[string]string{"token": "not-the-token"})
		scim := func(name, tokenSecret string) *uiov1.UserDirectory {
			return &uiov1.UserDirectory{
				ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: name},
				Spec: uiov1.UserDirectorySpec{
					SCIM: &uiov1.SCIMDirectory{
						URL:  srv.URL,
						Auth: uiov1.SCIMAuth{BearerToken: &uiov1.SecretKeyRef{Name: tokenSecret, Key: "token"}},
						// The test server may speak http.
						Insecure: strings.HasPrefix(srv.URL, "http://"),
					},
					IdentityAttribute: "userName",
				},
			}
		}
		mapping := []uiov1.AttributeMapping{
			{Attribute: "userName", Column: "email", Identity: true, Check: "Email", Transforms: []uiov1.Transform{{Type: "Trim"}, {Type: "Lower"}}},
			{Attribute: "externalId", Column: "employee_id", Required: true},
			{Attribute: "name.givenName", Column: "first_name", Required: true},
			{Attribute: "name.familyName", Column: "last_name", Required: true},
			{Attribute: "displayName", Template: "{{.first_name}} {{.last_name}}"},
		}
		want := people(70000, rows)
		start := time.Now()
		imp := importInto(ctx, scim("scim", "scim-token"), "scim", want, mapping)
		report("SCIM import", "%d rows in %.1fs from create to Completed", rows, time.Since(start).Seconds())

		got := scimUsers(ctx, srv.URL, token)
		Expect(got).To(HaveLen(rows), "users on the SCIM server")
		bad := 0
		for _, p := range want {
			u, ok := got[strings.ToLower(p[1])]
			if !ok || u.ExternalID != p[0] || u.Name.GivenName != p[2] || u.Name.FamilyName != p[3] || !u.Active {
				bad++
			}
		}
		Expect(bad).To(BeZero(), "SCIM users that differ from their CSV row")
		expectNoValuesInWorkerLogs(ctx, imp)

		expectAuthenticationFailed(ctx, scim("scim-wrong", "scim-wrong-token"), mapping)
	}, SpecTimeout(10*time.Minute))

	It("imports a file into slapd with recovery codes the users bind with, and reports a wrong bind password", func(ctx SpecContext) {
		srv, err := slapd.StartProcess(slapd.Options{Host: podsAddress()})
		Expect(err).NotTo(HaveOccurred(), "starting slapd (hack/peers/install-ldap.sh installs it)")
		DeferCleanup(srv.Stop)

		secret(ctx, "ldap-bind", map[string]string{"password": srv.BindPassword})
		secret(ctx, "ldap-wrong-bind", map[string]string{"password": "not-the-password"})
		ldap := func(name, passwordSecret string) *uiov1.UserDirectory {
			return &uiov1.UserDirectory{
				ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: name},
				Spec: uiov1.UserDirectorySpec{
					LDAP: &uiov1.LDAPDirectory{
						URL: srv.URL, BindDN: srv.BindDN, UsersBaseDN: srv.PeopleDN,
						BindPassword: uiov1.SecretKeyRef{Name: passwordSecret, Key: "password"},
						// The test server speaks ldap:// without StartTLS.
						Insecure: true,
					},
					IdentityAttribute: "uid",
				},
			}
		}
		mapping := []uiov1.AttributeMapping{
			{Attribute: "uid", Column: "employee_id", Identity: true, Required: true},
			{Attribute: "mail", Column: "email", Check: "Email", Transforms: []uiov1.Transform{{Type: "Trim"}, {Type: "Lower"}}},
			{Attribute: "givenName", Column: "first_name", Required: true},
			{Attribute: "sn", Column: "last_name", Required: true},
			{Attribute: "cn", Template: "{{.first_name}} {{.last_name}}"},
		}
		want := people(80000, rows)
		start := time.Now()
		withCodes := ldap("ldap", "ldap-bind")
		withCodes.Spec.RecoveryCodes = &uiov1.DirectoryRecoveryCodes{}
		imp := importIntoWith(ctx, withCodes, "ldap", want, mapping, func(s *uiov1.UserImportSpec) {
			s.RecoveryCodes = uiov1.RecoveryCodes{Generate: uiov1.CodesForNewUsers}
		})
		report("LDAP import", "%d rows with recovery codes in %.1fs from create to Completed", rows, time.Since(start).Seconds())
		codes := expectCodesBind(ctx, srv, imp, rows)
		expectNoCodesInWorkerLogs(ctx, imp, codes)

		got := ldapUsers(srv)
		Expect(got).To(HaveLen(rows), "entries under %s", srv.PeopleDN)
		bad := 0
		for _, p := range want {
			e, ok := got[p[0]]
			if !ok || e.GetAttributeValue("mail") != strings.ToLower(p[1]) || e.GetAttributeValue("givenName") != p[2] ||
				e.GetAttributeValue("sn") != p[3] || e.GetAttributeValue("businessCategory") != "user-import-operator" {
				bad++
			}
		}
		Expect(bad).To(BeZero(), "LDAP entries that differ from their CSV row")
		expectNoValuesInWorkerLogs(ctx, imp)

		expectAuthenticationFailed(ctx, ldap("ldap-wrong", "ldap-wrong-bind"), mapping)
	}, SpecTimeout(10*time.Minute))
})

func secret(ctx context.Context, name string, data map[string]string) {
	Expect(k8s.Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: name},
		StringData: data,
	})).To(Succeed())
}

// importInto creates dir, waits until it is Ready, and imports rows into
// it in full mode; it returns the Completed import.
func importInto(ctx context.Context, dir *uiov1.UserDirectory, name string, rows []person, mapping []uiov1.AttributeMapping) *uiov1.UserImport {
	return importIntoWith(ctx, dir, name, rows, mapping, nil)
}

// importIntoWith is importInto with the import's spec edited by edit.
func importIntoWith(ctx context.Context, dir *uiov1.UserDirectory, name string, rows []person, mapping []uiov1.AttributeMapping, edit func(*uiov1.UserImportSpec)) *uiov1.UserImport {
	Expect(k8s.Create(ctx, dir)).To(Succeed())
	Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(dir), dir)).To(Succeed())
		c := apimeta.FindStatusCondition(dir.Status.Conditions, uiov1.ConditionReady)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionTrue), "UserDirectory %s Ready: %s: %s", dir.Name, c.Reason, c.Message)
	}).WithContext(ctx).WithTimeout(2 * time.Minute).Should(Succeed())

	csvConfigMap(ctx, name, csvFile(rows))
	spec := importSpec(dir.Name, name, uiov1.ModeFull, uiov1.ActionImport)
	spec.Mapping = mapping
	if edit != nil {
		edit(&spec)
	}
	imp := newImport(ctx, name, spec)
	waitPhase(ctx, imp, uiov1.PhaseCompleted, 8*time.Minute)
	p := imp.Status.Progress
	Expect(p).NotTo(BeNil())
	Expect(p.Created).To(BeEquivalentTo(len(rows)))
	Expect(p.Failed).To(BeZero())
	return imp
}

// expectAuthenticationFailed creates dir, whose credentials the server
// refuses: the directory says AuthenticationFailed, and an import against
// it waits, saying so, without a Job.
func expectAuthenticationFailed(ctx context.Context, dir *uiov1.UserDirectory, mapping []uiov1.AttributeMapping) {
	Expect(k8s.Create(ctx, dir)).To(Succeed())
	expectNotReady(ctx, dir, "AuthenticationFailed")
	expectImportWaits(ctx, dir.Name, mapping, "AuthenticationFailed")
}

// expectNotReady waits until dir is not Ready, for reason.
func expectNotReady(ctx context.Context, dir *uiov1.UserDirectory, reason string) {
	Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(dir), dir)).To(Succeed())
		c := apimeta.FindStatusCondition(dir.Status.Conditions, uiov1.ConditionReady)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(c.Reason).To(Equal(reason), c.Message)
	}).WithContext(ctx).WithTimeout(2 * time.Minute).Should(Succeed())
	Expect(dir.Status.ObservedGeneration).To(Equal(dir.Generation))
}

// expectImportWaits creates a delta import into the directory named dir,
// which is not Ready: the import says why (reason) and runs no Job.
// mapping nil keeps importSpec's.
func expectImportWaits(ctx context.Context, dir string, mapping []uiov1.AttributeMapping, reason string) *uiov1.UserImport {
	name := dir + "-import"
	csvConfigMap(ctx, name, csvFile(people(90000, 5)))
	spec := importSpec(dir, name, uiov1.ModeDelta, uiov1.ActionImport)
	if mapping != nil {
		spec.Mapping = mapping
	}
	imp := newImport(ctx, name, spec)
	Eventually(func(g Gomega) {
		g.Expect(k8s.Get(ctx, client.ObjectKeyFromObject(imp), imp)).To(Succeed())
		c := apimeta.FindStatusCondition(imp.Status.Conditions, uiov1.ConditionReady)
		g.Expect(c).NotTo(BeNil())
		g.Expect(c.Status).To(Equal(metav1.ConditionFalse))
		g.Expect(c.Message).To(ContainSubstring(reason), "%s: %s", c.Reason, c.Message)
	}).WithContext(ctx).WithTimeout(2 * time.Minute).Should(Succeed())
	Expect(imp.Status.Phase).To(Equal(uiov1.PhaseImportPending))
	Expect(importJobs(ctx, imp.Name)).To(BeEmpty(), "no Job runs against a directory that is not Ready")
	return imp
}

// expectNoValuesInWorkerLogs scans the logs of the worker pods of imp for
// the CSV values of the suite.
func expectNoValuesInWorkerLogs(ctx context.Context, imp *uiov1.UserImport) {
	pods := jobPods(ctx, imp.Status.JobName)
	Expect(pods).NotTo(BeEmpty(), "the worker pods of %s are kept", imp.Name)
	var logs []string
	for _, p := range pods {
		b, err := clientset.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
		Expect(err).NotTo(HaveOccurred(), "logs of %s", p.Name)
		logs = append(logs, string(b))
	}
	Expect(totalLen(logs)).To(BeNumerically(">", 0), "the worker logs its work")
	Expect(leakedValues(logs)).To(BeZero(), "CSV values in the worker's log (values not shown: they are personal data)")
}

// expectCodesBind reads the codes Secrets of imp, written by its Job pod,
// and binds to srv as every 50th user with its code; a wrong code fails.
func expectCodesBind(ctx context.Context, srv *slapd.Server, imp *uiov1.UserImport, rows int) map[string]string {
	st := imp.Status.RecoveryCodes
	Expect(st).NotTo(BeNil(), "status.recoveryCodes")
	Expect(st.Issued).To(BeEquivalentTo(rows))
	codes := map[string]string{}
	for _, name := range st.Secrets {
		var s corev1.Secret
		Expect(k8s.Get(ctx, client.ObjectKey{Namespace: imp.Namespace, Name: name}, &s)).To(Succeed())
		Expect(metav1.IsControlledBy(&s, imp)).To(BeTrue(), "Secret %s is owned by the import", name)
		recs, err := csv.NewReader(bytes.NewReader(s.Data["codes.csv"])).ReadAll()
		Expect(err).NotTo(HaveOccurred())
		for _, r := range recs[1:] {
			codes[r[0]] = r[1]
		}
	}
	Expect(codes).To(HaveLen(rows), "codes in %v", st.Secrets)
	c, err := srv.Dial()
	Expect(err).NotTo(HaveOccurred())
	defer c.Close()
	bound := 0
	for uid, code := range codes {
		if bound%50 == 0 {
			dn := fmt.Sprintf("uid=%s,%s", uid, srv.PeopleDN)
			Expect(c.Bind(dn, code)).To(Succeed(), "bind as %s with its code", dn)
			Expect(c.Bind(dn, code+"X")).NotTo(Succeed(), "bind as %s with a wrong code", dn)
		}
		bound++
	}
	report("recovery codes", "%d codes in %d Secrets written by the Job pod; %d users bound to slapd with theirs", len(codes), len(st.Secrets), (rows+49)/50)
	return codes
}

// expectNoCodesInWorkerLogs scans the worker's log, the import's status
// and the namespace's Events for the codes.
func expectNoCodesInWorkerLogs(ctx context.Context, imp *uiov1.UserImport, codes map[string]string) {
	var texts []string
	for _, p := range jobPods(ctx, imp.Status.JobName) {
		b, err := clientset.CoreV1().Pods(p.Namespace).GetLogs(p.Name, &corev1.PodLogOptions{}).DoRaw(ctx)
		Expect(err).NotTo(HaveOccurred(), "logs of %s", p.Name)
		texts = append(texts, string(b))
	}
	status, _ := json.Marshal(imp.Status)
	texts = append(texts, string(status))
	var events corev1.EventList
	Expect(k8s.List(ctx, &events, client.InNamespace(imp.Namespace))).To(Succeed())
	for _, e := range events.Items {
		texts = append(texts, e.Message)
	}
	leaks := 0
	for _, code := range codes {
		for _, t := range texts {
			if strings.Contains(t, code) {
				leaks++
			}
		}
	}
	Expect(leaks).To(BeZero(), "recovery codes in the worker's log, status or Events (not shown)")
}

// scimUser is what the test reads back of a SCIM user.
type scimUser struct {
	UserName   string `json:"userName"`
	ExternalID string `json:"externalId"`
	Active     bool   `json:"active"`
	Name       struct {
		GivenName  string `json:"givenName"`
		FamilyName string `json:"familyName"`
	} `json:"name"`
}

// scimUsers lists every user of the SCIM server, by userName, page by page.
func scimUsers(ctx context.Context, base, token string) map[string]scimUser {
	out := map[string]scimUser{}
	for start := 1; ; {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/Users?startIndex=%d&count=200", base, start), nil)
		Expect(err).NotTo(HaveOccurred())
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		Expect(err).NotTo(HaveOccurred())
		var page struct {
			TotalResults int        `json:"totalResults"`
			Resources    []scimUser `json:"Resources"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		Expect(err).NotTo(HaveOccurred())
		Expect(resp.StatusCode).To(Equal(http.StatusOK))
		for _, u := range page.Resources {
			Expect(out).NotTo(HaveKey(u.UserName), "one user per userName")
			out[u.UserName] = u
		}
		start += len(page.Resources)
		if len(page.Resources) == 0 || start > page.TotalResults {
			return out
		}
	}
}

// ldapUsers reads every entry under the people OU, by uid.
func ldapUsers(srv *slapd.Server) map[string]*goldap.Entry {
	c, err := srv.Dial()
	Expect(err).NotTo(HaveOccurred())
	defer c.Close()
	res, err := c.SearchWithPaging(goldap.NewSearchRequest(srv.PeopleDN, goldap.ScopeSingleLevel, goldap.NeverDerefAliases, 0, 0, false,
		"(uid=*)", []string{"uid", "mail", "givenName", "sn", "businessCategory"}, nil), 500)
	Expect(err).NotTo(HaveOccurred())
	out := map[string]*goldap.Entry{}
	for _, e := range res.Entries {
		uid := e.GetAttributeValue("uid")
		Expect(out).NotTo(HaveKey(uid), "one entry per uid")
		out[uid] = e
	}
	return out
}
