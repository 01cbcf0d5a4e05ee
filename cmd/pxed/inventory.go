package main

import (
	"context"
	"flag"
	"fmt"
	"io"

	"pxed/internal/app"
	"pxed/internal/bootfs"
	"pxed/internal/clusterstate"
	"pxed/internal/etcdstore"
)

const inventoryUsage = `usage: pxed inventory push FILE --store etcd://HOST:PORT[,…] [flags]

Stores FILE as the inventory of the cluster of pxed servers sharing that
etcd (and --store-prefix). FILE is checked first as pxed check checks it,
against the DHCP configuration serve's flags or --config give; a file with
errors is refused and nothing is stored. The kickstart templates its
profiles name are read now and stored with it: push again after changing
one. Every pxed of the cluster serves the new inventory within a second.
Takes serve's flags (--config, --store, --store-prefix, --etcd-ca,
--etcd-cert, --etcd-key, --dhcpd-conf, --tftp-root, ...).
`

func cmdInventory(args []string, stdout, stderr io.Writer) int {
	if isHelp(args) {
		fmt.Fprint(stdout, inventoryUsage)
		return 0
	}
	f := newServeFlags(stderr)
	f.fs.Init("inventory", flag.ContinueOnError)
	f.fs.Usage = func() { fmt.Fprint(stderr, inventoryUsage) }
	c, names, err := f.loadWithArgs(args)
	if err != nil {
		return f.loadFailed("inventory", err, stderr)
	}
	if len(names) != 2 || names[0] != "push" {
		fmt.Fprint(stderr, inventoryUsage)
		return 2
	}
	file := names[1]
	if !c.Shared() {
		fmt.Fprintln(stderr, "pxed inventory push: stores the inventory of a cluster in etcd: give --store etcd://HOST:PORT (or store: in --config)")
		return 2
	}
	v, inv, err := clusterstate.Bundle(file)
	if err != nil {
		fmt.Fprintf(stderr, "%v\n", err)
		return 1
	}
	// Checked as serve builds it: merged into the DHCP configuration,
	// with the boot plan over the tree when this machine has it.
	c.Inventory = ""
	env := app.Env{Inventory: inv}
	if t, err := bootfs.Open(c.TFTP.Root); err == nil {
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
		fmt.Fprintf(stderr, "pxed inventory push: %s not stored\n", file)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), etcdstore.DialTimeout+clusterstate.OpTimeout)
	defer cancel()
	cli, err := etcdstore.Dial(ctx, c)
	if err != nil {
		fmt.Fprintf(stderr, "pxed inventory push: %v\n", err)
		return 1
	}
	defer cli.Close()
	keys := etcdstore.Keys{Prefix: c.Store.Prefix}
	rev, err := clusterstate.Push(ctx, cli, keys, v)
	if err != nil {
		fmt.Fprintf(stderr, "pxed inventory push: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "stored %s: %d host(s), %d profile(s), %d bytes with its kickstart templates, as %s at etcd revision %d\n",
		file, len(inv.Hosts), len(inv.Profiles), len(v), keys.Inventory(), rev)
	return 0
}
