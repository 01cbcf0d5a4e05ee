package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"pxed/internal/app"
	"pxed/internal/bootfs"
	"pxed/internal/config"
	"pxed/internal/config/isc"
	"pxed/internal/dhcpnet"
	"pxed/internal/pxelinux"
)

// cmdCheck validates what `pxed serve` would run with the same flags,
// without binding anything.
func cmdCheck(args []string, stdout, stderr io.Writer) int {
	f := newServeFlags(stderr)
	f.fs.Init("check", flag.ContinueOnError)
	setUsage(f.fs, stderr, checkSynopsis, checkExamples)
	c, err := f.load(args)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		if f.parsed {
			fmt.Fprintf(stderr, "pxed check: %v\n", err)
		}
		return 1
	}
	var env app.Env
	if c.TFTP.Addr != "" || c.HTTP.Addr != "" {
		// serve refuses to start without the tree it would serve.
		t, err := bootfs.Open(c.TFTP.Root)
		if err != nil {
			fmt.Fprintf(stderr, "error: %v (set --tftp-root, or --tftp-addr \"\" and --http-addr \"\" to serve no files)\n", err)
			return 1
		}
		env.Tree = t
		defer t.Close()
	}
	snap, err := app.Build(c, env)
	if snap != nil {
		for _, w := range snap.Warnings {
			fmt.Fprintf(stderr, "warning: %s\n", w)
		}
	}
	if err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return 1
	}
	inv, plan := snap.Inventory, snap.DHCP
	if c.TFTP.Addr == "" && c.HTTP.Addr == "" && plan == nil {
		fmt.Fprintln(stderr, "error: nothing to serve: no DHCP subnet, and both --tftp-addr and --http-addr are empty")
		return 1
	}
	if inv != nil {
		fmt.Fprintf(stdout, "ok: inventory %s: %d host(s), %d profile(s)\n", c.Inventory, len(inv.Hosts), len(inv.Profiles))
	}
	if plan == nil {
		fmt.Fprintln(stdout, "ok: configuration is valid; DHCP is off (no subnet)")
		return 0
	}
	if len(c.DHCP.Interfaces) == 0 {
		fmt.Fprintln(stderr, "error: subnets are configured but no --interface is named; pxed serve would refuse to start")
		return 1
	}
	if !checkInterfaces(c.DHCP.Interfaces, plan.Subnets(), stderr) {
		return 1
	}
	fmt.Fprintf(stdout, "ok: %d subnet(s) %v, %d dynamic pool(s), %d fixed address(es); DHCP on %v\n",
		len(plan.Subnets()), plan.Subnets(), len(plan.Pools()), len(plan.Reserved), c.DHCP.Interfaces)
	return 0
}

// cmdImport prints an ISC dhcpd.conf as pxed's native YAML.
func cmdImport(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("import", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pxed import DHCPD.CONF\n\nPrints the equivalent native YAML (the dhcp: section of a pxed config) on stdout.")
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	n, warns, err := isc.ParseFile(fs.Arg(0))
	for _, w := range warns {
		fmt.Fprintf(stderr, "warning: %s\n", positionOf(w))
	}
	if err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return 1
	}
	if at, what, ok := n.DHCPDOnly(); ok {
		fmt.Fprintf(stderr, "%s: %s has no form in pxed's YAML; serve this file as it is (--dhcpd-conf %s)\n", at, what, fs.Arg(0))
		return 1
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(struct {
		DHCP *config.Network `yaml:"dhcp"`
	}{n}); err != nil {
		fmt.Fprintf(stderr, "pxed import: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "# Imported from %s by pxed import.\n# Add `interfaces: [IFACE]` under dhcp:, or pass --interface.\n", fs.Arg(0))
	stdout.Write(out.Bytes())
	writeDropped(stdout, warns)
	return 0
}

// positionOf formats an import warning as file:line:column: message.
func positionOf(w isc.Warning) string {
	return fmt.Sprintf("%s:%d:%d: %s", w.Pos.File, w.Pos.Line, max(w.Pos.Column, 1), w.Msg)
}

// writeDropped appends what the import left out as YAML comments, each
// with its position, the reason and the statement's first source line, so
// that the YAML keeps a record of what the dhcpd.conf said.
func writeDropped(w io.Writer, warns []isc.Warning) {
	if len(warns) == 0 {
		return
	}
	lines := map[string][]string{}
	fmt.Fprintln(w, "\n# Not imported (pxed skips these; `pxed check --strict` makes them errors):")
	for _, warn := range warns {
		src, ok := lines[warn.Pos.File]
		if !ok {
			if b, err := os.ReadFile(warn.Pos.File); err == nil {
				src = strings.Split(string(b), "\n")
			}
			lines[warn.Pos.File] = src
		}
		fmt.Fprintf(w, "#   %s\n", strings.ReplaceAll(positionOf(warn), "\n", " "))
		if l := warn.Pos.Line; l >= 1 && l <= len(src) {
			fmt.Fprintf(w, "#     %s\n", strings.TrimSpace(src[l-1]))
		}
	}
}

// cmdHexIP prints each IPv4 address in the upper-case hex form PXELINUX
// looks for in pxelinux.cfg/ (gethostip -x).
func cmdHexIP(args []string, stdout, stderr io.Writer) int {
	if isHelp(args) {
		fmt.Fprint(stdout, hexipUsage)
		return 0
	}
	if len(args) == 0 {
		fmt.Fprint(stderr, hexipUsage)
		return 2
	}
	code := 0
	for _, a := range args {
		ip, err := netip.ParseAddr(a)
		if err != nil || !ip.Is4() {
			fmt.Fprintf(stderr, "pxed hexip: %q is not an IPv4 address\n", a)
			code = 1
			continue
		}
		fmt.Fprintln(stdout, pxelinux.HexIP(ip))
	}
	return code
}

// checkInterfaces checks the DHCP interfaces as serve would find them on
// this machine: each must exist (or serve refuses to start), and one with
// no address in any configured subnet gets a warning, since only relayed
// requests get answers there. It reports whether all exist.
func checkInterfaces(names []string, subnets []netip.Prefix, stderr io.Writer) bool {
	ok := true
	for _, name := range names {
		ifc, err := dhcpnet.LookupInterface(name)
		if err != nil {
			fmt.Fprintf(stderr, "error: interface %s: not on this machine (%v); pxed serve would refuse to start\n", name, err)
			ok = false
			continue
		}
		var own []string
		onSubnet := false
		for _, a := range ifc.Addrs {
			own = append(own, a.String())
			onSubnet = onSubnet || slices.ContainsFunc(subnets, func(sn netip.Prefix) bool { return sn.Contains(a.Addr()) })
		}
		if !onSubnet {
			fmt.Fprintf(stderr, "warning: interface %s (%s) is on no configured subnet: only relayed requests get answers there\n",
				name, orNone(strings.Join(own, ", ")))
		}
	}
	return ok
}

func orNone(s string) string {
	if s == "" {
		return "no IPv4 address"
	}
	return s
}
