// Package apivalidate checks objects of the operator's kinds with the
// rules the API server applies to them: the generated CRDs' OpenAPI
// schemas (types, enums, minimums and maximums, patterns), their CEL
// rules, and their defaults. The one-off worker reads its UserDirectory
// and UserImport from a file, with no API server in between; this makes
// that file pass the same checks as a `kubectl apply`, from the same
// source of truth.
package apivalidate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"

	"k8s.io/apiextensions-apiserver/pkg/apis/apiextensions"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	structuralschema "k8s.io/apiextensions-apiserver/pkg/apiserver/schema"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/cel"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/schema/defaulting"
	"k8s.io/apiextensions-apiserver/pkg/apiserver/validation"
	utiljson "k8s.io/apimachinery/pkg/util/json"
	"k8s.io/apimachinery/pkg/util/validation/field"
	celconfig "k8s.io/apiserver/pkg/apis/cel"

	"github.com/userimport/user-import-operator/api/v1alpha1"
	"github.com/userimport/user-import-operator/config/crd"
)

// kind is the compiled schema of one kind.
type kind struct {
	structural *structuralschema.Structural
	schema     validation.SchemaValidator
	cel        *cel.Validator
}

var (
	loadOnce sync.Once
	kinds    map[string]*kind
	loadErr  error
)

func load() (map[string]*kind, error) {
	loadOnce.Do(func() {
		crds, err := crd.CRDs()
		if err != nil {
			loadErr = err
			return
		}
		kinds = map[string]*kind{}
		for _, c := range crds {
			for _, v := range c.Spec.Versions {
				if v.Name != v1alpha1.GroupVersion.Version || v.Schema == nil || v.Schema.OpenAPIV3Schema == nil {
					continue
				}
				k, err := compile(v.Schema.OpenAPIV3Schema)
				if err != nil {
					loadErr = fmt.Errorf("CRD %s: %w", c.Name, err)
					return
				}
				kinds[c.Spec.Names.Kind] = k
			}
		}
	})
	return kinds, loadErr
}

func compile(v1 *apiextensionsv1.JSONSchemaProps) (*kind, error) {
	var internal apiextensions.JSONSchemaProps
	if err := apiextensionsv1.Convert_v1_JSONSchemaProps_To_apiextensions_JSONSchemaProps(v1, &internal, nil); err != nil {
		return nil, err
	}
	s, err := structuralschema.NewStructural(&internal)
	if err != nil {
		return nil, err
	}
	sv, _, err := validation.NewSchemaValidator(&internal)
	if err != nil {
		return nil, err
	}
	return &kind{structural: s, schema: sv, cel: cel.NewValidator(s, true, celconfig.PerCallLimit)}, nil
}

// Decode checks the JSON of an object of its kind as the API server does
// on create, applies the CRD's defaults, and decodes the result into out.
// The error lists every violation with its field path.
func Decode(kindName string, data []byte, out any) error {
	ks, err := load()
	if err != nil {
		return err
	}
	k, ok := ks[kindName]
	if !ok {
		return fmt.Errorf("kind %q is not one of the operator's kinds", kindName)
	}
	// Numbers as the API server reads them: integers as int64, which the
	// CEL rules on integer fields expect (encoding/json gives float64).
	var obj map[string]any
	if err := utiljson.Unmarshal(data, &obj); err != nil {
		return err
	}
	// The API server prunes nothing here: unknown fields are refused by
	// the strict decode below instead.
	defaulting.Default(obj, k.structural)
	errs := validation.ValidateCustomResource(nil, obj, k.schema)
	if len(errs) == 0 {
		celErrs, _ := k.cel.Validate(context.Background(), nil, k.structural, obj, nil, celconfig.RuntimeCELCostBudget)
		errs = append(errs, celErrs...)
	}
	if len(errs) > 0 {
		return invalid(kindName, errs)
	}
	defaulted, err := json.Marshal(obj)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(defaulted))
	dec.DisallowUnknownFields()
	if err := dec.Decode(out); err != nil {
		return fmt.Errorf("%s: %w", kindName, err)
	}
	return nil
}

// invalid turns field errors into one error that names each field.
func invalid(kindName string, errs field.ErrorList) error {
	msgs := make([]string, 0, len(errs))
	for _, e := range errs {
		msgs = append(msgs, e.Error())
	}
	return fmt.Errorf("%s is invalid: %s", kindName, strings.Join(msgs, "; "))
}
