// Command pxed is a network-boot provisioning server: DHCP, TFTP and HTTP
// boot from one binary and one inventory.
package main

import (
	"fmt"
	"io"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

const usage = `pxed — network-boot provisioning server

Usage:
  pxed serve [flags]     run the TFTP and HTTP boot servers (see pxed serve -h)
  pxed version           print the version
  pxed help              this text

Documentation: README.md in the source tree.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	switch args[0] {
	case "serve":
		return cmdServe(args[1:], stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "pxed", version)
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "pxed: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}
