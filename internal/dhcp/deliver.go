package dhcp

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"pxed/internal/lease"
)

// Delivery: what Decide chose is carried out here — leases written (group
// commit: the ACK leaves once its lease is durable), ping-checks, and the
// reply sent where RFC 2131 §4.1 says.

// Handle processes one datagram that arrived on port: parse, decide,
// deliver.
func (s *Server) Handle(ctx context.Context, port *Port, b []byte, src netip.AddrPort, dst netip.Addr) {
	p, err := Parse(b)
	if err != nil {
		s.drop(port, src, len(b) > MaxMessageLen, err)
		if s.Observer != nil {
			s.Observer.DHCPMessage(Message{Type: "malformed", Outcome: "dropped"})
		}
		return
	}
	req := Request{Packet: p, Port: port, Src: src, Dst: dst}
	var start time.Time
	if s.Observer != nil {
		start = time.Now() // the clock is read for the metrics only
	}
	v := s.view()
	x, o, ok := newExchange(v, req)
	if ok {
		x.leases = s.Leases
		o = x.decide()
	}
	var decided time.Duration
	if s.Observer != nil {
		decided = time.Since(start)
	}
	s.deliver(x, req, o)
	if s.Observer != nil {
		s.Observer.DHCPMessage(Message{Type: msgName(p.Type()), Outcome: o.outcomeName(), Decide: decided,
			MAC: p.MAC(), IP: o.YIAddr(), Host: o.Host})
	}
}

// Observer hears of each DHCP message (metrics, the events ring). Calls
// come from the serving goroutines: they must be quick.
type Observer interface {
	DHCPMessage(Message)
}

// Message is one DHCP message as an Observer hears of it.
type Message struct {
	// Type is the message's ("DISCOVER", …, "BOOTP", or "malformed").
	Type string
	// Outcome is what pxed did: "offer", "ack", "nak", "bootreply",
	// "decline", "release", "none" (silence) or "dropped".
	Outcome string
	// Decide is how long the decision took.
	Decide time.Duration
	// MAC is the client's; IP the address the reply gives (invalid: none);
	// Host the host declaration it matched ("" none).
	MAC  net.HardwareAddr
	IP   netip.Addr
	Host string
}

// outcomeName names what o does, for Observer.
func (o *Outcome) outcomeName() string {
	switch {
	case o.Action == Decline:
		return "decline"
	case o.Action == Release:
		return "release"
	case o.Reply == nil:
		return "none"
	case o.Type == 0:
		return "bootreply"
	}
	return strings.ToLower(msgName(o.Type))
}

// deliver carries out o for req (x is nil when no subnet matched).
func (s *Server) deliver(x *exchange, req Request, o Outcome) {
	if o.Warn != "" {
		s.warnFirst(o.WarnKey, o.Warn, "iface", req.Port.Name, "mac", req.Packet.MAC().String(), "giaddr", req.Packet.GIAddr.String())
	}
	switch o.Action {
	case Decline:
		if err := s.Leases.Decline(o.Lease.Client, o.IP); err != nil {
			s.logAt(slog.LevelInfo, req, "dhcp: DECLINE ignored", "ip", o.IP.String(), "error", err)
			return
		}
		s.logAt(slog.LevelWarn, req, "dhcp: DECLINE: the client found the address in use; quarantined", "ip", o.IP.String())
		return
	case Release:
		if err := s.Leases.Release(o.Lease.Client, o.IP); err != nil {
			s.logAt(slog.LevelInfo, req, "dhcp: RELEASE ignored", "ip", o.IP.String(), "error", err)
			return
		}
		s.logAt(slog.LevelInfo, req, "dhcp: RELEASE", "ip", o.IP.String())
		return
	}
	if o.Reply == nil {
		if o.Silence != "" {
			s.logAt(o.SilenceLevel, req, "dhcp: no reply", "reason", o.Silence)
		}
		return
	}
	switch o.Action {
	case ProbeThenSend:
		if s.Pinger != nil {
			if s.probing.Add(1) <= maxProbes {
				go func() {
					defer s.probing.Add(-1)
					s.probeThenSend(x, req, o)
				}()
				return
			}
			s.probing.Add(-1)
			if n, ok := s.unprobed.Tick(time.Now(), time.Minute); ok {
				s.log().Warn("dhcp: ping-check saturated; offering without probing (at most one such line a minute)",
					"in-flight", maxProbes, "unprobed-offers", n)
			}
		}
	case CommitThenSend:
		lt := o.LeaseTime
		err := s.Leases.Commit(o.Lease, o.IP, lt, func(_ lease.Lease, err error) {
			if errors.Is(err, lease.ErrConflict) {
				// Another server sharing the store wrote this address
				// first (both answered a broadcast REQUEST): it answers.
				s.logAt(slog.LevelDebug, req, "dhcp: another server committed this lease first; no reply sent", "ip", o.IP.String(), "error", err)
				replyPool.Put(o.Reply)
				return
			}
			if err != nil {
				// No reply: the client retries, and nothing unrecorded was promised.
				s.logAt(slog.LevelError, req, "dhcp: lease not stored; no reply sent", "ip", o.IP.String(), "error", err)
				replyPool.Put(o.Reply)
				return
			}
			s.send(x, req, o)
		})
		switch {
		case err == nil:
		case errUnavailable(err):
			replyPool.Put(o.Reply)
			// Another client took it in between: the decision's NAK.
			s.deliver(x, req, x.nak(o.IP, err.Error()))
		case errors.Is(err, lease.ErrNotOwner):
			// Another server sharing the pool owns the address's
			// block: it answers, this one stays silent.
			replyPool.Put(o.Reply)
			s.logAt(slog.LevelDebug, req, "dhcp: address in another server's block; no reply", "ip", o.IP.String())
		default:
			replyPool.Put(o.Reply)
			s.logAt(slog.LevelWarn, req, "dhcp: request not answered", "ip", o.IP.String(), "error", err)
		}
		return
	}
	s.send(x, req, o)
}

// maxProbes bounds the ping-checks in flight. A probe of a free address
// waits its whole second, so this is also how many first offers a second
// are probed; beyond that an offer leaves unprobed (ping-check is advisory,
// as in ISC dhcpd) rather than a goroutine a DISCOVER piling up.
const maxProbes = 256

// probeThenSend pings the offered address; one that answers is abandoned
// (quarantined) and the request decided again, up to three times.
func (s *Server) probeThenSend(x *exchange, req Request, o Outcome) {
	for range 3 {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		inUse := s.Pinger.InUse(ctx, o.IP)
		cancel()
		if !inUse {
			s.send(x, req, o)
			return
		}
		replyPool.Put(o.Reply)
		s.logAt(slog.LevelWarn, req, "dhcp: ping-check: address answers ping; abandoned (quarantined) and another one tried", "ip", o.IP.String())
		if err := s.Leases.Abandon(o.IP, time.Time{}); err != nil {
			s.logAt(slog.LevelError, req, "dhcp: abandon", "ip", o.IP.String(), "error", err)
			return
		}
		o = x.decide()
		if o.Reply == nil || o.Action != ProbeThenSend {
			s.deliver(x, req, o)
			return
		}
	}
	replyPool.Put(o.Reply)
}

func (s *Server) warnFirst(key, msg string, args ...any) {
	if _, loaded := s.warnOnce.LoadOrStore(key, struct{}{}); !loaded {
		s.log().Warn(msg, args...)
	}
}

// logAt logs about this client (every line names its MAC) without any cost
// when the level is off: the hot path logs OFFERs at debug.
func (s *Server) logAt(level slog.Level, req Request, msg string, args ...any) {
	if !s.log().Enabled(context.Background(), level) {
		return
	}
	s.log().Log(context.Background(), level, msg, append([]any{"mac", req.Packet.MAC().String(), "iface", req.Port.Name}, args...)...)
}

// maxSize is the largest reply the client accepts (option 57), bounded by
// the link MTU.
func maxSize(req Request) int {
	m := defaultMaxMessage
	if v := req.Packet.Options[optMaxMessage]; len(v) == 2 {
		if n := int(uint16(v[0])<<8 | uint16(v[1])); n > m {
			m = n
		}
	}
	mtu := req.Port.MTU
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

// send logs the reply and delivers it as RFC 2131 §4.1 says.
func (s *Server) send(x *exchange, req Request, o Outcome) {
	r, t := o.Reply, o.Type
	level := slog.LevelInfo
	if t == msgOffer && o.State != "proxy" {
		level = slog.LevelDebug // the hot path
	}
	if s.log().Enabled(context.Background(), level) {
		s.logReply(x, req, o)
	}
	b, dropped := r.marshal(maxSize(req))
	yiaddr := r.YIAddr
	replyPool.Put(r) // everything needed is in b now
	if len(dropped) > 0 {
		s.logAt(slog.LevelWarn, req, "dhcp: reply too large for the client; options left out", "options", dropped, "max", maxSize(req))
	}
	if o.Boot.OwnNextServer && !x.sn.ownNextServerWarned.Swap(true) {
		s.log().Warn("dhcp: subnet sets no next-server; using this server's own address (ISC dhcpd >= 3.0.3 would send none and PXE clients would fail)",
			"subnet", x.sn.prefix.String(), "next-server", o.Boot.NextServer.String())
	}
	var err error
	var how func() string // for messages only: built when one is written
	p := req.Packet
	gi, ci := p.GIAddr, p.CIAddr
	switch {
	case req.Port.PXE:
		how = func() string { return "to sender " + req.Src.String() }
		err = req.Port.Conn.SendTo(b, req.Src)
	case gi.IsValid() && !gi.IsUnspecified():
		if t == msgNak {
			// §4.3.2: a NAK through a relay asks it to broadcast.
			b[10] |= 0x80
		}
		how = func() string { return "to relay " + gi.String() }
		err = req.Port.Conn.SendTo(b, netip.AddrPortFrom(gi, 67))
	case t == msgNak:
		how = func() string { return "broadcast" }
		err = req.Port.Conn.SendTo(b, netip.AddrPortFrom(broadcastAddr, 68))
	case ci.IsValid() && !ci.IsUnspecified():
		how = func() string { return "to ciaddr " + ci.String() }
		err = req.Port.Conn.SendTo(b, netip.AddrPortFrom(ci, 68))
	case p.Broadcast() || !yiaddr.IsValid() || yiaddr.IsUnspecified() || p.HType != 1 || p.HLen != 6:
		how = func() string { return "broadcast" }
		err = req.Port.Conn.SendTo(b, netip.AddrPortFrom(broadcastAddr, 68))
	default:
		how = func() string { return "unicast to " + x.f.mac }
		err = req.Port.Conn.SendL2(b, x.f.hw, x.serverIP, yiaddr, 67, 68)
	}
	if err != nil {
		s.logAt(slog.LevelError, req, "dhcp: send failed", "how", how(), "error", err)
		return
	}
	if s.log().Enabled(context.Background(), slog.LevelDebug) {
		s.logAt(slog.LevelDebug, req, "dhcp: sent", "type", msgName(t), "how", how(), "bytes", len(b))
	}
}

// logReply writes the reply's log line: OFFERs at debug (the hot path),
// ACKs, NAKs and BOOTREPLYs at info.
func (s *Server) logReply(x *exchange, req Request, o Outcome) {
	r := o.Reply
	switch {
	case o.State == "proxy":
		s.logAt(slog.LevelInfo, req, "dhcp: proxy "+msgName(o.Type), "next-server", r.SIAddr.String(), "file", o.Boot.File, "chosen-by", o.Boot.Why, "arch", x.f.archName)
	case o.Type == msgOffer:
		s.logAt(slog.LevelDebug, req, "dhcp: OFFER", "ip", o.IP.String(), "xid", req.Packet.XID)
	case o.Type == msgNak:
		s.logAt(slog.LevelInfo, req, "dhcp: NAK", "ip", o.IP.String(), "reason", o.State)
	case o.Type == msgAck && o.State == "inform":
		s.logAt(slog.LevelInfo, req, "dhcp: ACK (INFORM)", "ciaddr", o.IP.String())
	case o.Type == msgAck:
		args := []any{"ip", o.IP.String(), "state", o.State, "lease", o.LeaseTime.String()}
		if o.Host != "" {
			args = append(args, "host", o.Host)
		}
		if r.File != "" || r.has(optBootfile) {
			args = append(args, "next-server", r.SIAddr.String(), "file", bootName(r))
		}
		s.logAt(slog.LevelInfo, req, "dhcp: ACK", args...)
	case o.Type == 0:
		args := []any{"ip", o.IP.String()}
		if o.Host != "" {
			args = append(args, "host", o.Host)
		}
		s.logAt(slog.LevelInfo, req, "dhcp: BOOTREPLY", append(args, "next-server", r.SIAddr.String(), "file", r.File)...)
	}
}

func bootName(r *reply) string {
	for _, o := range r.opts {
		if o.code == optBootfile {
			return string(o.data)
		}
	}
	return r.File
}
