package dhcp

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"pxed/internal/bootplan"
	"pxed/internal/lease"
)

// LeaseView is what a decision reads of the leases. Offer holds an address
// for a client in memory (offers are not persisted) and Withdraw drops that
// hold; nothing here writes. *lease.Allocator implements it.
type LeaseView interface {
	Offer(req lease.Request) (netip.Addr, error)
	Lookup(c lease.ClientKey) (lease.Lease, bool)
	Withdraw(c lease.ClientKey)
	// Answers: whether this server answers the client (servers that
	// share a segment or a relay, and the pool, split the clients); via
	// is the client's subnet, or its relay's address as a /32.
	Answers(hw []byte, secs uint16, via netip.Prefix) bool
}

// Action is what delivery does with a request besides sending a reply.
type Action int

const (
	// Send: send Reply now (or nothing, when Reply is nil).
	Send Action = iota
	// CommitThenSend: make the lease durable (group commit), then send
	// Reply; a lease the allocator refuses turns into a NAK.
	CommitThenSend
	// ProbeThenSend: ping-check Reply's address first; when it answers,
	// abandon it and decide again.
	ProbeThenSend
	// Decline / Release: record the client's DECLINE or RELEASE.
	Decline
	Release
)

// Outcome is the decision for one request: the reply (or why there is
// none), what must happen before it leaves, and the boot decision behind
// it. It is a value: tests and `pxed explain` read it without sockets.
type Outcome struct {
	Action Action
	// Reply is the message to send; nil: silence (see Silence).
	Reply *reply
	// Type is Reply's message type (0: BOOTREPLY).
	Type uint8
	// Silence says why nothing is sent, when that is not obvious (the
	// level is the log level delivery uses: debug for routine drops).
	Silence      string
	SilenceLevel slog.Level
	// Lease is the lease to commit (CommitThenSend) and IP the address of
	// the reply, the declined or the released address.
	Lease     lease.Request
	IP        netip.Addr
	LeaseTime time.Duration
	// State is the client's RFC 2131 state of a REQUEST (selecting,
	// init-reboot, renewing, rebinding), for the log.
	State string
	// Host is the host declaration the client matched ("" none).
	Host string
	// Boot is the boot plan's decision for the reply.
	Boot bootplan.Decision
	// Warn is a problem worth one warning per key (exhausted pool, no
	// subnet), with its key; delivery logs it once.
	Warn, WarnKey string
}

// YIAddr is the address the reply gives (invalid: none).
func (o *Outcome) YIAddr() netip.Addr {
	if o.Reply == nil {
		return netip.Addr{}
	}
	return o.Reply.YIAddr
}

// SIAddr is the reply's next-server (invalid: none).
func (o *Outcome) SIAddr() netip.Addr {
	if o.Reply == nil {
		return netip.Addr{}
	}
	return o.Reply.SIAddr
}

// File is the boot file the reply names (file field or option 67).
func (o *Outcome) File() string {
	if o.Reply == nil {
		return ""
	}
	return bootName(o.Reply)
}

// MessageType names the reply ("OFFER", "ACK", ...; "" for silence).
func (o *Outcome) MessageType() string {
	if o.Reply == nil {
		return ""
	}
	return msgName(o.Type)
}

// Request is one datagram as the decision sees it.
type Request struct {
	Packet *Packet
	Port   *Port
	// Src is the sender's address and port; Dst the address it was sent to.
	Src netip.AddrPort
	Dst netip.Addr
	// Trace, when not nil, receives which classes the client matched and
	// how each conditional evaluated (pxed explain). Serving leaves it nil.
	Trace *[]string
}

// Decide answers one request from view and the lease view without I/O:
// the reply, or silence with the reason. Handle delivers what it decides.
func Decide(v View, req Request, leases LeaseView) Outcome {
	x, o, ok := newExchange(v, req)
	if !ok {
		return o
	}
	x.leases = leases
	o = x.decide()
	if x.cond != nil && req.Trace != nil {
		*req.Trace = x.cond.trace
	}
	return o
}

func newExchange(v View, req Request) (*exchange, Outcome, bool) {
	p := req.Packet
	if p.Op != opRequest {
		return nil, silence(slog.LevelDebug, "not a BOOTREQUEST"), false
	}
	if p.HType == 1 && p.HLen != 6 {
		return nil, silence(slog.LevelDebug, "Ethernet hardware type with hlen != 6"), false
	}
	if id := p.Options[optClientID]; len(id) > maxClientID {
		return nil, silence(slog.LevelDebug, "client identifier (option 61) of "+strconv.Itoa(len(id))+" bytes, longer than "+strconv.Itoa(maxClientID)), false
	}
	f := factsOf(p)
	sn, serverIP := subnetOf(v.Plan, req.Port, p)
	if sn == nil {
		o := silence(slog.LevelDebug, "no subnet declaration for this request")
		o.WarnKey = "nosubnet:" + req.Port.Name + ":" + strconv.FormatBool(p.GIAddr.IsValid() && !p.GIAddr.IsUnspecified())
		o.Warn = "dhcp: no subnet declaration for this request; add a subnet for the interface's network (or the relay's giaddr)"
		return nil, o, false
	}
	if v.Boot == nil {
		v.Boot = bootplan.New(bootplan.Options{})
	}
	f.boot.Server = serverIP
	x := &exchange{v: v, plan: v.Plan, port: req.Port, p: p, f: f, sn: sn, serverIP: serverIP, src: req.Src, dst: req.Dst}
	if v.Plan.dyn != nil {
		x.cond = &condState{tracing: req.Trace != nil}
	}
	return x, Outcome{}, true
}

func silence(level slog.Level, why string) Outcome {
	return Outcome{Silence: why, SilenceLevel: level}
}

func (x *exchange) decide() Outcome {
	if x.plan.Proxy {
		return x.proxy()
	}
	switch t := x.p.Type(); t {
	case 0:
		if x.p.Options[optMessageType] != nil {
			return silence(slog.LevelDebug, "option 53 with a bad length")
		}
		return x.bootp()
	case msgDiscover:
		return x.discover()
	case msgRequest:
		return x.request()
	case msgDecline:
		return x.decline()
	case msgRelease:
		return x.release()
	case msgInform:
		return x.inform()
	default:
		return silence(slog.LevelDebug, "ignored message type "+msgName(t))
	}
}

// subnetOf picks the subnet a request belongs to (RFC 2131 §4.3.1): the
// relay's giaddr, else the client's ciaddr if it is on this interface, else
// the interface's own network. serverIP is our address to answer from.
func subnetOf(plan *Plan, port *Port, p *Packet) (*subnet, netip.Addr) {
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

// exchange is one request being decided.
type exchange struct {
	v        View
	plan     *Plan
	leases   LeaseView
	port     *Port
	p        *Packet
	f        facts
	sn       *subnet
	serverIP netip.Addr
	src      netip.AddrPort
	dst      netip.Addr
	// cond is the evaluation of classes and conditionals (Plan.dyn only).
	cond *condState
}

// leaseRequest asks for an address from the subnet's pools that admit the
// client (known: it has a host declaration).
func (x *exchange) leaseRequest(want netip.Addr, bootp, known bool) lease.Request {
	return lease.Request{
		Client:   x.f.key,
		MAC:      x.f.hw,
		Hostname: x.f.hostname,
		UUID:     x.f.uuid,
		Pools:    x.pools(known),
		BOOTP:    bootp,
		Want:     want,
	}
}

// pools are the subnet's pools whose permits admit the client.
func (x *exchange) pools(known bool) []*lease.Pool {
	switch {
	case !x.sn.permits:
		return x.sn.leasePool
	case x.sn.static && known:
		return x.sn.byKnown[1]
	case x.sn.static:
		return x.sn.byKnown[0]
	}
	var out []*lease.Pool
	if x.cond != nil && len(x.sn.pools) <= len(x.cond.pools) {
		out = x.cond.pools[:0]
	}
	for _, pl := range x.sn.pools {
		if x.admits(pl, known) {
			out = append(out, pl.lp)
		}
	}
	return out
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

// scopeFor is the effective scope for a client of host h (nil: none)
// holding address a (invalid: none yet).
func (x *exchange) scopeFor(h *host, a netip.Addr) *scope {
	var pl *pool
	if a.IsValid() && (h == nil || !slices.Contains(h.fixed, a)) {
		pl = x.sn.poolOf(a)
	}
	switch {
	case x.cond != nil:
		return x.dynScope(h, pl)
	case h != nil:
		return x.plan.hostScope(h, x.sn, pl)
	case pl != nil:
		return pl.scope
	}
	return x.sn.scope
}

const deniedUnknown = "unknown client: no host declaration, and unknown clients are denied (deny unknown-clients)"

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

const deniedBooting = "booting denied for this client (deny booting)"

// notOurs: another server sharing the segment answers this client's
// broadcasts (load balancing, lease.Options.Balance).
const notOurs = "another server of the cluster answers this client (load balancing)"

func (x *exchange) discover() Outcome {
	h, fixed := x.fixed()
	if fixed.IsValid() {
		return x.offer(h, fixed)
	}
	if h != nil && !x.scopeFor(h, netip.Addr{}).allowBooting {
		return silence(slog.LevelDebug, deniedBooting)
	}
	req := x.leaseRequest(x.p.Addr(optRequestedIP), false, h != nil)
	if len(req.Pools) == 0 && len(x.sn.pools) > 0 {
		return silence(slog.LevelDebug, "no pool of "+x.sn.prefix.String()+" admits this client (its pools' allow/deny permits)")
	}
	if !x.leases.Answers(x.f.hw, x.p.Secs, x.via()) {
		return silence(slog.LevelDebug, notOurs)
	}
	ip, err := x.leases.Offer(req)
	if err != nil {
		o := silence(slog.LevelDebug, "cannot offer an address: "+err.Error())
		o.WarnKey, o.Warn = "exhausted:"+x.sn.prefix.String(), "dhcp: cannot offer an address"
		return o
	}
	o := x.offer(h, ip)
	held, bound := x.leases.Lookup(x.f.key)
	if o.Reply != nil && x.plan.PingCheck && !(bound && held.IP == ip) {
		// Probe only an address the client does not hold already: its
		// own address answering ping is no conflict.
		o.Action = ProbeThenSend
	}
	return o
}

func (x *exchange) offer(h *host, ip netip.Addr) Outcome {
	sc := x.scopeFor(h, ip)
	if !sc.allowBooting {
		return silence(slog.LevelDebug, deniedBooting)
	}
	if h == nil && !sc.bootUnknown {
		return silence(slog.LevelDebug, deniedUnknown)
	}
	r := x.newReply(msgOffer)
	r.YIAddr = ip
	o := Outcome{Reply: r, Type: msgOffer, IP: ip, Host: hostName(h)}
	o.Boot = x.fill(r, sc, x.leaseTime(sc))
	return o
}

func hostName(h *host) string {
	if h == nil {
		return ""
	}
	return h.name
}

func (x *exchange) request() Outcome {
	sid, want, ci := x.p.Addr(optServerID), x.p.Addr(optRequestedIP), x.p.CIAddr
	var ip netip.Addr
	state := ""
	switch {
	case sid.IsValid():
		if !x.ours(sid) {
			// The client chose another server's offer: ours is
			// withdrawn, its address free again at once.
			x.leases.Withdraw(x.f.key)
			return silence(slog.LevelDebug, "REQUEST for another server ("+sid.String()+")")
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
		return silence(slog.LevelDebug, "REQUEST without server-id, requested address or ciaddr")
	}
	if !ip.IsValid() || ip.IsUnspecified() {
		return silence(slog.LevelDebug, "REQUEST for no address")
	}
	if !x.sn.prefix.Contains(ip) {
		return x.nak(ip, "address is not on this network ("+x.sn.prefix.String()+")")
	}
	h, fixed := x.fixed()
	if fixed.IsValid() && ip != fixed {
		return x.nak(ip, "host "+h.name+" has fixed-address "+fixed.String())
	}
	if !fixed.IsValid() && (state == "init-reboot" || state == "rebinding") && !x.leases.Answers(x.f.hw, x.p.Secs, x.via()) {
		return silence(slog.LevelDebug, notOurs)
	}
	if !fixed.IsValid() && state != "selecting" {
		// RFC 2131 §4.3.2: a client verifying or extending a lease this
		// server has no record of gets no answer (and a blind sender
		// cannot bind addresses with one datagram each); one whose lease
		// is for another address is refused.
		held, ok := x.leases.Lookup(x.f.key)
		if !ok {
			return silence(slog.LevelDebug, "REQUEST ("+state+") from a client with no lease here: RFC 2131 §4.3.2 says stay silent")
		}
		if held.IP != ip {
			return x.nak(ip, "the client's lease is for "+held.IP.String())
		}
	}
	sc := x.scopeFor(h, ip)
	if !sc.allowBooting {
		return silence(slog.LevelDebug, deniedBooting)
	}
	if h == nil && !sc.bootUnknown {
		return silence(slog.LevelDebug, deniedUnknown)
	}
	lt := x.leaseTime(sc)
	o := x.ack(h, ip, sc, lt, state)
	if !fixed.IsValid() {
		o.Action, o.Lease = CommitThenSend, x.leaseRequest(ip, false, h != nil)
		// A client answering our OFFER gets its address even if, under
		// pressure, the offer was reclaimed for a client that has not
		// requested it (lease/pressure.go).
		o.Lease.TakeOffered = state == "selecting"
	}
	return o
}

// via is where the client comes from: its relay's address as a /32, or
// the subnet of this server's segment it is on.
func (x *exchange) via() netip.Prefix {
	if x.p.GIAddr.IsValid() && !x.p.GIAddr.IsUnspecified() {
		return netip.PrefixFrom(x.p.GIAddr, 32)
	}
	return x.sn.prefix
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

func (x *exchange) ack(h *host, ip netip.Addr, sc *scope, lt time.Duration, state string) Outcome {
	r := x.newReply(msgAck)
	r.YIAddr = ip
	r.CIAddr = x.p.CIAddr
	o := Outcome{Reply: r, Type: msgAck, IP: ip, LeaseTime: lt, State: state, Host: hostName(h)}
	o.Boot = x.fill(r, sc, lt)
	return o
}

// nak refuses ip (or stays silent when not authoritative).
func (x *exchange) nak(ip netip.Addr, why string) Outcome {
	if !x.plan.Authoritative {
		return silence(slog.LevelInfo, "not authoritative, so no NAK: "+why)
	}
	r := x.newReply(msgNak)
	r.set(optMessage, []byte(why))
	return Outcome{Reply: r, Type: msgNak, IP: ip, State: why}
}

func (x *exchange) decline() Outcome {
	if sid := x.p.Addr(optServerID); sid.IsValid() && !x.ours(sid) {
		return silence(slog.LevelDebug, "DECLINE for another server")
	}
	ip := x.p.Addr(optRequestedIP)
	if !ip.IsValid() {
		return silence(slog.LevelDebug, "DECLINE without a requested address")
	}
	return Outcome{Action: Decline, IP: ip, Lease: lease.Request{Client: x.f.key}}
}

func (x *exchange) release() Outcome {
	if sid := x.p.Addr(optServerID); sid.IsValid() && !x.ours(sid) {
		return silence(slog.LevelDebug, "RELEASE for another server")
	}
	return Outcome{Action: Release, IP: x.p.CIAddr, Lease: lease.Request{Client: x.f.key}}
}

func (x *exchange) inform() Outcome {
	ci := x.p.CIAddr
	if !ci.IsValid() || ci.IsUnspecified() {
		ci = x.src.Addr()
	}
	h, _ := x.fixed()
	sc := x.scopeFor(h, ci)
	r := x.newReply(msgAck)
	r.CIAddr = x.p.CIAddr
	o := Outcome{Reply: r, Type: msgAck, IP: ci, State: "inform", Host: hostName(h)}
	o.Boot = x.fill(r, sc, 0)
	return o
}

const deniedBootp = "BOOTP request refused (deny bootp)"

func (x *exchange) bootp() Outcome {
	h, fixed := x.fixed()
	if fixed.IsValid() {
		sc := x.scopeFor(h, fixed)
		if !sc.allowBootp || !sc.allowBooting {
			return silence(slog.LevelDebug, deniedBootp)
		}
		return x.bootpReply(h, fixed, sc)
	}
	if !x.scopeFor(h, netip.Addr{}).allowBootp {
		return silence(slog.LevelDebug, deniedBootp)
	}
	req := x.leaseRequest(netip.Addr{}, true, h != nil)
	ip, err := x.leases.Offer(req)
	if err != nil {
		o := silence(slog.LevelDebug, "no dynamic-bootp address: "+err.Error())
		o.WarnKey, o.Warn = "bootp-exhausted:"+x.sn.prefix.String(), "dhcp: no dynamic-bootp address for a BOOTP client"
		return o
	}
	sc := x.scopeFor(h, ip)
	if !sc.allowBootp || !sc.allowBooting {
		return silence(slog.LevelDebug, deniedBootp)
	}
	if h == nil && !sc.bootUnknown {
		return silence(slog.LevelDebug, deniedUnknown)
	}
	o := x.bootpReply(h, ip, sc)
	o.Action, o.Lease = CommitThenSend, req
	return o
}

func (x *exchange) bootpReply(h *host, ip netip.Addr, sc *scope) Outcome {
	r := x.newReply(0)
	r.YIAddr = ip
	r.bootp = x.p.Options == nil
	o := Outcome{Reply: r, Type: 0, IP: ip, Host: hostName(h)}
	o.Boot = x.fill(r, sc, 0)
	return o
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

// fill puts the scope's parameters, the boot plan's decision and the
// options the client asked for into r. lt 0 means no lease (INFORM);
// BOOTP leases are infinite and carry no lease options.
func (x *exchange) fill(r *reply, sc *scope, lt time.Duration) bootplan.Decision {
	if lt > 0 && x.p.Type() != 0 {
		t := r.times[:0]
		t = binary.BigEndian.AppendUint32(t, uint32(lt/time.Second))
		t = binary.BigEndian.AppendUint32(t, uint32(lt/2/time.Second))
		t = binary.BigEndian.AppendUint32(t, uint32(lt*7/8/time.Second))
		r.set(optLeaseTime, t[0:4])
		r.set(optRenewalTime, t[4:8])
		r.set(optRebindingTime, t[8:12])
	}
	// Boot information: the boot plan decides.
	d := x.v.Boot.Decide(x.f.boot, sc.bootScope())
	next := d.NextServer
	if next.IsValid() {
		r.SIAddr = next
	}
	// The parameter request list may repeat codes (up to a datagram's
	// worth): each code is looked at once.
	requested := x.p.Options[optParamRequest]
	var askedSet [4]uint64
	for _, c := range requested {
		askedSet[c/64] |= 1 << (c % 64)
	}
	asked := func(code uint8) bool { return askedSet[code/64]&(1<<(code%64)) != 0 }
	if file := d.File; file != "" {
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
	case x.f.boot.HTTPClient:
		r.set(optVendorClass, []byte("HTTPClient"))
	case x.f.boot.PXE:
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
	var done [4]uint64
	for _, code := range requested {
		if done[code/64]&(1<<(code%64)) != 0 {
			continue
		}
		done[code/64] |= 1 << (code % 64)
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
	return d
}

// errUnavailable reports whether a commit failed because the address is
// not the client's to have (NAK), rather than for a storage problem.
func errUnavailable(err error) bool { return errors.Is(err, lease.ErrUnavailable) }
