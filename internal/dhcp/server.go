// Package dhcp is pxed's DHCPv4 server: RFC 2131 message handling over a
// compiled Plan (from an ISC dhcpd.conf or the native YAML), addresses from
// the lease.Allocator, replies delivered as RFC 2131 §4.1 says, PXE boot
// information per client architecture, and proxyDHCP.
package dhcp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"pxed/internal/lease"
)

// Conn is one interface's sockets, as the server needs them. *dhcpnet.Conn
// implements it; tests use a fake.
type Conn interface {
	// ReadFrom reads one datagram; dst is the address it was sent to.
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

// Server answers DHCP and BOOTP requests.
type Server struct {
	// Plan is the configuration served until SetPlan replaces it.
	Plan   *Plan
	Leases *lease.Allocator
	Logger *slog.Logger
	// TFTPEnabled: when a scope has no next-server, use this server's own
	// address on the interface (with a warning) instead of 0.0.0.0.
	TFTPEnabled bool
	// Pinger, when set and the plan has ping-check, probes an address
	// before it is offered for the first time.
	Pinger Pinger

	warnOnce sync.Map // string -> struct{}
	cur      atomic.Pointer[Plan]
}

// SetPlan serves p from the next request on (a configuration reload): new,
// changed and removed hosts take effect, and p's fixed addresses become
// the allocator's reserved set. p must declare the same subnets and pools
// as the plan it replaces (the allocator's pools are fixed), or SetPlan
// returns an error and changes nothing.
func (s *Server) SetPlan(p *Plan) error {
	if err := p.adoptPools(s.plan()); err != nil {
		return err
	}
	if err := s.Leases.SetReserved(p.Reserved); err != nil {
		return err
	}
	s.cur.Store(p)
	return nil
}

// plan is the plan in force.
func (s *Server) plan() *Plan {
	if p := s.cur.Load(); p != nil {
		return p
	}
	return s.Plan
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
	buf := make([]byte, 65536)
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

// Handle processes one datagram that arrived on port.
func (s *Server) Handle(ctx context.Context, port *Port, b []byte, src netip.AddrPort, dst netip.Addr) {
	p, err := Parse(b)
	if err != nil {
		s.log().Debug("dhcp: dropped malformed packet", "iface", port.Name, "from", src.String(), "error", err)
		return
	}
	if p.Op != opRequest {
		return
	}
	if p.HType == 1 && p.HLen != 6 {
		s.log().Debug("dhcp: dropped packet with an Ethernet hardware type and hlen != 6", "iface", port.Name, "from", src.String(), "hlen", p.HLen)
		return
	}
	f := factsOf(p)
	plan := s.plan()
	sn, serverIP := s.subnetOf(plan, port, p)
	if sn == nil {
		s.warnFirst("nosubnet:"+port.Name+":"+strconv.FormatBool(p.GIAddr.IsValid() && !p.GIAddr.IsUnspecified()), "dhcp: no subnet declaration for this request; add a subnet for the interface's network (or the relay's giaddr)",
			"iface", port.Name, "addrs", port.Addrs, "giaddr", p.GIAddr.String(), "mac", f.mac)
		return
	}
	x := &exchange{s: s, plan: plan, port: port, p: p, f: f, sn: sn, serverIP: serverIP, src: src, dst: dst}
	if plan.Proxy {
		x.proxy()
		return
	}
	switch t := p.Type(); t {
	case 0:
		if p.Options[optMessageType] != nil {
			return // option 53 with a bad length
		}
		x.bootp()
	case msgDiscover:
		x.discover()
	case msgRequest:
		x.request()
	case msgDecline:
		x.decline()
	case msgRelease:
		x.release()
	case msgInform:
		x.inform()
	default:
		s.log().Debug("dhcp: ignored message", "type", msgName(t), "mac", f.mac, "iface", port.Name)
	}
}

// subnetOf picks the subnet a request belongs to (RFC 2131 §4.3.1): the
// relay's giaddr, else the client's ciaddr if it is on this interface, else
// the interface's own network. serverIP is our address to answer from.
func (s *Server) subnetOf(plan *Plan, port *Port, p *Packet) (*subnet, netip.Addr) {
	own := func(sn *subnet) netip.Addr {
		for _, a := range port.Addrs {
			if sn.prefix.Contains(a.Addr()) {
				return a.Addr()
			}
		}
		if len(port.Addrs) > 0 {
			return port.Addrs[0].Addr()
		}
		return netip.Addr{}
	}
	if p.GIAddr.IsValid() && !p.GIAddr.IsUnspecified() {
		if sn := plan.subnetFor(p.GIAddr); sn != nil {
			return sn, own(sn)
		}
		return nil, netip.Addr{}
	}
	if p.CIAddr.IsValid() && !p.CIAddr.IsUnspecified() {
		if sn := plan.subnetFor(p.CIAddr); sn != nil && own(sn).IsValid() && onLink(port, sn) {
			return sn, own(sn)
		}
	}
	for _, a := range port.Addrs {
		if sn := plan.subnetFor(a.Addr()); sn != nil {
			return sn, a.Addr()
		}
	}
	return nil, netip.Addr{}
}

func onLink(port *Port, sn *subnet) bool {
	for _, a := range port.Addrs {
		if sn.prefix.Contains(a.Addr()) {
			return true
		}
	}
	return false
}

func (s *Server) warnFirst(key, msg string, args ...any) {
	if _, loaded := s.warnOnce.LoadOrStore(key, struct{}{}); !loaded {
		s.log().Warn(msg, args...)
	}
}

// exchange is one request being answered.
type exchange struct {
	s        *Server
	plan     *Plan
	port     *Port
	p        *Packet
	f        facts
	sn       *subnet
	serverIP netip.Addr
	src      netip.AddrPort
	dst      netip.Addr
}

// logAt logs about this client (every line names its MAC) without any cost
// when the level is off: the hot path logs OFFERs at debug.
func (x *exchange) logAt(level slog.Level, msg string, args ...any) {
	if !x.s.log().Enabled(context.Background(), level) {
		return
	}
	x.s.log().Log(context.Background(), level, msg, append([]any{"mac", x.f.mac, "iface", x.port.Name}, args...)...)
}

func (x *exchange) leaseRequest(want netip.Addr, bootp bool) lease.Request {
	return lease.Request{
		Client:   x.f.key,
		MAC:      x.f.hw,
		Hostname: x.f.hostname,
		UUID:     x.f.uuid,
		Pools:    x.sn.leasePool,
		BOOTP:    bootp,
		Want:     want,
	}
}

// fixed returns the client's host declaration and its fixed address on this
// subnet, if it has one.
func (x *exchange) fixed() (*host, netip.Addr) {
	h := x.plan.findHost(x.f.clientID, x.f.mac, x.sn)
	if h == nil {
		return nil, netip.Addr{}
	}
	for _, a := range h.fixed {
		if x.sn.prefix.Contains(a) {
			return h, a
		}
	}
	return h, netip.Addr{}
}

// scopeFor is the effective scope for a client holding address a.
func (x *exchange) scopeFor(h *host, a netip.Addr) *scope {
	if h != nil {
		return x.plan.hostScope(h, x.sn)
	}
	if pl := x.sn.poolOf(a); pl != nil {
		return pl.scope
	}
	return x.sn.scope
}

// leaseTime is what the client asked for (option 51), bounded by the
// scope's max-lease-time, or the scope's default-lease-time.
func (x *exchange) leaseTime(sc *scope) time.Duration {
	if v := x.p.Options[optLeaseTime]; len(v) == 4 {
		want := time.Duration(binary.BigEndian.Uint32(v)) * time.Second
		if want > 0 && want < sc.maxLease {
			return want
		}
		return sc.maxLease
	}
	return sc.defLease
}

func (x *exchange) discover() {
	h, fixed := x.fixed()
	var ip netip.Addr
	if fixed.IsValid() {
		ip = fixed
	} else {
		if h != nil && !x.plan.hostScope(h, x.sn).allowBooting {
			return
		}
		var err error
		ip, err = x.s.Leases.Offer(x.leaseRequest(x.p.Addr(optRequestedIP), false))
		if err != nil {
			x.s.warnFirst("exhausted:"+x.sn.prefix.String(), "dhcp: cannot offer an address", "subnet", x.sn.prefix.String(), "mac", x.f.mac, "error", err)
			return
		}
		held, bound := x.s.Leases.Lookup(x.f.key)
		if x.plan.PingCheck && x.s.Pinger != nil && !(bound && held.IP == ip) {
			// Probe only an address the client does not hold already: its
			// own address answering ping is no conflict.
			go x.pingThenOffer(h, ip)
			return
		}
	}
	x.offer(h, ip)
}

func (x *exchange) pingThenOffer(h *host, ip netip.Addr) {
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		inUse := x.s.Pinger.InUse(ctx, ip)
		cancel()
		if !inUse {
			x.offer(h, ip)
			return
		}
		x.logAt(slog.LevelWarn, "dhcp: ping-check: address answers ping; abandoned (quarantined) and another one tried", "ip", ip.String())
		if err := x.s.Leases.Abandon(ip, time.Time{}); err != nil {
			x.logAt(slog.LevelError, "dhcp: abandon", "ip", ip.String(), "error", err)
			return
		}
		var err error
		if ip, err = x.s.Leases.Offer(x.leaseRequest(netip.Addr{}, false)); err != nil {
			x.logAt(slog.LevelWarn, "dhcp: cannot offer an address", "subnet", x.sn.prefix.String(), "error", err)
			return
		}
	}
}

func (x *exchange) offer(h *host, ip netip.Addr) {
	sc := x.scopeFor(h, ip)
	if !sc.allowBooting {
		return
	}
	r := x.newReply(msgOffer)
	r.YIAddr = ip
	x.fill(r, sc, x.leaseTime(sc))
	if x.s.log().Enabled(context.Background(), slog.LevelDebug) {
		x.logAt(slog.LevelDebug, "dhcp: OFFER", "ip", ip.String(), "xid", x.p.XID)
	}
	x.send(r, msgOffer)
}

func (x *exchange) request() {
	sid, want, ci := x.p.Addr(optServerID), x.p.Addr(optRequestedIP), x.p.CIAddr
	var ip netip.Addr
	state := ""
	switch {
	case sid.IsValid():
		if !x.ours(sid) {
			// The client chose another server's offer; ours lapses.
			x.logAt(slog.LevelDebug, "dhcp: REQUEST for another server", "server-id", sid.String())
			return
		}
		ip, state = want, "selecting"
		if !ip.IsValid() {
			ip = ci
		}
	case want.IsValid():
		ip, state = want, "init-reboot"
	case ci.IsValid() && !ci.IsUnspecified():
		ip, state = ci, "renewing"
		if x.dst == broadcastAddr {
			state = "rebinding"
		}
	default:
		x.logAt(slog.LevelDebug, "dhcp: REQUEST without server-id, requested address or ciaddr: dropped")
		return
	}
	if !ip.IsValid() || ip.IsUnspecified() {
		return
	}
	if !x.sn.prefix.Contains(ip) {
		x.nak(ip, "address is not on this network ("+x.sn.prefix.String()+")")
		return
	}
	h, fixed := x.fixed()
	if fixed.IsValid() {
		if ip != fixed {
			x.nak(ip, "host "+h.name+" has fixed-address "+fixed.String())
			return
		}
		sc := x.scopeFor(h, ip)
		if !sc.allowBooting {
			return
		}
		x.ack(h, ip, sc, x.leaseTime(sc), state)
		return
	}
	sc := x.scopeFor(h, ip)
	if !sc.allowBooting {
		return
	}
	lt := x.leaseTime(sc)
	req := x.leaseRequest(ip, false)
	err := x.s.Leases.Commit(req, ip, lt, func(l lease.Lease, err error) {
		if err != nil {
			// No reply: the client retries, and nothing unrecorded was promised.
			x.logAt(slog.LevelError, "dhcp: lease not stored; no ACK sent", "ip", ip.String(), "error", err)
			return
		}
		x.ack(h, ip, sc, lt, state)
	})
	switch {
	case errors.Is(err, lease.ErrUnavailable):
		x.nak(ip, err.Error())
	case err != nil:
		x.logAt(slog.LevelWarn, "dhcp: REQUEST not answered", "ip", ip.String(), "error", err)
	}
}

// ours reports whether a is one of this server's addresses on the port.
func (x *exchange) ours(a netip.Addr) bool {
	if a == x.serverIP {
		return true
	}
	for _, p := range x.port.Addrs {
		if p.Addr() == a {
			return true
		}
	}
	return false
}

func (x *exchange) ack(h *host, ip netip.Addr, sc *scope, lt time.Duration, state string) {
	r := x.newReply(msgAck)
	r.YIAddr = ip
	r.CIAddr = x.p.CIAddr
	x.fill(r, sc, lt)
	if x.s.log().Enabled(context.Background(), slog.LevelInfo) {
		args := []any{"ip", ip.String(), "state", state, "lease", lt.String()}
		if h != nil {
			args = append(args, "host", h.name)
		}
		if r.File != "" || r.has(optBootfile) {
			args = append(args, "next-server", r.SIAddr.String(), "file", bootName(r))
		}
		x.logAt(slog.LevelInfo, "dhcp: ACK", args...)
	}
	x.send(r, msgAck)
}

func bootName(r *reply) string {
	for _, o := range r.opts {
		if o.code == optBootfile {
			return string(o.data)
		}
	}
	return r.File
}

func (x *exchange) nak(ip netip.Addr, why string) {
	if !x.plan.Authoritative {
		x.logAt(slog.LevelInfo, "dhcp: not authoritative, so no NAK", "ip", ip.String(), "reason", why)
		return
	}
	r := x.newReply(msgNak)
	r.set(optMessage, []byte(why))
	x.logAt(slog.LevelInfo, "dhcp: NAK", "ip", ip.String(), "reason", why)
	x.send(r, msgNak)
}

func (x *exchange) decline() {
	if sid := x.p.Addr(optServerID); sid.IsValid() && !x.ours(sid) {
		return
	}
	ip := x.p.Addr(optRequestedIP)
	if !ip.IsValid() {
		return
	}
	if err := x.s.Leases.Decline(x.f.key, ip); err != nil {
		x.logAt(slog.LevelInfo, "dhcp: DECLINE ignored", "ip", ip.String(), "error", err)
		return
	}
	x.logAt(slog.LevelWarn, "dhcp: DECLINE: the client found the address in use; quarantined", "ip", ip.String())
}

func (x *exchange) release() {
	if sid := x.p.Addr(optServerID); sid.IsValid() && !x.ours(sid) {
		return
	}
	ip := x.p.CIAddr
	if err := x.s.Leases.Release(x.f.key, ip); err != nil {
		x.logAt(slog.LevelInfo, "dhcp: RELEASE ignored", "ip", ip.String(), "error", err)
		return
	}
	x.logAt(slog.LevelInfo, "dhcp: RELEASE", "ip", ip.String())
}

func (x *exchange) inform() {
	ci := x.p.CIAddr
	if !ci.IsValid() || ci.IsUnspecified() {
		ci = x.src.Addr()
	}
	h, _ := x.fixed()
	sc := x.scopeFor(h, ci)
	r := x.newReply(msgAck)
	r.CIAddr = x.p.CIAddr
	x.fill(r, sc, 0)
	x.logAt(slog.LevelInfo, "dhcp: ACK (INFORM)", "ciaddr", ci.String())
	x.send(r, msgInform)
}

func (x *exchange) bootp() {
	h, fixed := x.fixed()
	if fixed.IsValid() {
		sc := x.scopeFor(h, fixed)
		if !sc.allowBootp || !sc.allowBooting {
			x.logAt(slog.LevelDebug, "dhcp: BOOTP request refused (deny bootp)")
			return
		}
		x.bootpReply(h, fixed, sc)
		return
	}
	if !x.sn.scope.allowBootp {
		x.logAt(slog.LevelDebug, "dhcp: BOOTP request refused (deny bootp)")
		return
	}
	req := x.leaseRequest(netip.Addr{}, true)
	ip, err := x.s.Leases.Offer(req)
	if err != nil {
		x.s.warnFirst("bootp-exhausted:"+x.sn.prefix.String(), "dhcp: no dynamic-bootp address for a BOOTP client", "subnet", x.sn.prefix.String(), "mac", x.f.mac, "error", err)
		return
	}
	sc := x.scopeFor(h, ip)
	if !sc.allowBootp || !sc.allowBooting {
		return
	}
	if err := x.s.Leases.Commit(req, ip, 0, func(_ lease.Lease, err error) {
		if err != nil {
			x.logAt(slog.LevelError, "dhcp: BOOTP lease not stored; no reply sent", "ip", ip.String(), "error", err)
			return
		}
		x.bootpReply(h, ip, sc)
	}); err != nil {
		x.logAt(slog.LevelInfo, "dhcp: BOOTP address refused", "ip", ip.String(), "error", err)
	}
}

func (x *exchange) bootpReply(h *host, ip netip.Addr, sc *scope) {
	r := x.newReply(0)
	r.YIAddr = ip
	r.bootp = x.p.Options == nil
	x.fill(r, sc, 0)
	args := []any{"ip", ip.String()}
	if h != nil {
		args = append(args, "host", h.name)
	}
	x.logAt(slog.LevelInfo, "dhcp: BOOTREPLY", append(args, "next-server", r.SIAddr.String(), "file", r.File)...)
	x.send(r, 0)
}

// newReply starts a reply of message type t (0: BOOTP).
func (x *exchange) newReply(t uint8) *reply {
	r := replyPool.Get().(*reply)
	*r = reply{Packet: Packet{
		Op: opReply, HType: x.p.HType, HLen: x.p.HLen, XID: x.p.XID,
		Flags: x.p.Flags, GIAddr: x.p.GIAddr, CHAddr: x.p.CHAddr,
	}}
	r.opts = r.optsBuf[:0]
	if t != 0 {
		r.set(optMessageType, []byte{t})
		if x.serverIP.IsValid() {
			a := x.serverIP.As4()
			r.set(optServerID, a[:])
		}
	}
	return r
}

// fill puts the scope's parameters, the boot information and the options
// the client asked for into r. lt 0 means no lease (INFORM); BOOTP leases
// are infinite and carry no lease options.
func (x *exchange) fill(r *reply, sc *scope, lt time.Duration) {
	if lt > 0 && x.p.Type() != 0 {
		t := r.times[:0]
		t = binary.BigEndian.AppendUint32(t, uint32(lt/time.Second))
		t = binary.BigEndian.AppendUint32(t, uint32(lt/2/time.Second))
		t = binary.BigEndian.AppendUint32(t, uint32(lt*7/8/time.Second))
		r.set(optLeaseTime, t[0:4])
		r.set(optRenewalTime, t[4:8])
		r.set(optRebindingTime, t[8:12])
	}
	// Boot information.
	next := sc.nextServer
	if !sc.nextServerOK && x.s.TFTPEnabled && x.serverIP.IsValid() {
		next = x.serverIP
		if !x.sn.ownNextServerWarned.Swap(true) {
			x.s.log().Warn("dhcp: subnet sets no next-server; using this server's own address (ISC dhcpd >= 3.0.3 would send none and PXE clients would fail)",
				"subnet", x.sn.prefix.String(), "next-server", next.String())
		}
	}
	if next.IsValid() {
		r.SIAddr = next
	}
	requested := x.p.Options[optParamRequest]
	asked := func(code uint8) bool {
		for _, c := range requested {
			if c == code {
				return true
			}
		}
		return false
	}
	if file, _, ok := bootFile(sc, x.f); ok {
		// "{server}" stands for this server's address on the client's
		// network: one configuration serves every interface.
		if strings.Contains(file, "{server}") && x.serverIP.IsValid() {
			file = strings.ReplaceAll(file, "{server}", x.serverIP.String())
		}
		if len(file) < 128 {
			r.File = file
		}
		if len(file) >= 128 || asked(optBootfile) {
			r.set(optBootfile, []byte(file))
		}
	}
	if sc.serverName != "" {
		r.SName = sc.serverName
	}
	if asked(optTFTPServer) && !r.has(optTFTPServer) && sc.byCode[optTFTPServer] == nil {
		switch {
		case sc.serverName != "":
			r.set(optTFTPServer, []byte(sc.serverName))
		case next.IsValid():
			r.set(optTFTPServer, []byte(next.String()))
		}
	}
	switch {
	case x.f.httpClient:
		r.set(optVendorClass, []byte("HTTPClient"))
	case x.f.pxe:
		r.set(optVendorClass, []byte("PXEClient"))
		// A PXE ROM that sees "PXEClient" echoed looks for PXE options
		// in option 43; without them some ROMs go looking for a proxyDHCP
		// server on port 4011 and fail (PXE-E55). Say "boot the file in
		// this reply, no boot-server discovery", unless the operator
		// configured option 43 themselves.
		if sc.byCode[optVendorOpts] == nil {
			r.set(optVendorOpts, pxeVendorOptions)
		}
	}
	// Options the client asked for, in its order; then the relay agent's
	// option 82, echoed; then the rest of the scope's options if they fit.
	for _, code := range requested {
		if r.has(code) {
			continue
		}
		if d, ok := sc.byCode[code]; ok {
			r.set(code, d)
		} else if code == optSubnetMask {
			r.set(optSubnetMask, x.sn.mask)
		}
	}
	if !r.has(optSubnetMask) && sc.byCode[optSubnetMask] == nil && r.YIAddr.IsValid() {
		r.set(optSubnetMask, x.sn.mask)
	}
	if ra := x.p.Options[optRelayAgent]; ra != nil {
		r.set(optRelayAgent, ra)
	}
	for _, o := range sc.opts {
		if !r.has(o.code) {
			r.set(o.code, o.data)
		}
	}
}

// maxSize is the largest reply the client accepts (option 57), bounded by
// the link MTU.
func (x *exchange) maxSize() int {
	m := defaultMaxMessage
	if v := x.p.Options[optMaxMessage]; len(v) == 2 {
		if n := int(binary.BigEndian.Uint16(v)); n > m {
			m = n
		}
	}
	mtu := x.port.MTU
	if mtu <= 0 {
		mtu = 1500
	}
	if m > mtu-ipUDPHeaders {
		m = mtu - ipUDPHeaders
	}
	return m
}

// replyPool recycles replies: each is ~1 KiB and lives only until sent.
var replyPool = sync.Pool{New: func() any { return new(reply) }}

var broadcastAddr = netip.AddrFrom4([4]byte{255, 255, 255, 255})

// send delivers r as RFC 2131 §4.1 says.
func (x *exchange) send(r *reply, t uint8) {
	b, dropped := r.marshal(x.maxSize())
	yiaddr := r.YIAddr
	replyPool.Put(r) // everything needed is in b now
	if len(dropped) > 0 {
		x.logAt(slog.LevelWarn, "dhcp: reply too large for the client; options left out", "options", dropped, "max", x.maxSize())
	}
	var err error
	var how func() string // for messages only: built when one is written
	gi, ci := x.p.GIAddr, x.p.CIAddr
	switch {
	case x.port.PXE:
		how = func() string { return "to sender " + x.src.String() }
		err = x.port.Conn.SendTo(b, x.src)
	case gi.IsValid() && !gi.IsUnspecified():
		if t == msgNak {
			// §4.3.2: a NAK through a relay asks it to broadcast.
			b[10] |= 0x80
		}
		how = func() string { return "to relay " + gi.String() }
		err = x.port.Conn.SendTo(b, netip.AddrPortFrom(gi, 67))
	case t == msgNak:
		how = func() string { return "broadcast" }
		err = x.port.Conn.SendTo(b, netip.AddrPortFrom(broadcastAddr, 68))
	case ci.IsValid() && !ci.IsUnspecified():
		how = func() string { return "to ciaddr " + ci.String() }
		err = x.port.Conn.SendTo(b, netip.AddrPortFrom(ci, 68))
	case x.p.Broadcast() || !yiaddr.IsValid() || yiaddr.IsUnspecified() || x.p.HType != 1 || x.p.HLen != 6:
		how = func() string { return "broadcast" }
		err = x.port.Conn.SendTo(b, netip.AddrPortFrom(broadcastAddr, 68))
	default:
		how = func() string { return "unicast to " + x.f.mac }
		err = x.port.Conn.SendL2(b, x.f.hw, x.serverIP, yiaddr, 67, 68)
	}
	if err != nil {
		x.logAt(slog.LevelError, "dhcp: send failed", "how", how(), "error", err)
		return
	}
	if x.s.log().Enabled(context.Background(), slog.LevelDebug) {
		x.logAt(slog.LevelDebug, "dhcp: sent", "type", msgName(t), "how", how(), "bytes", len(b))
	}
}
