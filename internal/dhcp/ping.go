package dhcp

import (
	"context"
	"net"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
)

// ICMPPinger implements ping-check with ICMP echo over a raw socket (root or
// CAP_NET_RAW). Each probe uses its own socket: probes happen only before an
// address is offered for the first time, so they are few.
type ICMPPinger struct {
	id  int
	seq atomic.Uint32
}

// NewICMPPinger checks that a raw ICMP socket can be opened.
func NewICMPPinger() (*ICMPPinger, error) {
	c, err := icmp.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		return nil, err
	}
	c.Close()
	return &ICMPPinger{id: os.Getpid() & 0xffff}, nil
}

// InUse sends one echo request to a and waits for a reply until ctx ends.
// Any failure to probe counts as "not in use": ping-check is advisory, as in
// ISC dhcpd.
func (p *ICMPPinger) InUse(ctx context.Context, a netip.Addr) bool {
	c, err := icmp.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		return false
	}
	defer c.Close()
	seq := int(p.seq.Add(1) & 0xffff)
	msg := icmp.Message{Type: ipv4.ICMPTypeEcho, Body: &icmp.Echo{ID: p.id, Seq: seq, Data: []byte("pxed ping-check")}}
	b, err := msg.Marshal(nil)
	if err != nil {
		return false
	}
	if _, err := c.WriteTo(b, &net.IPAddr{IP: a.AsSlice()}); err != nil {
		return false
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(time.Second)
	}
	c.SetReadDeadline(deadline)
	buf := make([]byte, 1500)
	for {
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			return false
		}
		ipa, _ := from.(*net.IPAddr)
		if ipa == nil || !ipa.IP.Equal(a.AsSlice()) {
			continue
		}
		m, err := icmp.ParseMessage(1, buf[:n])
		if err != nil || m.Type != ipv4.ICMPTypeEchoReply {
			continue
		}
		if e, ok := m.Body.(*icmp.Echo); ok && e.ID == p.id && e.Seq == seq {
			return true
		}
	}
}
