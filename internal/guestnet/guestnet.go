// Package guestnet gives a dom0 process the network identity of a guest
// that does not run yet: its MAC, the address its DHCP lease gave it, its
// router, on the guest's own bridge. A userspace TCP/IP stack (gVisor's
// netstack) runs over a packet socket on the bridge; it answers ARP for
// the leased address while it runs, and only then, and never speaks
// through dom0's own addresses or routes. pxed's Xen PV bootloader fetches
// the guest's kernel and initrds through it, so that the boot server sees
// the guest, as it would see a PXE ROM, even where dom0 has no address on
// that bridge.
//
// The packet socket is the one pxeclient.ListenPacket opened for DHCP: it
// receives only IPv4 and ARP frames sent to the guest's MAC or to
// broadcast, with the bridge in promiscuous mode so that unicast frames
// for the guest reach it. Frames the stack sends leave through the bridge
// device, as dom0's own would, but with the guest's MAC and address.
package guestnet

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	"gvisor.dev/gvisor/pkg/tcpip/link/ethernet"
	"gvisor.dev/gvisor/pkg/tcpip/network/arp"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"

	"pxed/internal/pxeclient"
)

// Config is the guest's identity and the socket it speaks through.
type Config struct {
	// Conn is the packet socket on the guest's bridge, opened for MAC.
	// Start duplicates it; the caller still closes its own.
	Conn *pxeclient.PacketConn
	// MAC is the guest's hardware address.
	MAC net.HardwareAddr
	// Addr is the leased address with the subnet's prefix length.
	Addr netip.Prefix
	// Router is the first router of the lease (option 3); invalid when
	// the lease names none (then only the subnet is reachable).
	Router netip.Addr
	// MTU is the link's MTU; 0 means 1500.
	MTU int
}

// nicID is the stack's only interface.
const nicID tcpip.NICID = 1

// Stack is a running guest identity. Close it when done: the bridge
// leaves promiscuous mode only when every copy of the socket is closed.
type Stack struct {
	cfg  Config
	s    *stack.Stack
	ep   *channel.Endpoint
	link *link

	wg   sync.WaitGroup
	once sync.Once
}

// Start brings the guest's identity up on cfg.Conn.
func Start(cfg Config) (*Stack, error) {
	switch {
	case len(cfg.MAC) != 6:
		return nil, fmt.Errorf("guestnet: %q is not an Ethernet address", cfg.MAC)
	case !cfg.Addr.IsValid() || !cfg.Addr.Addr().Is4():
		return nil, fmt.Errorf("guestnet: %v is not an IPv4 address with a prefix", cfg.Addr)
	case cfg.Router.IsValid() && !cfg.Router.Is4():
		return nil, fmt.Errorf("guestnet: router %v is not an IPv4 address", cfg.Router)
	}
	if cfg.MTU == 0 {
		cfg.MTU = 1500
	}
	if cfg.MTU < 576 || cfg.MTU > 65535-ethHeaderLen {
		return nil, fmt.Errorf("guestnet: MTU %d out of range", cfg.MTU)
	}
	if cfg.Conn == nil {
		return nil, errors.New("guestnet: no packet socket")
	}
	l, err := newLink(cfg.Conn.File(), cfg.Conn.Index())
	if err != nil {
		return nil, err
	}
	st := &Stack{cfg: cfg, link: l}
	st.s = stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol, arp.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol},
	})
	// Boot files are large: a receive window of up to 4 MiB keeps a
	// gigabit link busy across a few milliseconds of round trip.
	rcv := tcpip.TCPReceiveBufferSizeRangeOption{Min: 4 << 10, Default: 1 << 20, Max: 4 << 20}
	if err := st.s.SetTransportProtocolOption(tcp.ProtocolNumber, &rcv); err != nil {
		st.close()
		return nil, fmt.Errorf("guestnet: TCP receive buffer: %s", err)
	}
	// Checksums are checked (and filled in where the kernel left them to
	// the hardware) by the link before a frame reaches the stack.
	st.ep = channel.New(txQueueLen, uint32(cfg.MTU+ethHeaderLen), tcpip.LinkAddress(cfg.MAC))
	st.ep.LinkEPCapabilities = stack.CapabilityRXChecksumOffload
	if err := st.s.CreateNIC(nicID, ethernet.New(&txEndpoint{Endpoint: st.ep, l: l})); err != nil {
		st.close()
		return nil, fmt.Errorf("guestnet: %s", err)
	}
	addr := tcpip.AddrFrom4(cfg.Addr.Addr().As4())
	pa := tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber,
		AddressWithPrefix: tcpip.AddressWithPrefix{Address: addr, PrefixLen: cfg.Addr.Bits()}}
	if err := st.s.AddProtocolAddress(nicID, pa, stack.AddressProperties{}); err != nil {
		st.close()
		return nil, fmt.Errorf("guestnet: address %v: %s", cfg.Addr, err)
	}
	routes := []tcpip.Route{{Destination: pa.AddressWithPrefix.Subnet(), NIC: nicID}}
	if cfg.Router.IsValid() {
		routes = append(routes, tcpip.Route{Destination: anyIPv4(), Gateway: tcpip.AddrFrom4(cfg.Router.As4()), NIC: nicID})
	}
	st.s.SetRouteTable(routes)

	st.wg.Add(1)
	go func() { defer st.wg.Done(); l.receive(st.ep, cfg.MAC) }()
	return st, nil
}

// txQueueLen is the outbound queue of the channel endpoint, which
// txEndpoint never uses (it writes frames to the socket at once).
const txQueueLen = 1

// anyIPv4 is 0.0.0.0/0.
func anyIPv4() tcpip.Subnet {
	s, _ := tcpip.NewSubnet(tcpip.AddrFrom4([4]byte{}), tcpip.MaskFromBytes(make([]byte, 4)))
	return s
}

// DialContext connects over TCP as the guest ("tcp" or "tcp4" and an
// IPv4 literal with a port): an http.Transport's DialContext.
func (st *Stack) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if network != "tcp" && network != "tcp4" {
		return nil, fmt.Errorf("guestnet: dial %s: only tcp over IPv4", network)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil || !ap.Addr().Unmap().Is4() {
		return nil, fmt.Errorf("guestnet: dial %s: want an IPv4 address and port", address)
	}
	full := tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFrom4(ap.Addr().Unmap().As4()), Port: ap.Port()}
	c, err := gonet.DialContextTCP(ctx, st.s, full, ipv4.ProtocolNumber)
	if err != nil {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Addr: net.TCPAddrFromAddrPort(ap), Err: errors.New(err.Error())}
	}
	return c, nil
}

// ListenUDP opens a UDP socket of the guest's on an ephemeral port
// ("udp" or "udp4"): a tftp.Client's Listen.
func (st *Stack) ListenUDP(network string) (net.PacketConn, error) {
	if network != "udp" && network != "udp4" {
		return nil, fmt.Errorf("guestnet: listen %s: only udp over IPv4", network)
	}
	var wq waiter.Queue
	ep, terr := st.s.NewEndpoint(udp.ProtocolNumber, ipv4.ProtocolNumber, &wq)
	if terr != nil {
		return nil, fmt.Errorf("guestnet: UDP socket: %s", terr)
	}
	// Room for a whole TFTP window (64 blocks of 1468 bytes) and more.
	ep.SocketOptions().SetReceiveBufferSize(udpReceiveBuffer, true)
	local := tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFrom4(st.cfg.Addr.Addr().As4())}
	if terr := ep.Bind(local); terr != nil {
		ep.Close()
		return nil, fmt.Errorf("guestnet: UDP bind: %s", terr)
	}
	return gonet.NewUDPConn(&wq, ep), nil
}

// udpReceiveBuffer is a guest UDP socket's receive buffer.
const udpReceiveBuffer = 1 << 20

// Stats are the frames the guest's identity received (passed to the
// stack) and sent.
type Stats struct {
	Received, Sent, Dropped uint64
}

// Stats reports the link's counters.
func (st *Stack) Stats() Stats { return st.link.stats() }

// Close stops the stack: from then on nothing answers for the guest.
func (st *Stack) Close() error {
	st.once.Do(st.close)
	return nil
}

func (st *Stack) close() {
	st.link.close() // ends receive
	st.wg.Wait()
	st.s.Close()
	st.s.Wait()
}

// Resolver looks names up as the guest would: over the stack, at servers
// (the lease's option 6), in turn. With none every lookup fails, rather
// than asking dom0's name servers.
func (st *Stack) Resolver(servers []netip.Addr) *net.Resolver {
	var next atomic.Uint32
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, _ string) (net.Conn, error) {
		if len(servers) == 0 {
			return nil, errors.New("guestnet: the DHCP answer names no DNS server (option 6)")
		}
		srv := netip.AddrPortFrom(servers[int(next.Add(1)-1)%len(servers)].Unmap(), 53)
		switch network {
		case "udp", "udp4":
			local := tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFrom4(st.cfg.Addr.Addr().As4())}
			remote := tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFrom4(srv.Addr().As4()), Port: 53}
			return gonet.DialUDP(st.s, &local, &remote, ipv4.ProtocolNumber)
		case "tcp", "tcp4":
			return st.DialContext(ctx, "tcp", srv.String())
		}
		return nil, fmt.Errorf("guestnet: DNS over %s", network)
	}}
}
