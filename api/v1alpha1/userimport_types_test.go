package v1alpha1

import (
	"os"
	"reflect"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"sigs.k8s.io/yaml"
)

// The rule that freezes the spec of an Importing import names the fields
// it compares: every field of UserImportSpec but action must be among
// them, or a field added later could be edited under a running import.
func TestImportingFreezesEveryField(t *testing.T) {
	raw, err := os.ReadFile("../../config/crd/bases/userimport.dev_userimports.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var crd apiextensionsv1.CustomResourceDefinition
	if err := yaml.Unmarshal(raw, &crd); err != nil {
		t.Fatal(err)
	}
	var rule string
	for _, v := range crd.Spec.Versions[0].Schema.OpenAPIV3Schema.XValidations {
		if strings.Contains(v.Message, "is Importing") {
			rule = v.Rule
		}
	}
	if rule == "" {
		t.Fatal("no rule freezes the spec of an Importing import")
	}
	st := reflect.TypeOf(UserImportSpec{})
	for i := range st.NumField() {
		name, _, _ := strings.Cut(st.Field(i).Tag.Get("json"), ",")
		if name == "action" {
			continue
		}
		if !strings.Contains(rule, "self.spec."+name+" == oldSelf.spec."+name) {
			t.Errorf("spec.%s is not compared by the rule that freezes an Importing import", name)
		}
	}
}
