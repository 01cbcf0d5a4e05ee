// Package leasetest has an in-memory lease.Store with fault injection, and
// Conformance, the checks every lease.Store must pass.
package leasetest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sync"

	"pxed/internal/lease"
)

// Store is an in-memory lease.Store. It checks revisions as a shared backend
// would (lease.ErrConflict), rejects batches that break the Store contract
// (two records for one address, a state that is not persistent), and can be
// made to fail or to block. Its zero value is not usable: call New.
type Store struct {
	mu      sync.Mutex
	recs    map[netip.Addr]lease.Lease
	rev     uint64
	failErr error
	failN   int // Puts left to fail; <0: all
	gate    chan struct{}
	blocked chan []lease.Lease
	puts    int
	closed  bool
}

var _ lease.Store = (*Store)(nil)

// ErrInjected is the error FailPuts uses when given nil.
var ErrInjected = errors.New("leasetest: injected write failure")

// New returns a Store holding leases (each given revision 1).
func New(leases ...lease.Lease) *Store {
	s := &Store{recs: make(map[netip.Addr]lease.Lease)}
	if len(leases) > 0 {
		s.rev = 1
	}
	for _, l := range leases {
		l.Rev = 1
		s.recs[l.IP] = l
	}
	return s
}

// FailPuts makes the next n calls of Put fail with err (ErrInjected if nil),
// writing nothing; n < 0 makes every call fail until FailPuts(nil, 0).
func (s *Store) FailPuts(err error, n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err == nil {
		err = ErrInjected
	}
	s.failErr, s.failN = err, n
}

// Hold makes Put block (before it writes anything) until release is
// called. Each blocked Put sends its batch on blocked (buffered; dropped if
// full).
func (s *Store) Hold() (blocked <-chan []lease.Lease, release func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	gate := make(chan struct{})
	s.gate = gate
	s.blocked = make(chan []lease.Lease, 64)
	var once sync.Once
	return s.blocked, func() {
		once.Do(func() {
			s.mu.Lock()
			if s.gate == gate {
				s.gate = nil
			}
			s.mu.Unlock()
			close(gate)
		})
	}
}

// Puts returns the number of successful Put calls.
func (s *Store) Puts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.puts
}

// Records returns the stored leases sorted by address.
func (s *Store) Records() []lease.Lease {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]lease.Lease, 0, len(s.recs))
	for _, l := range s.recs {
		out = append(out, l)
	}
	slices.SortFunc(out, func(x, y lease.Lease) int { return x.IP.Compare(y.IP) })
	return out
}

// Load implements lease.Store.
func (s *Store) Load(ctx context.Context) ([]lease.Lease, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return s.Records(), nil
}

// Put implements lease.Store: all or nothing, with compare-and-swap on Rev;
// a conflict is a *lease.ConflictError naming every stale record, as a
// shared store reports it.
func (s *Store) Put(ctx context.Context, batch []lease.Lease) ([]lease.Lease, error) {
	s.mu.Lock()
	gate, blocked := s.gate, s.blocked
	s.mu.Unlock()
	if gate != nil {
		select {
		case blocked <- slices.Clone(batch):
		default:
		}
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("leasetest: store closed")
	}
	if s.failN != 0 {
		if s.failN > 0 {
			s.failN--
		}
		return nil, s.failErr
	}
	seen := make(map[netip.Addr]bool, len(batch))
	var conflicts []netip.Addr
	for _, l := range batch {
		if !l.IP.Is4() {
			return nil, fmt.Errorf("leasetest: %v is not IPv4", l.IP)
		}
		if seen[l.IP] {
			return nil, fmt.Errorf("leasetest: %v twice in one batch", l.IP)
		}
		seen[l.IP] = true
		if !l.State.Persistent() {
			return nil, fmt.Errorf("leasetest: %v: state %v cannot be stored", l.IP, l.State)
		}
		if have := s.recs[l.IP].Rev; have != l.Rev {
			conflicts = append(conflicts, l.IP)
		}
	}
	if len(conflicts) > 0 {
		return nil, &lease.ConflictError{IPs: conflicts}
	}
	s.rev++
	out := make([]lease.Lease, len(batch))
	for i, l := range batch {
		l.Rev = s.rev
		l.MAC = slices.Clone(l.MAC)
		s.recs[l.IP] = l
		out[i] = l
	}
	s.puts++
	return out, nil
}

// Close implements lease.Store; later Puts fail.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}
