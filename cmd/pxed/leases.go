package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"text/tabwriter"
	"time"

	"pxed/internal/api"
	"pxed/internal/app"
	"pxed/internal/config"
	"pxed/internal/etcdstore"
	"pxed/internal/lease"
)

// cmdLeases lists leases: from the running server through its control
// socket, or from the database when no server holds it.
func cmdLeases(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("leases", flag.ContinueOnError)
	fs.SetOutput(stderr)
	setUsage(fs, stderr, leasesSynopsis, leasesExamples)
	configFile, stateDir, asJSON := leasesFlags(fs)
	pos, code, ok := parseCommand(fs, args)
	if !ok {
		return code
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "pxed leases: unexpected argument %q\n", pos[0])
		return 2
	}
	dir, err := stateDirOf(fs, *configFile, *stateDir)
	if err != nil {
		fmt.Fprintf(stderr, "pxed leases: %v\n", err)
		return 1
	}
	c := config.Default()
	if *configFile != "" {
		if c, err = config.Load(*configFile); err != nil {
			fmt.Fprintf(stderr, "pxed leases: %v\n", err)
			return 1
		}
	}
	c.StateDir = dir
	leases, err := readLeases(c)
	if err != nil {
		fmt.Fprintf(stderr, "pxed leases: %v\n", err)
		return 1
	}
	if *asJSON {
		return printJSON(stdout, leases)
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IP\tMAC\tSTATE\tEXPIRES\tHOSTNAME")
	for _, l := range leases {
		exp := "never"
		if !l.Expiry.IsZero() && l.Expiry.Unix() > 0 {
			exp = l.Expiry.Local().Format(time.DateTime)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", l.IP, l.MAC, l.State, exp, printable(l.Hostname))
	}
	tw.Flush()
	return 0
}

// readLeases asks the running server, else reads the store: c's etcd
// (cluster mode), or the bolt file no server holds.
func readLeases(c *config.Config) ([]api.LeaseView, error) {
	stateDir := c.StateDir
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	leases, err := api.NewSocketClient(filepath.Join(stateDir, app.ControlSocket)).Leases(ctx)
	switch {
	case err == nil:
		return leases, nil
	case errors.Is(err, api.ErrNoDHCP):
		return nil, errors.New("the running pxed serve has DHCP off")
	case !errors.Is(err, api.ErrNoServer):
		return nil, fmt.Errorf("asking the running server: %w", err)
	}
	spec, err := c.StoreSpec()
	if err != nil {
		return nil, err
	}
	if spec.Kind == config.StoreEtcd {
		cli, err := etcdstore.Dial(ctx, c)
		if err != nil {
			return nil, err
		}
		defer cli.Close()
		ls, err := etcdstore.NewLeases(cli, etcdstore.Keys{Prefix: c.Store.Prefix}, etcdstore.LeasesOptions{}).Load(ctx)
		if err != nil {
			return nil, err
		}
		slices.SortFunc(ls, func(a, b lease.Lease) int { return a.IP.Compare(b.IP) })
		return app.LeaseViews(ls), nil
	}
	if _, err := os.Stat(spec.Path); err != nil {
		return nil, fmt.Errorf("no lease database: %w (is --state-dir right?)", err)
	}
	return app.OfflineLeases(spec.Path)
}

// leasesFlags defines the flags of `pxed leases` (also read by completion
// and the manual page).
func leasesFlags(fs *flag.FlagSet) (configFile, stateDir *string, asJSON *bool) {
	configFile = fs.String("config", "", "pxed's YAML config `file`: its state-dir (as serve and host take it)")
	stateDir = fs.String("state-dir", config.Default().StateDir, "pxed's state `dir`ectory (overrides --config's)")
	asJSON = fs.Bool("json", false, "print JSON instead of a table")
	return
}

// stateDirOf is the state directory a status command reads: --state-dir
// when given, else the state-dir of --config's file, else the default.
func stateDirOf(fs *flag.FlagSet, configFile, stateDir string) (string, error) {
	if configFile == "" {
		return stateDir, nil
	}
	explicit := false
	fs.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "state-dir" })
	if explicit {
		return stateDir, nil
	}
	c, err := config.Load(configFile)
	if err != nil {
		return "", err
	}
	return c.StateDir, nil
}

// printJSON prints v as indented JSON (the --json of status commands).
func printJSON(w io.Writer, v any) int {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return 1
	}
	return 0
}
