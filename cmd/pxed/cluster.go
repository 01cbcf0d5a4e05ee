package main

import (
	"context"
	"fmt"
	"log/slog"

	clientv3 "go.etcd.io/etcd/client/v3"

	"pxed/internal/api"
	"pxed/internal/app"
	"pxed/internal/clusterstate"
	"pxed/internal/config"
	"pxed/internal/etcdstore"
	"pxed/internal/inventory"
)

// cluster is what a server of a cluster (store etcd://…) shares with the
// others: the etcd client (one per server, for leases too), the API
// token, the host states and the inventory pushed with pxed inventory
// push.
type cluster struct {
	cli    *clientv3.Client
	keys   etcdstore.Keys
	token  string
	hosts  *clusterstate.HostStates
	states *inventory.States
	inv    *clusterstate.Stored // nil: none pushed yet
	rev    int64                // the store revision inv was read at
}

// openCluster connects to c's etcd (a quorum must answer) and reads what
// the cluster shares. A stored inventory that does not load is an error:
// the server would serve something no other server does.
func openCluster(ctx context.Context, c *config.Config, log *slog.Logger) (*cluster, error) {
	if c.Inventory != "" {
		return nil, fmt.Errorf("inventory %s: a cluster's servers serve the inventory stored in etcd; push the file with pxed inventory push --store %s, and drop inventory from serve's configuration", c.Inventory, c.Store.URL)
	}
	cli, err := etcdstore.Dial(ctx, c)
	if err != nil {
		return nil, err
	}
	cl := &cluster{cli: cli, keys: etcdstore.Keys{Prefix: c.Store.Prefix}}
	if err := cl.read(ctx, c, log); err != nil {
		cli.Close()
		return nil, err
	}
	return cl, nil
}

func (cl *cluster) read(ctx context.Context, c *config.Config, log *slog.Logger) error {
	var err error
	if cl.token, err = clusterstate.APIToken(ctx, cl.cli, cl.keys, c); err != nil {
		return err
	}
	if cl.hosts, err = clusterstate.OpenStates(ctx, cl.cli, cl.keys, log); err != nil {
		return err
	}
	cl.states = inventory.NewStates(cl.hosts, log)
	cl.inv, cl.rev, err = clusterstate.LoadInventory(ctx, cl.cli, cl.keys)
	return err
}

// inventory is the stored inventory to serve first (nil: none).
func (cl *cluster) inventory() *inventory.Inventory {
	if cl == nil || cl.inv == nil {
		return nil
	}
	return cl.inv.Inventory
}

// run keeps a current with the cluster until g ends: host state changes
// are read as they happen, and each newly pushed inventory is served (or
// refused, keeping the one served) within moments.
func (cl *cluster) run(g *group, a *app.App, log *slog.Logger) {
	g.Go("host states", func(ctx context.Context) error { cl.hosts.Watch(ctx); return nil })
	g.Go("inventory", func(ctx context.Context) error {
		clusterstate.WatchInventory(ctx, cl.cli, cl.keys, cl.rev, log, func(st *clusterstate.Stored) {
			if err := a.UseInventory(st.Inventory, fmt.Sprintf("pushed to etcd at revision %d from %s", st.Rev, st.Source)); err == nil {
				log.Info("inventory serving", "revision", st.Rev, "source", st.Source, "hosts", len(st.Inventory.Hosts), "profiles", len(st.Inventory.Profiles))
			}
		})
		return nil
	})
	if cl.inv != nil {
		log.Info("inventory serving", "revision", cl.inv.Rev, "source", cl.inv.Source, "hosts", len(cl.inv.Inventory.Hosts), "profiles", len(cl.inv.Inventory.Profiles), "states", cl.states.Path())
	} else {
		log.Warn("inventory: none stored in etcd yet; serving none until one is pushed (pxed inventory push FILE)", "key", cl.keys.Inventory())
	}
}

func (cl *cluster) close() { cl.cli.Close() }

// clusterView reads a cluster's inventory and host states from its etcd,
// for a command that runs without a server (pxed host, pxed explain).
// done closes the connection.
func clusterView(ctx context.Context, c *config.Config) (inv *inventory.Inventory, states *inventory.States, done func(), err error) {
	if c.Inventory != "" {
		return nil, nil, nil, fmt.Errorf("inventory %s: a cluster's hosts are those of the inventory stored in etcd; drop --inventory", c.Inventory)
	}
	cli, err := etcdstore.Dial(ctx, c)
	if err != nil {
		return nil, nil, nil, err
	}
	keys := etcdstore.Keys{Prefix: c.Store.Prefix}
	st, _, err := clusterstate.LoadInventory(ctx, cli, keys)
	if err == nil && st == nil {
		err = fmt.Errorf("no inventory stored in etcd (%s): push one with pxed inventory push", keys.Inventory())
	}
	var hs *clusterstate.HostStates
	if err == nil {
		hs, err = clusterstate.OpenStates(ctx, cli, keys, nil)
	}
	if err != nil {
		cli.Close()
		return nil, nil, nil, err
	}
	return st.Inventory, inventory.NewStates(hs, nil), func() { cli.Close() }, nil
}

// clusterHostViews does the host command on a cluster's etcd directly:
// the inventory stored there and the host states there, which every
// server of the cluster watches.
func clusterHostViews(ctx context.Context, c *config.Config, state inventory.State, names []string) ([]api.HostView, error) {
	inv, states, done, err := clusterView(ctx, c)
	if err != nil {
		return nil, err
	}
	defer done()
	if state == "" {
		return app.HostViews(inv, states), nil
	}
	v, err := app.SetHostState(inv, states, names[0], string(state), "pxed host")
	if err != nil {
		return nil, err
	}
	return []api.HostView{v}, nil
}
