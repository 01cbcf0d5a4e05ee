package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"pxed/internal/inventory"
)

const hostUsage = `usage: pxed host list [--json]
       pxed host install NAME|MAC     netboot its profile at the next boot
       pxed host local NAME|MAC       boot its local disk from now on

Changes the netboot-once state of an inventory host, through the running
pxed serve (its control socket in the state directory) or, when none runs,
in the state file directly. Takes serve's --config, --inventory and
--state-dir to find them.
`

func cmdHost(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprint(stderr, hostUsage)
		return 2
	}
	sub := args[0]
	f := newServeFlags(stderr)
	f.fs.Init("host", flag.ContinueOnError)
	f.fs.Usage = func() { fmt.Fprint(stderr, hostUsage) }
	asJSON := f.fs.Bool("json", false, "print JSON")
	c, names, err := f.loadWithArgs(args[1:])
	if err != nil {
		return f.loadFailed("host", err, stderr)
	}
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

	// Through the running server first: it owns the state file.
	sock := filepath.Join(c.StateDir, controlSocketName)
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		},
	}}
	var views []hostView
	var resp *http.Response
	if state == "" {
		resp, err = client.Get("http://pxed/hosts")
	} else {
		resp, err = client.Post("http://pxed/hosts/"+url.PathEscape(names[0])+"/state?to="+string(state), "", nil)
	}
	if err == nil {
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		switch {
		case resp.StatusCode == http.StatusNotFound && state == "":
			fmt.Fprintln(stderr, "pxed host: the running pxed serve has no inventory")
			return 1
		case resp.StatusCode != http.StatusOK:
			fmt.Fprintf(stderr, "pxed host: %s", body)
			return 1
		case state == "":
			json.Unmarshal(body, &views)
		default:
			var v hostView
			json.Unmarshal(body, &v)
			views = []hostView{v}
		}
	} else {
		// No server: work on the state file with the configured inventory.
		inv, err := loadInventory(c)
		if err != nil {
			fmt.Fprintf(stderr, "pxed host: %v\n", err)
			return 1
		}
		if inv == nil {
			fmt.Fprintln(stderr, "pxed host: no running pxed serve and no inventory configured (--config or --inventory)")
			return 1
		}
		states, err := inventory.OpenStateFile(filepath.Join(c.StateDir, hostStateName))
		if err != nil {
			fmt.Fprintf(stderr, "pxed host: %v\n", err)
			return 1
		}
		live := inventory.NewLive(inv, states, inventory.Options{})
		a := apiHosts{live: live}
		if state == "" {
			views = a.List().([]hostView)
		} else {
			h, err := live.SetState(names[0], state, "pxed host")
			if err != nil {
				fmt.Fprintf(stderr, "pxed host: %v\n", err)
				return 1
			}
			views = []hostView{a.view(h)}
		}
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
