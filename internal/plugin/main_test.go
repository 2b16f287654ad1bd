package plugin

import (
	"os"
	"testing"

	"github.com/userimport/user-import-operator/internal/testenv"
)

// The tests of this package share one API server (testenv.SharedEnv):
// each works in a namespace of its own, with a manager of its own.
func TestMain(m *testing.M) { os.Exit(testenv.RunShared(m)) }
