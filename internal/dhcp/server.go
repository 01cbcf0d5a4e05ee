// Package dhcp is pxed's DHCPv4 server: RFC 2131 message handling over a
// compiled Plan (from an ISC dhcpd.conf or the native YAML), addresses from
// the lease.Allocator, replies delivered as RFC 2131 §4.1 says, PXE boot
// information per client architecture, and proxyDHCP.
package dhcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"pxed/internal/bootplan"
	"pxed/internal/dhcpnet"
	"pxed/internal/lease"
	"pxed/internal/lograte"
)

// Conn is one interface's sockets, as the server needs them. *dhcpnet.Conn
// implements it; tests use a fake.
type Conn interface {
	// ReadFrom reads one datagram; dst is the address it was sent to. A
	// datagram longer than b is cut to len(b) with an error wrapping
	// dhcpnet.ErrTruncated; the server drops it.
	ReadFrom(b []byte) (n int, src netip.AddrPort, dst netip.Addr, err error)
	// SendTo sends a UDP datagram through the routing table, out of this
	// interface (also for 255.255.255.255).
	SendTo(b []byte, dst netip.AddrPort) error
	// SendL2 sends a UDP datagram to a hardware address on this link, for a
	// client that has no IP address yet.
	SendL2(b []byte, dstMAC net.HardwareAddr, srcIP, dstIP netip.Addr, srcPort, dstPort uint16) error
	Close() error
}

// Port is one listening socket and the interface it serves.
type Port struct {
	Conn Conn
	// Name is the interface name, for logs.
	Name string
	// Addrs are the interface's IPv4 addresses with their prefixes; the
	// server picks the subnet of a directly attached client from them.
	Addrs []netip.Prefix
	// MTU bounds reply size (0: 1500).
	MTU int
	// PXE marks the proxyDHCP boot-server port (4011): replies go back to
	// the sender's address and port.
	PXE bool
}

// Pinger tells whether an address answers ICMP echo (ping-check).
type Pinger interface {
	InUse(ctx context.Context, a netip.Addr) bool
}

// View is what the server answers from: the compiled DHCP plan and the
// boot plan of one snapshot, read together for each request.
type View struct {
	Plan *Plan
	Boot *bootplan.Plan
}

// Server answers DHCP and BOOTP requests: each datagram is decided
// (Decide: no I/O) and then delivered (lease writes, sockets).
type Server struct {
	// View returns the snapshot in force; it is called once per request,
	// so a reload takes effect between two requests, never inside one.
	// nil: Plan, with a boot plan of its own (TFTPEnabled).
	View func() View
	// Plan is the configuration served when View is nil.
	Plan   *Plan
	Leases *lease.Allocator
	Logger *slog.Logger
	// Observer, when set, hears of each message (metrics).
	Observer Observer
	// TFTPEnabled (without View): when a scope has no next-server, use
	// this server's own address on the interface instead of 0.0.0.0.
	TFTPEnabled bool
	// Pinger, when set and the plan has ping-check, probes an address
	// before it is offered for the first time.
	Pinger Pinger

	warnOnce sync.Map // string -> struct{}
	fixed    atomic.Pointer[fixedView]
	drops    dropReport
	probing  atomic.Int32    // ping-checks in flight
	unprobed lograte.Limiter // offers sent unprobed, ping-check saturated
}

// fixedView is the View made for Plan and TFTPEnabled when View is nil.
type fixedView struct {
	View
	tftp bool
}

// Adopt makes p, a reloaded plan, serve in place of old: p takes old's
// lease pools, which the allocator knows. A plan that declares other
// subnets or pools is refused (restart pxed to change them).
func (p *Plan) Adopt(old *Plan) error { return p.adoptPools(old) }

// view is the snapshot in force.
func (s *Server) view() View {
	if s.View != nil {
		return s.View()
	}
	if v := s.fixed.Load(); v != nil && v.Plan == s.Plan && v.tftp == s.TFTPEnabled {
		return v.View
	}
	v := &fixedView{View{Plan: s.Plan, Boot: bootplan.New(bootplan.Options{TFTP: s.TFTPEnabled})}, s.TFTPEnabled}
	s.fixed.Store(v)
	return v.View
}

var discard = slog.New(slog.DiscardHandler)

func (s *Server) log() *slog.Logger {
	if s.Logger == nil {
		return discard
	}
	return s.Logger
}

// Serve reads from every port until ctx ends. The caller owns the conns and
// closes them after Serve returns; Serve closes them itself to unblock reads.
func (s *Server) Serve(ctx context.Context, ports []*Port) error {
	// One port failing stops them all: the caller decides what next.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	stop := context.AfterFunc(ctx, func() {
		for _, p := range ports {
			p.Conn.Close()
		}
	})
	defer stop()
	errs := make(chan error, len(ports))
	for _, p := range ports {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := s.serveLoop(ctx, p); err != nil {
				errs <- fmt.Errorf("%s: %w", p.Name, err)
				cancel()
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs // the first failure, or nil after ctx ended
}

// tryReader is a Conn that can also read without waiting (*dhcpnet.Conn).
type tryReader interface {
	TryReadFrom(b []byte) (n int, src netip.AddrPort, dst netip.Addr, ok bool, err error)
}

// flushEvery bounds how many requests are handled before their leases are
// written, when datagrams keep coming and the socket never drains.
const flushEvery = 256

// serveLoop reads and answers one port's datagrams. It is also where leases
// are written (the allocator runs with CallerCommits): whenever the socket
// is drained, everything the answered requests queued is written in one
// transaction, and their ACKs leave from here. Under load the goroutine
// never sleeps, which on a VM saves much of the CPU a DHCP exchange would
// cost in thread wakeups; when idle it waits in the poller like any reader.
func (s *Server) serveLoop(ctx context.Context, p *Port) error {
	// A datagram longer than MaxMessageLen is cut by the read (and
	// dropped): the kernel copies no more than the buffer holds.
	buf := make([]byte, MaxMessageLen)
	try, _ := p.Conn.(tryReader)
	handled := 0
	for {
		var (
			n   int
			src netip.AddrPort
			dst netip.Addr
			ok  bool
			err error
		)
		if try != nil {
			n, src, dst, ok, err = try.TryReadFrom(buf)
		}
		if err == nil && !ok {
			if s.Leases.Pending() {
				s.Leases.Flush()
				continue
			}
			n, src, dst, err = p.Conn.ReadFrom(buf)
		}
		if errors.Is(err, dhcpnet.ErrTruncated) {
			s.drop(p, src, true, err)
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			return err
		}
		s.Handle(ctx, p, buf[:n], src, dst)
		if handled++; handled%flushEvery == 0 && s.Leases.Pending() {
			s.Leases.Flush()
		}
	}
}
