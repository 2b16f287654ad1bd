// Command user-import-operator is the binary of the operator's image. Its
// subcommands:
//
//	manager  runs the controllers (the Deployment's entrypoint)
//	worker   runs one preview or import (the Jobs' entrypoint; also a
//	         one-off import from a laptop)
//	version  prints the version
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/userimport/user-import-operator/internal/safetext"
)

// version is stamped at build time with -ldflags "-X main.version=…".
var version = "dev"

func usage() {
	fmt.Fprintf(os.Stderr, `user-import-operator keeps a user directory in step with CSV exports.

Usage:
  user-import-operator <command> [flags]

Commands:
  manager   run the controllers
  worker    run one preview or import
  version   print the version

Run "user-import-operator <command> -h" for the flags of a command.
`)
}

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	cmd, args := os.Args[1], os.Args[2:]
	var err error
	switch cmd {
	case "manager":
		err = runManager(args)
	case "worker":
		err = runWorker(args)
	case "version", "--version":
		fmt.Println(version)
	case "help", "-h", "--help":
		usage()
	default:
		fmt.Fprintf(os.Stderr, "unknown command %q\n\n", cmd)
		usage()
		os.Exit(2)
	}
	var status exitStatus
	switch {
	case errors.As(err, &status):
		if status.err != nil {
			fmt.Fprintln(os.Stderr, "error:", safetext.Of(status.err))
		}
		os.Exit(status.code)
	case err != nil:
		fmt.Fprintln(os.Stderr, "error:", safetext.Of(err))
		os.Exit(1)
	}
}
