// Command pause is the process of the e2e cluster's pod sandbox image: it
// holds the pod's namespaces and waits to be told to stop, like
// registry.k8s.io/pause, which this machine cannot download.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	<-stop
}
