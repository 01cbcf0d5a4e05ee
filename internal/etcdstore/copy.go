package etcdstore

import (
	"context"
	"fmt"
	"net/netip"
	"slices"

	clientv3 "go.etcd.io/etcd/client/v3"

	"pxed/internal/lease"
	"pxed/internal/lease/record"
)

// CopyResult is what CopyLeases did.
type CopyResult struct {
	Written, Same int
	// Differ are the addresses the cluster already holds another record
	// of: left as they are.
	Differ []netip.Addr
}

// CopyLeases writes leases (from a single server's store) into the cluster
// under keys, each only if the cluster has no record of its address: one
// holding the same bytes counts as Same, another as Differ. Running it
// again changes nothing.
func CopyLeases(ctx context.Context, cli *clientv3.Client, keys Keys, leases []lease.Lease) (CopyResult, error) {
	var res CopyResult
	for chunk := range slices.Chunk(leases, MaxBatch) {
		todo := chunk
		for len(todo) > 0 {
			cmps := make([]clientv3.Cmp, len(todo))
			puts := make([]clientv3.Op, len(todo))
			gets := make([]clientv3.Op, len(todo))
			vals := make([]string, len(todo))
			for i, l := range todo {
				if !l.IP.Is4() || !l.State.Persistent() {
					return res, fmt.Errorf("lease %v in state %v cannot be stored", l.IP, l.State)
				}
				l.Rev, l.Claim = 0, false
				k := keys.Lease(l.IP)
				vals[i] = string(record.Append(nil, l))
				cmps[i] = clientv3.Compare(clientv3.CreateRevision(k), "=", 0)
				puts[i] = clientv3.OpPut(k, vals[i])
				gets[i] = clientv3.OpGet(k)
			}
			cctx, cancel := context.WithTimeout(ctx, RequestTimeout)
			resp, err := cli.Txn(cctx).If(cmps...).Then(puts...).Else(gets...).Commit()
			cancel()
			if err != nil {
				return res, fmt.Errorf("etcd: copying leases: %w", err)
			}
			if resp.Succeeded {
				res.Written += len(todo)
				break
			}
			var left []lease.Lease
			for i, r := range resp.Responses {
				kvs := r.GetResponseRange().GetKvs()
				switch {
				case len(kvs) == 0:
					left = append(left, todo[i])
				case string(kvs[0].Value) == vals[i]:
					res.Same++
				default:
					res.Differ = append(res.Differ, todo[i].IP)
				}
			}
			todo = left
		}
	}
	return res, nil
}
