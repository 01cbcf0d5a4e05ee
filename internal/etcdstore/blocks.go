package etcdstore

import (
	"context"
	"hash/fnv"
	"net/netip"
	"slices"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"pxed/internal/lease"
)

// Start attaches the allocator built on s (nil: the store alone, for
// tools and tests) and starts the store's work in
// the background until Close: the session (an etcd lease kept alive, under
// which this server's blocks and its server key live), the watch of
// leases/ (records other servers write reach the allocator), the watch of
// blocks/ (who owns what), and the claimer, which keeps this server's
// share of free addresses between a low and a high mark.
func (s *Leases) Start(a *lease.Allocator) {
	ctx, cancel := context.WithCancel(context.Background())
	s.mu.Lock()
	s.alloc, s.cancel, s.done = a, cancel, make(chan struct{})
	s.mu.Unlock()
	go func() {
		defer close(s.done)
		watched := make(chan struct{})
		go func() { defer close(watched); s.watchLeases(ctx) }()
		blocks := make(chan struct{})
		go func() { defer close(blocks); s.watchBlocks(ctx) }()
		s.sessionLoop(ctx)
		<-watched
		<-blocks
	}()
}

// wake asks the claimer to look at the blocks now.
func (s *Leases) wake() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// Short is the allocator's Options.OnShort: an offer found nothing free.
func (s *Leases) Short() { s.wake() }

// Up reports whether the store holds its etcd lease and hears from the
// quorum: only then are leases written.
func (s *Leases) Up() bool { return s.up.Load() }

func (s *Leases) setUp(up bool) {
	if s.up.Swap(up) == up {
		return
	}
	if up {
		s.log.Info("etcd: quorum reachable; leases are written and blocks claimed again")
	} else {
		s.log.Error("etcd: quorum unreachable; no lease is written (no new binding, no renewal) until it is back; TFTP and HTTP go on")
		s.disownAll()
	}
	if s.opt.OnHealth != nil {
		s.opt.OnHealth(up)
	}
}

// sessionLoop holds an etcd lease for this server, gets a new one when it
// is lost, and runs the claimer while it is held.
func (s *Leases) sessionLoop(ctx context.Context) {
	backoff := 250 * time.Millisecond
	for ctx.Err() == nil {
		if !s.holdSession(ctx) {
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 2*time.Second)
			continue
		}
		backoff = 250 * time.Millisecond
	}
	// Stopping: the blocks go with the etcd lease Close revokes; this is
	// no loss of the quorum.
	s.up.Store(false)
	s.disownAll()
}

// holdSession grants an etcd lease, announces the server under it and
// keeps it alive, claiming blocks, until it is lost or ctx ends. It
// returns false if the lease could not be granted.
func (s *Leases) holdSession(ctx context.Context) bool {
	gctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	g, err := s.cli.Grant(gctx, int64(s.opt.TTL/time.Second))
	cancel()
	if err != nil {
		s.setUp(false)
		return false
	}
	kctx, stop := context.WithCancel(ctx)
	defer stop()
	ka, err := s.cli.KeepAlive(kctx, g.ID)
	if err != nil {
		return false
	}
	s.session.Store(int64(g.ID))
	defer s.session.CompareAndSwap(int64(g.ID), 0)
	s.setUp(true)
	// The claimer and the announcement make etcd requests that may wait
	// for their timeouts; they run beside this loop, which only watches
	// the keep-alives, so that a lost quorum is noticed on time.
	balance := make(chan struct{}, 1)
	var workers sync.WaitGroup
	workers.Add(2)
	go func() { defer workers.Done(); s.keepAnnounced(kctx) }()
	go func() {
		defer workers.Done()
		for {
			select {
			case <-kctx.Done():
				return
			case <-balance:
				s.reconcile(kctx, g.ID)
			}
		}
	}()
	defer workers.Wait()
	defer stop()
	rebalance := func() {
		select {
		case balance <- struct{}{}:
		default:
		}
	}
	rebalance()
	last := time.Now()
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	var balanced time.Time
	for {
		kicked := false
		select {
		case <-ctx.Done():
			return true
		case _, ok := <-ka:
			if !ok {
				s.log.Error("etcd: this server's lease expired; its blocks went back to the cluster", "ttl", s.opt.TTL)
				s.setUp(false)
				return true
			}
			last = time.Now()
		case <-tick.C:
		case <-s.kick:
			kicked = true
		}
		// Keep-alives go every TTL/3: none answered for 2/3 of the TTL
		// (two missed, not one slow) means the quorum is out of reach,
		// and the blocks may be lost before this server hears of it.
		// (Safety does not rest on this: a claim's transaction checks
		// the block's lease.)
		wasUp := s.up.Load()
		s.setUp(time.Since(last) < 2*s.opt.TTL/3)
		// The blocks are looked at when asked (an offer found nothing
		// free, a block changed hands), when the quorum is back, and
		// once a second.
		if kicked && time.Since(balanced) >= minRebalance || !wasUp || time.Since(balanced) >= time.Second {
			rebalance()
			balanced = time.Now()
		}
	}
}

// disownAll gives every block up in memory (not in etcd: the lease's
// expiry does that).
func (s *Leases) disownAll() {
	s.mu.Lock()
	a := s.alloc
	s.mu.Unlock()
	if a == nil {
		return
	}
	for _, b := range a.OwnedBlocks() {
		a.Disown(b.First)
	}
	s.noteBlocks(0)
}

func (s *Leases) noteBlocks(n int) {
	if s.opt.OnBlocks != nil {
		s.opt.OnBlocks(n)
	}
}

// minRebalance spaces the claimer's looks at the blocks when offers keep
// asking (a pool nearly all owned, or exhausted).
const minRebalance = 50 * time.Millisecond

// ShortBelow is the allocator's Options.ShortBelow for this store: an
// offer leaving fewer never-used owned addresses in its range wakes the
// claimer, which claims well before the blocks run out.
const ShortBelow = 1024

// marks returns, in free addresses of a pool's owned blocks, when to claim
// (below low), up to where (target), and when to give blocks back (above
// high): a fair share of the pool (total addresses) between the servers
// announced, within fixed bounds. A block is claimed in one transaction
// with up to claimBatch others, so even the largest target is a few
// round trips away.
func (s *Leases) marks(total int) (low, target, high int) {
	n := max(1, s.servers)
	share := total / n
	low = min(4096, max(32, share/4))
	target = min(8192, max(lease.BlockSize, share/2))
	high = min(16384, max(2*target, share))
	return low, target, high
}

// claimBatch is the most blocks one claim transaction takes (a
// comparison and a write each, within etcd's 128).
const claimBatch = 32

// reconcile makes the allocator's owned blocks those etcd says this
// session holds, then claims or gives back blocks to stay between the
// marks.
func (s *Leases) reconcile(ctx context.Context, sess clientv3.LeaseID) {
	s.mu.Lock()
	a := s.alloc
	var mine []netip.Addr
	for b, l := range s.taken {
		if clientv3.LeaseID(l) == sess {
			mine = append(mine, b)
		}
	}
	s.mu.Unlock()
	if !s.up.Load() {
		return
	}
	s.refreshPeers(ctx)
	if a == nil {
		return
	}
	// OwnedBlocks walks every owned address under the allocator's lock:
	// once here, and again only after blocks changed hands.
	owned := a.OwnedBlocks()
	have := map[netip.Addr]bool{}
	for _, b := range owned {
		have[b.First] = true
	}
	changed := false
	for _, b := range mine {
		if !have[b] {
			a.Own(b)
			changed = true
		}
		delete(have, b)
	}
	for b := range have {
		a.Disown(b)
		changed = true
	}
	if changed {
		owned = a.OwnedBlocks()
	}
	for i, pool := range a.PoolBlocks() {
		var ok bool
		if owned, ok = s.balance(ctx, sess, a, i, pool, owned); !ok {
			return
		}
	}
	s.noteBlocks(len(owned))
}

// balance claims blocks of pool i (whose blocks are pool) while its free
// owned addresses are below the low mark, up to the target; above the
// high mark it gives back the blocks with the most free addresses. owned
// is every owned block; it returns them as they are afterwards, and false
// when a claim went unanswered or the quorum was lost meanwhile (the other
// pools wait for the next look).
func (s *Leases) balance(ctx context.Context, sess clientv3.LeaseID, a *lease.Allocator, i int, pool []netip.Addr, owned []lease.BlockFree) ([]lease.BlockFree, bool) {
	poolFree := func() ([]lease.BlockFree, int) {
		var mine []lease.BlockFree
		free := 0
		for _, b := range owned {
			if b.Pool == i {
				mine = append(mine, b)
				free += b.Free
			}
		}
		return mine, free
	}
	mine, free := poolFree()
	low, target, high := s.marks(len(pool) * lease.BlockSize)
	switch {
	case free < low:
		cands := s.candidates(pool)
		for len(cands) > 0 && free < target && ctx.Err() == nil {
			n := min(len(cands), claimBatch, (target-free+lease.BlockSize-1)/lease.BlockSize)
			got, ok := s.claim(ctx, sess, cands[:n])
			if !ok || !s.up.Load() {
				return owned, false // the blocks go with the etcd lease
			}
			for _, b := range got {
				a.Own(b)
			}
			cands = cands[n:]
			if len(got) > 0 {
				owned = a.OwnedBlocks()
				_, free = poolFree()
			}
		}
	case free > high:
		slices.SortFunc(mine, func(x, y lease.BlockFree) int { return y.Free - x.Free })
		gone := map[netip.Addr]bool{}
		for _, b := range mine {
			if free-b.Free < target {
				break
			}
			a.Disown(b.First)
			gone[b.First] = true
			if s.release(ctx, sess, b.First) {
				free -= b.Free
			}
		}
		owned = slices.DeleteFunc(owned, func(b lease.BlockFree) bool { return gone[b.First] })
	}
	return owned, true
}

// candidates returns the pool's unclaimed blocks, starting at an offset
// of this server's own so that servers claiming at once seldom race for
// the same block.
func (s *Leases) candidates(pool []netip.Addr) []netip.Addr {
	if len(pool) == 0 {
		return nil
	}
	h := fnv.New32a()
	h.Write([]byte(s.opt.ID))
	start := int(h.Sum32() % uint32(len(pool)))
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]netip.Addr, 0, len(pool))
	for i := range pool {
		b := pool[(start+i)%len(pool)]
		if _, taken := s.taken[b]; !taken {
			out = append(out, b)
		}
	}
	return out
}

// claim takes the blocks bs under sess in one transaction if nobody
// holds any of them; if one was taken meanwhile, it takes them one by one.
// It returns the blocks it took; ok is false when etcd did not answer.
func (s *Leases) claim(ctx context.Context, sess clientv3.LeaseID, bs []netip.Addr) (got []netip.Addr, ok bool) {
	cmps := make([]clientv3.Cmp, len(bs))
	puts := make([]clientv3.Op, len(bs))
	gets := make([]clientv3.Op, len(bs))
	for i, b := range bs {
		k := s.keys.Block(b)
		cmps[i] = clientv3.Compare(clientv3.CreateRevision(k), "=", 0)
		puts[i] = clientv3.OpPut(k, s.opt.ID, clientv3.WithLease(sess))
		gets[i] = clientv3.OpGet(k)
	}
	cctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	resp, err := s.cli.Txn(cctx).If(cmps...).Then(puts...).Else(gets...).Commit()
	cancel()
	if err != nil {
		return nil, false
	}
	s.mu.Lock()
	if resp.Succeeded {
		for _, b := range bs {
			s.taken[b] = int64(sess)
		}
		s.mu.Unlock()
		return bs, true
	}
	var free []netip.Addr
	for i, r := range resp.Responses {
		if kvs := r.GetResponseRange().GetKvs(); len(kvs) > 0 {
			s.taken[bs[i]] = kvs[0].Lease
		} else {
			free = append(free, bs[i])
		}
	}
	s.mu.Unlock()
	if len(bs) == 1 {
		return nil, true
	}
	for _, b := range free {
		g, ok := s.claim(ctx, sess, []netip.Addr{b})
		if !ok {
			return got, false
		}
		got = append(got, g...)
	}
	return got, true
}

// release gives block b back if sess still holds it.
func (s *Leases) release(ctx context.Context, sess clientv3.LeaseID, b netip.Addr) bool {
	k := s.keys.Block(b)
	cctx, cancel := context.WithTimeout(ctx, RequestTimeout)
	defer cancel()
	resp, err := s.cli.Txn(cctx).
		If(clientv3.Compare(clientv3.LeaseValue(k), "=", sess)).
		Then(clientv3.OpDelete(k)).Commit()
	if err != nil || !resp.Succeeded {
		return false
	}
	s.mu.Lock()
	delete(s.taken, b)
	s.mu.Unlock()
	return true
}

// watchBlocks keeps s.taken, who holds each block, current.
func (s *Leases) watchBlocks(ctx context.Context) {
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, RequestTimeout)
		resp, err := s.cli.Get(cctx, s.keys.Blocks(), clientv3.WithPrefix())
		cancel()
		if err != nil {
			sleep(ctx, time.Second)
			continue
		}
		taken := map[netip.Addr]int64{}
		for _, kv := range resp.Kvs {
			if b, ok := addrAfter(kv.Key, s.keys.Blocks()); ok {
				taken[b] = kv.Lease
			}
		}
		s.mu.Lock()
		s.taken = taken
		s.mu.Unlock()
		s.wake()
		wctx, stop := context.WithCancel(clientv3.WithRequireLeader(ctx))
		for w := range s.cli.Watch(wctx, s.keys.Blocks(), clientv3.WithPrefix(), clientv3.WithRev(resp.Header.Revision+1)) {
			if w.Err() != nil {
				break
			}
			s.mu.Lock()
			for _, ev := range w.Events {
				b, ok := addrAfter(ev.Kv.Key, s.keys.Blocks())
				if !ok {
					continue
				}
				if ev.Type == clientv3.EventTypeDelete {
					delete(s.taken, b)
				} else {
					s.taken[b] = ev.Kv.Lease
				}
			}
			s.mu.Unlock()
			s.wake()
		}
		stop()
		sleep(ctx, 100*time.Millisecond)
	}
}

// watchLeases applies the lease records other servers write to the
// allocator, from Load's revision on; after a compaction it reads them
// all again.
func (s *Leases) watchLeases(ctx context.Context) {
	rev := s.loadRev + 1
	for ctx.Err() == nil {
		wctx, stop := context.WithCancel(clientv3.WithRequireLeader(ctx))
		for w := range s.cli.Watch(wctx, s.keys.Leases(), clientv3.WithPrefix(), clientv3.WithRev(rev)) {
			if w.CompactRevision != 0 {
				rev = 0
				break
			}
			if w.Err() != nil {
				break
			}
			for _, ev := range w.Events {
				if ev.Type != clientv3.EventTypePut {
					continue
				}
				if l, ok := s.decode(ev.Kv); ok && s.alloc != nil {
					s.alloc.Apply(l)
				}
				rev = ev.Kv.ModRevision + 1
			}
		}
		stop()
		if ctx.Err() != nil {
			return
		}
		if rev == 0 {
			ls, r, err := s.readAll(ctx)
			if err != nil {
				sleep(ctx, time.Second)
				continue
			}
			for _, l := range ls {
				if s.alloc != nil {
					s.alloc.Apply(l)
				}
			}
			rev = r + 1
			s.log.Warn("etcd: lease history compacted past this server's watch; read every lease again", "records", len(ls))
			continue
		}
		sleep(ctx, 100*time.Millisecond)
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}
