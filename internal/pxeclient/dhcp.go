// Package pxeclient is a PXE client in Go: it gets a DHCP lease for any
// hardware address through a raw packet socket (so dom0 can ask as a guest
// that does not exist yet), finds the PXELINUX configuration the way
// PXELINUX does, and fetches what it boots over TFTP or HTTP. pxed's Xen
// PV bootloader is built on it.
package pxeclient

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"pxed/internal/dhcp"
	"pxed/internal/dhcpnet"
)

// Lease is what the DHCP server answered.
type Lease struct {
	IP         netip.Addr
	Mask       netip.Addr // option 1 (invalid when absent)
	Router     netip.Addr // first of option 3
	ServerID   netip.Addr // option 54
	NextServer netip.Addr // siaddr
	File       string     // boot file: the file field, or option 67
	TFTPServer string     // option 66
	// Options are all options of the ACK by code.
	Options map[uint8][]byte
	// Resolver looks up a name in option 66 (Server); nil is the host's.
	Resolver *net.Resolver
}

// Prefix is the leased address with its subnet's length: option 1, or
// the address's class when the answer has no mask, as PXE ROMs assume.
func (l *Lease) Prefix() netip.Prefix {
	if l.Mask.Is4() {
		m := l.Mask.As4()
		if bits, size := net.IPMask(m[:]).Size(); size == 32 {
			return netip.PrefixFrom(l.IP, bits)
		}
	}
	switch a := l.IP.As4(); {
	case a[0] < 128:
		return netip.PrefixFrom(l.IP, 8)
	case a[0] < 192:
		return netip.PrefixFrom(l.IP, 16)
	default:
		return netip.PrefixFrom(l.IP, 24)
	}
}

// DNS are the name servers of option 6.
func (l *Lease) DNS() []netip.Addr {
	var out []netip.Addr
	v := l.Options[6]
	for len(v) >= 4 {
		out = append(out, netip.AddrFrom4([4]byte(v[:4])))
		v = v[4:]
	}
	return out
}

// DHCPOptions configure DHCP.
type DHCPOptions struct {
	// VendorClass is option 60 (default: a BIOS PXE client, so the server
	// answers with its PXE boot file).
	VendorClass string
	// Arch is option 93 (default 0, x86 BIOS).
	Arch uint16
	// Timeouts are the waits for each retransmission (default 2, 4, 8, 8,
	// 8 s, RFC 2131's backoff, shortened); the context bounds the total.
	Timeouts []time.Duration
	// Log, when set, hears each step ("DISCOVER sent", ...).
	Log func(format string, args ...any)
}

// PacketConn is a packet socket bound to one interface that receives what
// a machine with one hardware address would: IPv4 and ARP frames sent to
// that address or to broadcast. DHCP runs through it as that address, and
// then a guest's whole network identity (internal/guestnet). Opening it
// (ListenPacket) needs CAP_NET_RAW; using it does not, so a program can
// open it, give up its privileges and only then read from the network, or
// hand it (File) to a less privileged process that takes it over with
// NewPacketConn.
type PacketConn struct {
	f       *os.File
	fd      int
	ifname  string
	ifindex int
}

// ListenPacket opens a packet socket on interface ifname for hardware
// address mac. A socket filter keeps to frames for mac (see PacketConn),
// never the ones this host sends, and the interface is in promiscuous mode
// while the socket is open: a bridge hands frames for a MAC that is not
// its own up to its device only then. It needs root or CAP_NET_RAW.
func ListenPacket(ifname string, mac net.HardwareAddr) (*PacketConn, error) {
	if len(mac) != 6 {
		return nil, fmt.Errorf("packet socket: %q is not an Ethernet address", mac)
	}
	ifc, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, fmt.Errorf("dhcp: interface %s: %w", ifname, err)
	}
	// Protocol 0 receives nothing until bind: the filter is in place
	// before the first frame is queued.
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("dhcp: packet socket on %s: %w (needs root or CAP_NET_RAW)", ifname, err)
	}
	fail := func(what string, err error) (*PacketConn, error) {
		unix.Close(fd)
		return nil, fmt.Errorf("dhcp: packet socket on %s: %s: %w", ifname, what, err)
	}
	// Auxiliary data says when a frame's UDP checksum is not filled in yet
	// (offloaded, as from a veth or bridge on this host).
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA, 1); err != nil {
		return fail("PACKET_AUXDATA", err)
	}
	prog, err := frameFilter(mac)
	if err != nil {
		return fail("socket filter", err)
	}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, prog); err != nil {
		return fail("socket filter", err)
	}
	if err := unix.SetsockoptPacketMreq(fd, unix.SOL_PACKET, unix.PACKET_ADD_MEMBERSHIP,
		&unix.PacketMreq{Ifindex: int32(ifc.Index), Type: unix.PACKET_MR_PROMISC}); err != nil {
		return fail("promiscuous mode", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifc.Index}); err != nil {
		return fail("bind", err)
	}
	return &PacketConn{f: os.NewFile(uintptr(fd), "packet:"+ifname), fd: fd, ifname: ifname, ifindex: ifc.Index}, nil
}

// NewPacketConn takes over f, a packet socket that ListenPacket opened
// (in this process or, through File, in another one). It checks that f is
// a packet socket bound to an interface with PACKET_AUXDATA on.
func NewPacketConn(f *os.File) (*PacketConn, error) {
	fd := int(f.Fd())
	if d, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN); err != nil || d != unix.AF_PACKET {
		return nil, fmt.Errorf("dhcp: %s is not a packet socket", f.Name())
	}
	if aux, err := unix.GetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_AUXDATA); err != nil || aux != 1 {
		return nil, fmt.Errorf("dhcp: packet socket %s: PACKET_AUXDATA is off", f.Name())
	}
	sa, err := unix.Getsockname(fd)
	ll, ok := sa.(*unix.SockaddrLinklayer)
	if err != nil || !ok || ll.Ifindex == 0 {
		return nil, fmt.Errorf("dhcp: packet socket %s is not bound to an interface", f.Name())
	}
	ifc, err := net.InterfaceByIndex(ll.Ifindex)
	if err != nil {
		return nil, fmt.Errorf("dhcp: packet socket %s: interface %d: %w", f.Name(), ll.Ifindex, err)
	}
	return &PacketConn{f: f, fd: fd, ifname: ifc.Name, ifindex: ll.Ifindex}, nil
}

// File is the socket, to pass to another process (exec.Cmd.ExtraFiles).
func (c *PacketConn) File() *os.File { return c.f }

// Interface is the name of the interface the socket is bound to.
func (c *PacketConn) Interface() string { return c.ifname }

// Index is the index of the interface the socket is bound to.
func (c *PacketConn) Index() int { return c.ifindex }

// Close closes the socket.
func (c *PacketConn) Close() error { return c.f.Close() }

// DHCP gets a lease for mac: DISCOVER, OFFER, REQUEST, ACK, with mac as
// the Ethernet source, and with the broadcast flag so the server's replies
// reach this host whatever its own MAC.
func (c *PacketConn) DHCP(ctx context.Context, mac net.HardwareAddr, o DHCPOptions) (*Lease, error) {
	if len(mac) != 6 {
		return nil, fmt.Errorf("dhcp: %q is not an Ethernet address", mac)
	}
	cl := &client{fd: c.fd, ifindex: c.ifindex, mac: mac, o: o}
	if cl.o.VendorClass == "" {
		cl.o.VendorClass = fmt.Sprintf("PXEClient:Arch:%05d:UNDI:002001", cl.o.Arch)
	}
	if len(cl.o.Timeouts) == 0 {
		cl.o.Timeouts = []time.Duration{2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second, 8 * time.Second}
	}
	if cl.o.Log == nil {
		cl.o.Log = func(string, ...any) {}
	}
	lease, err := cl.run(ctx, c.ifname)
	runtime.KeepAlive(c.f) // the fd belongs to c.f
	return lease, err
}

type client struct {
	fd      int
	ifindex int
	mac     net.HardwareAddr
	o       DHCPOptions
	xid     uint32
	ipID    uint16
}

var (
	broadcastMAC = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	broadcastIP  = netip.AddrFrom4([4]byte{255, 255, 255, 255})
)

// ErrNoAnswer is returned (wrapped) when no DHCP server answered in time.
var ErrNoAnswer = errors.New("no DHCP answer")

// errDeadline: the context ended while waiting.
var errDeadline = errors.New("deadline")

func (c *client) run(ctx context.Context, ifname string) (*Lease, error) {
	var xb [4]byte
	rand.Read(xb[:])
	c.xid = binary.BigEndian.Uint32(xb[:])
	base := map[uint8][]byte{
		// 209 and 210: PXELINUX's config file and path prefix.
		55: {1, 3, 6, 12, 15, 28, 43, 54, 60, 66, 67, 97, 209, 210},
		57: {0x05, 0xdc}, // max message size 1500
		60: []byte(c.o.VendorClass),
		93: {byte(c.o.Arch >> 8), byte(c.o.Arch)},
		94: {1, 2, 1}, // UNDI 2.1
	}
	tries := 0
	for _, wait := range c.o.Timeouts {
		tries++
		c.o.Log("DHCPDISCOVER as %s on %s (xid %08x, try %d)", c.mac, ifname, c.xid, tries)
		if err := c.send(dhcp.MsgDiscover, base); err != nil {
			return nil, err
		}
		offer, err := c.wait(ctx, wait, 2)
		if errors.Is(err, errDeadline) {
			break
		}
		if err != nil {
			return nil, err
		}
		if offer == nil {
			continue
		}
		sid := netip.Addr{}
		if v := offer.Options[54]; len(v) == 4 {
			sid = netip.AddrFrom4([4]byte(v))
		}
		c.o.Log("DHCPOFFER of %s from %s", offer.YIAddr, sid)
		req := map[uint8][]byte{}
		for k, v := range base {
			req[k] = v
		}
		a := offer.YIAddr.As4()
		req[50] = a[:]
		if sid.IsValid() {
			s := sid.As4()
			req[54] = s[:]
		}
		if err := c.send(dhcp.MsgRequest, req); err != nil {
			return nil, err
		}
		ack, err := c.wait(ctx, wait, 5, 6)
		if errors.Is(err, errDeadline) {
			break
		}
		if err != nil {
			return nil, err
		}
		if ack == nil {
			continue
		}
		if ack.Type() == 6 {
			c.o.Log("DHCPNAK from %s: %s", sid, ack.Options[56])
			continue
		}
		c.o.Log("DHCPACK of %s from %s", ack.YIAddr, sid)
		return leaseOf(ack), nil
	}
	return nil, fmt.Errorf("dhcp as %s on %s: %w to %d DHCPDISCOVER(s)", c.mac, ifname, ErrNoAnswer, tries)
}

func leaseOf(p *dhcp.Packet) *Lease {
	l := &Lease{IP: p.YIAddr, NextServer: p.SIAddr, File: p.File, Options: p.Options}
	addr := func(code uint8) netip.Addr {
		if v := p.Options[code]; len(v) >= 4 {
			return netip.AddrFrom4([4]byte(v[:4]))
		}
		return netip.Addr{}
	}
	l.Mask, l.Router, l.ServerID = addr(1), addr(3), addr(54)
	if f := p.Options[67]; len(f) > 0 {
		l.File = trimNUL(string(f))
	}
	l.TFTPServer = trimNUL(string(p.Options[66]))
	return l
}

func trimNUL(s string) string {
	for len(s) > 0 && s[len(s)-1] == 0 {
		s = s[:len(s)-1]
	}
	return s
}

func (c *client) send(typ uint8, opts map[uint8][]byte) error {
	msg := dhcp.ClientMessage(typ, c.mac, c.xid, netip.Addr{}, opts)
	c.ipID++
	frame, err := dhcpnet.AppendEthernetUDP(nil, broadcastMAC, c.mac, netip.IPv4Unspecified(), broadcastIP, 68, 67, c.ipID, msg)
	if err != nil {
		return err
	}
	sa := &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: c.ifindex, Halen: 6}
	copy(sa.Addr[:], broadcastMAC)
	if err := unix.Sendto(c.fd, frame, 0, sa); err != nil {
		return fmt.Errorf("dhcp: send: %w", err)
	}
	return nil
}

// wait reads frames until a DHCP reply for this xid and MAC of one of the
// wanted message types arrives (nil after d without one).
func (c *client) wait(ctx context.Context, d time.Duration, types ...uint8) (*dhcp.Packet, error) {
	deadline := time.Now().Add(d)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	ctxDeadline, hasCtxDeadline := ctx.Deadline()
	buf := make([]byte, 65536)
	oob := make([]byte, 256)
	for {
		left := time.Until(deadline)
		if ctx.Err() != nil || (left <= 0 && hasCtxDeadline && !time.Now().Before(ctxDeadline)) {
			return nil, errDeadline
		}
		if left <= 0 {
			return nil, nil // this try timed out; the caller retransmits
		}
		ms := int(left / time.Millisecond)
		if ms > 200 {
			ms = 200 // wake up to notice ctx cancellation
		}
		if ms < 1 {
			ms = 1
		}
		pfd := []unix.PollFd{{Fd: int32(c.fd), Events: unix.POLLIN}}
		n, err := unix.Poll(pfd, ms)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return nil, fmt.Errorf("dhcp: poll: %w", err)
		}
		if n == 0 {
			continue
		}
		m, oobn, _, from, err := unix.Recvmsg(c.fd, buf, oob, unix.MSG_DONTWAIT)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				continue
			}
			return nil, fmt.Errorf("dhcp: receive: %w", err)
		}
		if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
			continue // our own frames
		}
		_, _, dst, payload, ok := dhcpnet.ParseEthernetUDP(buf[:m], !ChecksumPending(oob[:oobn]))
		if !ok || dst.Port() != 68 {
			continue
		}
		p, err := dhcp.Parse(payload)
		if err != nil || p.XID != c.xid || p.Op != 2 || !bytes.Equal(p.MAC(), c.mac) {
			continue
		}
		for _, t := range types {
			if p.Type() == t {
				return p, nil
			}
		}
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// ChecksumPending reports whether oob, the control messages of a frame
// read from a packet socket with PACKET_AUXDATA on, say that the frame's
// transport checksum is not computed yet (TP_STATUS_CSUMNOTREADY: the
// sender is on this host and left it to the hardware).
func ChecksumPending(oob []byte) bool {
	// Walked by hand, not with unix.ParseSocketControlMessage: this runs
	// for every frame a guest receives, and must not allocate.
	const hdr = unix.SizeofCmsghdr
	const align = int(unsafe.Sizeof(uintptr(0))) // CMSG_ALIGN
	for len(oob) >= hdr {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&oob[0]))
		n := int(h.Len)
		if n < hdr || n > len(oob) {
			return false
		}
		if h.Level == unix.SOL_PACKET && h.Type == unix.PACKET_AUXDATA && n >= hdr+4 {
			return binary.NativeEndian.Uint32(oob[hdr:hdr+4])&unix.TP_STATUS_CSUMNOTREADY != 0
		}
		next := (n + align - 1) &^ (align - 1)
		if next >= len(oob) {
			return false
		}
		oob = oob[next:]
	}
	return false
}
