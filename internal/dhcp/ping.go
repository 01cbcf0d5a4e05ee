package dhcp

import (
	"context"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

// ICMPPinger implements ping-check with ICMP echo over one raw socket (root
// or CAP_NET_RAW) shared by every probe: a reader matches echo replies to
// the probes waiting for them, so a burst of DISCOVERs costs no descriptor
// per probe. The server bounds how many probes run at once (maxProbes).
type ICMPPinger struct {
	id   int
	seq  atomic.Uint32
	conn *icmp.PacketConn

	mu      sync.Mutex
	waiting map[probeKey]chan struct{}
}

type probeKey struct {
	addr netip.Addr
	seq  uint16
}

// NewICMPPinger opens the raw ICMP socket and starts reading replies
// until Close.
func NewICMPPinger() (*ICMPPinger, error) {
	c, err := icmp.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		return nil, err
	}
	// Only echo replies reach the socket: not the echo requests (ours on
	// the loopback included) nor the rest of the host's ICMP.
	var f ipv4.ICMPFilter
	f.SetAll(true)
	f.Accept(ipv4.ICMPTypeEchoReply)
	if err := c.IPv4PacketConn().SetICMPFilter(&f); err != nil {
		c.Close()
		return nil, err
	}
	p := &ICMPPinger{id: os.Getpid() & 0xffff, conn: c, waiting: make(map[probeKey]chan struct{})}
	go p.read()
	return p, nil
}

// Close closes the socket; probes in flight report "not in use".
func (p *ICMPPinger) Close() error { return p.conn.Close() }

// read hands every echo reply of ours to the probe that waits for it.
func (p *ICMPPinger) read() {
	buf := make([]byte, 1500)
	for {
		n, from, err := p.conn.ReadFrom(buf)
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			return // closed
		}
		ipa, _ := from.(*net.IPAddr)
		if ipa == nil {
			continue
		}
		a, ok := netip.AddrFromSlice(ipa.IP)
		if !ok {
			continue
		}
		m, err := icmp.ParseMessage(1, buf[:n])
		if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
			continue
		}
		e, ok := m.Body.(*icmp.Echo)
		if !ok || e.ID != p.id {
			continue
		}
		p.mu.Lock()
		ch := p.waiting[probeKey{a.Unmap(), uint16(e.Seq)}]
		p.mu.Unlock()
		if ch != nil {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}

// InUse sends one echo request to a and waits for its reply until ctx
// ends (one second without a deadline). Any failure to probe counts as
// "not in use": ping-check is advisory, as in ISC dhcpd.
func (p *ICMPPinger) InUse(ctx context.Context, a netip.Addr) bool {
	if ctx.Err() != nil {
		return false
	}
	seq := uint16(p.seq.Add(1))
	key := probeKey{a.Unmap(), seq}
	ch := make(chan struct{}, 1)
	p.mu.Lock()
	p.waiting[key] = ch
	p.mu.Unlock()
	defer func() {
		p.mu.Lock()
		delete(p.waiting, key)
		p.mu.Unlock()
	}()
	msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: p.id, Seq: int(seq), Data: []byte("pxed ping-check")}}
	b, err := msg.Marshal(nil)
	if err != nil {
		return false
	}
	if _, err := p.conn.WriteTo(b, &net.IPAddr{IP: a.AsSlice()}); err != nil {
		return false
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Second)
		defer cancel()
	}
	select {
	case <-ch:
		return true
	case <-ctx.Done():
		return false
	}
}
