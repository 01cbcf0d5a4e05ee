package lease

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"time"

	"pxed/internal/lograte"
)

// Defaults for the zero values of Options' fields.
const (
	// DefaultOfferTTL is how long an offered address is held for its
	// client. Clients answer an OFFER within a second or two; the hold
	// only has to outlast their retransmissions.
	DefaultOfferTTL = 30 * time.Second
	// DefaultDeclineHold is how long a declined or abandoned address is
	// quarantined: ISC dhcpd's default abandon-lease-time (86400 s).
	DefaultDeclineHold = 24 * time.Hour
)

// Options configure an Allocator.
type Options struct {
	// Pools are every pool a Request may name. Their ranges must be IPv4,
	// at most a /8 each, and must not overlap.
	Pools []*Pool
	// Reserved are the fixed addresses of host declarations: never offered
	// or committed dynamically, even when they lie inside a pool.
	Reserved []netip.Addr
	// OfferTTL is how long an offered address is held in memory for its
	// client (default DefaultOfferTTL).
	OfferTTL time.Duration
	// DeclineHold is the quarantine of a declined address, and of an
	// abandoned one when Abandon is given no end (default
	// DefaultDeclineHold).
	DeclineHold time.Duration
	// Now is the clock (default time.Now); tests set a fake one.
	Now func() time.Time
	// Logger receives load summaries and write failures (default: none).
	Logger *slog.Logger
	// CallerCommits: start no committer goroutine; queued writes become
	// durable when some goroutine calls Flush (Release, Decline, Abandon and
	// Close flush themselves). A server that reads packets in a loop calls
	// Flush whenever its socket is drained: the group commit then happens
	// on the goroutine that is running anyway, with no thread to wake per
	// batch. The default (false) commits on a goroutine of the Allocator.
	CallerCommits bool
	// OnPut, when set, hears of each batch written to the store: how
	// long the write (and its fsync) took, how many records, and its error
	// (metrics). It is called from the committing goroutine.
	OnPut func(d time.Duration, records int, err error)
	// Blocks: this server shares the pools with others (a shared Store):
	// it offers, and newly binds, only addresses of the blocks it owns
	// (Own, Disown; blocks.go). Renewing a client's own binding needs no
	// block. Records other servers write reach memory through Apply.
	Blocks bool
	// MaxBatch bounds the leases of one Store.Put (0: no bound); a
	// shared Store has a limit on the operations of one transaction.
	MaxBatch int
	// Linger spaces the committer's rounds: one starts at least Linger
	// after the previous one started, unless MaxBatch writes are
	// already queued; the first write after a quiet spell is committed
	// at once. Under load, writes then share fewer, fuller
	// transactions, which costs a replicated store far less CPU per
	// lease (each transaction is a consensus round and a sync on every
	// member); an ACK waits at most Linger longer. 0: every round
	// starts as soon as the previous one ends (bbolt's group commit).
	// Ignored with CallerCommits.
	Linger time.Duration
	// OnShort, with Blocks, is called (with the Allocator's lock held:
	// it must not block nor call the Allocator) when an offer found no
	// free address in the owned blocks, or took one of a range left with
	// fewer than ShortBelow never-used owned addresses: the owner of the
	// blocks should claim more.
	OnShort    func()
	ShortBelow int
	// Balance, when set, says whether this server answers a client's
	// DISCOVER (and broadcast REQUEST) at all, from its hardware address,
	// the seconds it has been trying (the DHCP secs field) and where it
	// comes from (via: the subnet it is attached to, or its relay's
	// address as a /32): servers that all receive a client split such
	// clients between them rather than each answering every one (see
	// Answers).
	Balance func(hw []byte, secs uint16, via netip.Prefix) bool
}

// Stats are counters of an Allocator's committer.
type Stats struct {
	// Batches is the number of successful Store.Put calls: with bolt, the
	// number of write transactions (each fsynced).
	Batches uint64
	// Records is the number of lease records those batches wrote (several
	// writes to one address in a batch are one record).
	Records uint64
	// Writes is the number of queued writes (Commit, Release, Decline,
	// Abandon) made durable.
	Writes uint64
	// Failures is the number of failed Store.Put calls.
	Failures uint64
	// Pending is the number of writes queued or being written.
	Pending int
	// Reclaimed is the number of outstanding offers given to another
	// client because the pool had no free address (see Offer).
	Reclaimed uint64
}

// Allocator decides which client gets which address. It keeps every lease in
// memory, indexed by address and by client, and persists changes through a
// Store with group commit. All methods are safe for concurrent use.
type Allocator struct {
	store       Store
	now         func() time.Time
	log         *slog.Logger
	offerTTL    time.Duration
	declineHold time.Duration

	kick    chan struct{}                   // wakes the committer; capacity 1
	stopped chan struct{}                   // closed when the committer has exited
	manual  bool                            // Options.CallerCommits
	onPut   func(time.Duration, int, error) // Options.OnPut

	// flushMu serialises commit rounds (the committer's, or Flush calls).
	flushMu sync.Mutex
	cs      commitScratch

	mu       sync.Mutex
	closed   bool
	byIP     map[uint32]*entry
	byClient map[ClientKey][]*entry // entries whose cur.Client is the key
	offers   map[ClientKey]*entry   // each client's outstanding offer
	pools    map[*Pool][]*rangeState
	ranges   []*rangeState // all of them, by start address
	reserved map[uint32]struct{}
	scratch  []*rangeState
	queue    []item // writes waiting for the committer
	inflight int    // writes the committer is writing
	seq      uint64
	stats    Stats
	// pressureLog spaces the warnings about reclaimed offers.
	pressureLog lograte.Limiter

	blocks    bool          // Options.Blocks
	maxBatch  int           // Options.MaxBatch
	linger    time.Duration // Options.Linger
	lastRound time.Time     // when the committer's last round started (its goroutine only)
	onShort   func()        // Options.OnShort
	balance   func([]byte, uint16, netip.Prefix) bool
	shortLow  int                 // Options.ShortBelow
	owned     map[uint32]struct{} // first address of each owned block
	npools    int                 // len(Options.Pools)
	// remote holds records other servers wrote to addresses whose own
	// writes are queued here; applied once those are done (Apply).
	remote map[uint32]Lease
}

// entry is the allocator's state for one address that has (had) a lease or an
// offer.
type entry struct {
	ip       uint32
	rs       *rangeState // nil: outside every pool
	reserved bool

	has bool  // cur is a record (durable or queued)
	cur Lease // latest record, including queued writes; cur.Rev unused
	rev uint64

	// back is the last durable record while writes are queued (ok false:
	// none), what memory returns to if they fail.
	back *durable
	seq  uint64 // sequence number of the latest queued write

	offerTo    ClientKey // outstanding offer, if any (may have lapsed)
	offerUntil int64     // Unix nanoseconds
	offerGen   uint32    // generation of the offer's item in rs.offers

	gen    uint32 // generation of the live heap item
	inHeap bool   // rs.heap holds a live item for this entry
}

type durable struct {
	ok bool
	l  Lease
}

type item struct {
	seq   uint64
	lease Lease
	done  func(Lease, error)
}

// NewAllocator loads every lease from store and starts the committer (unless
// Options.CallerCommits). The
// Allocator owns store from then on: Close closes it.
func NewAllocator(ctx context.Context, store Store, opts Options) (*Allocator, error) {
	a := &Allocator{
		store:       store,
		now:         opts.Now,
		log:         opts.Logger,
		offerTTL:    opts.OfferTTL,
		declineHold: opts.DeclineHold,
		manual:      opts.CallerCommits,
		onPut:       opts.OnPut,
		blocks:      opts.Blocks,
		npools:      len(opts.Pools),
		maxBatch:    opts.MaxBatch,
		linger:      opts.Linger,
		onShort:     opts.OnShort,
		balance:     opts.Balance,
		shortLow:    opts.ShortBelow,
		owned:       make(map[uint32]struct{}),
		remote:      make(map[uint32]Lease),
		kick:        make(chan struct{}, 1),
		stopped:     make(chan struct{}),
		byIP:        make(map[uint32]*entry),
		byClient:    make(map[ClientKey][]*entry),
		offers:      make(map[ClientKey]*entry),
		pools:       make(map[*Pool][]*rangeState),
		reserved:    make(map[uint32]struct{}),
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.offerTTL <= 0 {
		a.offerTTL = DefaultOfferTTL
	}
	if a.declineHold <= 0 {
		a.declineHold = DefaultDeclineHold
	}
	if err := a.addPools(opts.Pools); err != nil {
		return nil, err
	}
	if a.blocks {
		for _, rs := range a.ranges {
			rs.owned = make([]uint64, len(rs.used))
		}
	}
	for _, ip := range opts.Reserved {
		if !ip.Unmap().Is4() {
			return nil, fmt.Errorf("lease: reserved address %v is not IPv4", ip)
		}
		u := v4(ip)
		a.reserved[u] = struct{}{}
		if rs := a.rangeOf(u); rs != nil {
			rs.markUsed(u)
		}
	}
	leases, err := store.Load(ctx)
	if err != nil {
		return nil, fmt.Errorf("lease: loading leases: %w", err)
	}
	now := a.now().UnixNano()
	active := 0
	for _, l := range leases {
		if !l.IP.Unmap().Is4() {
			return nil, fmt.Errorf("lease: stored lease for %v: not an IPv4 address", l.IP)
		}
		if !l.State.Persistent() {
			return nil, fmt.Errorf("lease: stored lease for %v: state %v cannot be stored", l.IP, l.State)
		}
		u := v4(l.IP)
		if a.byIP[u] != nil {
			return nil, fmt.Errorf("lease: store returned %v twice", l.IP)
		}
		l.IP = addr(u)
		e := a.newEntry(u)
		e.rev = l.Rev
		a.setCur(e, true, l)
		a.reindex(e)
		if l.State == Bound && !expired(l, now) {
			active++
		}
	}
	a.log.Info("leases loaded", "records", len(leases), "bound", active)
	if a.manual {
		close(a.stopped)
	} else {
		go a.run()
	}
	return a, nil
}

func (a *Allocator) addPools(pools []*Pool) error {
	for i, p := range pools {
		if p == nil {
			return fmt.Errorf("lease: pool %d is nil", i)
		}
		if _, dup := a.pools[p]; dup {
			return fmt.Errorf("lease: pool %d registered twice", i)
		}
		rss := make([]*rangeState, 0, len(p.Ranges))
		for _, r := range p.Ranges {
			if !r.Start.Unmap().Is4() || !r.End.Unmap().Is4() {
				return fmt.Errorf("lease: range %v-%v is not IPv4", r.Start, r.End)
			}
			s, e := v4(r.Start), v4(r.End)
			if s > e {
				return fmt.Errorf("lease: range %v-%v ends before it starts", r.Start, r.End)
			}
			if uint64(e)-uint64(s)+1 > maxRangeSize {
				return fmt.Errorf("lease: range %v-%v is larger than a /8", r.Start, r.End)
			}
			rs := newRangeState(r)
			rs.pool = i
			rss = append(rss, rs)
			a.ranges = append(a.ranges, rs)
		}
		a.pools[p] = rss
	}
	sort.Slice(a.ranges, func(i, j int) bool { return a.ranges[i].start < a.ranges[j].start })
	for i := 1; i < len(a.ranges); i++ {
		if p, r := a.ranges[i-1], a.ranges[i]; r.start <= p.end {
			return fmt.Errorf("lease: range %v-%v overlaps %v-%v", addr(r.start), addr(r.end), addr(p.start), addr(p.end))
		}
	}
	return nil
}

// rangeOf returns the range holding ip, nil if none.
func (a *Allocator) rangeOf(ip uint32) *rangeState {
	i := sort.Search(len(a.ranges), func(i int) bool { return a.ranges[i].end >= ip })
	if i < len(a.ranges) && a.ranges[i].contains(ip) {
		return a.ranges[i]
	}
	return nil
}

// eligible returns the ranges req may get an address from, those that are
// not BOOTP first. The slice is reused by the next call.
func (a *Allocator) eligible(req Request) ([]*rangeState, error) {
	out := a.scratch[:0]
	for _, bootp := range [2]bool{false, true} {
		if req.BOOTP && !bootp {
			continue
		}
		for _, p := range req.Pools {
			rss, ok := a.pools[p]
			if !ok {
				return nil, ErrUnknownPool
			}
			for _, rs := range rss {
				if rs.bootp == bootp {
					out = append(out, rs)
				}
			}
		}
	}
	a.scratch = out
	return out, nil
}

func in(ranges []*rangeState, rs *rangeState) bool {
	return rs != nil && slices.Contains(ranges, rs)
}

func (a *Allocator) newEntry(ip uint32) *entry {
	e := &entry{ip: ip, rs: a.rangeOf(ip)}
	_, e.reserved = a.reserved[ip]
	if e.rs != nil {
		e.rs.markUsed(ip)
	}
	a.byIP[ip] = e
	return e
}

// setCur replaces e's record, keeping the client index in step.
func (a *Allocator) setCur(e *entry, has bool, l Lease) {
	if e.has && e.cur.Client != "" && (!has || l.Client != e.cur.Client) {
		list := a.byClient[e.cur.Client]
		if i := slices.Index(list, e); i >= 0 {
			list[i] = list[len(list)-1]
			list[len(list)-1] = nil
			list = list[:len(list)-1]
		}
		if len(list) == 0 {
			delete(a.byClient, e.cur.Client)
		} else {
			a.byClient[e.cur.Client] = list
		}
	}
	if has && l.Client != "" && (!e.has || l.Client != e.cur.Client) {
		a.byClient[l.Client] = append(a.byClient[l.Client], e)
	}
	e.has, e.cur = has, l
}

func unixNano(t time.Time) int64 {
	if t.IsZero() {
		return math.MinInt64
	}
	return t.UnixNano()
}

// expired reports whether l's Expiry has passed (never for a zero Expiry).
func expired(l Lease, now int64) bool {
	return !l.Expiry.IsZero() && l.Expiry.UnixNano() <= now
}

// freeAt is when e's address becomes free for anyone: never, or a time in
// Unix nanoseconds (possibly past).
func freeAt(e *entry) int64 {
	t := int64(math.MinInt64)
	if e.has {
		if e.cur.State == Bound && e.cur.Expiry.IsZero() {
			return never
		}
		t = unixNano(e.cur.Expiry)
	}
	if e.offerTo != "" && e.offerUntil > t {
		t = e.offerUntil
	}
	return t
}

// available reports whether e's address may be given to client c now. It
// does not check pools.
func (a *Allocator) available(e *entry, c ClientKey, now int64) bool {
	return a.unavailable(e, c, now) == ""
}

// unavailable says why e's address may not be given to client c now, "" if
// it may.
func (a *Allocator) unavailable(e *entry, c ClientKey, now int64) string {
	if why := a.held(e, c, now); why != "" {
		return why
	}
	if a.offeredToOther(e, c, now) {
		return "offered to " + string(e.offerTo)
	}
	return ""
}

// held says why e's address may not be given to client c now, offers
// aside; "" if nothing but an offer may keep it from c.
func (a *Allocator) held(e *entry, c ClientKey, now int64) string {
	if e.reserved {
		return "a fixed address"
	}
	if !e.has {
		return ""
	}
	switch e.cur.State {
	case Bound:
		if e.cur.Client != c && !expired(e.cur, now) {
			return "bound to " + string(e.cur.Client)
		}
	case Declined, Abandoned:
		if !expired(e.cur, now) {
			return e.cur.State.String() + " until " + e.cur.Expiry.Format(time.RFC3339)
		}
	}
	return ""
}

// reindex puts e back in its range's heap after a change of its free time.
func (a *Allocator) reindex(e *entry) {
	rs := e.rs
	if rs == nil {
		return
	}
	if e.inHeap {
		e.inHeap = false
		rs.stale++
	}
	e.gen++
	if e.reserved || !rs.owns(e.ip) {
		return
	}
	at := freeAt(e)
	if at == never {
		return
	}
	rs.push(heapItem{at: at, ip: e.ip, gen: e.gen})
	e.inHeap = true
	if rs.stale > 1024 && rs.stale > len(rs.heap)/2 {
		rs.compact(a.live)
	}
}

func (a *Allocator) live(it heapItem) bool {
	e := a.byIP[it.ip]
	return e != nil && e.inHeap && e.gen == it.gen
}

// hold makes e c's outstanding offer.
func (a *Allocator) hold(e *entry, c ClientKey, now int64) netip.Addr {
	if o := a.offers[c]; o != nil && o != e {
		a.dropOffer(o)
	}
	if e.offerTo != "" && e.offerTo != c && a.offers[e.offerTo] == e {
		delete(a.offers, e.offerTo)
	}
	e.offerTo, e.offerUntil = c, now+int64(a.offerTTL)
	a.offers[c] = e
	a.reindex(e)
	if e.rs != nil {
		a.queueOffer(e, now)
	}
	return addr(e.ip)
}

func (a *Allocator) dropOffer(e *entry) {
	if a.offers[e.offerTo] == e {
		delete(a.offers, e.offerTo)
	}
	e.offerTo, e.offerUntil = "", 0
	a.reindex(e)
}

// binding returns c's active binding within ranges, nil if none.
func (a *Allocator) binding(c ClientKey, ranges []*rangeState, now int64) *entry {
	var best *entry
	for _, e := range a.byClient[c] {
		if e.cur.State == Bound && !expired(e.cur, now) && !e.reserved && (ranges == nil || in(ranges, e.rs)) &&
			(best == nil || e.cur.Start.After(best.cur.Start)) {
			best = e
		}
	}
	return best
}

// Offer chooses an address for req and holds it in memory for OfferTTL. In
// order of preference: the client's active binding in its pools (returned
// without a hold, it is the client's already); the address it asked for
// (req.Want) when free for it; its outstanding offer; the last address it
// held (released or expired) if still free; an address that never held a
// lease; the address that has been free the longest; under pressure, the
// address of the oldest outstanding offer to another client, reclaimed
// (see pressure.go). It returns ErrExhausted when none is free.
//
// Offers are not persisted. A new offer to a client replaces its previous
// one.
func (a *Allocator) Offer(req Request) (netip.Addr, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return netip.Addr{}, ErrClosed
	}
	if req.Client == "" {
		return netip.Addr{}, errors.New("lease: request has no client key")
	}
	ranges, err := a.eligible(req)
	if err != nil {
		return netip.Addr{}, err
	}
	c := req.Client
	now := a.now().UnixNano()

	if e := a.binding(c, ranges, now); e != nil {
		if o := a.offers[c]; o != nil {
			a.dropOffer(o)
		}
		return addr(e.ip), nil
	}
	if req.Want.IsValid() && req.Want.Unmap().Is4() {
		u := v4(req.Want)
		_, reserved := a.reserved[u]
		if rs := a.rangeOf(u); !reserved && in(ranges, rs) {
			e := a.byIP[u]
			if e == nil {
				e = a.newEntry(u)
			}
			if a.available(e, c, now) && (rs.owns(u) || e.has && e.cur.Client == c) {
				return a.hold(e, c, now), nil
			}
		}
	}
	// Its outstanding offer, even lapsed, if nobody took the address since.
	if e := a.offers[c]; e != nil && in(ranges, e.rs) && a.available(e, c, now) {
		return a.hold(e, c, now), nil
	}
	var prev *entry
	for _, e := range a.byClient[c] {
		if (e.cur.State == Bound || e.cur.State == Released) && in(ranges, e.rs) && a.available(e, c, now) &&
			(prev == nil || e.cur.Start.After(prev.cur.Start)) {
			prev = e
		}
	}
	if prev != nil {
		return a.hold(prev, c, now), nil
	}
	for _, rs := range ranges {
		if u, ok := rs.nextUnused(); ok {
			ip := a.hold(a.newEntry(u), c, now)
			if a.blocks && rs.spare < a.shortLow {
				a.short()
			}
			return ip, nil
		}
	}
	var skipped []*entry
	defer func() {
		for _, e := range skipped {
			a.reindex(e)
		}
	}()
	for {
		var best *rangeState
		for _, rs := range ranges {
			for len(rs.heap) > 0 && !a.live(rs.heap[0]) {
				rs.pop()
				rs.stale--
			}
			if len(rs.heap) > 0 && rs.heap[0].at <= now && (best == nil || rs.heap[0].at < best.heap[0].at) {
				best = rs
			}
		}
		if best == nil {
			a.short()
			if ip, ok := a.reclaim(ranges, c, now); ok {
				return ip, nil
			}
			return netip.Addr{}, ErrExhausted
		}
		e := a.byIP[best.heap[0].ip]
		best.pop()
		e.inHeap = false
		if a.available(e, c, now) {
			return a.hold(e, c, now), nil
		}
		// Cannot happen (its free time has passed); put it back once done.
		skipped = append(skipped, e)
	}
}

// Commit binds ip to req's client for d (infinite when d <= 0 or req.BOOTP)
// and queues the lease to be made durable.
//
// The checks are synchronous: an error wrapping ErrUnavailable means ip is
// outside the client's pools, reserved, bound or offered to another client
// (unless req.TakeOffered), or quarantined, and the server NAKs. When Commit returns nil, memory
// already holds the binding and done (if not nil) will run exactly once,
// on the goroutine that commits (the Allocator's committer, or the caller of
// Flush with Options.CallerCommits), after the batch holding the lease is durable
// (err nil: send the ACK) or failed (memory is then rolled back). When
// Commit returns an error, done is not called.
//
// done must be quick (send a packet, not wait for one) and must not call
// Release, Decline, Abandon or Close, which wait for the committer.
func (a *Allocator) Commit(req Request, ip netip.Addr, d time.Duration, done func(Lease, error)) error {
	if !ip.Unmap().Is4() {
		return fmt.Errorf("%w: %v is not an IPv4 address", ErrUnavailable, ip)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return ErrClosed
	}
	if req.Client == "" {
		return errors.New("lease: request has no client key")
	}
	ranges, err := a.eligible(req)
	if err != nil {
		return err
	}
	u := v4(ip)
	if _, r := a.reserved[u]; r {
		return fmt.Errorf("%w: %v is a fixed address", ErrUnavailable, ip)
	}
	if !in(ranges, a.rangeOf(u)) {
		return fmt.Errorf("%w: %v is outside the client's pools", ErrUnavailable, ip)
	}
	t := a.now().Round(0)
	now := t.UnixNano()
	e := a.byIP[u]
	if e == nil {
		e = a.newEntry(u)
	}
	if why := a.unavailable(e, req.Client, now); why != "" && !(req.TakeOffered && a.onlyOffered(e, req.Client, now)) {
		return fmt.Errorf("%w: %v is %s", ErrUnavailable, ip, why)
	}
	// A new binding: the address was not this client's.
	claim := a.blocks && !(e.has && e.cur.Client == req.Client)
	if claim && !e.rs.owns(u) {
		return fmt.Errorf("%w: %v", ErrNotOwner, ip)
	}
	l := Lease{
		IP:       addr(u),
		Client:   req.Client,
		MAC:      slices.Clone(req.MAC),
		Hostname: req.Hostname,
		UUID:     req.UUID,
		State:    Bound,
		Start:    t,
		Claim:    claim,
	}
	if !req.BOOTP && d > 0 {
		l.Expiry = t.Add(d)
	}
	if o := a.offers[req.Client]; o != nil {
		a.dropOffer(o)
	}
	if e.offerTo != "" {
		a.dropOffer(e)
	}
	a.write(e, l, done)
	return nil
}

// write sets e's record to l and queues it for the committer.
func (a *Allocator) write(e *entry, l Lease, done func(Lease, error)) {
	if e.back == nil {
		e.back = &durable{ok: e.has, l: e.cur}
	}
	cur := l
	cur.Claim = false
	a.setCur(e, true, cur)
	a.reindex(e)
	a.seq++
	e.seq = a.seq
	a.queue = append(a.queue, item{seq: a.seq, lease: l, done: done})
	if !a.manual {
		select {
		case a.kick <- struct{}{}:
		default:
		}
	}
}

// writeWait is write followed by waiting, without a.mu, until the write is
// durable. a.mu must be held and is released.
func (a *Allocator) writeWait(e *entry, l Lease) error {
	ch := make(chan error, 1)
	a.write(e, l, func(_ Lease, err error) { ch <- err })
	a.mu.Unlock()
	if a.manual {
		a.Flush()
	}
	return <-ch
}

// lockHeld returns the entry of ip, bound to client, with a.mu held; or an
// error (wrapping ErrNotHeld or ErrClosed) with a.mu released.
func (a *Allocator) lockHeld(client ClientKey, ip netip.Addr) (*entry, error) {
	if !ip.Unmap().Is4() {
		return nil, fmt.Errorf("%w: %v is not an IPv4 address", ErrNotHeld, ip)
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return nil, ErrClosed
	}
	e := a.byIP[v4(ip)]
	if e == nil || !e.has || e.cur.State != Bound || e.cur.Client != client {
		a.mu.Unlock()
		return nil, fmt.Errorf("%w: %v", ErrNotHeld, ip)
	}
	return e, nil
}

// Release ends client's binding of ip (DHCPRELEASE) and returns once that
// is durable. The address becomes free, though the client will be offered
// it again first. It returns an error wrapping ErrNotHeld if client does
// not hold ip.
func (a *Allocator) Release(client ClientKey, ip netip.Addr) error {
	e, err := a.lockHeld(client, ip)
	if err != nil {
		return err
	}
	l := e.cur
	l.State = Released
	l.Expiry = a.now().Round(0)
	return a.writeWait(e, l)
}

// Decline quarantines ip for DeclineHold because client, which holds it,
// found it in use (DHCPDECLINE), and returns once that is durable. It
// returns an error wrapping ErrNotHeld if client does not hold ip, so that
// no client can quarantine addresses it was not given.
func (a *Allocator) Decline(client ClientKey, ip netip.Addr) error {
	e, err := a.lockHeld(client, ip)
	if err != nil {
		return err
	}
	t := a.now().Round(0)
	l := e.cur
	l.State = Declined
	l.Start = t
	l.Expiry = t.Add(a.declineHold)
	if e.offerTo != "" {
		a.dropOffer(e)
	}
	a.logQuarantine("address declined", l)
	return a.writeWait(e, l)
}

// Abandon quarantines ip until until (zero: DeclineHold from now) because
// the server found it in use (ping check before an offer), drops any
// offer of it, and returns once that is durable. The server then calls
// Offer again for another address. It returns an error wrapping
// ErrUnavailable if ip has an active binding: a client answering pings for
// its own address is not a conflict.
func (a *Allocator) Abandon(ip netip.Addr, until time.Time) error {
	if !ip.Unmap().Is4() {
		return fmt.Errorf("%w: %v is not an IPv4 address", ErrUnavailable, ip)
	}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return ErrClosed
	}
	t := a.now().Round(0)
	if until.IsZero() {
		until = t.Add(a.declineHold)
	}
	u := v4(ip)
	e := a.byIP[u]
	if e == nil {
		e = a.newEntry(u)
	}
	if e.has && e.cur.State == Bound && !expired(e.cur, t.UnixNano()) {
		holder := e.cur.Client
		a.mu.Unlock()
		return fmt.Errorf("%w: %v is bound to %s", ErrUnavailable, ip, holder)
	}
	if e.offerTo != "" {
		a.dropOffer(e)
	}
	l := Lease{IP: addr(u), State: Abandoned, Start: t, Expiry: until.Round(0)}
	a.logQuarantine("address abandoned", l)
	return a.writeWait(e, l)
}

func (a *Allocator) logQuarantine(msg string, l Lease) {
	a.log.Warn(msg, "ip", l.IP, "client", l.Client, "until", l.Expiry)
}

// view is e as reported: an active offer shows as Offered (Expiry: end of
// the hold), a lapsed binding as Expired.
func (a *Allocator) view(e *entry, now int64) (Lease, bool) {
	if e.offerTo != "" && e.offerUntil > now {
		return Lease{IP: addr(e.ip), Client: e.offerTo, State: Offered, Expiry: time.Unix(0, e.offerUntil)}, true
	}
	if !e.has {
		return Lease{}, false
	}
	l := e.cur
	l.MAC = slices.Clone(l.MAC)
	l.Rev = e.rev
	if l.State == Bound && expired(l, now) {
		l.State = Expired
	}
	return l, true
}

// Lookup returns client's active binding (the most recent if it has several,
// on different subnets), for INIT-REBOOT, RENEW, REBIND and INFORM.
// Bindings whose write is still queued are included.
func (a *Allocator) Lookup(client ClientKey) (Lease, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now().UnixNano()
	if e := a.binding(client, nil, now); e != nil {
		return a.view(e, now)
	}
	return Lease{}, false
}

// SetReserved replaces the fixed addresses (after a configuration reload
// added or removed hosts). A newly reserved address is never offered again
// (a client already bound to it keeps it until the lease ends, but cannot
// renew it dynamically); an address no longer reserved becomes free for
// its pool.
func (a *Allocator) SetReserved(addrs []netip.Addr) error {
	next := make(map[uint32]struct{}, len(addrs))
	for _, ip := range addrs {
		if !ip.Unmap().Is4() {
			return fmt.Errorf("lease: reserved address %v is not IPv4", ip)
		}
		next[v4(ip)] = struct{}{}
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for u := range a.reserved {
		if _, keep := next[u]; keep {
			continue
		}
		delete(a.reserved, u)
		e := a.byIP[u]
		if e == nil {
			if a.rangeOf(u) == nil {
				continue
			}
			e = a.newEntry(u) // marked used when reserved: free it through the heap
		}
		e.reserved = false
		a.reindex(e)
	}
	for u := range next {
		if _, had := a.reserved[u]; had {
			continue
		}
		a.reserved[u] = struct{}{}
		if e := a.byIP[u]; e != nil {
			e.reserved = true
			a.reindex(e)
		} else if rs := a.rangeOf(u); rs != nil {
			rs.markUsed(u)
		}
	}
	return nil
}

// LeaseAt returns the record of ip: an active offer (State Offered), else
// the latest lease, with an expired binding reported as Expired.
func (a *Allocator) LeaseAt(ip netip.Addr) (Lease, bool) {
	if !ip.Unmap().Is4() {
		return Lease{}, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if e := a.byIP[v4(ip)]; e != nil {
		return a.view(e, a.now().UnixNano())
	}
	return Lease{}, false
}

// List returns every record, as LeaseAt reports it, sorted by address.
func (a *Allocator) List() []Lease {
	a.mu.Lock()
	now := a.now().UnixNano()
	out := make([]Lease, 0, len(a.byIP))
	for _, e := range a.byIP {
		if l, ok := a.view(e, now); ok {
			out = append(out, l)
		}
	}
	a.mu.Unlock()
	slices.SortFunc(out, func(x, y Lease) int { return x.IP.Compare(y.IP) })
	return out
}

// Stats returns the committer's counters.
func (a *Allocator) Stats() Stats {
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.stats
	s.Pending = len(a.queue) + a.inflight
	return s
}

// Close stops taking requests, waits until every queued write is durable (or
// failed; their done callbacks run), stops the committer and closes the
// store. Later calls return nil.
func (a *Allocator) Close() error {
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		<-a.stopped
		return nil
	}
	a.closed = true
	a.mu.Unlock()
	if a.manual {
		a.Flush()
	}
	select {
	case a.kick <- struct{}{}:
	default:
	}
	<-a.stopped
	if err := a.store.Close(); err != nil {
		return fmt.Errorf("lease: closing store: %w", err)
	}
	return nil
}

// run is the committer: it writes everything queued in one Store.Put, while
// the next batch accumulates, until closed and drained.
func (a *Allocator) run() {
	defer close(a.stopped)
	for {
		a.mu.Lock()
		for len(a.queue) == 0 {
			if a.closed {
				a.mu.Unlock()
				return
			}
			a.mu.Unlock()
			<-a.kick
			a.mu.Lock()
		}
		a.mu.Unlock()
		a.linger1()
		a.lastRound = time.Now()
		a.flushMu.Lock()
		a.round()
		a.flushMu.Unlock()
	}
}

// linger1 waits until Options.Linger has passed since the last round
// started, or MaxBatch writes are queued, or the Allocator is closing.
func (a *Allocator) linger1() {
	if a.linger <= 0 {
		return
	}
	d := a.linger - time.Since(a.lastRound)
	if d <= 0 {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	for {
		a.mu.Lock()
		enough := a.closed || a.maxBatch > 0 && len(a.queue) >= a.maxBatch
		a.mu.Unlock()
		if enough {
			return
		}
		select {
		case <-t.C:
			return
		case <-a.kick:
		}
	}
}

// Pending reports whether writes are queued that the caller should Flush
// (Options.CallerCommits); always false with the Allocator's own
// committer, whose rounds need nobody.
func (a *Allocator) Pending() bool {
	if !a.manual {
		return false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.queue) > 0
}

// Flush makes every write queued so far durable (or failed), running their
// done callbacks on the calling goroutine, and returns when they have run.
// With Options.CallerCommits it is how writes get written; otherwise it
// waits for the committer's rounds like any caller would.
func (a *Allocator) Flush() {
	a.flushMu.Lock()
	defer a.flushMu.Unlock()
	for {
		a.mu.Lock()
		empty := len(a.queue) == 0
		a.mu.Unlock()
		if empty {
			return
		}
		a.round()
	}
}

// commitScratch is reused by every round; rounds are serialised by flushMu.
type commitScratch struct {
	spare []item
	batch []Lease
	seqs  []uint64 // per batch record: the last write's seq
	idx   map[uint32]int
}

// round writes what is queued (at most MaxBatch writes) in one Store.Put
// and runs the done callbacks. a.flushMu must be held.
func (a *Allocator) round() {
	cs := &a.cs
	if cs.idx == nil {
		cs.idx = make(map[uint32]int)
	}
	a.mu.Lock()
	if len(a.queue) == 0 {
		a.mu.Unlock()
		return
	}
	items := a.queue
	if a.maxBatch > 0 && len(items) > a.maxBatch {
		a.queue = append(cs.spare[:0], items[a.maxBatch:]...)
		items = items[:a.maxBatch]
	} else {
		a.queue = cs.spare[:0]
	}
	a.inflight = len(items)
	batch, seqs, idx := cs.batch[:0], cs.seqs[:0], cs.idx
	clear(idx)
	for _, it := range items {
		u := v4(it.lease.IP)
		l := it.lease
		l.Rev = a.byIP[u].rev
		if j, ok := idx[u]; ok {
			// A later write to one address in the batch: it claims if
			// either did (the address was not its client's before the
			// first).
			l.Claim = l.Claim || batch[j].Claim
			batch[j], seqs[j] = l, it.seq
			continue
		}
		idx[u] = len(batch)
		batch = append(batch, l)
		seqs = append(seqs, it.seq)
	}
	cs.batch, cs.seqs = batch, seqs
	a.mu.Unlock()

	putStart := time.Now()
	out, errs, err := a.put(batch)
	if a.onPut != nil {
		a.onPut(time.Since(putStart), len(batch), err)
	}

	a.mu.Lock()
	a.inflight = 0
	now := a.now().UnixNano()
	written := 0
	for j := range batch {
		u := v4(batch[j].IP)
		e := a.byIP[u]
		if errs == nil || errs[j] == nil {
			written++
			e.rev = out[j].Rev
			if e.seq == seqs[j] {
				e.back = nil
			} else {
				e.back = &durable{ok: true, l: out[j]}
			}
		} else if e.seq == seqs[j] && e.back != nil {
			// (Otherwise a newer write is queued; it stands.)
			a.setCur(e, e.back.ok, e.back.l)
			e.back = nil
			a.reindex(e)
			// The durable record wins over an offer made meanwhile
			// (a failed Release restores the binding).
			if e.offerTo != "" && a.unavailable(e, e.offerTo, now) != "" {
				a.dropOffer(e)
			}
		}
		if r, ok := a.remote[u]; ok && e.back == nil {
			delete(a.remote, u)
			if r.Rev > e.rev {
				a.applyRemote(e, r, now)
			}
		}
	}
	if written > 0 {
		a.stats.Batches++
		a.stats.Records += uint64(written)
		for _, it := range items {
			if j := idx[v4(it.lease.IP)]; errs == nil || errs[j] == nil {
				a.stats.Writes++
			}
		}
	}
	if err != nil {
		a.stats.Failures++
		if errors.Is(err, ErrConflict) {
			a.log.Debug("lease writes lost to another server's; rolled back", "leases", len(batch)-written, "err", err)
		} else {
			a.log.Error("writing leases failed; rolled back", "leases", len(batch)-written, "err", err)
		}
	}
	a.mu.Unlock()

	for _, it := range items {
		j := idx[v4(it.lease.IP)]
		if errs != nil && errs[j] != nil {
			if it.done != nil {
				it.done(it.lease, fmt.Errorf("lease: writing %v: %w", it.lease.IP, errs[j]))
			}
			continue
		}
		if it.done != nil {
			l := it.lease
			l.Rev = out[j].Rev
			it.done(l, nil)
		}
	}
	clear(items[:cap(items)])
	cs.spare = items[:0]
}

// put writes batch. errs is nil when every record was written, else the
// error of each record (nil: written). A shared store's ConflictError
// names the records another writer beat; the others are written again
// without them, once. err is the first error, for logs and metrics.
func (a *Allocator) put(batch []Lease) (out []Lease, errs []error, err error) {
	out, err = a.store.Put(context.Background(), batch)
	if err == nil && len(out) != len(batch) {
		err = fmt.Errorf("store returned %d leases for a batch of %d", len(out), len(batch))
	}
	if err == nil {
		return out, nil, nil
	}
	errs = make([]error, len(batch))
	var ce *ConflictError
	if !errors.As(err, &ce) || len(ce.IPs) == 0 || len(ce.IPs) >= len(batch) {
		for j := range errs {
			errs[j] = err
		}
		return nil, errs, err
	}
	lost := make(map[netip.Addr]bool, len(ce.IPs))
	for _, ip := range ce.IPs {
		lost[ip] = true
	}
	rest := make([]Lease, 0, len(batch)-len(ce.IPs))
	for j, l := range batch {
		if lost[l.IP] {
			errs[j] = ErrConflict
		} else {
			rest = append(rest, l)
		}
	}
	got, err2 := a.store.Put(context.Background(), rest)
	if err2 == nil && len(got) != len(rest) {
		err2 = fmt.Errorf("store returned %d leases for a batch of %d", len(got), len(rest))
	}
	out = make([]Lease, len(batch))
	k := 0
	for j := range batch {
		if errs[j] != nil {
			continue
		}
		if err2 != nil {
			errs[j] = err2
		} else {
			out[j] = got[k]
		}
		k++
	}
	return out, errs, err
}
