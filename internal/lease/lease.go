// Package lease is the DHCP server's lease database: the types a lease is
// made of, the small persistence contract a backend satisfies (Store), and
// the Allocator, the one place where addresses are chosen.
//
// The DHCP server never picks an address itself. For a DISCOVER it asks
// Allocator.Offer, which holds the chosen address in memory for a short
// time (offers are not persisted, as in ISC dhcpd). For a REQUEST it calls
// Allocator.Commit, which checks the address synchronously (so the server
// can NAK at once), updates memory, and queues the lease for a single
// committer goroutine. That goroutine writes every queued lease in one
// Store.Put (for bbolt: one fsynced transaction) while the next batch
// accumulates; the callback given to Commit runs once the batch holding the
// lease is durable, and that is when the server may send its ACK.
//
// Decisions are made on an in-memory index: leases by address and by
// client, and per range a bitmap of addresses that never held a lease plus a
// heap of the others ordered by the time each becomes (or became) free. An
// offer costs amortised O(1) (O(log n) when it reuses an old address),
// whatever the size of the pool.
//
// Expiry is computed lazily: a Bound lease whose Expiry has passed is
// reported as Expired and its address may be reused, preferably last (the
// least recently freed address goes first) so that a returning client
// usually gets its old address back. Records are kept as history until
// their address is reused.
//
// Backends: package pxed/internal/lease/bolt (embedded bbolt file, the
// default) and pxed/internal/lease/leasetest (in memory, with fault
// injection, for tests). A shared backend (etcd) can implement Store with
// compare-and-swap on Lease.Rev.
package lease

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// Errors returned by the Allocator and by Store implementations. Match them
// with errors.Is: they are usually wrapped.
var (
	// ErrExhausted: no address is free for the request in its pools.
	ErrExhausted = errors.New("lease: no free address in the pools")
	// ErrUnavailable: the address cannot be given to this client (outside
	// its pools, reserved, held by another client, or quarantined). The
	// server NAKs the request.
	ErrUnavailable = errors.New("lease: address not available to this client")
	// ErrNotHeld: Release or Decline named an address the client does not
	// hold.
	ErrNotHeld = errors.New("lease: address not held by this client")
	// ErrConflict: Store.Put found a record whose revision is not the one
	// the caller saw (another writer changed it). Nothing was written.
	ErrConflict = errors.New("lease: revision conflict")
	// ErrClosed: the Allocator has been closed.
	ErrClosed = errors.New("lease: allocator closed")
	// ErrUnknownPool: a Request named a *Pool that was not in
	// Options.Pools.
	ErrUnknownPool = errors.New("lease: pool not registered with the allocator")
	// ErrNotOwner: with Options.Blocks, a new binding of an address in a
	// block this server does not own. Another server may give it; this one
	// stays silent rather than NAK.
	ErrNotOwner = errors.New("lease: address in a block this server does not own")
)

// ConflictError is the error a shared Store's Put returns when some
// leases of a batch could not be written because another writer got there
// first (a revision changed) or this server no longer owns the block of a
// Claim. Nothing of the batch was written; the Allocator writes the others
// again without them. It wraps ErrConflict.
type ConflictError struct {
	IPs []netip.Addr
}

func (e *ConflictError) Error() string {
	if len(e.IPs) == 0 {
		return ErrConflict.Error()
	}
	return fmt.Sprintf("lease: revision conflict on %d address(es), first %v", len(e.IPs), e.IPs[0])
}

// Unwrap makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Unwrap() error { return ErrConflict }

// ClientKey identifies a DHCP client: "id:" followed by the hex of its client
// identifier (option 61) when it sends one, else "hw:" followed by its
// hardware address in lower-case colon hex. Build it with Key.
type ClientKey string

// Key returns the ClientKey for a client that sent clientID as option 61
// (nil or empty if it sent none) from hardware address mac.
func Key(clientID []byte, mac net.HardwareAddr) ClientKey {
	if len(clientID) > 0 {
		return ClientKey("id:" + hex.EncodeToString(clientID))
	}
	return ClientKey("hw:" + mac.String())
}

// State is where a lease is in its life.
type State uint8

// The states of a lease. The zero State is invalid.
const (
	// Offered: held in memory for a client that was sent an OFFER; never
	// persisted. Expiry is the end of the hold.
	Offered State = iota + 1
	// Bound: the client holds the address until Expiry (zero: forever).
	Bound
	// Released: the client gave the address back at Expiry.
	Released
	// Expired: a Bound lease whose Expiry has passed. Never stored: it is
	// computed when a lease is reported.
	Expired
	// Declined: the client reported the address in use (DHCPDECLINE); it is
	// quarantined until Expiry.
	Declined
	// Abandoned: the server found the address in use (ping check); it is
	// quarantined until Expiry.
	Abandoned
)

// String returns the state's lower-case name, as ISC's binding states.
func (s State) String() string {
	switch s {
	case Offered:
		return "offered"
	case Bound:
		return "bound"
	case Released:
		return "released"
	case Expired:
		return "expired"
	case Declined:
		return "declined"
	case Abandoned:
		return "abandoned"
	}
	return "State(" + strconv.Itoa(int(s)) + ")"
}

// Persistent reports whether records in state s may be stored: Bound,
// Released, Declined and Abandoned.
func (s State) Persistent() bool {
	switch s {
	case Bound, Released, Declined, Abandoned:
		return true
	}
	return false
}

// Lease is one address's record.
type Lease struct {
	// IP is the leased IPv4 address.
	IP netip.Addr
	// Client holds (or last held) the address. Empty for Abandoned.
	Client ClientKey
	// MAC is the client's hardware address (chaddr).
	MAC net.HardwareAddr
	// Hostname is the client's host name (option 12), as sent.
	Hostname string
	// UUID is the client machine identifier (option 97) in hex, as sent.
	UUID string
	// State is the lease's state.
	State State
	// Start is when the binding was last granted or renewed; for Declined
	// and Abandoned, when the quarantine began.
	Start time.Time
	// Expiry is when the state ends: the end of the binding (zero: never,
	// as for BOOTP), the time of release, or the end of a quarantine.
	Expiry time.Time
	// Rev is the store revision of the record (0: not stored). Store.Put
	// uses it for compare-and-swap.
	Rev uint64
	// Claim marks, in a batch given to Store.Put, a write that binds the
	// address to a client that did not hold it (a new binding) under
	// Options.Blocks: a shared Store writes it only while this server
	// still owns the address's block. Not stored.
	Claim bool
}

// Store is the persistence contract: small on purpose, so that a shared
// backend (etcd, several pxed on one network) can satisfy it.
//
// Implementations must be safe for use by one goroutine at a time; the
// Allocator calls Put from its committer goroutine only, and Load before
// that starts.
type Store interface {
	// Load returns every stored record, in any order.
	Load(ctx context.Context) ([]Lease, error)
	// Put makes every lease in batch durable, all or none, and returns the
	// leases with their new Rev, in batch order. Each lease's Rev is the revision the
	// caller last saw (0: the record must not exist); a mismatch fails the
	// whole batch with an error wrapping ErrConflict. A single-writer
	// backend (bolt) may skip the check. A batch holds at most one lease
	// per address and only Persistent states. A shared backend may refuse
	// a batch larger than its bound (etcd: 64; Options.MaxBatch).
	Put(ctx context.Context, batch []Lease) ([]Lease, error)
	// Close releases the store.
	Close() error
}

// Range is a span of dynamic addresses, Start to End inclusive (IPv4).
type Range struct {
	Start, End netip.Addr
	// BOOTP marks an ISC `range dynamic-bootp`: BOOTP clients may get an
	// address (with an infinite lease) only from such ranges; DHCP clients
	// may use them too.
	BOOTP bool
}

// Pool is a set of ranges a client may be given an address from: the server
// builds one per subnet (or per ISC pool) once at startup and registers them
// all in Options.Pools. Ranges must not overlap, within a pool or across
// pools, and must not change once the Allocator exists.
type Pool struct {
	Ranges []Range
}

// Request describes the client an address is sought or committed for.
type Request struct {
	// Client is the client's key (see Key).
	Client ClientKey
	// MAC, Hostname and UUID are recorded in the lease.
	MAC      net.HardwareAddr
	Hostname string
	UUID     string
	// Pools are where this client may get a dynamic address (the pools of
	// its subnet that allow it). Each must be in Options.Pools.
	Pools []*Pool
	// BOOTP: only BOOTP ranges qualify and the lease is infinite.
	BOOTP bool
	// Want is the address the client asked for (option 50 or ciaddr), the
	// zero Addr if none. Offer honours it when it is free for the client.
	Want netip.Addr
	// TakeOffered: the client answers this server's OFFER (a SELECTING
	// REQUEST), so Commit gives it an address that nothing but an offer
	// to another client holds: its own offer may have been reclaimed
	// under pressure and made to someone who has not requested it.
	TakeOffered bool
}
