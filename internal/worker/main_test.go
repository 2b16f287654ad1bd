package worker

import (
	"os"
	"testing"

	"github.com/userimport/user-import-operator/internal/testenv"
)

// The tests of this package share one API server (testenv.Shared): each
// names its objects after itself.
func TestMain(m *testing.M) { os.Exit(testenv.RunShared(m)) }
