package etcdstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"pxed/internal/lease"
	"pxed/internal/lease/record"
)

// MaxBatch is the most leases one transaction writes: each lease takes a
// comparison and a write, a claim also its block's comparison, and etcd
// refuses a transaction of more than 128 operations of a kind by default
// (--max-txn-ops).
const MaxBatch = 64

// Linger is the lease.Options.Linger to run the store with: under load, a
// server commits its bindings at most 40 times a second, in transactions
// up to MaxBatch leases, rather than one transaction per etcd round trip
// of a few. Each transaction costs every member a consensus round, a disk
// sync and a watch notification, whatever its size: at 2,000 bindings a
// second, 25 ms halved the CPU time the etcd members spend per lease
// (bench/cluster). An ACK waits at most this much longer; a client
// retransmits after seconds.
const Linger = 25 * time.Millisecond

// Defaults of LeasesOptions.
const (
	// DefaultTTL is the life of the etcd lease a server's blocks are held
	// under: a dead server's blocks return to the others this long after
	// its last keep-alive.
	DefaultTTL = 10 * time.Second
	// RequestTimeout bounds every etcd request of the lease store.
	RequestTimeout = 5 * time.Second
	// attemptTimeout bounds one try of a batch's transaction: one caught
	// by the death of the leader hangs until then and is tried again
	// (putAttempts in all), on whichever member answers.
	attemptTimeout = 700 * time.Millisecond
	putAttempts    = 4
	// maxRecord bounds a stored lease record read back.
	maxRecord = 4 << 10
)

// ErrNoQuorum: the store cannot prove it holds its blocks (its etcd lease
// is lost or keep-alives go unanswered): nothing is written until it can.
var ErrNoQuorum = errors.New("etcd: no quorum reachable (writes stop until it is back)")

// LeasesOptions configure a Leases store.
type LeasesOptions struct {
	// ID names this server in block and server keys (logs, `pxed
	// leases`); unique in the cluster.
	ID string
	// TTL is the etcd lease the blocks are held under (default
	// DefaultTTL; at least 2 s).
	TTL time.Duration
	// Logger gets the store's state changes (default: none).
	Logger *slog.Logger
	// OnHealth hears when the store loses or regains its quorum (metrics).
	OnHealth func(up bool)
	// OnBlocks hears the number of blocks this server owns when it
	// changes (metrics).
	OnBlocks func(n int)
	// Subnets are the subnets this server serves directly (on its
	// interfaces): the servers announcing one subnet split its clients
	// (Balance).
	Subnets []netip.Prefix
}

// Leases is a lease.Store on etcd, shared by several pxed, plus the owner
// of this server's blocks of addresses (see the package doc). Use it with
// lease.Options{Blocks: true, MaxBatch: MaxBatch, Linger: Linger}, then
// Start it with the Allocator.
type Leases struct {
	cli  *clientv3.Client
	keys Keys
	opt  LeasesOptions
	log  *slog.Logger

	loadRev int64 // revision of Load's snapshot: the watch starts after it

	session atomic.Int64 // this server's etcd lease while held; 0: none
	up      atomic.Bool  // the session is alive and answered recently

	mu      sync.Mutex
	alloc   *lease.Allocator
	taken   map[netip.Addr]int64 // block -> etcd lease of its owner
	servers int                  // servers announced in the cluster
	counted time.Time            // when servers was read (claimer's goroutine only)
	peers   atomic.Pointer[peers]
	since   time.Time // when the store was made (announced)

	relayMu sync.Mutex                              // serialises additions to relays
	relays  atomic.Pointer[map[netip.Addr]struct{}] // relay agents heard (Balance); replaced, never changed
	relayed chan struct{}                           // a relay was heard: announce again
	cancel  context.CancelFunc
	done    chan struct{}
	kick    chan struct{}
}

var _ lease.Store = (*Leases)(nil)

// NewLeases returns the lease store of the cluster under keys.
func NewLeases(cli *clientv3.Client, keys Keys, o LeasesOptions) *Leases {
	if o.TTL < 2*time.Second {
		o.TTL = DefaultTTL
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Leases{cli: cli, keys: keys, opt: o, log: o.Logger, taken: map[netip.Addr]int64{}, kick: make(chan struct{}, 1),
		since: time.Now().UTC(), relayed: make(chan struct{}, 1)}
	s.relays.Store(&map[netip.Addr]struct{}{})
	return s
}

// Load implements lease.Store: every record under leases/, read in pages
// at one revision. A record that does not decode (written by hand, or by a
// newer pxed) is logged and skipped: a write of that address by this server
// then fails its revision check, so nothing is overwritten blindly.
func (s *Leases) Load(ctx context.Context) ([]lease.Lease, error) {
	ls, rev, err := s.readAll(ctx)
	if err != nil {
		return nil, err
	}
	s.loadRev = rev
	return ls, nil
}

func (s *Leases) readAll(ctx context.Context) ([]lease.Lease, int64, error) {
	var out []lease.Lease
	from, end := s.keys.Leases(), clientv3.GetPrefixRangeEnd(s.keys.Leases())
	var rev int64
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithLimit(1000)}
		if rev != 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		cctx, cancel := context.WithTimeout(ctx, RequestTimeout)
		resp, err := s.cli.Get(cctx, from, opts...)
		cancel()
		if err != nil {
			return nil, 0, fmt.Errorf("etcd: reading leases: %w", err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		for _, kv := range resp.Kvs {
			if l, ok := s.decode(kv); ok {
				out = append(out, l)
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return out, rev, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// decode turns a stored key-value into a lease; false (logged) if it is
// not one.
func (s *Leases) decode(kv *mvccpb.KeyValue) (lease.Lease, bool) {
	ip, ok := addrAfter(kv.Key, s.keys.Leases())
	if !ok || len(kv.Value) > maxRecord {
		s.log.Error("etcd: skipping a key under leases/ that is not a lease record", "key", printable(kv.Key), "bytes", len(kv.Value))
		return lease.Lease{}, false
	}
	b := ip.As4()
	l, err := record.Decode(b[:], kv.Value)
	if err != nil {
		s.log.Error("etcd: skipping an undecodable lease record", "ip", ip, "error", err)
		return lease.Lease{}, false
	}
	l.Rev = uint64(kv.ModRevision)
	return l, true
}

// Put implements lease.Store: one transaction, which writes every lease if
// each record is still at the revision the caller saw (absent for Rev 0)
// and, for a Claim, its block is still held under this server's etcd
// lease; otherwise nothing, and a *lease.ConflictError names the leases
// that failed their comparison. It returns once a quorum has the batch.
func (s *Leases) Put(ctx context.Context, batch []lease.Lease) ([]lease.Lease, error) {
	if !s.up.Load() {
		return nil, ErrNoQuorum
	}
	if len(batch) > MaxBatch {
		return nil, fmt.Errorf("etcd: a batch of %d leases, at most %d", len(batch), MaxBatch)
	}
	sess := clientv3.LeaseID(s.session.Load())
	var claims []netip.Addr
	cmps := make([]clientv3.Cmp, 0, 2*len(batch))
	puts := make([]clientv3.Op, 0, len(batch))
	gets := make([]clientv3.Op, 0, 2*len(batch))
	vals := make([]string, 0, len(batch))
	for _, l := range batch {
		if !l.IP.Is4() || !l.State.Persistent() {
			return nil, fmt.Errorf("etcd: cannot store %v in state %v", l.IP, l.State)
		}
		k := s.keys.Lease(l.IP)
		if l.Rev == 0 {
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(k), "=", 0))
		} else {
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", int64(l.Rev)))
		}
		v := l
		v.Rev, v.Claim = 0, false
		val := string(record.Append(nil, v))
		vals = append(vals, val)
		puts = append(puts, clientv3.OpPut(k, val))
		gets = append(gets, clientv3.OpGet(k))
		if l.Claim {
			if b := blockOf(l.IP); !slices.Contains(claims, b) {
				claims = append(claims, b)
			}
		}
	}
	for _, b := range claims {
		k := s.keys.Block(b)
		cmps = append(cmps, clientv3.Compare(clientv3.LeaseValue(k), "=", sess))
		gets = append(gets, clientv3.OpGet(k, clientv3.WithKeysOnly()))
	}
	var resp *clientv3.TxnResponse
	var err error
	for attempt := 1; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, attemptTimeout)
		resp, err = s.cli.Txn(cctx).If(cmps...).Then(puts...).Else(gets...).Commit()
		cancel()
		if err == nil || attempt == putAttempts || ctx.Err() != nil || !s.up.Load() {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("etcd: writing %d leases: %w", len(batch), err)
	}
	out := make([]lease.Lease, len(batch))
	if !resp.Succeeded {
		// A try that timed out may have been written after all: then
		// every record holds this batch's bytes, and that is success.
		if !s.already(resp, vals, out) {
			return nil, s.conflicts(batch, claims, sess, resp)
		}
		for i, l := range batch {
			l.Rev = out[i].Rev
			out[i] = l
		}
		return out, nil
	}
	for i, l := range batch {
		l.Rev = uint64(resp.Header.Revision)
		out[i] = l
	}
	return out, nil
}

// already reports whether a failed transaction's reads show every record
// of the batch holding exactly the value the batch writes (an earlier try
// of it was written); it sets each out[i].Rev.
func (s *Leases) already(resp *clientv3.TxnResponse, vals []string, out []lease.Lease) bool {
	if len(resp.Responses) < len(vals) {
		return false
	}
	for i, v := range vals {
		kvs := resp.Responses[i].GetResponseRange().GetKvs()
		if len(kvs) == 0 || string(kvs[0].Value) != v {
			return false
		}
		out[i].Rev = uint64(kvs[0].ModRevision)
	}
	return true
}

// conflicts reads a failed transaction's Else reads: which leases were
// not at their revision, and which claims' blocks are no longer this
// server's.
func (s *Leases) conflicts(batch []lease.Lease, claims []netip.Addr, sess clientv3.LeaseID, resp *clientv3.TxnResponse) error {
	rs := resp.Responses
	if len(rs) != len(batch)+len(claims) {
		return fmt.Errorf("etcd: a failed transaction returned %d reads, want %d", len(rs), len(batch)+len(claims))
	}
	lost := map[netip.Addr]bool{}
	for i, b := range claims {
		kvs := rs[len(batch)+i].GetResponseRange().GetKvs()
		if len(kvs) == 0 || clientv3.LeaseID(kvs[0].Lease) != sess {
			lost[b] = true
		}
	}
	var ips []netip.Addr
	for i, l := range batch {
		var have int64
		if kvs := rs[i].GetResponseRange().GetKvs(); len(kvs) > 0 {
			have = kvs[0].ModRevision
		}
		if have != int64(l.Rev) || l.Claim && lost[blockOf(l.IP)] {
			ips = append(ips, l.IP)
		}
	}
	if len(lost) > 0 {
		s.log.Warn("etcd: blocks lost to the cluster; their new bindings are refused", "blocks", len(lost))
		s.wake()
	}
	if len(ips) == 0 {
		return errors.New("etcd: transaction failed with every comparison true")
	}
	return &lease.ConflictError{IPs: ips}
}

// blockOf returns the first address of ip's block.
func blockOf(ip netip.Addr) netip.Addr {
	b := ip.As4()
	b[3] &^= lease.BlockSize - 1
	return netip.AddrFrom4(b)
}

// Close implements lease.Store: it stops the store's goroutines and
// revokes its etcd lease, so that its blocks return to the cluster at
// once. It does not close the client.
func (s *Leases) Close() error {
	s.mu.Lock()
	cancel, done := s.cancel, s.done
	s.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	ctx, c := context.WithTimeout(context.Background(), 2*time.Second)
	defer c()
	if id := clientv3.LeaseID(s.session.Swap(0)); id != 0 {
		if _, err := s.cli.Revoke(ctx, id); err != nil {
			s.log.Warn("etcd: revoking this server's lease failed; its blocks return after the TTL", "ttl", s.opt.TTL, "error", err)
		}
	}
	// Its announcement goes now rather than after announceTTL.
	s.cli.Delete(ctx, s.keys.Server(s.opt.ID))
	return nil
}

func printable(b []byte) string {
	if len(b) > 80 {
		b = b[:80]
	}
	return fmt.Sprintf("%q", b)
}
