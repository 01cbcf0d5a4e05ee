package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"pxed/internal/api"
	"pxed/internal/app"
	"pxed/internal/config"
	"pxed/internal/inventory"
)

const hostUsage = `usage: pxed host list [--json]
       pxed host install NAME|MAC     netboot its profile at the next boot
       pxed host local NAME|MAC       boot its local disk from now on

Changes the netboot-once state of an inventory host, through the running
pxed serve (its control socket in the state directory) or, when none runs
(nothing answers on the socket and the state directory is not locked), in
the state file directly. Takes serve's --config, --inventory and
--state-dir to find them. With --store etcd://… (a cluster), when no
server answers on the socket, it works on the cluster's inventory and host
states in etcd: every pxed of the cluster sees the change at once.
`

func cmdHost(args []string, stdout, stderr io.Writer) int {
	if isHelp(args) {
		fmt.Fprint(stdout, hostUsage)
		return 0
	}
	f := newServeFlags(stderr)
	f.fs.Init("host", flag.ContinueOnError)
	f.fs.Usage = func() { fmt.Fprint(stderr, hostUsage) }
	asJSON := f.fs.Bool("json", false, "print JSON")
	c, names, err := f.loadWithArgs(args)
	if err != nil {
		return f.loadFailed("host", err, stderr)
	}
	if len(names) == 0 {
		fmt.Fprint(stderr, hostUsage)
		return 2
	}
	sub, names := names[0], names[1:]
	var state inventory.State
	switch sub {
	case "list":
		if len(names) != 0 {
			fmt.Fprint(stderr, hostUsage)
			return 2
		}
	case "install", "local":
		if len(names) != 1 {
			fmt.Fprint(stderr, hostUsage)
			return 2
		}
		state = inventory.State(sub)
	default:
		fmt.Fprintf(stderr, "pxed host: unknown command %q\n\n%s", sub, hostUsage)
		return 2
	}

	views, err := hostViews(c, sub, state, names)
	if err != nil {
		fmt.Fprintf(stderr, "pxed host: %v\n", err)
		return 1
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.Encode(views)
		return 0
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tMAC\tIP\tPROFILE\tSTATE\tCHANGED")
	for _, v := range views {
		changed := "-"
		if v.Changed != nil {
			changed = v.Changed.Local().Format(time.DateTime) + " by " + v.By
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", v.Name, strings.Join(v.MACs, ","), v.IP, v.Profile, v.State, changed)
	}
	tw.Flush()
	return 0
}

// hostViews does the host command through the running server, which owns
// the state file, or, when none runs, on the state file directly.
func hostViews(c *config.Config, sub string, state inventory.State, names []string) ([]api.HostView, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := api.NewSocketClient(filepath.Join(c.StateDir, app.ControlSocket))
	var views []api.HostView
	var err error
	if state == "" {
		views, err = client.Hosts(ctx)
	} else {
		var v api.HostView
		if v, err = client.SetHostState(ctx, names[0], string(state)); err == nil {
			views = []api.HostView{v}
		}
	}
	switch {
	case err == nil:
		return views, nil
	case errors.Is(err, api.ErrNoInventory):
		return nil, errors.New("the running pxed serve has no inventory")
	case !errors.Is(err, api.ErrNoServer):
		return nil, err
	}
	if c.Shared() {
		return clusterHostViews(ctx, c, state, names)
	}
	// Nothing answers on the socket; the state directory's lock says
	// whether a server runs all the same (its socket removed, or not yet
	// open while it starts). Only without one is the file ours to edit.
	unlock, lerr := app.LockStateDir(c.StateDir)
	switch {
	case errors.Is(lerr, app.ErrLocked):
		return nil, fmt.Errorf("a running pxed serve holds state dir %s, but its control socket does not answer (%v); not editing the state file behind it", c.StateDir, err)
	case lerr == nil:
		defer unlock()
	case !errors.Is(lerr, fs.ErrNotExist):
		return nil, lerr
	}
	// No server: work on the state file with the configured inventory.
	if c.Inventory == "" {
		return nil, errors.New("no running pxed serve and no inventory configured (--config or --inventory)")
	}
	inv, err := inventory.Load(c.Inventory)
	if err != nil {
		return nil, err
	}
	states, err := app.OpenStates(c, nil)
	if err != nil {
		return nil, err
	}
	if state == "" {
		return app.HostViews(inv, states), nil
	}
	v, err := app.SetHostState(inv, states, names[0], string(state), "pxed host")
	if err != nil {
		return nil, err
	}
	return []api.HostView{v}, nil
}
