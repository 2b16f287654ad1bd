package integration_test

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	. "github.com/onsi/ginkgo/v2"
	. "github.com/onsi/gomega"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	sigsyaml "sigs.k8s.io/yaml"

	uiov1 "github.com/userimport/user-import-operator/api/v1alpha1"
)

const samplesNamespace = "samples"

// sampleFiles are the manifests of config/samples, kustomization.yaml aside.
func sampleFiles() []string {
	GinkgoHelper()
	files, err := filepath.Glob(filepath.Join(repoRoot, "config", "samples", "*.yaml"))
	Expect(err).NotTo(HaveOccurred())
	var out []string
	for _, f := range files {
		if filepath.Base(f) != "kustomization.yaml" {
			out = append(out, f)
		}
	}
	Expect(out).NotTo(BeEmpty())
	return out
}

// readObjects parses every document of a multi-document YAML file.
func readObjects(path string) []*unstructured.Unstructured {
	GinkgoHelper()
	f, err := os.Open(path)
	Expect(err).NotTo(HaveOccurred())
	defer f.Close()
	dec := yaml.NewYAMLOrJSONDecoder(f, 4096)
	var objs []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		err := dec.Decode(&u.Object)
		if errors.Is(err, io.EOF) {
			return objs
		}
		Expect(err).NotTo(HaveOccurred(), path)
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
}

// applySamples server-side applies every sample object into the samples
// namespace and returns how many objects of each kind were applied.
func applySamples() map[string]int {
	GinkgoHelper()
	kinds := map[string]int{}
	for _, f := range sampleFiles() {
		for _, u := range readObjects(f) {
			Expect(u.GetNamespace()).To(BeEmpty(), "%s: samples take the namespace from kubectl -n", f)
			u.SetNamespace(samplesNamespace)
			Expect(apiClient.Apply(ctx, client.ApplyConfigurationFromUnstructured(u),
				client.FieldOwner("crd-test-samples"), client.ForceOwnership)).
				To(Succeed(), "%s: %s %s", filepath.Base(f), u.GetKind(), u.GetName())
			kinds[u.GetKind()]++
		}
	}
	return kinds
}

var _ = Describe("The samples in config/samples", Label(labelAPIServerAlone), Ordered, func() {
	BeforeAll(func() {
		Expect(apiClient.Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: samplesNamespace}})).To(Succeed())
	})

	key := func(name string) client.ObjectKey { return client.ObjectKey{Namespace: samplesNamespace, Name: name} }

	It("are all listed in the samples' kustomization.yaml", func() {
		raw, err := os.ReadFile(filepath.Join(repoRoot, "config", "samples", "kustomization.yaml"))
		Expect(err).NotTo(HaveOccurred())
		var k struct {
			Resources []string `json:"resources"`
		}
		Expect(sigsyaml.Unmarshal(raw, &k)).To(Succeed())
		var files []string
		for _, f := range sampleFiles() {
			files = append(files, filepath.Base(f))
		}
		sort.Strings(k.Resources)
		Expect(k.Resources).To(Equal(files))
	})

	It("apply with server-side apply, one of each kind", func() {
		kinds := applySamples()
		Expect(kinds).To(HaveKeyWithValue("UserDirectory", 1))
		Expect(kinds).To(HaveKeyWithValue("UserImport", 1))
		Expect(kinds).To(HaveKeyWithValue("ImportSchedule", 1))
	})

	It("apply a second time without a change", func() {
		ui := &uiov1.UserImport{}
		Expect(apiClient.Get(ctx, key("hr-full-sync-2026-11"), ui)).To(Succeed())
		before := ui.Generation
		applySamples()
		Expect(apiClient.Get(ctx, key("hr-full-sync-2026-11"), ui)).To(Succeed())
		Expect(ui.Generation).To(Equal(before), "defaults must not make a re-apply change the spec")
	})

	It("read back a UserDirectory with its defaults filled in", func() {
		ud := &uiov1.UserDirectory{}
		Expect(apiClient.Get(ctx, key("corp-idp"), ud)).To(Succeed())
		Expect(ud.Spec.SCIM).NotTo(BeNil())
		Expect(ud.Spec.SCIM.Auth.BearerToken).To(Equal(&uiov1.SecretKeyRef{Name: "corp-idp-scim-token", Key: "token"}))
		Expect(ud.Spec.Execution.Concurrency).To(Equal(int32(8)))
		Expect(ud.Spec.Execution.BackoffLimit).To(Equal(ptr.To[int32](3)))
		Expect(ud.Spec.Execution.ActiveDeadlineSeconds).To(Equal(ptr.To[int64](86400)))

		// The Secret it names exists in the samples, with that key.
		s := &corev1.Secret{}
		Expect(apiClient.Get(ctx, key(ud.Spec.SCIM.Auth.BearerToken.Name), s)).To(Succeed())
		Expect(s.Data).To(HaveKey(ud.Spec.SCIM.Auth.BearerToken.Key))
	})

	It("read back a UserImport with its defaults filled in", func() {
		ui := &uiov1.UserImport{}
		Expect(apiClient.Get(ctx, key("hr-full-sync-2026-11"), ui)).To(Succeed())
		Expect(ui.Spec.Mode).To(Equal(uiov1.ModeFull))
		Expect(ui.Spec.MissingUsers).To(Equal(uiov1.MissingDeactivate))
		Expect(ui.Spec.Format.Quote).To(Equal(`"`))
		Expect(ui.Spec.Format.Header).To(Equal(ptr.To(true)))
		Expect(ui.Spec.Format.MaxLineBytes).To(Equal(int32(65536)))
		Expect(ui.Spec.ErrorPolicy.MaxErrorPercent).To(Equal(ptr.To[int32](10)))
		Expect(ui.Spec.Safety.MaxDeprovisionPercent).To(Equal(ptr.To[int32](5)))

		// The mapping shows each way of computing a value.
		var column, template, value, transforms, checks, identity int
		for _, m := range ui.Spec.Mapping {
			switch {
			case m.Column != "":
				column++
			case m.Template != "":
				template++
			case m.Value != nil:
				value++
			}
			if len(m.Transforms) > 0 {
				transforms++
			}
			if m.Check != "" {
				checks++
			}
			if m.Identity {
				identity++
			}
		}
		Expect([]int{template, value, identity}).To(Equal([]int{1, 1, 1}))
		Expect(column).To(BeNumerically(">", 3))
		Expect(transforms).To(BeNumerically(">", 2))
		Expect(checks).To(BeNumerically(">", 1))

		// It names the sample directory, and the sample ConfigMap holds its
		// file: a header and ten rows, every column it maps.
		Expect(apiClient.Get(ctx, key(ui.Spec.DirectoryRef.Name), &uiov1.UserDirectory{})).To(Succeed())
		cm := &corev1.ConfigMap{}
		Expect(apiClient.Get(ctx, key(ui.Spec.Source.ConfigMap.Name), cm)).To(Succeed())
		csv := cm.Data[ui.Spec.Source.ConfigMap.Key]
		lines := strings.Split(strings.TrimSpace(csv), "\n")
		Expect(lines).To(HaveLen(11))
		header := strings.Split(lines[0], ui.Spec.Format.Delimiter)
		for _, m := range ui.Spec.Mapping {
			if m.Column != "" {
				Expect(header).To(ContainElement(m.Column))
			}
		}
		for i, l := range lines {
			Expect(strings.Split(l, ui.Spec.Format.Delimiter)).To(HaveLen(len(header)), "line %d", i+1)
		}
	})

	It("read back an ImportSchedule with its defaults filled in", func() {
		is := &uiov1.ImportSchedule{}
		Expect(apiClient.Get(ctx, key("nightly-hr-delta"), is)).To(Succeed())
		Expect(is.Spec.TimeZone).To(Equal("Europe/Berlin"))
		Expect(is.Spec.ConcurrencyPolicy).To(Equal(uiov1.ConcurrencyForbid))
		t := is.Spec.Template.Spec
		Expect(t.Action).To(Equal(uiov1.ActionImport))
		Expect(t.MissingUsers).To(Equal(uiov1.MissingIgnore))
		Expect(t.Format.Encoding).To(Equal(uiov1.Encoding("UTF-8")))
		Expect(t.Safety.MaxDeprovisionPercent).To(Equal(ptr.To[int32](10)))
		Expect(t.StatusColumn.DeactivateValues).To(Equal([]string{"left", "suspended"}))
		Expect(t.StatusColumn.DeleteValues).To(Equal([]string{"deleted"}))

		s := &corev1.Secret{}
		Expect(apiClient.Get(ctx, key(t.Source.HTTP.BasicAuth.Name), s)).To(Succeed())
		Expect(s.Data).To(HaveKey("username"))
		Expect(s.Data).To(HaveKey("password"))
	})
})
