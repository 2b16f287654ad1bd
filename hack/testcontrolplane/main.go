// Command testcontrolplane runs one control plane (etcd, kube-apiserver,
// the CRDs) for the test packages of one `go test` run that share it
// (testenv.Shared): it writes an administrator's kubeconfig to
// -write-kubeconfig once the control plane is up, and stops it on SIGTERM
// or SIGINT, or when the process that started it ends. hack/test.sh runs
// it and sets $UIO_TEST_KUBECONFIG for the tests.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/userimport/user-import-operator/internal/testenv"
)

func main() {
	kubeconfig := flag.String("write-kubeconfig", "", "where to write the administrator's kubeconfig")
	flag.Parse()
	if *kubeconfig == "" {
		fmt.Fprintln(os.Stderr, "testcontrolplane: give -write-kubeconfig")
		os.Exit(2)
	}
	// A test script killed outright leaves no control plane behind.
	_ = unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(syscall.SIGTERM), 0, 0, 0)
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)

	env, err := testenv.New("")
	if err != nil {
		fmt.Fprintln(os.Stderr, "testcontrolplane:", err)
		os.Exit(1)
	}
	// Written whole, then renamed: a reader never sees half a file.
	tmp := *kubeconfig + ".tmp"
	if err := env.WriteKubeconfig(tmp); err == nil {
		err = os.Rename(tmp, *kubeconfig)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "testcontrolplane:", err)
		_ = env.Stop()
		os.Exit(1)
	}
	<-stop
	if err := env.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "testcontrolplane: stopping:", err)
		os.Exit(1)
	}
}
