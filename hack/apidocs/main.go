// Command apidocs writes the API reference, docs/reference/api.md, from
// the CustomResourceDefinitions in config/crd/bases (`make docs`).
package main

import (
	"fmt"
	"os"

	"github.com/userimport/user-import-operator/config/crd"
	"github.com/userimport/user-import-operator/internal/apidocs"
)

func main() {
	out := "docs/reference/api.md"
	if len(os.Args) > 1 {
		out = os.Args[1]
	}
	crds, err := crd.CRDs()
	if err == nil {
		var page string
		if page, err = apidocs.Render(crds); err == nil {
			err = os.WriteFile(out, []byte(page), 0o644)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "apidocs:", err)
		os.Exit(1)
	}
}
