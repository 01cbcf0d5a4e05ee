package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"time"

	"pxed/internal/app"
	"pxed/internal/clusterstate"
	"pxed/internal/config"
	"pxed/internal/etcdstore"
	"pxed/internal/inventory"
	"pxed/internal/lease/bolt"
)

const storeSynopsis = `usage: pxed store migrate --from bolt:PATH --to etcd://HOST:PORT[,...] [flags]

Copies a single server's leases (the bolt file PATH) and host states (the
hosts.json beside it) into a cluster's etcd, for the first server of a
cluster to start from what the single server knew. Each record is written
only if the cluster has none for that address or host; one already equal is
skipped, a different one is reported and left as it is. Running it again is
harmless. Stop the single server first: the bolt file is opened read-only
and waits for its lock.
`

const storeExamples = `  pxed store migrate --from bolt:/var/lib/pxed/leases.db --to etcd://192.0.2.5:2379,192.0.2.6:2379,192.0.2.7:2379
`

// storeFlags defines the flags of pxed store migrate.
type storeFlags struct {
	from, to, prefix, ca, cert, key string
}

func (s *storeFlags) define(fs *flag.FlagSet) {
	fs.StringVar(&s.from, "from", "bolt:/var/lib/pxed/leases.db", "the single server's lease file, `bolt:PATH` (host states: hosts.json beside it)")
	fs.StringVar(&s.to, "to", "", "the cluster's etcd, `etcd://HOST:PORT[,HOST:PORT...]`")
	fs.StringVar(&s.prefix, "store-prefix", config.DefaultStorePrefix, "etcd key `prefix` of the cluster")
	fs.StringVar(&s.ca, "etcd-ca", "", "PEM `file` of the CA of the etcd members' certificates")
	fs.StringVar(&s.cert, "etcd-cert", "", "PEM `file` of the client certificate for etcd")
	fs.StringVar(&s.key, "etcd-key", "", "PEM `file` of the key of --etcd-cert")
}

func cmdStore(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("store", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var sf storeFlags
	sf.define(fs)
	setUsage(fs, stderr, storeSynopsis, storeExamples)
	pos, code, ok := parseCommand(fs, args)
	if !ok {
		return code
	}
	if len(pos) != 1 || pos[0] != "migrate" {
		fs.Usage()
		return 2
	}
	from, err := config.ParseStoreURL(sf.from, "")
	if err != nil || from.Kind != config.StoreBolt {
		fmt.Fprintf(stderr, "pxed store migrate: --from %q: want bolt:PATH\n", sf.from)
		return 2
	}
	c := config.Default()
	c.Store = config.Store{URL: sf.to, Prefix: sf.prefix, CA: sf.ca, Cert: sf.cert, Key: sf.key}
	if err := c.Validate(); err != nil || !c.Shared() {
		fmt.Fprintf(stderr, "pxed store migrate: --to %q: want etcd://HOST:PORT[,...] (%v)\n", sf.to, err)
		return 2
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	if err := migrate(ctx, c, from.Path, stdout); err != nil {
		fmt.Fprintf(stderr, "pxed store migrate: %v\n", err)
		return 1
	}
	return 0
}

// migrate copies the bolt file's leases and the host states beside it to
// c's etcd, each with "must not exist".
func migrate(ctx context.Context, c *config.Config, boltPath string, out io.Writer) error {
	b, err := bolt.OpenReadOnly(boltPath, bolt.LockTimeout(5*time.Second))
	if err != nil {
		return err
	}
	leases, err := b.Load(ctx)
	b.Close()
	if err != nil {
		return err
	}
	sf, err := inventory.OpenStateFile(filepath.Join(filepath.Dir(boltPath), app.HostStateName))
	if err != nil {
		return err
	}
	cli, err := etcdstore.Dial(ctx, c)
	if err != nil {
		return err
	}
	defer cli.Close()
	keys := etcdstore.Keys{Prefix: c.Store.Prefix}
	ls, err := etcdstore.CopyLeases(ctx, cli, keys, leases)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "leases: %d written, %d already there, %d differ (kept as the cluster has them)\n", ls.Written, ls.Same, len(ls.Differ))
	for _, ip := range ls.Differ[:min(len(ls.Differ), 10)] {
		fmt.Fprintf(out, "  differs: %v\n", ip)
	}
	hosts, err := clusterstate.OpenStates(ctx, cli, keys, nil)
	if err != nil {
		return err
	}
	var written, same int
	var differ []string
	for chunk := range slices.Chunk(sf.Names(), inventory.MaxUpdate) {
		var w, sm int
		var d []string
		err := hosts.Update(chunk, func(cur map[string]inventory.Record) (map[string]inventory.Record, error) {
			add := map[string]inventory.Record{}
			w, sm, d = 0, 0, nil // f runs again if another server wrote meanwhile
			for _, n := range chunk {
				want, _ := sf.Get(n)
				have, ok := cur[n]
				switch {
				case !ok:
					add[n] = want
					w++
				case sameRecord(have, want):
					sm++
				default:
					d = append(d, n)
				}
			}
			return add, nil
		})
		if err != nil {
			return err
		}
		written, same, differ = written+w, same+sm, append(differ, d...)
	}
	fmt.Fprintf(out, "host states: %d written, %d already there, %d differ (kept as the cluster has them)\n", written, same, len(differ))
	for _, n := range differ[:min(len(differ), 10)] {
		fmt.Fprintf(out, "  differs: %s\n", n)
	}
	return nil
}

// sameRecord reports whether two host state records say the same.
func sameRecord(a, b inventory.Record) bool {
	return a.State == b.State && a.Declared == b.Declared && a.Changed.Equal(b.Changed) && a.By == b.By && a.Token == b.Token
}
