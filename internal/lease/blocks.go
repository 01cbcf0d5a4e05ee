package lease

import (
	"net/netip"
	"slices"
)

// BlockSize is the number of addresses of an ownership block
// (Options.Blocks): the block of an address a is a &^ (BlockSize-1),
// whatever the ranges, so that every server cuts the pools alike.
const BlockSize = 64

// blockOf returns the first address of ip's block.
func blockOf(ip uint32) uint32 { return ip &^ (BlockSize - 1) }

// PoolBlocks returns, for each pool of Options.Pools in order, the first
// address of every block holding an address of the pool, in address
// order. A block shared by two pools (their ranges meet inside it) is
// listed under the pool of its lowest address.
func (a *Allocator) PoolBlocks() [][]netip.Addr {
	out := make([][]netip.Addr, a.npools)
	last := uint64(1 << 32) // no block yet
	for _, rs := range a.ranges {
		for b := uint64(blockOf(rs.start)); b <= uint64(rs.end); b += BlockSize {
			if b != last {
				out[rs.pool] = append(out[rs.pool], addr(uint32(b)))
				last = b
			}
		}
	}
	return out
}

// Own makes the block starting at first this server's (Options.Blocks):
// its free addresses may be offered and newly bound from now on.
func (a *Allocator) Own(first netip.Addr) {
	a.setOwned(first, true)
}

// Disown gives the block starting at first up: its free addresses are no
// longer offered, and offers outstanding in it are withdrawn (their
// REQUEST would find the block gone).
func (a *Allocator) Disown(first netip.Addr) {
	a.setOwned(first, false)
}

func (a *Allocator) setOwned(first netip.Addr, on bool) {
	if !a.blocks || !first.Unmap().Is4() {
		return
	}
	b := blockOf(v4(first))
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, had := a.owned[b]; had == on {
		return
	}
	if on {
		a.owned[b] = struct{}{}
	} else {
		delete(a.owned, b)
	}
	hi := b + BlockSize - 1
	for _, rs := range a.ranges {
		if rs.end >= b && rs.start <= hi {
			rs.setOwned(b, hi, on)
		}
	}
	for ip := b; ; ip++ {
		if e := a.byIP[ip]; e != nil {
			if !on && e.offerTo != "" {
				a.dropOffer(e) // reindexes
			} else {
				a.reindex(e)
			}
		}
		if ip == hi {
			break
		}
	}
}

// BlockFree is an owned block, the pool it is listed under (PoolBlocks),
// and how many of its addresses are free now.
type BlockFree struct {
	First netip.Addr
	Pool  int
	Free  int
}

// OwnedBlocks returns every owned block with its free addresses (never
// used, or no longer held by anyone, and not offered), in address order.
func (a *Allocator) OwnedBlocks() []BlockFree {
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.now().UnixNano()
	out := make([]BlockFree, 0, len(a.owned))
	for b := range a.owned {
		free, pool := 0, -1
		for i := range uint32(BlockSize) {
			ip := b + i
			rs := a.rangeOf(ip)
			if rs == nil {
				continue
			}
			if pool < 0 {
				pool = rs.pool
			}
			if _, r := a.reserved[ip]; r {
				continue
			}
			e := a.byIP[ip]
			if e == nil || a.available(e, "", now) {
				free++
			}
		}
		out = append(out, BlockFree{First: addr(b), Pool: max(pool, 0), Free: free})
	}
	slices.SortFunc(out, func(x, y BlockFree) int { return x.First.Compare(y.First) })
	return out
}

// short tells the owner of the blocks that an offer found nothing free in
// them. a.mu is held; OnShort must not block.
func (a *Allocator) short() {
	if a.blocks && a.onShort != nil {
		a.onShort()
	}
}

// Apply brings a record another server wrote (seen on a shared Store's
// watch) into memory. A record no newer than the one held (by Rev) is
// ignored: it is this server's own write, or stale. While a write of this
// server to the address is queued, the record waits: that write will fail
// its revision check, and the record is applied once it has.
func (a *Allocator) Apply(l Lease) {
	if !l.IP.Unmap().Is4() || !l.State.Persistent() || l.Rev == 0 {
		return
	}
	u := v4(l.IP)
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.closed {
		return
	}
	e := a.byIP[u]
	if e == nil {
		e = a.newEntry(u)
	}
	if l.Rev <= e.rev {
		return
	}
	if e.back != nil {
		if r, ok := a.remote[u]; !ok || r.Rev < l.Rev {
			a.remote[u] = l
		}
		return
	}
	a.applyRemote(e, l, a.now().UnixNano())
}

// applyRemote makes l, written elsewhere, e's record. a.mu is held.
func (a *Allocator) applyRemote(e *entry, l Lease, now int64) {
	l.IP, l.Claim = addr(e.ip), false
	e.rev = l.Rev
	a.setCur(e, true, l)
	if e.offerTo != "" && a.held(e, e.offerTo, now) != "" {
		a.dropOffer(e) // reindexes
		return
	}
	a.reindex(e)
}

// Withdraw drops client's outstanding offer, if any: it chose another
// server's (a REQUEST naming another server id).
func (a *Allocator) Withdraw(client ClientKey) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if e := a.offers[client]; e != nil {
		a.dropOffer(e)
	}
}

// Answers reports whether this server answers the client with hardware
// address hw, trying for secs seconds, that comes via a subnet it is
// attached to or a relay (its address as a /32) (Options.Balance; always
// true without one).
func (a *Allocator) Answers(hw []byte, secs uint16, via netip.Prefix) bool {
	return a.balance == nil || a.balance(hw, secs, via)
}
