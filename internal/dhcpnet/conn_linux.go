package dhcpnet

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// permHint is added to errors for a missing privilege.
const permHint = " (needs root or CAP_NET_RAW/CAP_NET_BIND_SERVICE)"

// Conn is the pair of sockets that serve DHCP on one interface: a UDP
// socket for receiving and for routed replies, and on Ethernet an AF_PACKET
// socket for replies to a hardware address. See the package documentation.
//
// ReadFrom is for one goroutine at a time; the Send methods, Interface and
// Refresh may be called from any number of goroutines at once.
type Conn struct {
	name  string
	index int
	udp   *net.UDPConn
	// udpRaw is udp's syscall.RawConn, for the raw sends and
	// non-blocking reads (taken once: SyscallConn allocates).
	udpRaw syscall.RawConn
	// pkt is the send-only AF_PACKET socket; nil on an interface that is
	// not Ethernet. pktConn is its syscall.RawConn, through Go's poller.
	pkt     *os.File
	pktConn syscall.RawConn

	iface  atomic.Pointer[Iface]
	ipID   atomic.Uint32
	frames sync.Pool // of *l2frame

	readMu sync.Mutex // guards oob
	oob    [oobSize]byte
}

var _ PacketConn = (*Conn)(nil)

// Listen opens the sockets that serve DHCP on interface ifname: a UDP
// socket on 0.0.0.0:port with SO_BINDTODEVICE(ifname), SO_REUSEADDR,
// SO_BROADCAST and IP_PKTINFO, and, if the interface is Ethernet, a
// send-only AF_PACKET socket bound to it for SendL2. Port 0 picks a free
// port (see LocalAddr). Conns for different interfaces can listen on the
// same port at once.
//
// An interface without an IPv4 address is no error, nor is one that is
// down. A missing interface is (ErrNoInterface), and so is a missing
// privilege: binding a port below 1024 needs CAP_NET_BIND_SERVICE, the
// AF_PACKET socket CAP_NET_RAW.
func Listen(ifname string, port int) (*Conn, error) {
	if port < 0 || port > 0xffff {
		return nil, fmt.Errorf("dhcpnet: listen on interface %q: port %d out of range", ifname, port)
	}
	info, err := lookupIface(ifname)
	if err != nil {
		return nil, err
	}
	fail := func(what string, err error) error {
		hint := ""
		if errors.Is(err, os.ErrPermission) {
			hint = permHint
		}
		return fmt.Errorf("dhcpnet: listen on interface %q port %d: %s: %w%s", ifname, port, what, err, hint)
	}

	c := &Conn{name: ifname, index: info.Index}
	c.iface.Store(&info)
	c.frames.New = func() any { return newL2frame(make([]byte, 0, HeaderOverhead+1500)) }

	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = setUDPOptions(int(fd), ifname)
		})
		if err == nil {
			err = serr
		}
		return err
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", net.JoinHostPort("0.0.0.0", strconv.Itoa(port)))
	if err != nil {
		return nil, fail("UDP socket", err)
	}
	c.udp = pc.(*net.UDPConn)
	if c.udpRaw, err = c.udp.SyscallConn(); err != nil {
		c.udp.Close()
		return nil, fail("UDP socket", err)
	}

	if info.HardwareType == ARPHRDEther {
		if err := c.openPacket(); err != nil {
			c.udp.Close()
			return nil, fail("AF_PACKET socket", err)
		}
	}
	return c, nil
}

// RecvBuffer is the receive buffer Listen asks for on the UDP socket.
const RecvBuffer = 4 << 20

// setUDPOptions sets the options of Listen's UDP socket before it is bound.
// SO_BINDTODEVICE must come before bind for two Conns on two interfaces to
// share a port.
func setUDPOptions(fd int, ifname string) error {
	for _, o := range []struct {
		level, opt int
		name       string
	}{
		{unix.SOL_SOCKET, unix.SO_REUSEADDR, "SO_REUSEADDR"},
		{unix.SOL_SOCKET, unix.SO_BROADCAST, "SO_BROADCAST"},
		{unix.IPPROTO_IP, unix.IP_PKTINFO, "IP_PKTINFO"},
	} {
		if err := unix.SetsockoptInt(fd, o.level, o.opt, 1); err != nil {
			return os.NewSyscallError("setsockopt "+o.name, err)
		}
	}
	// A deep receive queue rides out the moments the server spends writing
	// leases (an fsync can take tens of milliseconds on a busy disk) without
	// dropping requests: 4 MiB holds thousands of DHCP datagrams. Root may
	// exceed net.core.rmem_max (SO_RCVBUFFORCE); otherwise the kernel caps
	// SO_RCVBUF at rmem_max, which is still no worse than the default.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, RecvBuffer) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, RecvBuffer)
	}
	if err := unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, ifname); err != nil {
		return os.NewSyscallError("setsockopt SO_BINDTODEVICE", err)
	}
	return nil
}

// openPacket opens the send-only AF_PACKET socket. Created with protocol 0
// and bound with protocol 0, it is never hooked into the receive path, so
// it queues none of the frames on the wire; a filter that accepts nothing
// and the smallest receive buffer make sure of it should anything rebind
// it.
func (c *Conn) openPacket() error {
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		return os.NewSyscallError("socket", err)
	}
	drop := []unix.SockFilter{{Code: unix.BPF_RET | unix.BPF_K, K: 0}}
	if err := unix.SetsockoptSockFprog(fd, unix.SOL_SOCKET, unix.SO_ATTACH_FILTER, &unix.SockFprog{Len: 1, Filter: &drop[0]}); err != nil {
		unix.Close(fd)
		return os.NewSyscallError("setsockopt SO_ATTACH_FILTER", err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 0); err != nil { // the kernel raises it to its minimum
		unix.Close(fd)
		return os.NewSyscallError("setsockopt SO_RCVBUF", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: c.index}); err != nil {
		unix.Close(fd)
		return os.NewSyscallError("bind", err)
	}
	f := os.NewFile(uintptr(fd), "packet:"+c.name) // non-blocking: served by Go's poller
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return err
	}
	c.pkt, c.pktConn = f, rc
	return nil
}

// lookupIface describes interface name, or returns an error naming it.
func lookupIface(name string) (Iface, error) {
	fail := func(err error) (Iface, error) {
		return Iface{}, fmt.Errorf("dhcpnet: interface %q: %w", name, err)
	}
	ifr, err := unix.NewIfreq(name)
	if err != nil {
		return fail(fmt.Errorf("invalid interface name: %w", err))
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fail(os.NewSyscallError("socket", err))
	}
	defer unix.Close(fd)
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFINDEX, ifr); err != nil {
		if err == unix.ENODEV {
			return fail(ErrNoInterface)
		}
		return fail(os.NewSyscallError("ioctl SIOCGIFINDEX", err))
	}
	index := int(ifr.Uint32())
	ifr, _ = unix.NewIfreq(name)
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFHWADDR, ifr); err != nil {
		if err == unix.ENODEV {
			return fail(ErrNoInterface)
		}
		return fail(os.NewSyscallError("ioctl SIOCGIFHWADDR", err))
	}
	hwType := ifr.Uint16() // ifr_hwaddr.sa_family

	ifi, err := net.InterfaceByIndex(index)
	if err != nil || ifi.Name != name {
		return fail(ErrNoInterface) // renamed or deleted since the ioctl
	}
	addrs, err := ifi.Addrs()
	if err != nil {
		return fail(err)
	}
	info := Iface{
		Name:         name,
		Index:        index,
		HardwareType: hwType,
		HardwareAddr: ifi.HardwareAddr,
		MTU:          ifi.MTU,
		Flags:        ifi.Flags,
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok || !ip.Unmap().Is4() {
			continue
		}
		ones, bits := ipn.Mask.Size()
		if bits == 128 {
			ones -= 96
		}
		info.Addrs = append(info.Addrs, netip.PrefixFrom(ip.Unmap(), ones))
	}
	return info, nil
}

// LookupInterface describes interface ifname as Listen would find it: its
// IPv4 addresses, MTU, hardware address and flags. It wraps
// ErrNoInterface when there is none of that name.
func LookupInterface(ifname string) (Iface, error) { return lookupIface(ifname) }

// InterfaceAddr returns the first IPv4 address of interface ifname, the
// address a server uses as its server identifier and default next-server.
// It wraps ErrNoInterface or ErrNoIPv4Address when there is none.
func InterfaceAddr(ifname string) (netip.Addr, error) {
	info, err := lookupIface(ifname)
	if err != nil {
		return netip.Addr{}, err
	}
	addr, ok := info.Addr()
	if !ok {
		return netip.Addr{}, fmt.Errorf("dhcpnet: interface %q: %w", ifname, ErrNoIPv4Address)
	}
	return addr, nil
}

// Interface describes the interface as of Listen or the last Refresh.
func (c *Conn) Interface() Iface {
	return *c.iface.Load()
}

// Refresh reads the interface's addresses, MTU, hardware address and flags
// again. It fails if the interface is gone, or wraps ErrInterfaceReplaced if
// its name now belongs to another interface; Interface then keeps the old
// description.
func (c *Conn) Refresh() error {
	info, err := lookupIface(c.name)
	if err != nil {
		return err
	}
	if info.Index != c.index {
		return fmt.Errorf("dhcpnet: interface %q: index %d, not %d: %w", c.name, info.Index, c.index, ErrInterfaceReplaced)
	}
	c.iface.Store(&info)
	return nil
}

// LocalAddr returns the address the UDP socket is bound to, 0.0.0.0 and the
// port (which Listen picked if asked for port 0).
func (c *Conn) LocalAddr() netip.AddrPort {
	return c.udp.LocalAddr().(*net.UDPAddr).AddrPort()
}

// ReadFrom reads one datagram that arrived on the interface into b. It
// returns its length, its source (0.0.0.0:68 for a client that has no
// address yet) and dst, the destination address in its IPv4 header, from
// IP_PKTINFO: 255.255.255.255 for a broadcast, the interface's address for
// a unicast, or a subnet broadcast address. dst is the zero Addr in the
// unlikely event that the kernel gave no IP_PKTINFO.
//
// A datagram larger than b is cut to len(b), with an error that wraps
// ErrTruncated. Other errors are those of net.UDPConn: a deadline set with
// SetReadDeadline makes one that wraps os.ErrDeadlineExceeded, Close one
// that wraps net.ErrClosed.
//
// ReadFrom does not allocate. Calls from several goroutines are safe but
// take turns.
func (c *Conn) ReadFrom(b []byte) (n int, src netip.AddrPort, dst netip.Addr, err error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	n, oobn, flags, src, err := c.udp.ReadMsgUDPAddrPort(b, c.oob[:])
	if err != nil {
		return 0, netip.AddrPort{}, netip.Addr{}, err
	}
	src = netip.AddrPortFrom(src.Addr().Unmap(), src.Port())
	dst, _, _ = parsePktinfo(c.oob[:oobn])
	if flags&unix.MSG_TRUNC != 0 {
		return n, src, dst, fmt.Errorf("dhcpnet: %s: read from %s: %w", c.name, src, ErrTruncated)
	}
	return n, src, dst, nil
}

// TryReadFrom is ReadFrom that never waits: ok is false when no datagram
// is queued. A server under load polls with it and sleeps between polls,
// so one wakeup serves many datagrams instead of one each (on a VM a
// thread wakeup costs more than handling a DHCP packet).
func (c *Conn) TryReadFrom(b []byte) (n int, src netip.AddrPort, dst netip.Addr, ok bool, err error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	var (
		oobn, flags int
		from        unix.RawSockaddrInet4
		rerr        error
	)
	if err := c.udpRaw.Read(func(fd uintptr) bool {
		n, oobn, flags, rerr = recvmsgInet4(fd, b, c.oob[:], &from)
		return true
	}); err != nil {
		return 0, netip.AddrPort{}, netip.Addr{}, false, err
	}
	if rerr == unix.EAGAIN || rerr == unix.EINTR {
		return 0, netip.AddrPort{}, netip.Addr{}, false, nil
	}
	if rerr != nil {
		return 0, netip.AddrPort{}, netip.Addr{}, false, fmt.Errorf("dhcpnet: %s: read: %w", c.name, rerr)
	}
	src = netip.AddrPortFrom(netip.AddrFrom4(from.Addr), portOf(&from))
	dst, _, _ = parsePktinfo(c.oob[:oobn])
	if flags&unix.MSG_TRUNC != 0 {
		return n, src, dst, true, fmt.Errorf("dhcpnet: %s: read from %s: %w", c.name, src, ErrTruncated)
	}
	return n, src, dst, true, nil
}

// SetReadDeadline sets the deadline for ReadFrom, as net.Conn does; the
// zero time means none.
func (c *Conn) SetReadDeadline(t time.Time) error {
	return c.udp.SetReadDeadline(t)
}

// SendTo sends b as one UDP datagram from the Conn's port to dst, routed by
// the kernel: to a relay agent at giaddr:67, to a client at ciaddr:68, or to
// 255.255.255.255:68, the broadcast on this interface. The source address
// is the kernel's choice (the interface's primary address on that subnet).
//
// The socket is bound to the interface, so every datagram leaves by it,
// broadcasts included, and only routes through this interface count: a
// destination that the routing table reaches through another interface, or
// not at all, is taken to be on this interface's link and ARPed for there.
// Such a send succeeds and the datagram is lost if nobody answers, so a
// relay agent must be reachable through the interface its requests come in
// on (a route via this interface, or the default route).
func (c *Conn) SendTo(b []byte, dst netip.AddrPort) error {
	addr := dst.Addr().Unmap()
	if !addr.Is4() {
		return fmt.Errorf("dhcpnet: %s: send to %s: not an IPv4 address", c.name, dst)
	}
	to := netip.AddrPortFrom(addr, dst.Port())
	var serr error
	if err := c.udpRaw.Write(func(fd uintptr) bool {
		serr = sendtoInet4(fd, b, to)
		return serr != unix.EAGAIN
	}); err != nil {
		return fmt.Errorf("dhcpnet: %s: send to %s: %w", c.name, dst, err)
	}
	if serr != nil {
		return fmt.Errorf("dhcpnet: %s: send to %s: %w", c.name, dst, os.NewSyscallError("sendto", serr))
	}
	return nil
}

// SendL2 sends b as the payload of a UDP datagram from srcIP:srcPort to
// dstIP:dstPort, in an Ethernet frame from the interface's MAC address to
// dstMAC, without ARP and without touching the neighbour table. It is how
// a server unicasts to a client that has no IP address yet: dstIP its
// yiaddr, dstMAC its chaddr (RFC 2131 §4.1). It builds the IPv4 header (TTL
// 64, no options, checksum) and the UDP header (checksum computed, never
// left zero) itself; the kernel adds the Ethernet header. srcIP is the
// server's address on the link, normally its server identifier.
//
// It wraps ErrNotEthernet on an interface of another hardware type, and
// fails if the datagram would exceed the interface MTU.
func (c *Conn) SendL2(b []byte, dstMAC net.HardwareAddr, srcIP, dstIP netip.Addr, srcPort, dstPort uint16) error {
	info := c.iface.Load()
	if c.pkt == nil {
		return fmt.Errorf("dhcpnet: %s: SendL2: %w (hardware type %d)", c.name, ErrNotEthernet, info.HardwareType)
	}
	srcIP, dstIP = srcIP.Unmap(), dstIP.Unmap()
	switch {
	case len(dstMAC) != 6:
		return fmt.Errorf("dhcpnet: %s: SendL2 to %q: not an Ethernet address", c.name, dstMAC)
	case !srcIP.Is4() || !dstIP.Is4():
		return fmt.Errorf("dhcpnet: %s: SendL2 from %s to %s: not IPv4 addresses", c.name, srcIP, dstIP)
	case HeaderOverhead+len(b) > info.MTU:
		return fmt.Errorf("dhcpnet: %s: SendL2 to %s: %d-byte datagram exceeds the MTU of %d", c.name, dstMAC, HeaderOverhead+len(b), info.MTU)
	}
	f := c.frames.Get().(*l2frame)
	defer c.frames.Put(f)
	var err error
	f.buf, err = appendIPv4UDP(f.buf[:0], srcIP.As4(), dstIP.As4(), srcPort, dstPort, uint16(c.ipID.Add(1)), b)
	if err != nil {
		return fmt.Errorf("dhcpnet: %s: SendL2: %w", c.name, err)
	}
	if err := c.sendFrame(f, dstMAC); err != nil {
		return fmt.Errorf("dhcpnet: %s: SendL2 to %s (%s): %w", c.name, dstMAC, dstIP, err)
	}
	return nil
}

// l2frame is one SendL2 in flight: the datagram, its destination and the
// function the poller calls, kept together and pooled so that a send does
// not allocate.
type l2frame struct {
	buf    []byte
	sa     unix.RawSockaddrLinklayer
	err    error
	sendFn func(fd uintptr) bool // f.send, made once
}

func newL2frame(buf []byte) *l2frame {
	f := &l2frame{buf: buf}
	f.sendFn = f.send
	return f
}

// send is for syscall.RawConn.Write: it reports false to wait until the
// socket is writable.
func (f *l2frame) send(fd uintptr) bool {
	f.err = rawSendto(fd, f.buf, unsafe.Pointer(&f.sa), unix.SizeofSockaddrLinklayer)
	return f.err != unix.EAGAIN
}

// sendFrame sends f.buf, an IPv4 datagram with its headers, in an Ethernet
// frame to dstMAC.
func (c *Conn) sendFrame(f *l2frame, dstMAC net.HardwareAddr) error {
	f.sa = unix.RawSockaddrLinklayer{
		Family:   unix.AF_PACKET,
		Protocol: htons(unix.ETH_P_IP),
		Ifindex:  int32(c.index),
		Halen:    uint8(len(dstMAC)),
	}
	copy(f.sa.Addr[:], dstMAC)
	f.err = nil
	if err := c.pktConn.Write(f.sendFn); err != nil {
		return err
	}
	if f.err != nil {
		return os.NewSyscallError("sendto", f.err)
	}
	return nil
}

// Close closes both sockets. A ReadFrom blocked in another goroutine
// returns an error that wraps net.ErrClosed.
func (c *Conn) Close() error {
	err := c.udp.Close()
	if c.pkt != nil {
		if perr := c.pkt.Close(); err == nil {
			err = perr
		}
	}
	return err
}

// htons returns v with its bytes in network order, as the kernel wants
// sll_protocol.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}
