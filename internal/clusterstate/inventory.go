package clusterstate

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"pxed/internal/etcdstore"
	"pxed/internal/inventory"
)

// MaxInventory bounds the stored inventory, its kickstart templates
// included: etcd refuses requests over 1.5 MiB unless told otherwise.
const MaxInventory = 1 << 20

// bundleVersion guards the value's format.
const bundleVersion = 1

// bundle is the value of the inventory key: the inventory YAML as pushed
// and the kickstart templates its profiles name, by the name the profile
// gives, read when it was pushed. A server needs nothing but this value.
type bundle struct {
	Version   int               `json:"version"`
	Source    string            `json:"source"` // the file pushed, as named
	Inventory string            `json:"inventory"`
	Templates map[string]string `json:"templates,omitempty"`
}

// Stored is an inventory read from etcd and checked.
type Stored struct {
	Inventory *inventory.Inventory
	// Rev is the revision it was stored at (the key's ModRevision).
	Rev int64
	// Source is the file it was pushed from, as the pusher named it.
	Source string
}

// Bundle reads the inventory file name and the kickstart templates its
// profiles name, checks them as inventory.Load does (with its errors),
// and returns the value Push stores and the inventory as parsed.
func Bundle(name string) ([]byte, *inventory.Inventory, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxInventory+1))
	if err != nil {
		return nil, nil, err
	}
	if len(data) > MaxInventory {
		return nil, nil, fmt.Errorf("%s: larger than %d bytes", name, MaxInventory)
	}
	b := bundle{Version: bundleVersion, Source: name, Inventory: string(data), Templates: map[string]string{}}
	disk := inventory.DiskTemplates(filepath.Dir(name))
	inv, err := inventory.ParseWith(name, data, func(ks string) ([]byte, error) {
		t, err := disk(ks)
		if err == nil {
			b.Templates[ks] = string(t)
		}
		return t, err
	})
	if err != nil {
		return nil, nil, err
	}
	v, err := json.Marshal(b)
	if err != nil {
		return nil, nil, err
	}
	if len(v) > MaxInventory {
		return nil, nil, fmt.Errorf("%s with its kickstart templates is %d bytes, more than the %d an inventory in etcd may hold", name, len(v), MaxInventory)
	}
	return v, inv, nil
}

// parseStored checks the value of the inventory key stored at rev. Its
// positions name the key and the revision (/pxed/inventory@42:7:3).
func parseStored(keys etcdstore.Keys, v []byte, rev int64) (*Stored, error) {
	if len(v) > MaxInventory {
		return nil, fmt.Errorf("%d bytes, at most %d", len(v), MaxInventory)
	}
	var b bundle
	if err := json.Unmarshal(v, &b); err != nil {
		return nil, fmt.Errorf("not an inventory pushed by pxed inventory push: %w", err)
	}
	if b.Version != bundleVersion {
		return nil, fmt.Errorf("format version %d, this pxed reads %d", b.Version, bundleVersion)
	}
	name := fmt.Sprintf("%s@%d", keys.Inventory(), rev)
	inv, err := inventory.ParseWith(name, []byte(b.Inventory), func(ks string) ([]byte, error) {
		t, ok := b.Templates[ks]
		if !ok {
			return nil, fmt.Errorf("%s was not stored with the inventory", ks)
		}
		return []byte(t), nil
	})
	if err != nil {
		return nil, err
	}
	return &Stored{Inventory: inv, Rev: rev, Source: b.Source}, nil
}

// Push stores v (from Bundle) as the cluster's inventory and returns the
// revision it was stored at. Every pxed of the cluster serves it within
// moments.
func Push(ctx context.Context, cli *clientv3.Client, keys etcdstore.Keys, v []byte) (int64, error) {
	ctx, cancel := context.WithTimeout(ctx, OpTimeout)
	defer cancel()
	resp, err := cli.Put(ctx, keys.Inventory(), string(v))
	if err != nil {
		return 0, fmt.Errorf("storing the inventory: %w", err)
	}
	return resp.Header.Revision, nil
}

// LoadInventory reads the cluster's inventory: nil when none was pushed,
// an error when the stored one is bad. rev is the store revision it was
// read at, for WatchInventory.
func LoadInventory(ctx context.Context, cli *clientv3.Client, keys etcdstore.Keys) (st *Stored, rev int64, err error) {
	ctx, cancel := context.WithTimeout(ctx, OpTimeout)
	defer cancel()
	resp, err := cli.Get(ctx, keys.Inventory())
	if err != nil {
		return nil, 0, fmt.Errorf("inventory: %w", err)
	}
	rev = resp.Header.Revision
	if len(resp.Kvs) == 0 {
		return nil, rev, nil
	}
	kv := resp.Kvs[0]
	if st, err = parseStored(keys, kv.Value, kv.ModRevision); err != nil {
		return nil, rev, fmt.Errorf("the inventory stored in etcd (%s, revision %d) is bad; push a good one with pxed inventory push: %w", keys.Inventory(), kv.ModRevision, err)
	}
	return st, rev, nil
}

// WatchInventory calls use with each inventory stored after revision rev,
// in order, until ctx ends. A bad value is logged and skipped: the server
// keeps what it serves. When the watch breaks (etcd compacted the revision
// it needed), the key is read again and a newer value is used.
func WatchInventory(ctx context.Context, cli *clientv3.Client, keys etcdstore.Keys, rev int64, log *slog.Logger, use func(*Stored)) {
	last := int64(0) // the last value's ModRevision handed to use
	take := func(v []byte, mod int64) {
		if mod <= last {
			return
		}
		last = mod
		st, err := parseStored(keys, v, mod)
		if err != nil {
			log.Error("inventory: refusing the one stored in etcd; still serving the previous one", "key", keys.Inventory(), "revision", mod, "error", err)
			return
		}
		use(st)
	}
	for ctx.Err() == nil {
		began := time.Now()
		err := watch(ctx, cli, keys.Inventory(), rev+1, func(wr clientv3.WatchResponse) {
			for _, ev := range wr.Events {
				if ev.Type == clientv3.EventTypeDelete {
					log.Warn("inventory: deleted from etcd; still serving the previous one", "key", keys.Inventory(), "revision", ev.Kv.ModRevision)
					continue
				}
				take(ev.Kv.Value, ev.Kv.ModRevision)
			}
			rev = max(rev, wr.Header.Revision)
		})
		if ctx.Err() != nil {
			return
		}
		log.Warn("inventory: etcd watch broken; reading the key again", "error", err)
		if time.Since(began) < time.Second {
			sleep(ctx, time.Second) // not in a loop, whatever breaks it
		}
		for ctx.Err() == nil {
			gctx, cancel := context.WithTimeout(ctx, OpTimeout)
			resp, err := cli.Get(gctx, keys.Inventory())
			cancel()
			if err == nil {
				rev = resp.Header.Revision
				if len(resp.Kvs) == 1 {
					take(resp.Kvs[0].Value, resp.Kvs[0].ModRevision)
				}
				break
			}
			log.Error("inventory: cannot read it from etcd; still serving the previous one", "error", err)
			sleep(ctx, time.Second)
		}
	}
}

// watch calls on with each response of a watch of key from revision from
// on, until the watch ends (ctx, or an error: compaction, cancellation).
func watch(ctx context.Context, cli *clientv3.Client, key string, from int64, on func(clientv3.WatchResponse), opts ...clientv3.OpOption) error {
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	for wr := range cli.Watch(wctx, key, append(opts, clientv3.WithRev(from))...) {
		if err := wr.Err(); err != nil {
			return err
		}
		on(wr)
	}
	return errors.New("watch closed")
}
