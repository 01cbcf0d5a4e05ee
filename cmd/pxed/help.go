package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// Every command answers -h, --help and `help` with exit status 0: its
// synopsis, examples, then its flags.

// isHelp reports whether args ask for help and nothing else.
func isHelp(args []string) bool {
	return len(args) == 1 && (args[0] == "-h" || args[0] == "--help" || args[0] == "help")
}

// parseArgs parses fs's flags wherever they stand among the positional
// arguments ("pxed host --json list" and "pxed host list --json" alike)
// and returns the positional ones in order. After "--" everything is
// positional.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// parseCommand is parseArgs for a command's own flag set: when it fails
// (ok false), code is the command's exit status — 0 after -h, whose usage
// fs printed, 2 after an error the flag package printed.
func parseCommand(fs *flag.FlagSet, args []string) (pos []string, code int, ok bool) {
	pos, err := parseArgs(fs, args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		return nil, 0, false
	case err != nil:
		return nil, 2, false
	}
	return pos, 0, true
}

// setUsage makes fs print synopsis and examples before its flags.
func setUsage(fs *flag.FlagSet, w io.Writer, synopsis, examples string) {
	fs.Usage = func() {
		fmt.Fprint(w, synopsis)
		if examples != "" {
			fmt.Fprintf(w, "\nExamples:\n%s", examples)
		}
		fmt.Fprintln(w, "\nFlags:")
		fs.PrintDefaults()
	}
}

const serveSynopsis = `usage: pxed serve [flags]

Runs the DHCP, TFTP and HTTP boot servers until SIGTERM or SIGINT (SIGHUP
reloads the inventory and the DHCP configuration). Every flag has a key of
the same name in the YAML of --config; a flag overrides the file.
`

const serveExamples = `  pxed serve --config /etc/pxed/pxed.yaml
  pxed serve --tftp-root /srv/tftp --dhcpd-conf /etc/dhcp/dhcpd.conf --interface eth1
  pxed serve --tftp-root /srv/tftp --tftp-addr :69 --http-addr ""       # TFTP only
`

const checkSynopsis = `usage: pxed check [serve flags]

Validates what pxed serve would run with the same flags and files, on this
machine (the boot tree, the interfaces), without binding anything: exit 0
when serve would start, 1 with each problem at file:line:column.
`

const checkExamples = `  pxed check --config /etc/pxed/pxed.yaml
  pxed check --dhcpd-conf /etc/dhcp/dhcpd.conf --interface eth1 --strict
`

const leasesSynopsis = `usage: pxed leases [--config FILE | --state-dir DIR] [--json]

Lists the DHCP leases (IP, MAC, state, expiry, host name): from the running
pxed serve through its control socket, else from the lease store: the bolt
file, or the cluster's etcd when --config's store is etcd://.
`

const leasesExamples = `  pxed leases --config /etc/pxed/pxed.yaml
  pxed leases --state-dir /var/lib/pxed --json
`

const hexipUsage = `usage: pxed hexip IP...

Prints each IPv4 address as PXELINUX names its config file (like
gethostip -x).

Examples:
  pxed hexip 192.0.2.177        # C00002B1
`
