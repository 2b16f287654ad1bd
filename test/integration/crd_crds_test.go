package integration_test

import (
	"encoding/json"
	"sort"
	"time"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	uiov1 "github.com/userimport/user-import-operator/api/v1alpha1"
)

// crdNames are the CustomResourceDefinitions of the API, by plural.
var crdNames = map[string]string{
	"userdirectories": "userdirectories.userimport.dev",
	"userimports":     "userimports.userimport.dev",
	"importschedules": "importschedules.userimport.dev",
}

func getCRD(plural string) *apiextensionsv1.CustomResourceDefinition {
	GinkgoHelper()
	crd := &apiextensionsv1.CustomResourceDefinition{}
	Expect(apiClient.Get(ctx, client.ObjectKey{Name: crdNames[plural]}, crd)).To(Succeed())
	return crd
}

// undocumented walks a schema and returns the paths of the properties that
// have no description. Items of arrays and values of maps are not
// properties (a list of strings needs no description per string), but the
// properties inside them are walked.
func undocumented(path string, s *apiextensionsv1.JSONSchemaProps, visited *int) []string {
	if s == nil {
		return nil
	}
	var missing []string
	names := make([]string, 0, len(s.Properties))
	for name := range s.Properties {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p := s.Properties[name]
		*visited++
		child := path + "." + name
		if p.Description == "" {
			missing = append(missing, child)
		}
		missing = append(missing, undocumented(child, &p, visited)...)
	}
	if s.Items != nil {
		missing = append(missing, undocumented(path+"[]", s.Items.Schema, visited)...)
	}
	if s.AdditionalProperties != nil {
		missing = append(missing, undocumented(path+"{}", s.AdditionalProperties.Schema, visited)...)
	}
	return missing
}

// getTable lists a resource as the API server's Table, as kubectl get
// does, narrowed to one object by name.
func getTable(plural, name string) *metav1.Table {
	GinkgoHelper()
	raw, err := discoveryClient.RESTClient().Get().
		AbsPath("/apis", uiov1.GroupVersion.Group, uiov1.GroupVersion.Version, "namespaces", testNamespace, plural).
		Param("fieldSelector", "metadata.name="+name).
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").
		DoRaw(ctx)
	Expect(err).NotTo(HaveOccurred())
	table := &metav1.Table{}
	Expect(json.Unmarshal(raw, table)).To(Succeed())
	Expect(table.Kind).To(Equal("Table"))
	Expect(table.Rows).To(HaveLen(1))
	return table
}

func columnNames(t *metav1.Table) []string {
	names := make([]string, len(t.ColumnDefinitions))
	for i, c := range t.ColumnDefinitions {
		names[i] = c.Name
	}
	return names
}

// cells maps column names to the cells of the table's only row.
func cells(t *metav1.Table) map[string]any {
	row := map[string]any{}
	for i, c := range t.ColumnDefinitions {
		row[c.Name] = t.Rows[0].Cells[i]
	}
	return row
}

var _ = Describe("The CustomResourceDefinitions", Label(labelAPIServerAlone), func() {
	It("are installed, Established and structural", func() {
		for plural := range crdNames {
			crd := getCRD(plural)
			Expect(crd.Spec.Group).To(Equal("userimport.dev"))
			Expect(crd.Spec.Scope).To(Equal(apiextensionsv1.NamespaceScoped))
			conds := map[apiextensionsv1.CustomResourceDefinitionConditionType]apiextensionsv1.ConditionStatus{}
			for _, c := range crd.Status.Conditions {
				conds[c.Type] = c.Status
			}
			Expect(conds).To(HaveKeyWithValue(apiextensionsv1.Established, apiextensionsv1.ConditionTrue), plural)
			Expect(conds).To(HaveKeyWithValue(apiextensionsv1.NamesAccepted, apiextensionsv1.ConditionTrue), plural)
			Expect(conds).NotTo(HaveKeyWithValue(apiextensionsv1.NonStructuralSchema, apiextensionsv1.ConditionTrue), plural)
			Expect(crd.Spec.Versions).To(HaveLen(1))
			Expect(crd.Spec.Versions[0].Subresources.Status).NotTo(BeNil(), "%s has a status subresource", plural)
		}
	})

	It("document every property of every schema", func() {
		// metadata is the standard ObjectMeta: controller-gen emits it as a
		// bare "type: object" and the API server substitutes its own schema,
		// so its description lives in the Kubernetes API reference.
		exempt := map[string]bool{"metadata": true}
		for plural := range crdNames {
			crd := getCRD(plural)
			root := crd.Spec.Versions[0].Schema.OpenAPIV3Schema
			Expect(root.Description).NotTo(BeEmpty(), plural)
			visited := 0
			var missing []string
			for _, path := range undocumented("", root, &visited) {
				if !exempt[path[1:]] {
					missing = append(missing, plural+path)
				}
			}
			Expect(missing).To(BeEmpty(), "properties without a description")
			// A walk that saw only a handful of properties proves nothing.
			Expect(visited).To(BeNumerically(">", 40), plural)
			GinkgoWriter.Printf("%s: %d properties, all documented\n", plural, visited)
		}
	})

	It("are served with their short names and the category usersync, which names no resource", func() {
		list, err := discoveryClient.ServerResourcesForGroupVersion(uiov1.GroupVersion.String())
		Expect(err).NotTo(HaveOccurred())
		shortNames := map[string][]string{}
		var inCategory, names []string
		for _, r := range list.APIResources {
			if _, ok := crdNames[r.Name]; !ok {
				continue // subresources such as userimports/status
			}
			shortNames[r.Name] = r.ShortNames
			names = append(names, r.Name, r.SingularName)
			names = append(names, r.ShortNames...)
			for _, c := range r.Categories {
				if c == "usersync" {
					inCategory = append(inCategory, r.Name)
				}
			}
		}
		Expect(shortNames).To(Equal(map[string][]string{
			"userdirectories": {"udir"},
			"userimports":     {"uimp"},
			"importschedules": {"isched"},
		}))
		Expect(inCategory).To(ConsistOf("userdirectories", "userimports", "importschedules"))
		// kubectl expands a category before it resolves a resource name:
		// a category spelled like a resource would make "kubectl get
		// <that name> X" act on all three kinds.
		for _, r := range list.APIResources {
			for _, c := range r.Categories {
				Expect(names).NotTo(ContainElement(c), "category %q of %s is also a resource name", c, r.Name)
			}
		}
	})

	Describe("printer columns in kubectl get", func() {
		It("show a UserImport's directory, mode, phase, progress and counts", func() {
			ui := validImport(func(ui *uiov1.UserImport) {
				ui.Spec.Mode = uiov1.ModeFull
			})
			Expect(apiClient.Create(ctx, ui)).To(Succeed())
			ui.Status.Phase = uiov1.PhaseImporting
			ui.Status.Progress = &uiov1.ProgressStatus{
				RowsTotal: 100, RowsProcessed: 42, Percent: 42, ChangeCounts: uiov1.ChangeCounts{Created: 7, Updated: 2, Failed: 1},
			}
			ui.Status.Invitations = &uiov1.InvitationStatus{Sent: 5, Failed: 2}
			Expect(apiClient.Status().Update(ctx, ui)).To(Succeed())

			table := getTable("userimports", ui.Name)
			// The table has every column; kubectl shows Not-Invited with
			// -o wide (priority 1).
			Expect(columnNames(table)).To(Equal([]string{
				"Name", "Directory", "Mode", "Phase", "Progress", "Created", "Updated", "Failed", "Invited", "Not-Invited", "Age",
			}))
			row := cells(table)
			Expect(row["Name"]).To(Equal(ui.Name))
			Expect(row["Directory"]).To(Equal("corp-idp"))
			Expect(row["Mode"]).To(Equal("Full"))
			Expect(row["Phase"]).To(Equal("Importing"))
			Expect(row["Progress"]).To(Equal("42"))
			Expect(row["Created"]).To(BeEquivalentTo(7))
			Expect(row["Updated"]).To(BeEquivalentTo(2))
			Expect(row["Failed"]).To(BeEquivalentTo(1))
			Expect(row["Invited"]).To(BeEquivalentTo(5))
			Expect(row["Not-Invited"]).To(BeEquivalentTo(2))
			Expect(row["Age"]).NotTo(BeEmpty())
		})

		It("show a UserDirectory's type, readiness and its reason, active import and queue", func() {
			ud := validSCIMDirectory()
			Expect(apiClient.Create(ctx, ud)).To(Succeed())
			ud.Status = uiov1.UserDirectoryStatus{
				Type: "SCIM",
				Conditions: []metav1.Condition{{
					Type: uiov1.ConditionReady, Status: metav1.ConditionFalse, Reason: "AuthenticationFailed",
					Message: "the directory refused the credentials", LastTransitionTime: metav1.Now(),
				}},
				ActiveImport: "hr-full-sync-2026-11",
				Queue:        []string{"hr-delta-1", "hr-delta-2"},
				QueueLength:  2,
			}
			Expect(apiClient.Status().Update(ctx, ud)).To(Succeed())

			table := getTable("userdirectories", ud.Name)
			Expect(columnNames(table)).To(Equal([]string{"Name", "Type", "Ready", "Reason", "Active import", "Queue", "Age"}))
			row := cells(table)
			Expect(row["Type"]).To(Equal("SCIM"))
			Expect(row["Ready"]).To(Equal("False"))
			Expect(row["Reason"]).To(Equal("AuthenticationFailed"))
			Expect(row["Active import"]).To(Equal("hr-full-sync-2026-11"))
			Expect(row["Queue"]).To(BeEquivalentTo(2))
		})

		It("show an ImportSchedule's schedule, suspension, active count and run times", func() {
			is := validSchedule(withSchedule("30 2 * * *"), func(is *uiov1.ImportSchedule) {
				is.Spec.Suspend = true
			})
			Expect(apiClient.Create(ctx, is)).To(Succeed())
			last := metav1.NewTime(time.Now().Add(-90 * time.Minute).Truncate(time.Second))
			next := metav1.NewTime(time.Date(2031, 5, 6, 0, 30, 0, 0, time.UTC))
			is.Status.ActiveCount = 1
			is.Status.LastScheduleTime = &last
			is.Status.NextScheduleTime = &next
			Expect(apiClient.Status().Update(ctx, is)).To(Succeed())

			table := getTable("importschedules", is.Name)
			Expect(columnNames(table)).To(Equal([]string{"Name", "Schedule", "Suspend", "Active", "Last", "Next", "Age"}))
			row := cells(table)
			Expect(row["Schedule"]).To(Equal("30 2 * * *"))
			Expect(row["Suspend"]).To(Equal(true))
			Expect(row["Active"]).To(BeEquivalentTo(1))
			Expect(row["Last"]).To(Equal("90m"))
			Expect(row["Next"]).To(Equal("2031-05-06T00:30:00Z"))
		})
	})
})
