package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"

	"pxed/internal/app"
	"pxed/internal/bootfs"
	"pxed/internal/clusterstate"
	"pxed/internal/config"
	"pxed/internal/etcdstore"
	walk "pxed/internal/explain"
	"pxed/internal/inventory"
)

const explainUsage = `usage: pxed explain [serve flags] MAC

Walks the boot path of the machine with this MAC without touching the
network: its host entries, the DHCP answer for a BIOS PXE, UEFI x64 and
iPXE client, the PXELINUX config file it will find (every name tried),
the label that boots, the kernel and initrd files (present? readable?),
the iPXE script and kickstart URL. It flags the classic mistakes with
their fix. For UEFI answers it walks the Secure Boot chain (shim signed by
Microsoft, grubx64.efi beside it, the GRUB config and its signed kernel);
--secure-boot makes what such firmware would refuse a problem. Takes the
same flags as pxed serve (--config, --dhcpd-conf, --inventory,
--tftp-root, ...). Exit status 1 when it found a problem.
`

// explainFlags defines explain's own flags (also read by completion).
func explainFlags(fs *flag.FlagSet) (secureBoot *bool) {
	return fs.Bool("secure-boot", false, "the machine has UEFI Secure Boot on: an unsigned loader or kernel is a problem, not a note")
}

// cmdExplain implements `pxed explain`: the walk is internal/explain's,
// this prints it.
func cmdExplain(args []string, stdout, stderr io.Writer) int {
	f := newServeFlags(stderr)
	f.fs.Init("explain", flag.ContinueOnError)
	f.fs.Usage = func() { fmt.Fprint(stderr, explainUsage) }
	secureBoot := explainFlags(f.fs)
	c, pos, err := f.loadWithArgs(args)
	if err != nil {
		return f.loadFailed("explain", err, stderr)
	}
	if len(pos) != 1 {
		fmt.Fprint(stderr, explainUsage)
		return 2
	}
	hw, err := inventory.ParseMAC(pos[0])
	if err != nil {
		fmt.Fprintf(stderr, "pxed explain: %v\n", err)
		return 2
	}
	rep := explainMAC(c, hw, *secureBoot)
	printReport(stdout, rep)
	if rep.Problems > 0 {
		return 1
	}
	return 0
}

// explainMAC builds the snapshot serve would answer from (reading the
// recorded host states and install tokens, writing nothing) and walks it.
func explainMAC(c *config.Config, hw net.HardwareAddr, secureBoot bool) *walk.Report {
	in := walk.Input{Interfaces: c.DHCP.Interfaces, TFTP: c.TFTP.Addr != "", SecureBoot: secureBoot}
	var env app.Env
	var notes []string
	if c.TFTP.Root != "" {
		tree, err := bootfs.Open(c.TFTP.Root)
		if err != nil {
			return walk.Failed(hw, "boot tree", fmt.Errorf("%v (set --tftp-root)", err))
		}
		defer tree.Close()
		env.Tree = tree
		in.Files = bootfs.NewLayered(tree, slog.New(slog.DiscardHandler))
	}
	var states *inventory.States
	var err error
	if c.Shared() {
		// A cluster's inventory and host states, from its etcd.
		ctx, cancel := context.WithTimeout(context.Background(), etcdstore.DialTimeout+clusterstate.OpTimeout)
		defer cancel()
		var done func()
		if env.Inventory, states, done, err = clusterView(ctx, c); err != nil {
			return walk.Failed(hw, "cluster", err)
		}
		defer done()
	} else if states, err = app.OpenStates(c, nil); err != nil {
		notes = append(notes, fmt.Sprintf("%v; showing declared states", err))
		states = inventory.NewStates(nil, nil)
	}
	env.States, in.States = states, states
	snap, err := app.Build(c, env)
	if err != nil {
		what := "configuration"
		if snap == nil || snap.Inventory == nil && c.Inventory != "" {
			what = "inventory"
		}
		return walk.Failed(hw, what, err)
	}
	in.Snapshot = snap
	if in.Files != nil && snap.Inventory != nil {
		in.Files.SetGenerator(snap.Boot)
	}
	rep := walk.Run(context.Background(), in, hw)
	for _, n := range notes {
		rep.Lines = append([]walk.Line{{Kind: walk.Note, Text: n}}, rep.Lines...)
	}
	return rep
}

// printReport prints a walk.
func printReport(w io.Writer, rep *walk.Report) {
	fmt.Fprintf(w, "pxed explain %s\n", rep.MAC)
	for _, l := range rep.Lines {
		switch l.Kind {
		case walk.Heading:
			fmt.Fprintf(w, "\n%s\n", l.Text)
		case walk.Info:
			fmt.Fprintf(w, "  %s\n", l.Text)
		case walk.Note:
			fmt.Fprintf(w, "  note: %s\n", l.Text)
		case walk.Problem:
			fmt.Fprintf(w, "  PROBLEM: %s\n", l.Text)
		}
	}
	fmt.Fprintln(w)
	if rep.Problems == 0 {
		fmt.Fprintln(w, "no problems found")
	} else {
		fmt.Fprintf(w, "%d problem(s) found\n", rep.Problems)
	}
}
