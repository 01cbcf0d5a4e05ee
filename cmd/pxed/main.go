// Command pxed is a network-boot provisioning server: DHCP, TFTP and HTTP
// boot from one binary and one inventory.
package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
)

const usage = `pxed — network-boot provisioning server

Usage:
  pxed serve [flags]     run the DHCP, TFTP and HTTP boot servers (see pxed serve -h)
  pxed check [flags]     validate the configuration serve would run with the same flags
  pxed import FILE       print an ISC dhcpd.conf as native YAML
  pxed leases [flags]    list DHCP leases (MAC, IP, state, expiry, hostname)
  pxed events [HOST]     the latest boot events (DHCP, files, installs) of the running server
  pxed explain MAC       walk one machine's boot path offline and flag what is wrong
  pxed host CMD NAME     netboot-once states: list, install NAME, local NAME
  pxed inventory push FILE   store a checked inventory for a cluster of pxed (etcd)
  pxed store migrate --from bolt:PATH --to etcd://...  copy a single server's leases
                         and host states into a cluster's etcd
  pxed xen-bootloader ARGS   Xen PV bootloader (pypxeboot's successor, for xl and xm);
                         also runs as pxed-xenboot through a link of that name
  pxed vm create NAME    write a network-booting Xen guest config and its sparse disk
  pxed lab               boot a demo VM through pxed under QEMU and show the timeline (root)
  pxed hexip IP...       print an IPv4 address as PXELINUX names its config (like gethostip -x)
  pxed completion SHELL  print a bash, zsh or fish completion script
  pxed man               print the manual page pxed(8)
  pxed version           print the version
  pxed help              this text

Documentation: man pxed, and README.md and docs/ in the source tree.
`

func main() {
	// Through a link named pxed-xenboot (xl.cfg: bootloader = "…/pxed-xenboot"),
	// pxed is the bootloader and every argument is the toolstack's.
	switch filepath.Base(os.Args[0]) {
	case xenbootName:
		os.Exit(cmdXenBootloader(os.Args[1:], os.Stderr))
	case xenbootWorkerName:
		// The restricted network part of a --runas run (xenboot_runas.go).
		os.Exit(xenbootWorker(os.Args[1:], os.Stderr))
	}
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
	case "check":
		return cmdCheck(args[1:], stdout, stderr)
	case "import":
		return cmdImport(args[1:], stdout, stderr)
	case "leases":
		return cmdLeases(args[1:], stdout, stderr)
	case "events":
		return cmdEvents(args[1:], stdout, stderr)
	case "explain":
		return cmdExplain(args[1:], stdout, stderr)
	case "host":
		return cmdHost(args[1:], stdout, stderr)
	case "inventory":
		return cmdInventory(args[1:], stdout, stderr)
	case "store":
		return cmdStore(args[1:], stdout, stderr)
	case "xen-bootloader":
		return cmdXenBootloader(args[1:], stderr)
	case "vm":
		return cmdVM(args[1:], stdout, stderr)
	case "lab":
		return cmdLab(args[1:], stdout, stderr)
	case "hexip":
		return cmdHexIP(args[1:], stdout, stderr)
	case "completion":
		return cmdCompletion(args[1:], stdout, stderr)
	case "man":
		return cmdMan(args[1:], stdout, stderr)
	case "version", "--version", "-v":
		fmt.Fprintln(stdout, "pxed", versionString())
		return 0
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "pxed: unknown command %q\n\n%s", args[0], usage)
		return 2
	}
}
